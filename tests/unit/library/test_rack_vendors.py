"""Rack-in and rack-out on Cisco IOS, Arista EOS and Juniper Junos, without a lab: the same
runbooks and engine, NetBox's API in memory, each device NAPALM's mock driver answering
from recorded getters with its configuration kept as state (`vendor_support`).

Per vendor: the plan shows the device's diff and no secret; a run commits with
``revert_in`` and confirms after the post-checks; a post-check that fails (BGP never up, a
removal nobody confirms) puts every device back to its recorded configuration and NetBox
to its recorded values; a run whose process dies in the middle of a commit continues from
its record, committing nothing twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.gateway import Mode
from runbooks.core.plan import Plan
from runbooks.core.results import Diff, RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.gateways.network import DeviceTarget, NetworkGateway
from runbooks.library.rack_in import RackIn
from runbooks.library.rack_out import RackOut
from tests.unit.library.rack_data import IDS
from tests.unit.library.vendor_support import (
    CREDENTIALS,
    VENDORS,
    Interrupted,
    VendorFabric,
)

VENDOR_NAMES = sorted(VENDORS)
# the spines' BGP neighbour addresses of leaf1 and leaf2 (rack_data.LINKS)
LEAF1 = {"spine1": "198.18.1.1", "spine2": "198.18.1.7"}
LEAF2 = {"spine1": "198.18.1.3", "spine2": "198.18.1.9"}


@pytest.fixture(params=VENDOR_NAMES)
def fabric(request: pytest.FixtureRequest, store_path: Path) -> VendorFabric:
    return VendorFabric(request.param, store_path)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Post-checks poll every 2 s until their timeout: here they poll without sleeping, and
    the runbooks are given 50 ms (`SETTLE`) for what a network takes a minute for."""
    monkeypatch.setattr(time, "sleep", lambda seconds: None)


SETTLE = {"settle_timeout_s": 0.05}


def rack_in(**params: Any) -> RackIn:
    return RackIn(RackIn.parse_params({"device": "leaf3", **SETTLE, **params}))


def rack_out(**params: Any) -> RackOut:
    return RackOut(RackOut.parse_params({"device": "leaf1", **SETTLE, **params}))


def text_diffs(plan: Plan, step: str) -> dict[str, Diff]:
    (planned,) = [s for s in plan.steps if s.step == step]
    return {d.target.removesuffix(" configuration"): d for d in planned.diffs if d.kind == "text"}


def assert_no_secret(fabric: VendorFabric, text: str, where: str) -> None:
    leaked = [secret for secret in fabric.vendor.secrets if secret in text]
    assert not leaked, f"{fabric.vendor.driver}: planted secrets are in {where}"


def assert_as_recorded(fabric: VendorFabric, *names: str) -> None:
    """The devices run exactly their recorded configuration, nothing pending."""
    for name in names:
        assert fabric.running(name) == fabric.originals[name], f"{name} was not restored"
        assert not fabric.network.devices[name].pending, f"{name} still waits for a confirm"


def calls(fabric: VendorFabric, device: str, method: str) -> list[int]:
    return [i for i, c in enumerate(fabric.network.calls) if c == (device, method)]


def entries(fabric: VendorFabric, run_id: str) -> list[Any]:
    with RecordStore(fabric.store_path) as store:
        return store.entries(run_id)


# ---- the recorded devices themselves --------------------------------------------------------


def test_a_recorded_device_keeps_what_is_committed_and_rolls_back(fabric: VendorFabric) -> None:
    """The test devices behave as devices: a commit changes the running configuration (and
    the BGP sessions it establishes), a rollback restores it, a compare changes nothing."""
    target = DeviceTarget("leaf3", f"198.18.0.{IDS['leaf3']}", fabric.vendor.platform)
    gw = NetworkGateway(Mode.RUN, target, CREDENTIALS, "run-1", driver="recorded")
    assert gw.facts()["hostname"] == "leaf3"
    assert gw.bgp_neighbors()["global"]["peers"] == {}  # as delivered: no BGP
    service = fabric.netbox.render("leaf3")
    assert gw.compare(service).strip() and fabric.running("leaf3") == fabric.originals["leaf3"]
    gw.commit(service, revert_in=300)
    assert fabric.running("leaf3") == service and gw.has_pending_commit()
    gw.rollback()
    assert_as_recorded(fabric, "leaf3")
    assert gw.route_to("198.18.255.1/32") == {}


