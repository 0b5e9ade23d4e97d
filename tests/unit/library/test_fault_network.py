"""fault-network without a lab: its diagnosis on recorded evidence (the lab's FRR leaf1, and
NAPALM's mock driver replaying the EOS fabric's recordings: a non-FRR platform), and a run
that reads the device only behind the read-only guard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.errors import InputError
from runbooks.core.gateway import Gateway, Mode
from runbooks.core.results import RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.library import fault_common, fault_database, fault_network, fault_server
from runbooks.library import network_common as nc
from runbooks.library.fault_network import FaultNetwork, network_diagnosis, read_device
from tests.support.fault_recorded import LEAF1, far_end_down, shut, write_mock
from tests.unit.library.rack_data import RenderingNetBox, working_set

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


def mock_gateway(path: Path, platform: str = "eos", mode: Mode = Mode.PLAN) -> NetworkGateway:
    target = DeviceTarget("leaf1", "198.18.0.250", platform)
    return NetworkGateway(
        mode, target, Credentials("netops"), driver="mock", optional_args={"path": str(path)}
    )


def test_a_healthy_eos_leaf_replayed_by_the_mock_driver_is_named_healthy() -> None:
    state = read_device(mock_gateway(EOS), "198.18.255.2")
    assert state["bgp"]["198.18.1.0"]["is_up"] and state["lldp"]["Ethernet1"]
    findings, not_checked = network_diagnosis("leaf1", EOS_NETBOX, state, "198.18.255.2")
    assert findings == []
    # no recorded counters nor log: said, never a silent pass
    assert [n.split(":")[0] for n in not_checked] == ["log", "interface_errors"]
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


def test_the_remedy_edits_only_the_neighbors_shutdown() -> None:
    config = "router bgp 65101\n neighbor 198.18.1.0 remote-as 65001\n neighbor 198.18.1.6 x\n"
    down = fault_network.with_shutdown(config, "198.18.1.0")
    assert fault_network.shutdown_re("198.18.1.0").search(down)
    assert not fault_network.shutdown_re("198.18.1.6").search(down)
    assert fault_network.without_shutdown(down, "198.18.1.0") == config


@pytest.mark.parametrize("module", [fault_network, fault_common, fault_server, fault_database, nc])
def test_doctests(module: Any) -> None:
    import doctest

    assert doctest.testmod(module).failed == 0
