"""Application maintenance and application triage on the lab: labapp, its hosts from NetBox
(the labapp service on srv1 and srv2), its releases from the lab's artifacts directory.

One lab hold serves every assertion, through the engine and the change book, as the lab's
people: olivia plans labapp 1.1 (the check-mode plan: not installed → 1.1 on each host),
rachel reviews, arthur approves (olivia may not, though she holds the authority), olivia runs
it (each host deployed in turn, health-checked: the health URL answers 200 from this
machine); a second run changes nothing. A triage of the healthy application names nothing.
Then 1.2-bad, whose /health answers 500: srv1 (the first host) is rolled back to 1.1 by the
playbook, the roll stops before srv2, the step's undo checks both at 1.1 and healthy, and the
record holds the failure and the undo, its chain intact. Last the faults: srv2's state file
corrupted (the application answers errors) and srv1's service stopped; the triage names each.
"""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_support import AnsibleLab, ansible_lab
from lab_fixtures import LabHandle

from runbooks.core import policy
from runbooks.core.changes import ChangeBook, run_change
from runbooks.core.errors import ApprovalError
from runbooks.core.results import RunResult, RunStatus, Status
from runbooks.lab import hosts, labapp
from runbooks.library.app_maintenance import AppMaintenance
from runbooks.library.fault_application import FaultApplication

pytestmark = pytest.mark.slow

OLIVIA = policy.Identity("olivia", frozenset({policy.HANDLE}))
RACHEL = policy.Identity("rachel", frozenset({policy.REVIEW}))
ARTHUR = policy.Identity("arthur", frozenset({policy.APPROVE}))
INCIDENT = "INC-APP-1"
ADDRESS = {"srv1": "198.18.0.31", "srv2": "198.18.0.32"}


def on_host(host: str, command: str) -> str:
    return str(hosts.run_on_host(host, ["sh", "-c", command]).stdout).strip()


def release(host: str) -> str:
    return on_host(host, "readlink /opt/labapp/current | xargs -r basename")


def health(host: str) -> int:
    """The health URL's status code, asked from this machine (as a user would)."""
    url = f"http://{ADDRESS[host]}:{labapp.PORT}{labapp.HEALTH}"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def step(document: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(s for s in document["steps"] if s["step"] == name))


def diagnosis_of(result: RunResult) -> dict[str, Any]:
    """A triage run's diagnosis; the run read-only: succeeded, nothing changed."""
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert not any(s.changed for s in result.steps)
    found = {s.step: s.evidence for s in result.steps}["diagnosis"]
    assert found["incident"] == INCIDENT
    return dict(found)


@pytest.fixture
def app_lab(
    lab_reset: LabHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AnsibleLab]:
    labapp.ensure()  # the releases (a no-op once built)
    monkeypatch.setenv("RUNBOOKS_APP_ARTIFACTS", str(labapp.artifact_dir()))
    setup = ansible_lab(tmp_path, monkeypatch)
    try:
        yield setup
    finally:
        setup.store.close()
        for host in labapp.HOSTS:  # no application left running for the next holder
            on_host(host, "[ -x /etc/init.d/labapp ] && /etc/init.d/labapp stop || true")


