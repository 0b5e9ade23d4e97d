"""rack-out on the lab: leaf3 racked in and out again; an active leaf (leaf1) racked out
with its redundancy checks; a refusal when a neighbour would lose its last uplink; rollback
from a failure injected at each kind of change step, ending exactly where the run began;
with a BGP password NetBox plants, the same rollback, the password in no record."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from crash_support import wait_for_bgp
from rack_support import (
    DEVICES,
    BGPDown,
    RejectingDevice,
    device_gateway,
    devices_with,
    differences,
    engine,
    netbox_failing_on,
    snapshot,
)

from runbooks.config import netbox_settings
from runbooks.core.gateway import Mode, writes
from runbooks.core.results import RunStatus, Status
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.network import NetworkGateway
from runbooks.lab import frr, netbox
from runbooks.library.rack_in import RackIn
from runbooks.library.rack_out import RackOut

pytestmark = pytest.mark.usefixtures("rack_lab")


def rack_out(device: str, **params: Any) -> RackOut:
    return RackOut(RackOut.parse_params({"device": device, **params}))


def device_of(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(d for d in state["dcim.device"].values() if d["name"] == name)


def test_rack_in_then_rack_out_of_leaf3(tmp_path: Path) -> None:
    before = snapshot()
    racked = engine(tmp_path / "in").run(RackIn(RackIn.parse_params({"device": "leaf3"})))
    assert racked.ok, racked.error

    eng = engine(tmp_path / "out")
    started = time.monotonic()
    plan = eng.plan(rack_out("leaf3"))
    plan_s = time.monotonic() - started
    assert plan.refusal is None
    started = time.monotonic()
    result = eng.run(rack_out("leaf3"))
    run_s = time.monotonic() - started
    assert result.ok, result.error

    after = snapshot()
    leaf3 = device_of(after, "leaf3")
    assert (leaf3["status"], leaf3["position"], leaf3["primary_ip4"]) == ("offline", None, None)
    cables = [after["dcim.cable"][i]["status"] for i in after["dcim.cable"]]
    assert cables.count("decommissioning") == 2
    leaf3_ips = [ip for ip in after["ipam.ipaddress"].values() if ip["status"] == "deprecated"]
    assert len(leaf3_ips) == 4 and all(ip["assigned_object_id"] is None for ip in leaf3_ips)
    # the spines are back to the configuration they had before leaf3 came
    for spine in ("spine1", "spine2"):
        assert after[f"{spine} running"] == before[f"{spine} running"]
    assert "router bgp" not in after["leaf3 running"]
    # the management address is the box's: no commit, undo or revert touched it anywhere
    for name in ("leaf3", "spine1", "spine2"):
        key = f"{name} management address"
        assert after[key] == before[key] and len(after[key]) == 1, (key, after[key])
    # its management address is the box's own: still reachable for the removal crew
    still = next(s for s in result.steps if s.step == "device_still_answers")
    assert still.evidence["hostname"] == "leaf3"
    journal = [j["comments"] for j in after["extras.journalentry"].values()]
    assert any(result.run_id in text and "8 網絡設備下架" in text for text in journal)
    backup = next(s for s in result.steps if s.step == "keep_running_config_as_backup")
    assert "neighbor 198.18.1.4 remote-as 65001" in backup.evidence["running_config"]
    print(f"rack-out leaf3: plan {plan_s:.1f} s, run {run_s:.1f} s")


def test_rack_out_of_an_active_leaf_keeps_the_fabric_connected(tmp_path: Path) -> None:
    started = time.monotonic()
    result = engine(tmp_path).run(rack_out("leaf1"))
    run_s = time.monotonic() - started
    assert result.ok, result.error
    steps = {s.step: s for s in result.steps}
    assert steps["neighbours_keep_another_path"].evidence["remaining_paths"] == {
        "spine1": ["swp2→leaf2:swp1"],
        "spine2": ["swp2→leaf2:swp2"],
    }
    assert "moved_away_after_s" in steps["wait_until_prefixes_moved_away"].evidence
    assert steps["neighbours_still_reach_each_other"].evidence["reached"]
    assert steps["confirm_physical_removal"].evidence["confirmed"]
    # spine1 still reaches spine2's loopback, through leaf2
    ping = frr.run_on_device(
        "spine1", ["ping", "-c", "1", "-W", "2", "-I", "198.18.255.1", "198.18.255.2"]
    )
    assert ping.returncode == 0, ping.stdout
    print(f"rack-out leaf1: run {run_s:.1f} s")


def test_refused_when_a_neighbour_would_lose_its_last_uplink(tmp_path: Path) -> None:
    settings = netbox_settings()
    assert settings is not None
    nb = NetBoxGateway(settings, Mode.RUN, run_id="test", runbook="test")
    try:
        leaf1 = nb.working_set("leaf1")
        to_spine2 = next(i for i in leaf1.cabled if i.peer and i.peer.device == "spine2")
        nb.apply(nb.plan_cable_status(leaf1, "planned", [to_spine2.name]))
    finally:
        nb.close()
    before = snapshot()
    plan = engine(tmp_path).plan(rack_out("spine1"))
    assert plan.refusal is not None
    assert "leaf1 would lose its last uplink" in plan.refusal
    result = engine(tmp_path).run(rack_out("spine1"))
    assert result.status is RunStatus.ROLLED_BACK
    assert differences(before, snapshot()) == []


def _rolled_back(
    tmp_path: Path, device: str, factories: Any, failing_step: str, **params: Any
) -> None:
    before = snapshot()
    result = engine(tmp_path, factories).run(rack_out(device, **params))
    assert result.status is RunStatus.ROLLED_BACK, (result.status, result.error)
    failed = [s.step for s in result.steps if s.status is Status.FAILED]
    assert failed == [failing_step], result.error
    assert differences(before, snapshot()) == []


class RejectsTheRemoval(RejectingDevice):
    """Takes the drain, refuses the configuration that removes BGP."""

    @writes
    def commit(
        self,
        candidate: str,
        revert_in: int | None = None,
        replace: bool = True,
        secret_sources: Sequence[str] = (),
    ) -> str:
        if "router bgp" in candidate:
            return NetworkGateway.commit(self, candidate, revert_in, replace, secret_sources)
        return super().commit(candidate, revert_in, replace, secret_sources)


def test_the_device_rejects_the_drain(tmp_path: Path) -> None:
    factories = devices_with({"leaf1": RejectingDevice})
    _rolled_back(tmp_path, "leaf1", factories, "plan_drain_bgp")


def test_the_device_rejects_the_removal_after_the_drain(tmp_path: Path) -> None:
    factories = devices_with({"leaf1": RejectsTheRemoval})
    _rolled_back(tmp_path, "leaf1", factories, "plan_remove_configuration")


def test_a_post_check_fails_on_the_neighbours(tmp_path: Path) -> None:
    factories = devices_with({"spine2": BGPDown})
    _rolled_back(tmp_path, "leaf1", factories, "verify_neighbour_sessions", settle_timeout_s=4)


def test_a_netbox_write_fails_at_the_end(tmp_path: Path) -> None:
    factories = netbox_failing_on("ipam.ipaddress")
    _rolled_back(tmp_path, "leaf1", factories, "plan_addresses_released")


PLANTED = "pl4nted-bgp-s3cret"  # NetBox's BGP password for the test: in no record, ever


def plant_bgp_password() -> None:
    """NetBox gives every router a BGP password (a config context the template reads); the
    active routers run NetBox's rendering with it, their sessions up again with it."""
    url, token = netbox.credentials("admin")
    created = requests.post(
        f"{url}/api/extras/config-contexts/",
        json={"name": "bgp password (test)", "weight": 1000, "data": {"bgp_password": PLANTED}},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    settings = netbox_settings()
    assert settings is not None
    nb = NetBoxGateway(settings, Mode.PLAN)
    try:
        for name in ("spine1", "spine2", "leaf1", "leaf2"):
            rendered = nb.render_config(nb.working_set(name).id, {"runbooks_intent": "service"})
            assert f"password {PLANTED}" in rendered
            gw = device_gateway(NetworkGateway, Mode.RUN, name)
            try:
                gw.commit(rendered)
            finally:
                gw.close()
    finally:
        nb.close()
    wait_for_bgp(DEVICES, timeout=90)


def test_a_planted_bgp_password_stays_out_of_the_record_and_comes_back_on_rollback(
    tmp_path: Path,
) -> None:
    plant_bgp_password()
    before = snapshot()
    assert " neighbor 198.18.1.0 password <removed>" in before["leaf1 running"]
    # fails at the very end: every configuration comes back, the neighbours' after their
    # confirmation (the running configuration and NetBox no longer hold their session to
    # leaf1: the driver's rollback does), leaf1's after its removal (NetBox renders it)
    _rolled_back(tmp_path, "leaf1", netbox_failing_on("ipam.ipaddress"), "plan_addresses_released")
    wait_for_bgp(DEVICES, timeout=90)
    for name in ("spine1", "leaf1"):
        gw = device_gateway(NetworkGateway, Mode.PLAN, name)
        try:
            assert f"password {PLANTED}" in gw.config_with_secrets()
        finally:
            gw.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"password <removed>" in stored and PLANTED.encode() not in stored
