"""Separation of duties as the server enforces it: each broken rule answers 403 with one
sentence, is recorded on the change as change.refused (by the person who tried, whatever
the body claims), and leaves the change as it was — also when the body forges who and when.
Authorities come from the lab's groups, and from object permissions with custom actions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from runbooks_rules.plan import plan_hash

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab

# what a forging client adds to its bodies: the server reads none of it
FORGED = {
    "user": "arthur",
    "preparer": "arthur",
    "operator": "arthur",
    "actor": "arthur",
    "recorded_by": "arthur",
    "created": "2000-01-01T00:00:00Z",
    "status": "approved",
}


def _unchanged(nb: Lab, before: dict[str, Any]) -> None:
    assert nb.change(before) == before


def test_self_approval_is_refused(nb: Lab) -> None:
    nb.grant("operator", "approve")  # olivia may approve: just not her own change
    change = nb.create()
    assert nb.sign("reviewer", change, "review").status_code == 201
    before = nb.change(change)
    resp = nb.sign("operator", change, "approve", **FORGED)
    detail = nb.refused(resp, change, "operator")
    assert detail == "olivia prepared this change and cannot approve it"
    _unchanged(nb, before)
    assert nb.chain(change)[-1]["payload"]["action"] == "approve"


def test_self_review_is_refused(nb: Lab) -> None:
    nb.grant("operator", "review")
    change = nb.create()
    before = nb.change(change)
    detail = nb.refused(nb.sign("operator", change, "review", **FORGED), change, "operator")
    assert detail == "olivia prepared this change and cannot review it"
    _unchanged(nb, before)


def test_approval_by_someone_outside_the_approvers_is_refused(nb: Lab) -> None:
    change = nb.create()
    assert nb.sign("reviewer", change, "review").status_code == 201
    before = nb.change(change)
    detail = nb.refused(nb.sign("supervisor", change, "approve", **FORGED), change, "supervisor")
    assert detail.startswith("sophia cannot approve a change: needs the 批准 approve authority")
    _unchanged(nb, before)


def test_the_reviewer_does_not_approve_too(nb: Lab) -> None:
    nb.grant("reviewer", "approve")
    change = nb.create()
    assert nb.sign("reviewer", change, "review").status_code == 201
    before = nb.change(change)
    detail = nb.refused(nb.sign("reviewer", change, "approve"), change, "reviewer")
    assert detail == "rachel reviewed this change; another person must approve it"
    _unchanged(nb, before)


def test_an_approval_naming_a_stale_hash_is_refused(nb: Lab) -> None:
    change = nb.create()
    older = nb.plan(value="green")  # the plan this change replaced
    assert nb.sign("reviewer", change, "review").status_code == 201
    before = nb.change(change)
    resp = nb.sign("approver", change, "approve", hash=plan_hash(older), **FORGED)
    detail = nb.refused(resp, change, "approver")
    assert detail.startswith("the signature must name the plan's hash")
    _unchanged(nb, before)
    # the approver's client recomputed the plan just now, and it no longer holds
    drift = ["Paint the device: NetBox dcim.device leaf1: colour was planned from 'red'"]
    resp = nb.sign("approver", change, "approve", current_hash=plan_hash(older), drift=drift)
    detail = nb.refused(resp, change, "approver")
    assert detail == f"the plan no longer holds: {drift[0]}"
    _unchanged(nb, before)


def test_a_run_started_by_the_reviewer_is_refused(nb: Lab) -> None:
    nb.grant("reviewer", "handle")  # rachel may run changes: not one she reviewed
    change = nb.approved()
    before = nb.change(change)
    detail = nb.refused(nb.start(change, "reviewer", **FORGED), change, "reviewer")
    assert detail == "rachel reviewed or approved this change and cannot run it"
    _unchanged(nb, before)
    assert nb.change(change)["runs"] == []


def test_asking_first_refuses_and_records_but_starts_nothing(nb: Lab) -> None:
    nb.grant("reviewer", "handle")
    change = nb.approved()
    before = nb.change(change)
    asked = nb.start(change, "reviewer", check_only=True, plan_hash="")
    assert nb.refused(asked, change, "reviewer") == (
        "rachel reviewed or approved this change and cannot run it"
    )
    _unchanged(nb, before)
    allowed = nb.start(change, "operator", check_only=True, plan_hash="")
    assert allowed.status_code == 200 and allowed.json() == {"emergency": False}
    assert nb.change(change)["runs"] == [] and nb.change(change)["status"] == "approved"
    missing = nb.start(change, "operator", plan_hash="")
    assert missing.status_code == 400 and "plan_hash is required" in missing.json()["detail"]


def test_a_run_by_someone_without_the_handle_authority_is_refused(nb: Lab) -> None:
    change = nb.approved()
    before = nb.change(change)
    detail = nb.refused(nb.start(change, "supervisor"), change, "supervisor")
    assert detail.startswith("sophia cannot run a change: needs the 經辦 handle authority")
    _unchanged(nb, before)


def _finished_run(nb: Lab, role: str = "operator") -> tuple[dict[str, Any], dict[str, Any]]:
    change = nb.approved()
    started = nb.start(change, role)
    assert started.status_code == 201, started.text
    run = started.json()
    actor = nb[role].username
    entries = nb.entries(
        run, [nb.started(run, change), ("run.finished", None, {"status": "succeeded"})], actor=actor
    )
    assert nb[role].post(f"runs/{run['id']}/entries/", {"entries": entries}).status_code == 201
    return change, run


def test_a_signoff_by_the_runner_is_refused(nb: Lab) -> None:
    nb.grant("supervisor", "handle")  # sophia runs it herself: she cannot supervise it too
    change, run = _finished_run(nb, "supervisor")
    first = nb["supervisor"].post(f"runs/{run['id']}/signoff/", {"note": "", **FORGED})
    assert first.status_code == 201 and first.json()["role"] == "responsible", first.text
    before = nb.change(change)
    again = nb["supervisor"].post(f"runs/{run['id']}/signoff/", {"note": "as supervisor"})
    detail = nb.refused(again, change, "supervisor")
    assert detail == "the record already carries the responsible person's signature"
    _unchanged(nb, before)
    signed = nb["admin"].get(f"runs/{run['id']}/").json()["signatures"]
    assert [(s["authority"], s["user"]) for s in signed] == [("responsible", "sophia")]


def test_signoffs_wait_for_the_end_and_need_a_supervisor(nb: Lab) -> None:
    change = nb.approved()
    run = nb.start(change).json()
    early = nb["supervisor"].post(f"runs/{run['id']}/signoff/", {"note": ""})
    assert nb.refused(early, change, "supervisor").startswith("the run has not finished")
    change, run = _finished_run(nb)
    stranger = nb["reviewer"].post(f"runs/{run['id']}/signoff/", {"note": ""})
    detail = nb.refused(stranger, change, "reviewer")
    assert detail.startswith("rachel cannot sign off a record: needs the 督導 supervise authority")


def test_a_run_outside_its_window_needs_a_second_approver(nb: Lab) -> None:
    past = (datetime.now(UTC) - timedelta(hours=3), datetime.now(UTC) - timedelta(hours=2))
    change = nb.approved(window=past)
    before = nb.change(change)
    detail = nb.refused(nb.start(change), change, "operator")
    assert detail.startswith("outside the change's maintenance window")
    _unchanged(nb, before)
    same = nb.sign("approver", change, "emergency")
    assert nb.refused(same, change, "approver").startswith("arthur already approved")
    extra = nb.sign("approver2", change, "emergency", note="outage")
    assert extra.status_code == 201, extra.text
    run = nb.start(change)
    assert run.status_code == 201, run.text
    assert run.json()["emergency"] is True


def test_drift_at_the_run_refuses_the_change_for_good(nb: Lab) -> None:
    change = nb.approved()
    drift = [
        "Paint the device: NetBox dcim.device leaf1: colour was planned from 'red', now 'pink'"
    ]
    resp = nb.start(change, plan_hash=plan_hash(nb.plan(value="pink")), drift=drift)
    detail = nb.refused(resp, change, "operator")
    assert detail == f"the world changed since the plan was approved: {drift[0]}; plan again"
    after = nb.change(change)
    assert (after["status"], after["stale"], after["refusal"]) == ("refused", True, detail)
    again = nb.start(change)  # the world looks right again: the change still never runs
    assert "is stale" in nb.refused(again, change, "operator")
    assert nb.change(change)["runs"] == []


def test_a_scheduled_run_refused_before_its_window_leaves_it_scheduled(nb: Lab) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1), datetime.now(UTC) + timedelta(hours=2))
    change = nb.approved(window=later)
    scheduled = nb["operator"].post(f"changes/{change['id']}/schedule/", {"confirm_manual": True})
    assert scheduled.status_code == 200, scheduled.text
    assert (scheduled.json()["status"], scheduled.json()["scheduled_by"]) == ("scheduled", "olivia")
    early = nb.start(change, "worker", scheduled=True, worker="host1:4242")
    detail = nb.refused(early, change, "worker")
    assert detail.startswith("outside the change's maintenance window")
    # too early is not too late: the change stays scheduled for its window (test_duties.py
    # shows a scheduled run refused once its window is over leaving it refused)
    after = nb.change(change)
    assert (after["status"], after["refusal"], after["stale"]) == ("scheduled", "", False)


def test_an_unreviewed_change_is_run_by_its_preparer_alone(nb: Lab) -> None:
    change = nb.create(unreviewed=True)
    assert (change["status"], change["unreviewed"]) == ("unreviewed", True)
    review = nb.sign("reviewer", change, "review")
    assert nb.refused(review, change, "reviewer").endswith(
        "is unreviewed: it takes no review or approval"
    )
    nb.grant("reviewer", "handle")
    other = nb.start(change, "reviewer")
    assert "only its preparer olivia runs it" in nb.refused(other, change, "reviewer")
    run = nb.start(change)
    assert run.status_code == 201, run.text
    assert nb.change(change)["unreviewed"] is True


def test_the_server_decides_who_and_when(nb: Lab) -> None:
    change = nb.create(**FORGED)
    assert change["preparer"] == "olivia" and change["status"] == "planned"
    assert not change["created"].startswith("2000")
    assert change["plan"]["actor"] == "olivia"  # the plan document's own claim is replaced
    signed = nb.sign("reviewer", change, "review", **FORGED).json()
    assert signed["signatures"][0]["user"] == "rachel"
    assert not signed["signatures"][0]["created"].startswith("2000")
    assert [e["actor"] for e in nb.chain(change)] == ["olivia", "rachel"]


def test_preparing_needs_the_handle_authority(nb: Lab) -> None:
    plan = nb.plan()
    body = {"runbook": "ledger", "plan": plan, "params": plan["params"]}
    resp = nb["reviewer"].post("changes/", body)
    assert resp.status_code == 403
    assert resp.json()["detail"].startswith("rachel cannot prepare a change")
    assert nb["admin"].get("changes/").json()["count"] == 0


def test_nothing_is_rewritten_through_the_api(nb: Lab) -> None:
    change = nb.approved()
    run = nb.start(change).json()
    for method, path in (
        ("PATCH", f"changes/{change['id']}/"),
        ("PUT", f"changes/{change['id']}/"),
        ("DELETE", f"changes/{change['id']}/"),
        ("PATCH", "changes/"),
        ("DELETE", "changes/"),
        ("PATCH", f"runs/{run['id']}/"),
        ("DELETE", f"runs/{run['id']}/"),
        ("POST", "runs/"),
    ):
        resp = nb["admin"].request(
            method, path, json={"plan_hash": "0" * 64, "status": "succeeded"}
        )
        assert resp.status_code == 405, (method, path, resp.status_code, resp.text)
    assert nb.change(change)["plan_hash"] == change["plan_hash"]


def test_writes_need_a_write_enabled_token(nb: Lab) -> None:
    change = nb.create()
    body = {"user": nb.user_id("reviewer"), "write_enabled": False, "version": 2}
    made = nb["admin"].post("/api/users/tokens/", body)
    assert made.status_code == 201, made.text
    token = f"nbt_{made.json()['key']}.{made.json()['token']}"
    read_only = dataclasses.replace(nb["reviewer"], token=token)
    assert read_only.get(f"changes/{change['id']}/").status_code == 200
    resp = read_only.post(f"changes/{change['id']}/sign/", {"authority": "review", "hash": ""})
    assert resp.status_code == 403 and "read-only" in resp.json()["detail"], resp.text
    assert [e["kind"] for e in nb.chain(change)] == ["change.planned"]  # no rule was asked


def test_who_signs_is_asked_first_and_before_the_plan(nb: Lab) -> None:
    """A client asks (check_only) before its re-plan; the server answers who may sign before
    it looks at a recomputed plan: a person without the authority hears that, not 'drift'."""
    nb.grant("reviewer", "approve")
    change = nb.create()
    assert nb.sign("reviewer", change, "review").status_code == 201
    before = nb.change(change)
    asked = nb.sign("reviewer", change, "approve", check_only=True)
    assert nb.refused(asked, change, "reviewer") == (
        "rachel reviewed this change; another person must approve it"
    )
    _unchanged(nb, before)
    drifted = nb.sign(
        "reviewer",
        change,
        "approve",
        current_hash=plan_hash(nb.plan(value="pink")),
        drift=["leaf1 colour: 'red' → 'pink'"],
    )
    assert nb.refused(drifted, change, "reviewer") == (
        "rachel reviewed this change; another person must approve it"
    )
    allowed = nb.sign("approver", change, "approve", check_only=True)
    assert allowed.status_code == 200, allowed.text
    assert nb.change(change) == before  # asked, not signed