def test_deploy_again_roll_back_a_failing_release_and_triage_the_faults(
    app_lab: AnsibleLab, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    timings: dict[str, float] = {}
    try:
        check_all(app_lab, tmp_path, caplog, timings)
    finally:
        logging.getLogger(__name__).warning(
            "timings: %s", ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        )


def check_all(
    app_lab: AnsibleLab,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    timings: dict[str, float],
) -> None:
    engine = app_lab.engine

    def deploy(version: str, timeout_s: int) -> AppMaintenance:
        raw = {"app": "labapp", "version": version, "health_timeout_s": timeout_s}
        return AppMaintenance(AppMaintenance.parse_params(raw))

    # olivia's plan: per host, labapp from not installed to 1.1, the playbook's words beside it
    started = time.monotonic()
    plan = engine.plan(deploy("1.1", 5))
    timings["plan"] = time.monotonic() - started
    assert plan.refusal is None, plan.refusal
    steps = {s.step: s for s in plan.steps}
    diffs = {d.target: d for d in steps["plan_release"].diffs}
    assert set(diffs) == {"srv1: labapp", "srv2: labapp"}
    approved = hashlib.sha256(labapp.release_bytes("1.1")).hexdigest()  # the tarball itself
    assert [(f.name, f.before, f.after) for f in diffs["srv1: labapp"].fields] == [
        ("release", None, "1.1"),
        ("artifact sha256", None, approved),
    ]
    assert "Release | current → 1.1" in diffs["srv2: labapp"].text  # the play's words
    assert steps["app_hosts"].evidence["port"] == labapp.PORT  # from NetBox
    assert release("srv1") == ""  # the plan deployed nothing

    # reviewed by rachel and approved by arthur (olivia may do neither), run by olivia
    book = ChangeBook(app_lab.store)
    change = book.create(plan, OLIVIA, None)
    self_approval = policy.Identity("olivia", frozenset({policy.HANDLE, policy.APPROVE}))
    with pytest.raises(ApprovalError):  # even holding the authority, not her own change
        book.sign(change, self_approval, policy.APPROVE, change.plan_hash)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    change = book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash)
    started = time.monotonic()
    ran = run_change(engine, book, change, OLIVIA, deploy("1.1", 5))
    timings["run"] = time.monotonic() - started
    assert ran.status is RunStatus.SUCCEEDED, ran.error
    assert release("srv1") == release("srv2") == "1.1"
    assert health("srv1") == health("srv2") == 200
    done = {s.step: s for s in ran.steps}["plan_release"]
    assert done.evidence["releases"]["srv2"]["before"] is None

    # a second run: nothing to change
    started = time.monotonic()
    again = engine.run(deploy("1.1", 5))
    timings["second run"] = time.monotonic() - started
    assert again.status is RunStatus.SUCCEEDED, again.error
    assert {s.step: s.status for s in again.steps}["plan_release"] is Status.NO_CHANGE

    # the healthy application: the triage names nothing

    def triage() -> dict[str, Any]:
        started = time.monotonic()
        params = {"app": "labapp", "incident": INCIDENT}
        found = diagnosis_of(engine.run(FaultApplication(FaultApplication.parse_params(params))))
        timings[f"triage {len(timings)}"] = time.monotonic() - started
        return found

    healthy = triage()
    assert healthy["healthy"] and healthy["findings"] == [], healthy

    # 1.2-bad: srv1 fails its health check and is rolled back; srv2 is never touched
    bad = deploy("1.2-bad", 2)
    started = time.monotonic()
    result = engine.run(bad)
    timings["failed deploy"] = time.monotonic() - started
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert result.error and "labapp 1.2-bad failed on srv1 at 'Release | health check'" in (
        result.error
    )
    assert "rolled back to 1.1 (health check 200)" in result.error
    assert release("srv1") == release("srv2") == "1.1"
    assert health("srv1") == health("srv2") == 200
    entries = app_lab.store.entries(result.run_id)
    kinds = [(e.kind, e.step) for e in entries]
    assert ("step.failed", "plan_release") in kinds
    assert ("undo.finished", "plan_release") in kinds and kinds[-1][0] == "run.finished"
    [undone] = [e for e in entries if e.kind == "undo.finished"]
    assert {h: r["version"] for h, r in undone.payload["evidence"]["releases"].items()} == {
        "srv1": "1.1",
        "srv2": "1.1",
    }
    assert app_lab.store.verify().ok

    # the faults: srv2 answers errors (its state file corrupt), srv1's service stopped
    on_host("srv2", "echo 'not json' > /var/lib/labapp/state.json")
    on_host("srv1", "/etc/init.d/labapp stop")
    faults = triage()
    findings = faults["findings"]
    assert "labapp on srv2: /health answers 500 (healthy baseline 200)" in findings, findings
    assert any(
        f.startswith("labapp on srv2: ") and "error line(s) in its log" in f
        and "state.json unreadable" in f
        for f in findings
    ), findings  # fmt: skip
    assert "labapp on srv1: its service is not running" in findings
    assert f"labapp not listening on {ADDRESS['srv1']}:{labapp.PORT} (srv1)" in findings
    assert not faults["healthy"]
    app_lab.assert_no_secret(caplog.text)