def test_the_recorded_configurations_are_netbox_renderings(fabric: VendorFabric) -> None:
    """What the devices run at the start is what NetBox renders for them (the racked-in ones
    their service configuration, leaf3 its bare one): re-record with ``record.py`` after a
    template change."""
    for name in IDS:
        intent = "bare" if name == "leaf3" else "service"
        assert fabric.originals[name] == fabric.netbox.render(name, intent), name


# ---- rack-in --------------------------------------------------------------------------------


def test_rack_in_plan_shows_the_device_diff_and_no_secret(fabric: VendorFabric) -> None:
    plan = fabric.plan(rack_in())
    assert plan.refusal is None, plan.refusal
    diffs = text_diffs(plan, "plan_device_config")
    assert "leaf3" in diffs, f"no configuration diff for leaf3 in {list(diffs)}"
    leaf3 = diffs["leaf3"]
    assert "198.18.1.5" in leaf3.text and "65103" in leaf3.text  # its port and its AS
    assert ("leaf3", "service") in fabric.netbox.renders  # contract point 2
    assert_no_secret(fabric, json.dumps(plan.to_dict(), default=str), "the plan")
    assert_as_recorded(fabric, *IDS)  # a plan changes no device …
    assert fabric.netbox.changes == []  # … and nothing in NetBox
    assert not [c for c in fabric.network.calls if c[1] in ("commit_config", "rollback")]


def test_rack_in_commits_with_revert_in_then_confirms_after_the_checks(
    fabric: VendorFabric,
) -> None:
    result = fabric.run(rack_in(confirm_within_s=300))
    assert result.status is RunStatus.SUCCEEDED, result.error
    for name in ("leaf3", "spine1", "spine2"):  # NetBox's rendering now, connected cables
        assert fabric.running(name) == fabric.netbox.render(name), f"{name} differs"
        assert not fabric.network.devices[name].pending
        (commit,) = fabric.network.devices[name].commits
        assert commit[1] == 300  # commit-confirm
    assert "198.18.1.5" in fabric.running("spine1")  # leaf3 became its BGP neighbour
    committed, confirmed = (
        calls(fabric, "leaf3", "commit_config"),
        calls(fabric, "leaf3", "confirm_commit"),
    )
    checked = calls(fabric, "leaf3", "get_bgp_neighbors")
    assert committed[0] < checked[-1] < confirmed[0]  # confirmed only after BGP was seen up
    leaf3 = fabric.netbox.device("leaf3")
    assert leaf3["status"]["value"] == "active"
    assert {c["status"]["value"] for c in fabric.netbox.objects["dcim.cable"].values()} == {
        "connected"
    }
    assert any(result.run_id in text for text in fabric.netbox.journal("leaf3"))
    assert_no_secret(fabric, fabric.record_text(), "the record store")
    again = fabric.plan(rack_in())  # racked in: the configurations read as NetBox renders them
    assert again.refusal is None and text_diffs(again, "plan_device_config") == {}


def test_rack_in_rolls_back_to_the_recorded_configurations_when_bgp_never_comes_up(
    fabric: VendorFabric,
) -> None:
    fabric.network.bgp_never_up.add("leaf3")
    result = fabric.run(rack_in())
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert "not established" in (result.error or "")
    assert fabric.network.devices["leaf3"].commits, "nothing was committed before the check"
    assert_as_recorded(fabric, *IDS)
    assert fabric.netbox.device("leaf3")["status"]["value"] == "planned"
    cables = {c["id"]: c["status"]["value"] for c in fabric.netbox.objects["dcim.cable"].values()}
    assert [cables[3], cables[6]] == ["planned", "planned"]  # leaf3's cables, as they were
    assert fabric.netbox.journal("leaf3") == []
    assert_no_secret(fabric, fabric.record_text(), "the record store")


def test_rack_in_rolls_back_when_a_commit_confirm_timer_ran_out_during_the_checks(
    fabric: VendorFabric,
) -> None:
    """leaf3 goes back by itself while LLDP is checked: its BGP never comes up, the run
    rolls back the others; leaf3, already back, is left as it is (committed once)."""
    fabric.network.timer_runs_out = ("get_lldp_neighbors", "leaf3")
    result = fabric.run(rack_in())
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert fabric.network.timer_runs_out is None, "the timer never ran out"
    assert "leaf3: no BGP session to spine1 (198.18.1.4)" in (result.error or "")  # gone
    assert len(fabric.network.devices["leaf3"].commits) == 1
    assert_as_recorded(fabric, *IDS)
    assert fabric.netbox.device("leaf3")["status"]["value"] == "planned"


