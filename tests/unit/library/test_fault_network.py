"""fault-network without a lab: its diagnosis on recorded evidence (the lab's FRR leaf1, and
NAPALM's mock driver replaying the EOS fabric's recordings: a non-FRR platform), a run that
reads the device only behind the read-only guard, the log read by the command NetBox names,
and the bounce-bgp remedy as two commits of NetBox's renderings (a device and NetBox in
memory: rack_data's)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.errors import (
    InputError,
    InventoryError,
    ReadOnlyViolation,
    VerificationError,
)
from runbooks.core.gateway import Gateway, Mode, reads, writes
from runbooks.core.results import RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.gateways.config_text import sanitize
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.library import fault_common, fault_database, fault_network, fault_server
from runbooks.library import network_common as nc
from runbooks.library.fault_network import FaultNetwork, network_diagnosis, read_device
from tests.support.fault_recorded import LEAF1, far_end_down, shut, write_mock
from tests.unit.library.rack_data import (
    NO_COMMIT_CONFIRM,
    PASSWORD,
    MemoryDevice,
    RenderingNetBox,
    fn,
    rendering,
    working_set,
)

EOS = Path(__file__).parents[1] / "gateways" / "napalm_mock" / "fabric" / "eos" / "leaf1"
# what NetBox holds of the EOS fabric's leaf1 (rack_data's fabric, EOS interface names)
EOS_NETBOX = {
    "cables": [
        {"interface": "Ethernet1", "peer_device": "spine1", "peer_interface": "Ethernet1",
         "cable_id": 1, "cable_status": "connected", "peer_status": "active"},
        {"interface": "Ethernet2", "peer_device": "spine2", "peer_interface": "Ethernet1",
         "cable_id": 4, "cable_status": "connected", "peer_status": "active"},
    ],
    "sessions": [
        {"local_interface": "Ethernet1", "peer_device": "spine1", "peer_interface": "Ethernet1",
         "peer_address": "198.18.1.0", "peer_asn": 65001},
        {"local_interface": "Ethernet2", "peer_device": "spine2", "peer_interface": "Ethernet1",
         "peer_address": "198.18.1.6", "peer_asn": 65002},
    ],
}  # fmt: skip


def mock_gateway(
    path: Path, platform: str = "eos", mode: Mode = Mode.PLAN, log_command: str | None = None
) -> NetworkGateway:
    target = DeviceTarget("leaf1", "198.18.0.250", platform, log_command=log_command)
    return NetworkGateway(
        mode, target, Credentials("netops"), driver="mock", optional_args={"path": str(path)}
    )


def test_a_healthy_eos_leaf_replayed_by_the_mock_driver_is_named_healthy() -> None:
    state = read_device(mock_gateway(EOS), "198.18.255.2")
    assert state["bgp"]["198.18.1.0"]["is_up"] and state["lldp"]["Ethernet1"]
    findings, not_checked = network_diagnosis("leaf1", EOS_NETBOX, state, "198.18.255.2")
    assert findings == []
    # no recorded counters, no log command in NetBox: said, never a silent pass
    assert [n.split(":")[0] for n in not_checked] == ["interface_errors", "log"]
    assert not_checked[1] == "log: leaf1: no napalm.log_command for eos"
    assert fault_common.diagnosis(findings, not_checked)["healthy"]


def test_the_faults_of_an_eos_leaf_are_named(tmp_path: Path) -> None:
    """Its session to spine1 shut, its Ethernet2 down with no LLDP neighbour, no route to an
    address nothing announces."""
    recorded = shutil.copytree(EOS, tmp_path / "leaf1")
    answers = {p.stem: json.loads(p.read_text()) for p in recorded.glob("*.1")}
    answers = far_end_down(shut(answers, "198.18.1.0"), "Ethernet2", "198.18.1.6")
    write_mock(recorded, answers)
    state = read_device(mock_gateway(recorded), "198.18.255.99")
    findings, _ = network_diagnosis("leaf1", EOS_NETBOX, state, "198.18.255.99")
    assert findings == [
        "leaf1 Ethernet2: cable #4 to spine2:Ethernet1 in NetBox, interface is down",
        "leaf1 Ethernet2: NetBox cables it to spine2:Ethernet1, LLDP neighbour missing",
        "BGP session leaf1↔spine1 (Ethernet1, 198.18.1.0) is Idle/admin-down, NetBox cable "
        "expects it Established",
        "BGP session leaf1↔spine2 (Ethernet2, 198.18.1.6) is down (not Established), NetBox "
        "cable expects it Established",
        "no installed route to 198.18.255.99",
    ]


def test_other_differences_from_netbox_are_named() -> None:
    state: dict[str, Any] = {
        "interfaces": {"swp1": {"is_up": False, "is_enabled": False}},
        "lldp": {"swp1": [{"hostname": "spine9", "port": "swp7"}]},
        "bgp": {"198.18.1.0": {"is_up": True, "is_enabled": True, "remote_as": 65099}},
        "interface_errors": {"swp1": {"rx_errors": 7, "tx_discards": 2}},
    }
    netbox = {
        "cables": [{"interface": "swp1", "peer_device": "spine1", "peer_interface": "swp1",
                    "cable_id": 1, "cable_status": "connected", "peer_status": "active"},
                   {"interface": "swp2", "peer_device": "spine2", "peer_interface": "swp1",
                    "cable_id": 4, "cable_status": "connected", "peer_status": "active"}],
        "sessions": [{"local_interface": "swp1", "peer_device": "spine1",
                      "peer_interface": "swp1", "peer_address": "198.18.1.0",
                      "peer_asn": 65001},
                     {"local_interface": "swp2", "peer_device": "spine2",
                      "peer_interface": "swp1", "peer_address": "198.18.1.6",
                      "peer_asn": 65002}],
    }  # fmt: skip
    findings, _ = network_diagnosis("leaf1", netbox, state)
    assert findings == [
        "leaf1 swp1: cable #1 to spine1:swp1 in NetBox, interface is admin-down",
        "leaf1 swp2: cable #4 to spine2:swp1 in NetBox, the device has no such interface",
        "leaf1 swp1: NetBox cables it to spine1:swp1, LLDP sees spine9:swp7",
        "leaf1 swp2: NetBox cables it to spine2:swp1, LLDP neighbour missing",
        "BGP session leaf1↔spine1 (swp1, 198.18.1.0) is to AS65099, NetBox says AS65001",
        "BGP session leaf1↔spine2 (swp2, 198.18.1.6) is not configured, NetBox cable expects "
        "it Established",
        "leaf1 swp1 counts errors: rx_errors 7",
    ]
    unreachable = network_diagnosis("leaf1", netbox, {"unreachable": "timed out"})
    assert unreachable == (["leaf1 cannot be reached: timed out"], [])
    failed = network_diagnosis("leaf1", netbox, {"bgp": {"error": "odd answer"}, "lldp": {}})
    assert failed[1] == ["bgp: odd answer"]  # not checked, not passed


# ---- the runbook, run through the engine on the lab's leaf1 replayed by the mock driver


class Fabric:
    """NetBox (rack_data's fabric) and leaf1 replayed from ``answers``; every network
    gateway the run opens, with its mode."""

    def __init__(self, tmp_path: Path, answers: dict[str, Any]) -> None:
        self.path = write_mock(tmp_path / "leaf1", answers)
        self.opened: list[Mode] = []

    def device(self, ctx: RunContext, key: str) -> Gateway:
        self.opened.append(ctx.mode)
        return mock_gateway(self.path, "frr", ctx.mode)

    def engine(self, store: RecordStore) -> Engine:
        return Engine(
            store,
            "olivia",
            gateway_factories={
                NetBoxGateway: lambda ctx, key: RenderingNetBox(ctx.mode),
                NetworkGateway: self.device,
            },
        )


@pytest.fixture
def fabric_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    """NetBox's working sets of the cable peers (one GraphQL request there), from rack_data."""
    monkeypatch.setattr(
        fault_network,
        "working_sets",
        lambda nb, names, query: {name: working_set(name) for name in names},
    )


@pytest.mark.usefixtures("fabric_peers")
def test_a_run_reads_the_device_behind_the_read_only_guard_and_changes_nothing(
    tmp_path: Path,
) -> None:
    fabric = Fabric(tmp_path, shut(LEAF1, "198.18.1.0"))
    store = RecordStore(tmp_path / "records.sqlite3")
    runbook = FaultNetwork(FaultNetwork.parse_params({"device": "leaf1", "incident": "INC-9"}))
    plan = fabric.engine(store).plan(runbook)
    assert plan.refusal is None and plan.changes == 0
    result = fabric.engine(store).run(runbook)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert fabric.opened == [Mode.PLAN, Mode.PLAN]  # the run's too: the read-only guard
    assert not any(s.changed for s in result.steps)
    steps = {s.step: s for s in result.steps}
    assert steps["plan_remedy"].status is Status.NO_CHANGE
    assert steps["plan_remedy"].title == "Remedy: bounce the BGP session to —"  # not None
    found = steps["diagnosis"].evidence
    assert found["findings"] == [
        "BGP session leaf1↔spine1 (swp1, 198.18.1.0) is Idle/admin-down, NetBox cable expects "
        "it Established"
    ]
    assert found["incident"] == "INC-9"
    netbox = steps["device_in_netbox"].evidence
    assert [s["peer_address"] for s in netbox["sessions"]] == ["198.18.1.0", "198.18.1.6"]
    store.close()


@pytest.mark.usefixtures("fabric_peers")
def test_the_lab_faults_on_recorded_frr_answers(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "records.sqlite3")
    healthy = Fabric(tmp_path / "ok", LEAF1).engine(store)
    runbook = FaultNetwork(FaultNetwork.parse_params({"device": "leaf1"}))
    planned = {s.step: s.evidence for s in healthy.plan(runbook).steps}
    assert planned["diagnosis"]["healthy"], planned["diagnosis"]  # discards are no finding
    cut = Fabric(tmp_path / "cut", far_end_down(LEAF1, "swp2", "198.18.1.6")).engine(store)
    planned = {s.step: s.evidence for s in cut.plan(runbook).steps}
    assert planned["diagnosis"]["findings"][:2] == [
        "leaf1 swp2: cable #4 to spine2:swp1 in NetBox, interface is down",
        "leaf1 swp2: NetBox cables it to spine2:swp1, LLDP neighbour missing",
    ]
    store.close()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"remedy": "bounce-bgp"}, "remedy=bounce-bgp needs neighbor=<...>"),
        ({"neighbor": "198.18.1.0"}, "neighbor=198.18.1.0 is for remedy=bounce-bgp"),
        ({"remedy": "bounce-bgp", "neighbor": "spine1"}, "'spine1' is no address or prefix"),
        ({"destination": "x; reload"}, "is no address or prefix"),
        ({"remedy": "reload"}, "remedy: Input should be 'bounce-bgp'"),
    ],
)
def test_bad_parameters_are_one_line(params: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        FaultNetwork.parse_params({"device": "leaf1", **params})


def test_the_log_is_read_by_the_command_netbox_names_behind_the_read_only_guard(
    tmp_path: Path,
) -> None:
    """Config context napalm.log_command: its last lines are evidence (sanitised); a command
    that is no show command never reaches the device."""
    recorded = shutil.copytree(EOS, tmp_path / "leaf1")
    lines = [f"Dec  7 18:0{i}:00 leaf1 Bgp: event {i}" for i in range(40)]
    lines.append("username netops secret 5 $1$planted$hash")
    (recorded / "cli.1.show_logging.0").write_text("\n".join(lines) + "\n")
    state = read_device(mock_gateway(recorded, log_command="show logging"), None)
    assert len(state["log"]) == fault_network.LOG_LINES
    assert state["log"][:-1] == lines[-fault_network.LOG_LINES : -1]
    assert "$1$planted$hash" not in state["log"][-1]
    assert not [n for n in state.get("not_checked", []) if n.startswith("log")]
    reloading = mock_gateway(recorded, log_command="reload in 1")
    with pytest.raises(ReadOnlyViolation, match="only show commands"):
        reloading.device_log(5)
    assert read_device(reloading, None)["log"]["error"].endswith("only show commands may run "
                                                                 "through cli")  # fmt: skip


def test_the_log_command_comes_from_the_config_context() -> None:
    ws = working_set("leaf1")
    ws = dataclasses.replace(ws, config_context={"napalm": {"log_command": "show logging"}})
    assert nc.device_target(ws).log_command == "show logging"
    assert nc.device_target(working_set("leaf1")).log_command is None


# ---- the remedy: bounce-bgp through NetBox's renderings, on a device in memory

LEAF1_SPINE1, LEAF1_SPINE2 = "198.18.1.0", "198.18.1.6"


class ShuttingNetBox(RenderingNetBox):
    """rack_data's NetBox, its template taught ``runbooks_shut_neighbors`` (unless
    ``knows_shut`` is False: a template without the feature); every render context kept."""

    def __init__(self, mode: Mode, knows_shut: bool = True) -> None:
        super().__init__(mode)
        self.knows_shut = knows_shut
        self.contexts: list[dict[str, Any]] = []

    @reads
    def render_config(self, device_id: int, context: Mapping[str, Any] | None = None) -> str:
        self.contexts.append(dict(context or {}))
        text = super().render_config(device_id, context)
        for address in (context or {}).get("runbooks_shut_neighbors", []):
            if self.knows_shut:
                line = f" neighbor {address} password {PASSWORD}\n"
                text = text.replace(line, f"{line} neighbor {address} shutdown\n")
        return text


class BgpDevice(MemoryDevice):
    """leaf1 in memory whose sessions follow its running configuration: a neighbour with a
    ``shutdown`` line is Idle/admin-down, the others Established (unless ``stays_up``: the
    session never goes down; ``never_up``: it never comes back). Each reading is kept."""

    def __init__(self, mode: Mode, running: str, missing: frozenset[str] = frozenset()) -> None:
        super().__init__(mode, "leaf1", running, missing)
        self.stays_up = self.never_up = False
        self.readings: list[tuple[int, bool]] = []  # (commits so far, the session to spine1 up)
        self.confirmed: list[int] = []  # commits so far at each confirmation

    @writes
    def confirm(self) -> None:
        super().confirm()
        self.confirmed.append(len(self.commits))

    @reads
    def bgp_neighbors(self) -> dict[str, Any]:
        peers = {}
        for address, asn in re.findall(r"^ neighbor (\S+) remote-as (\d+)$", self.running, re.M):
            shut = f" neighbor {address} shutdown" in self.running
            up = self.stays_up or (not shut and not self.never_up)
            peers[address] = {"is_up": up, "is_enabled": not shut, "remote_as": int(asn)}
        self.readings.append((len(self.commits), bool(peers.get(LEAF1_SPINE1, {}).get("is_up"))))
        return {"global": {"peers": peers}}


def bounce(**more: Any) -> FaultNetwork:
    params = {"device": "leaf1", "remedy": "bounce-bgp", "neighbor": LEAF1_SPINE1, **more}
    return FaultNetwork(FaultNetwork.parse_params(params))


def remedy_context(runbook: FaultNetwork, device: BgpDevice, nb: RenderingNetBox) -> RunContext:
    return RunContext(
        device.mode,
        "run-1",
        "olivia",
        runbook,
        gateway_factories={NetBoxGateway: lambda c, k: nb, NetworkGateway: lambda c, k: device},
        state={},
    )


def hand_shut(config: str, address: str) -> str:
    """A session shut by hand: the line at the end of the BGP block, where no template puts
    it (drift from NetBox)."""
    return config.rstrip("\n") + f"\n neighbor {address} shutdown\n"


SERVICE = rendering("leaf1", "service")
SHUT = SERVICE.replace(
    f" neighbor {LEAF1_SPINE1} password {PASSWORD}\n",
    f" neighbor {LEAF1_SPINE1} password {PASSWORD}\n neighbor {LEAF1_SPINE1} shutdown\n",
)


def test_bounce_bgp_plans_two_commits_of_netbox_s_renderings_and_writes_nothing() -> None:
    rb, nb = bounce(), ShuttingNetBox(Mode.PLAN)
    device = BgpDevice(Mode.PLAN, hand_shut(SERVICE, LEAF1_SPINE1))
    diffs = FaultNetwork.plan_remedy.func(rb, remedy_context(rb, device, nb))
    assert [d.summary for d in diffs] == [
        f"bounce BGP to {LEAF1_SPINE1}, 1 of 2: NetBox's rendering with it shut",
        f"bounce BGP to {LEAF1_SPINE1}, 2 of 2: NetBox's service rendering (it comes up)",
    ]
    assert diffs[0].before == sanitize(hand_shut(SERVICE, LEAF1_SPINE1))  # what undo knew
    assert diffs[0].after == diffs[1].before == sanitize(SHUT)
    assert diffs[1].after == sanitize(SERVICE)
    assert f"-neighbor {LEAF1_SPINE1} shutdown" in diffs[1].text.replace("- ", "-")
    assert "shutdown" not in str(diffs[1].after)  # a hand-made shutdown goes too
    assert not any(PASSWORD in f"{d.text}{d.before}{d.after}" for d in diffs)
    shut_context = {"runbooks_intent": "service", "runbooks_shut_neighbors": [LEAF1_SPINE1]}
    assert shut_context in nb.contexts and {"runbooks_intent": "service"} in nb.contexts
    assert device.commits == []


def test_bounce_bgp_shuts_waits_down_confirms_then_serves_waits_up_confirms() -> None:
    rb, nb = bounce(), ShuttingNetBox(Mode.RUN)
    device = BgpDevice(Mode.RUN, SERVICE)
    ctx = remedy_context(rb, device, nb)
    diffs = FaultNetwork.plan_remedy.func(rb, ctx)
    done = fn(FaultNetwork.plan_remedy.apply_func)(rb, ctx, diffs)
    assert [(text, revert) for text, revert, _ in device.commits] == [(SHUT, 300), (SERVICE, 300)]
    assert device.confirmed == [1, 2] and not device.pending  # each commit confirmed in its turn
    assert (1, False) in device.readings and device.readings[-1] == (2, True)  # down, then up
    assert done["revert_in_s"] == 300 and done["down_after_s"] >= 0 and done["up_after_s"] >= 0
    assert fn(FaultNetwork.plan_remedy.verify_func)(rb, ctx, diffs)
    device.running = hand_shut(SERVICE, LEAF1_SPINE1)  # drifted since: verify says so
    assert not fn(FaultNetwork.plan_remedy.verify_func)(rb, ctx, diffs)
    fn(FaultNetwork.plan_remedy.undo_func)(rb, ctx, diffs)  # undo: the service rendering
    assert device.running == SERVICE


def test_without_commit_confirm_the_plan_warns_and_the_commits_have_no_revert() -> None:
    rb, nb = bounce(), ShuttingNetBox(Mode.RUN)
    device = BgpDevice(Mode.RUN, SERVICE, NO_COMMIT_CONFIRM)
    ctx = remedy_context(rb, device, nb)
    evidence = FaultNetwork.remedy_can_revert.func(rb, ctx)
    (warning,) = evidence["warnings"]
    assert warning.startswith("Remedy bounce-bgp: no commit-confirm on frr (leaf1): driver frr ")
    diffs = FaultNetwork.plan_remedy.func(rb, ctx)
    fn(FaultNetwork.plan_remedy.apply_func)(rb, ctx, diffs)
    assert [revert for _, revert, _ in device.commits] == [None, None]
    assert device.running == SERVICE
    plan_nb = ShuttingNetBox(Mode.PLAN)
    confirming = remedy_context(rb, BgpDevice(Mode.PLAN, SERVICE), plan_nb)
    assert FaultNetwork.remedy_can_revert.func(rb, confirming) == {"commit_confirm": True}
    triage = FaultNetwork(FaultNetwork.parse_params({"device": "leaf1"}))
    assert FaultNetwork.remedy_can_revert.func(triage, ctx) == {"remedy": None}


def test_a_template_that_cannot_shut_one_session_refuses_the_plan_in_one_line() -> None:
    rb, nb = bounce(), ShuttingNetBox(Mode.PLAN, knows_shut=False)
    device = BgpDevice(Mode.PLAN, SERVICE)
    with pytest.raises(InventoryError) as refused:
        FaultNetwork.plan_remedy.func(rb, remedy_context(rb, device, nb))
    assert str(refused.value) == (
        "NetBox's template for frr renders leaf1 the same with runbooks_shut_neighbors="
        f"{LEAF1_SPINE1}: it cannot shut that session (no bounce-bgp there)"
    )
    unknown = bounce(neighbor="198.18.9.9")
    with pytest.raises(InputError, match=r"leaf1 has no BGP neighbor 198.18.9.9 \(it has "):
        FaultNetwork.plan_remedy.func(unknown, remedy_context(unknown, device, nb))


@pytest.mark.parametrize(("stuck", "said"), [("stays_up", "down"), ("never_up", "Established")])
def test_a_session_that_does_not_go_down_or_come_back_puts_the_service_rendering_back(
    stuck: str, said: str
) -> None:
    rb, nb = bounce(settle_timeout_s=0.5), ShuttingNetBox(Mode.RUN)
    device = BgpDevice(Mode.RUN, hand_shut(SERVICE, LEAF1_SPINE1))
    ctx = remedy_context(rb, device, nb)
    diffs = FaultNetwork.plan_remedy.func(rb, ctx)
    setattr(device, stuck, True)
    with pytest.raises(VerificationError, match=f"to {LEAF1_SPINE1} is not {said} after"):
        fn(FaultNetwork.plan_remedy.apply_func)(rb, ctx, diffs)
    assert device.running == SERVICE and not device.pending  # NetBox's service rendering


def test_netbox_rendering_another_configuration_since_the_plan_is_drift() -> None:
    rb, nb = bounce(), ShuttingNetBox(Mode.RUN)
    device = BgpDevice(Mode.RUN, SERVICE)
    ctx = remedy_context(rb, device, nb)
    diffs = FaultNetwork.plan_remedy.func(rb, ctx)
    nb.renders[("leaf1", "service")] = SERVICE + "ip route 0.0.0.0/0 198.18.1.0\n"
    with pytest.raises(Exception, match="NetBox now renders another configuration"):
        fn(FaultNetwork.plan_remedy.apply_func)(rb, ctx, diffs)
    assert device.commits == []  # nothing committed, nothing put back


@pytest.mark.parametrize("module", [fault_network, fault_common, fault_server, fault_database, nc])
def test_doctests(module: Any) -> None:
    import doctest

    assert doctest.testmod(module).failed == 0
