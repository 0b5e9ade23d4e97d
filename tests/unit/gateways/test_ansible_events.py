"""ansible-runner events -> TaskResult / Diff: data tables of events as the runner sends them."""

from __future__ import annotations

from typing import Any

import pytest

from runbooks.core import secrets
from runbooks.core.errors import VerificationError
from runbooks.gateways.ansible_events import (
    PlaybookResult,
    TaskResult,
    mask_event,
    recap,
    task_result,
)


def ev(name: str, res: dict[str, Any] | None = None, **data: Any) -> dict[str, Any]:
    base = {"host": "srv1", "task": "Baseline motd", "play": "maintenance", "duration": 0.25}
    return {"event": name, "event_data": {**base, **data, "res": res or {}}}


CASES = [
    # (event, status, changed, number of diffs, diff text contains)
    (ev("runner_on_ok", {"changed": False}), "ok", False, 0, None),
    (
        ev(
            "runner_on_ok",
            {
                "changed": True,
                "diff": [{"before": "old\n", "after": "new\n", "after_header": "/etc/motd"}],
            },
        ),
        "changed",
        True,
        1,
        "+new",
    ),
    (
        ev(
            "runner_on_ok",
            {"changed": True, "diff": {"before": {"state": "absent"}, "after": {"state": "file"}}},
        ),
        "changed",
        True,
        1,
        None,
    ),
    (
        ev(
            "runner_on_ok",
            {"changed": True, "diff": {"prepared": "The following will be installed"}},
        ),
        "changed",
        True,
        1,
        "will be installed",
    ),
    (
        ev(
            "runner_on_ok",
            {
                "changed": True,
                "results": [
                    {"diff": [{"before": "", "after": "a\n", "after_header": "/etc/a"}]},
                    {"diff": [{"before": "b\n", "after": "b\n", "after_header": "/etc/b"}]},
                ],
            },
        ),
        "changed",
        True,
        1,  # the unchanged item's diff is empty and left out
        "+a",
    ),
    (ev("runner_on_failed", {"msg": "boom"}), "failed", False, 0, None),
    (ev("runner_on_failed", {"msg": "boom"}, ignore_errors=True), "ignored", False, 0, None),
    (ev("runner_on_skipped", {}), "skipped", False, 0, None),
    (ev("runner_on_unreachable", {"msg": "ssh: connect timed out"}), "unreachable", False, 0, None),
]


@pytest.mark.parametrize(("event", "status", "changed", "ndiffs", "text"), CASES)
def test_task_result(
    event: dict[str, Any], status: str, changed: bool, ndiffs: int, text: str | None
) -> None:
    result = task_result(event)
    assert result is not None
    assert (result.host, result.task, result.status, result.changed) == (
        "srv1",
        "Baseline motd",
        status,
        changed,
    )
    assert result.duration_s == 0.25
    assert len(result.diffs) == ndiffs
    if text:
        assert text in result.diffs[0].text
    if ndiffs:
        assert result.diffs[0].target.startswith("srv1:")


def test_file_diff_target_names_the_file_and_keeps_before() -> None:
    result = task_result(
        ev(
            "runner_on_ok",
            {
                "changed": True,
                "diff": [{"before": "x\n", "after": "y\n", "after_header": "/etc/motd"}],
            },
        )
    )
    assert result is not None
    diff = result.diffs[0]
    assert diff.target == "srv1:/etc/motd"
    assert diff.before == "x\n"  # what undo would need
    assert result.to_dict()["diff"] == [diff.text]


def test_other_events_are_not_results() -> None:
    assert task_result({"event": "playbook_on_task_start", "event_data": {}}) is None
    assert task_result({"event": "runner_item_on_ok", "event_data": {}}) is None


def test_evidence_fact_is_collected_per_host() -> None:
    events = [
        ev("runner_on_ok", {"ansible_facts": {"runbook_evidence": {"disk_free_pct": 71}}}),
        ev("runner_on_ok", {"ansible_facts": {"runbook_evidence": {"load1": 0.2}}}, host="srv2"),
    ]
    tasks = tuple(r for r in map(task_result, events) if r)
    result = PlaybookResult("p.yml", False, "successful", 0, tasks)
    assert result.evidence() == {"srv1": {"disk_free_pct": 71}, "srv2": {"load1": 0.2}}


def test_recap_and_unreachable() -> None:
    stats = {
        "event": "playbook_on_stats",
        "event_data": {"ok": {"srv1": 5}, "changed": {"srv1": 2}, "dark": {"srv2": 1}},
    }
    counts = recap(stats)
    assert counts == {"srv1": {"ok": 5, "changed": 2}, "srv2": {"unreachable": 1}}
    result = PlaybookResult("p.yml", False, "failed", 4, (), counts)
    assert result.unreachable == ["srv2"]


def test_mask_event_in_place() -> None:
    secret = "s3cr3t-" + "x" * 12
    secrets.register(secret)
    event = ev("runner_on_ok", {"stdout": f"pw is {secret}", "password": "whatever"})
    same = event
    mask_event(event)
    assert same is event
    text = repr(event)
    assert secret not in text and "whatever" not in text


def test_evidence_under_a_key_for_each_host_or_the_hosts_without_it() -> None:
    tasks = (
        TaskResult("srv1", "State", "p", "ok", evidence={"before": {"v": "1.0"}}),
        TaskResult("srv1", "State", "p", "ok", evidence={"after": {"v": "1.1"}}),
        TaskResult("srv2", "State", "p", "ok", evidence={"before": {"v": None}}),
    )
    result = PlaybookResult("app.yml", False, "successful", 0, tasks)
    assert result.evidence_under("before", ["srv2", "srv1"], "state") == {
        "srv2": {"v": None},
        "srv1": {"v": "1.0"},
    }
    with pytest.raises(VerificationError, match=r"^app.yml: no state read on srv2, srv3$"):
        result.evidence_under("after", ["srv1", "srv2", "srv3"], "state")