def test_rack_in_puts_back_the_devices_committed_before_one_that_refuses_its_commit(
    fabric: VendorFabric,
) -> None:
    fabric.network.refuse_commit.add("spine2")  # leaf3 and spine1 take theirs first
    result = fabric.run(rack_in())
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert "rejected" in (result.error or "")
    assert fabric.network.devices["leaf3"].commits and fabric.network.devices["spine1"].commits
    assert_as_recorded(fabric, *IDS)
    assert fabric.netbox.device("leaf3")["status"]["value"] == "planned"
    assert_no_secret(fabric, fabric.record_text(), "the record store")


def test_rack_in_resumes_from_its_record_after_the_process_died_mid_commit(
    fabric: VendorFabric,
) -> None:
    """On EOS the commit leaf3 left pending is the config session of a driver object that
    died with the process: the resumed run's gateway adopts it to confirm it."""
    fabric.network.interrupt = ("commit_config", "spine1")  # leaf3 committed, spine1 not
    with pytest.raises(Interrupted):
        fabric.run(rack_in())
    assert fabric.network.devices["leaf3"].pending
    with RecordStore(fabric.store_path) as store:
        (run,) = store.runs()
    assert run["status"] == "interrupted"
    result = fabric.resume(str(run["run_id"]), RackIn)
    assert result.status is RunStatus.SUCCEEDED, result.error
    for name in ("leaf3", "spine1", "spine2"):
        assert fabric.running(name) == fabric.netbox.render(name)
        assert len(fabric.network.devices[name].commits) == 1, f"{name} committed twice"
        assert not fabric.network.devices[name].pending
    (resumed,) = [e for e in entries(fabric, str(run["run_id"])) if e.kind == "run.resumed"]
    assert resumed.payload["in_flight"] == "plan_device_config"
    assert_no_secret(fabric, fabric.record_text(), "the record store")


def test_rack_in_records_the_eos_sessions_it_commits_in(fabric: VendorFabric) -> None:
    """The commit step's evidence names each EOS config session it left waiting for the
    confirmation, named after the run (what a resumed run adopts as its own); the other
    drivers' pending commits are the device's, unnamed."""
    result = fabric.run(rack_in(confirm_within_s=300))
    assert result.status is RunStatus.SUCCEEDED, result.error
    (step,) = [s for s in result.steps if s.step == "plan_device_config"]
    (finished,) = [
        e
        for e in entries(fabric, result.run_id)
        if e.kind == "step.finished" and e.step == "plan_device_config"
    ]
    assert finished.payload["evidence"] == step.evidence
    if not fabric.vendor.session_bound:
        assert "sessions" not in step.evidence
        return
    sessions = step.evidence["sessions"]
    assert sorted(sessions) == ["leaf3", "spine1", "spine2"]
    for name, session in sessions.items():
        assert session.startswith(f"runbooks_{result.run_id}_"), session
        (commit,) = fabric.network.devices[name].commits
        assert commit[1] == 300


def test_a_resumed_rack_in_leaves_another_process_pending_eos_session_alone(
    store_path: Path,
) -> None:
    """The process died with leaf3's commit pending; meanwhile its timer ran out and
    another process's commit pends on leaf3 (a session this run did not name). The resumed
    run neither confirms nor rolls back that session: it stops with the reason, and leaf3
    keeps the other process's configuration, pending."""
    fabric = VendorFabric("eos", store_path)
    fabric.network.interrupt = ("commit_config", "spine1")  # leaf3 committed, spine1 not
    with pytest.raises(Interrupted):
        fabric.run(rack_in())
    with RecordStore(fabric.store_path) as store:
        (run,) = store.runs()
    run_id = str(run["run_id"])
    leaf3 = fabric.network.devices["leaf3"]
    assert leaf3.pending and str(leaf3.pending_session).startswith(f"runbooks_{run_id}_")
    theirs = leaf3.running + "interface Loopback9\n"
    leaf3.previous, leaf3.running = fabric.originals["leaf3"], theirs  # timer ran out; then
    leaf3.pending_session = "napalm_424242"  # another process committed with a timer
    resumed_at = len(fabric.network.calls)
    result = fabric.resume(run_id, RackIn)
    assert result.status is not RunStatus.SUCCEEDED
    assert "leaf3: the commit pending on the device is not this run's" in (result.error or "")
    assert leaf3.pending and leaf3.pending_session == "napalm_424242"
    assert leaf3.running == theirs and len(leaf3.commits) == 1  # the dead process's only
    touched = [m for d, m in fabric.network.calls[resumed_at:] if d == "leaf3"]
    assert not {"confirm_commit", "rollback", "commit_config"} & set(touched), touched


