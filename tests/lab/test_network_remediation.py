"""network-remediation on the lab, one lab hold for all of it: drift injected on two devices (a
vtysh change on leaf1, a changed interface description in NetBox for leaf2) → a plan naming
exactly those two (the spines compliant, left alone), each diff under its batch → reviewed and
approved by two other people → run in canary batches → both compliant (a second plan finds no
drift). Then drift on three devices and a BGP peer of the second batch's device dropping its
session during that batch → the run stops there, that batch is rolled back (the device's
configuration exactly as before), the canary stays done, the third batch is not run, and the
record says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rack_support import device_gateway, devices_with

from runbooks.config import netbox_settings
from runbooks.core import policy
from runbooks.core.changes import Change, ChangeBook, run_change
from runbooks.core.context import confirm_all
from runbooks.core.engine import Engine
from runbooks.core.gateway import Mode
from runbooks.core.plan import Plan
from runbooks.core.results import RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.network import NetworkGateway
from runbooks.lab import frr
from runbooks.library.network_remediation import NetworkRemediation
from runbooks.report import review
from tests.support.remediation_faults import peer_drops_session, session_command

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("rack_lab")]

OLIVIA = policy.Identity("olivia", frozenset({policy.HANDLE}))
RACHEL = policy.Identity("rachel", frozenset({policy.REVIEW}))
ARTHUR = policy.Identity("arthur", frozenset({policy.APPROVE}))
PARAMS = {"role": "spine,leaf", "batch_size": 1, "settle_timeout_s": 10}


def remediation() -> NetworkRemediation:
    return NetworkRemediation(NetworkRemediation.parse_params(PARAMS))


def vtysh_description(device: str, text: str) -> None:
    """A person's change on the box: an interface description NetBox does not hold."""
    argv = ["vtysh", "-c", "conf t", "-c", "interface swp1", "-c", f"description {text}"]
    frr.run_on_device(device, argv, check=True)


def netbox_description(device: str, text: str) -> None:
    """A change in NetBox: the interface's description the template renders."""
    settings = netbox_settings()
    assert settings is not None
    nb = NetBoxGateway(settings, Mode.RUN)
    try:
        (iface,) = nb.find("dcim.interface", device=device, name="swp1")
        nb.apply([nb.plan_update("dcim.interface", int(iface["id"]), {"description": text})])
    finally:
        nb.close()


def running(device: str) -> str:
    gw = device_gateway(NetworkGateway, Mode.PLAN, device)
    try:
        return gw.config()
    finally:
        gw.close()


def approved(store: RecordStore, engine: Engine) -> tuple[Plan, Change]:
    plan = engine.plan(remediation())
    assert plan.refusal is None, plan.refusal
    book = ChangeBook(store)
    change = book.create(plan, OLIVIA, None)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    return plan, book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash)


def step(plan: Plan, name: str) -> Any:
    (found,) = [s for s in plan.steps if s.step == name]
    return found


def test_remediation_in_canary_batches_then_a_regression_in_the_second(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "records.sqlite3")
    engine = Engine(store, "olivia", confirmer=confirm_all())
    vtysh_description("leaf1", "rogue-edit-1")
    netbox_description("leaf2", "uplink-to-spine1")

    plan, change = approved(store, engine)
    compared = step(plan, "compare_with_netbox").evidence
    assert compared["drifted"] == ["leaf1", "leaf2"]
    assert compared["compliant"] == ["spine1", "spine2"]  # named and left alone
    diffs = {d.target: d for d in step(plan, "plan_remediation").diffs}
    assert list(diffs) == ["leaf1 configuration", "leaf2 configuration"]
    assert diffs["leaf1 configuration"].summary.startswith("batch 1 of 2 (canary)")
    assert "rogue-edit-1" in diffs["leaf1 configuration"].text  # the device's own diff
    assert "description uplink-to-spine1" in diffs["leaf2 configuration"].text
    assert diffs["leaf2 configuration"].summary.startswith("batch 2 of 2")
    page = review.markdown(ChangeBook(store).get(change.id))
    assert "### leaf1 configuration — batch 1 of 2 (canary)" in page

    result = run_change(engine, ChangeBook(store), change, OLIVIA, remediation())
    assert result.status is RunStatus.SUCCEEDED, result.error
    batches = [(r.step, r.status, r.targets) for r in result.steps if "#" in r.step]
    assert batches == [
        ("plan_remediation#1", Status.CHANGED, ("leaf1",)),
        ("plan_remediation#2", Status.CHANGED, ("leaf2",)),
    ]
    confirmed = {r.step: r.evidence["confirmed"] for r in result.steps if "#" in r.step}
    assert confirmed["plan_remediation#1"]["confirmed"] == ["leaf1"]
    again = engine.plan(remediation())
    assert step(again, "compare_with_netbox").evidence["drifted"] == []
    assert step(again, "plan_remediation").status is Status.NO_CHANGE
    assert "rogue-edit-1" not in running("leaf1")
    assert "description uplink-to-spine1" in running("leaf2")

    # ---- a regression in the second batch: spine2 drops its session to leaf2 meanwhile
    vtysh_description("leaf1", "rogue-edit-2")
    netbox_description("leaf2", "uplink-to-spine1-moved")
    vtysh_description("spine1", "rogue-edit-3")
    leaf2_before = running("leaf2")
    faulty = Engine(
        store,
        "olivia",
        confirmer=confirm_all(),
        gateway_factories=devices_with({"leaf2": peer_drops_session("spine2")}),
    )
    plan, change = approved(store, faulty)
    assert [d.target for d in step(plan, "plan_remediation").diffs] == [
        "leaf1 configuration",
        "leaf2 configuration",
        "spine1 configuration",
    ]
    try:
        stopped = run_change(faulty, ChangeBook(store), change, OLIVIA, remediation())
    finally:
        frr.run_on_device("spine2", session_command("spine2", "leaf2", False), check=True)

    assert stopped.status is RunStatus.STOPPED  # the canary kept: stopped part-way
    assert "BGP session to spine2" in (stopped.error or "")
    assert running("leaf2") == leaf2_before  # batch 2 rolled back: as before the run
    leaf2 = device_gateway(NetworkGateway, Mode.PLAN, "leaf2")
    try:
        assert not leaf2.has_pending_commit()
    finally:
        leaf2.close()
    assert "rogue-edit-2" not in running("leaf1")  # the canary stays done
    assert "rogue-edit-3" in running("spine1")  # batch 3 never touched
    entries = store.entries(stopped.run_id)
    kinds = [(e.kind, e.step) for e in entries]
    assert ("step.failed", "plan_remediation#2") in kinds
    assert ("undo.finished", "plan_remediation#2") in kinds
    assert ("undo.started", "plan_remediation#1") not in kinds
    assert entries[-1].payload["batches"] == {
        "kept": ["batch 1 of 3 (canary): leaf1"],
        "failed": ["batch 2 of 3: leaf2"],
        "not_run": ["batch 3 of 3: spine1"],
    }
    (not_run,) = [e for e in entries if e.step == "plan_remediation#3"]
    assert not_run.payload["status"] == "skipped"