# ---- rack-out -------------------------------------------------------------------------------


def test_rack_out_plan_shows_drain_and_removal_and_no_secret(fabric: VendorFabric) -> None:
    plan = fabric.plan(rack_out())
    assert plan.refusal is None, plan.refusal
    drain = text_diffs(plan, "plan_drain_bgp")["leaf1"]
    shut = "inactive: neighbor" if fabric.vendor.driver == "junos" else "shutdown"
    assert shut in drain.text
    removal = text_diffs(plan, "plan_remove_configuration")["leaf1"]
    assert "198.18.1.1" in removal.text  # its port address goes
    assert {("leaf1", "drain"), ("leaf1", "bare")} <= set(fabric.netbox.renders)
    assert_no_secret(fabric, json.dumps(plan.to_dict(), default=str), "the plan")
    assert_as_recorded(fabric, *IDS)
    assert fabric.netbox.changes == []


def test_rack_out_drains_removes_and_confirms(fabric: VendorFabric) -> None:
    drained, bare = (fabric.netbox.render("leaf1", intent) for intent in ("drain", "bare"))
    result = fabric.run(rack_out())
    assert result.status is RunStatus.SUCCEEDED, result.error
    drain, removal = fabric.network.devices["leaf1"].commits
    assert drain[0] == drained  # NetBox's drain rendering, as it was
    assert removal == (bare, 300)  # and its bare one, with commit-confirm
    assert fabric.running("leaf1") == bare
    for name in ("spine1", "spine2"):
        running = fabric.running(name)
        assert f"neighbor {LEAF1[name]} " not in running  # its sessions to leaf1 are gone
        assert f"neighbor {LEAF2[name]} " in running  # those to leaf2 stay
        assert not fabric.network.devices[name].pending
    assert not fabric.network.devices["leaf1"].pending
    assert fabric.netbox.device("leaf1")["status"]["value"] == "offline"
    assert any(result.run_id in text for text in fabric.netbox.journal("leaf1"))
    assert_no_secret(fabric, fabric.record_text(), "the record store")


def test_rack_out_undone_puts_back_every_configuration_and_netbox(
    fabric: VendorFabric,
) -> None:
    """Nobody confirms the physical removal: every step before is undone, the device gets
    its service configuration back, BGP password included (the bare configuration no
    longer holds it: it comes from NetBox's rendering, contract point 4)."""
    fabric.declined = "physically removed"
    result = fabric.run(rack_out())
    assert result.status is RunStatus.ROLLED_BACK, result.error
    (failed,) = [s for s in result.steps if s.status is Status.FAILED]
    assert failed.step == "confirm_physical_removal", result.error
    assert len(fabric.network.devices["leaf1"].commits) >= 2  # drained and removed, then back
    assert_as_recorded(fabric, *IDS)
    leaf1 = fabric.netbox.device("leaf1")
    assert leaf1["status"]["value"] == "active" and leaf1["primary_ip4"] is not None
    cables = {c["id"]: c["status"]["value"] for c in fabric.netbox.objects["dcim.cable"].values()}
    assert [cables[1], cables[4]] == ["connected", "connected"]
    assigned = [
        ip
        for ip in fabric.netbox.objects["ipam.ipaddress"].values()
        if ip["assigned_object_type"] is None
    ]
    assert assigned == []  # every address is assigned again
    assert_no_secret(fabric, fabric.record_text(), "the record store")


def test_rack_out_resumes_from_its_record_after_the_process_died_mid_commit(
    fabric: VendorFabric,
) -> None:
    fabric.network.interrupt = ("commit_config", "spine2")  # neighbours: spine1 done, spine2 not
    with pytest.raises(Interrupted):
        fabric.run(rack_out())
    with RecordStore(fabric.store_path) as store:
        (run,) = store.runs()
    assert run["status"] == "interrupted"
    result = fabric.resume(str(run["run_id"]), RackOut)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert len(fabric.network.devices["leaf1"].commits) == 2  # drain, removal: once each
    for name in ("spine1", "spine2"):
        assert len(fabric.network.devices[name].commits) == 1, f"{name} committed twice"
        assert not fabric.network.devices[name].pending
        assert f"neighbor {LEAF1[name]} " not in fabric.running(name)
    (resumed,) = [e for e in entries(fabric, str(run["run_id"])) if e.kind == "run.resumed"]
    assert resumed.payload["in_flight"] == "plan_neighbour_configs"
    assert_no_secret(fabric, fabric.record_text(), "the record store")
