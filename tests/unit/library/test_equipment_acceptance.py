"""equipment-acceptance without a lab: the comparison and the burn-in on recorded evidence,
and a plan through the engine on leaf3 (rack_data's fabric in NetBox, a planned device)
replayed by NAPALM's mock driver: refused naming each difference, or accepted with its
status change planned."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.errors import InventoryError
from runbooks.core.gateway import Gateway, reads
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.library.equipment_acceptance import (
    AcceptanceParams,
    EquipmentAcceptance,
    burn_in_findings,
    differences,
    expected_of,
    memory_mb,
    not_compared,
    server_reported,
)
from tests.support.fault_recorded import LEAF1, write_mock
from tests.unit.library.rack_data import RenderingNetBox, working_set

EXPECTED = {"serial": "SN-1", "model": "FRR Switch 8", "version": "FRRouting 8.4",
            "interfaces": ["swp1", "swp2"], "up": ["swp1"]}  # fmt: skip
REPORTED = {"serial": "SN-1", "model": "", "version": "FRRouting 8.4.4",
            "interfaces": {"swp1": {}, "swp2": {}, "eth0": {}}}  # fmt: skip


@pytest.mark.parametrize(
    ("changed", "lines"),
    [
        ({}, []),
        ({"serial": "sn-1 "}, []),  # a label's case and padding are no difference
        ({"serial": "SN-2"}, ["serial: NetBox holds SN-1, leaf3 reports SN-2"]),
        ({"serial": "NA"}, ["serial: NetBox holds SN-1, leaf3 reports none"]),
        ({"model": "Other Box"}, ["model: NetBox holds FRR Switch 8, leaf3 reports Other Box"]),
        ({"version": "FRRouting 8.41"}, ["software version: NetBox's config context expects "
                                         "FRRouting 8.4, leaf3 reports FRRouting 8.41"]),
        ({"interfaces": {"swp1": {}}}, ["interface swp2: in NetBox, leaf3 has none"]),
        ({"serial": "X", "interfaces": {}}, ["serial: NetBox holds SN-1, leaf3 reports X",
                                             "interface swp1: in NetBox, leaf3 has none",
                                             "interface swp2: in NetBox, leaf3 has none"]),
    ],
)  # fmt: skip
def test_each_difference_is_one_line(changed: dict[str, Any], lines: list[str]) -> None:
    assert differences("leaf3", EXPECTED, {**REPORTED, **changed}) == lines


def test_no_serial_in_netbox_is_a_difference_and_what_was_not_compared_is_named() -> None:
    assert differences("leaf3", {**EXPECTED, "serial": ""}, REPORTED) == [
        "serial: NetBox holds none for leaf3 (enter the delivery's serial first)"
    ]
    assert not_compared({**EXPECTED, "version": None}, REPORTED) == [
        "model: the device reports none",
        "software version: NetBox's config context names none (software_version)",
        "memory: NetBox's config context names none (acceptance.memory_gb)",
        "disks: NetBox's config context names none (acceptance.disks)",
    ]


# ---- memory and disks: NetBox's config context ``acceptance`` against the facts

SERVER_EXPECTED = {**EXPECTED, "memory_mb": 16384, "disks": {"sda": 480.0, "sdb": 960.0}}
SERVER_REPORTED = {**REPORTED, "through": "Ansible facts", "memory_mb": 15800,
                   "disks": {"sda": 480.1, "sdb": 960.2, "sr0": None}}  # fmt: skip


@pytest.mark.parametrize(
    ("changed", "lines"),
    [
        ({}, []),
        # 5 % below 16384 MiB is 15564.8: the firmware's and kernel's share, no difference
        ({"memory_mb": 15565}, []),
        ({"memory_mb": 15564}, ["memory: NetBox's config context expects 16384 MiB, leaf3 "
                                "reports 15564 MiB (more than 5% less)"]),
        ({"memory_mb": 32768}, []),  # more than NetBox's is no refusal
        ({"disks": {"sda": 480.1}}, ["disk sdb: NetBox's config context expects 960 GB, "
                                     "leaf3 has none"]),
        ({"disks": {"sda": 240.06, "sdb": 960.0}},
         ["disk sda: NetBox's config context expects 480 GB, leaf3 reports 240.06 GB"]),
        ({"memory_mb": 8192, "disks": {}},
         ["memory: NetBox's config context expects 16384 MiB, leaf3 reports 8192 MiB "
          "(more than 5% less)",
          "disk sda: NetBox's config context expects 480 GB, leaf3 has none",
          "disk sdb: NetBox's config context expects 960 GB, leaf3 has none"]),
    ],
)  # fmt: skip
def test_memory_short_and_each_disk_missing_or_smaller_is_one_line(
    changed: dict[str, Any], lines: list[str]
) -> None:
    assert differences("leaf3", SERVER_EXPECTED, {**SERVER_REPORTED, **changed}) == lines
    assert not_compared(SERVER_EXPECTED, {**SERVER_REPORTED, **changed})[1:] == []


def test_memory_and_disks_nobody_can_compare_are_named_not_passed() -> None:
    # NetBox names none: nothing compared, however little the device reports
    none = {**EXPECTED, "memory_mb": None, "disks": {}}
    assert differences("srv6", none, {**SERVER_REPORTED, "memory_mb": 1, "disks": {}}) == []
    assert not_compared(none, SERVER_REPORTED)[1:] == [
        "memory: NetBox's config context names none (acceptance.memory_gb)",
        "disks: NetBox's config context names none (acceptance.disks)",
    ]
    # a network device: NAPALM reports no disks, and this driver no memory
    network = {**REPORTED, "through": "NAPALM (frr)", "memory_mb": None}
    assert differences("leaf3", SERVER_EXPECTED, network) == []
    assert not_compared(SERVER_EXPECTED, network)[1:] == [
        "memory: the device reports none",
        "disks: NAPALM (frr) reports none",
    ]
    # facts that name a disk without its size
    sizeless = {**SERVER_REPORTED, "disks": {"sda": None, "sdb": 960.2}}
    assert differences("srv6", SERVER_EXPECTED, sizeless) == []
    assert not_compared(SERVER_EXPECTED, sizeless)[1:] == ["disk sda: the device reports no size"]


def test_netbox_names_memory_in_gib_and_disks_in_gb_and_a_bad_value_is_one_line() -> None:
    context = {"acceptance": {"memory_gb": 16, "disks": {"sdb": 960, "sda": 480}}}
    ws = dataclasses.replace(working_set("leaf3"), config_context=context)
    expected = expected_of(ws)
    assert expected["memory_mb"] == 16384 and expected["disks"] == {"sda": 480, "sdb": 960}
    for bad, message in [
        ({"memory_gb": "lots"}, "config context acceptance.memory_gb is 'lots': give a positive"),
        ({"disks": {"sda": 0}}, "config context acceptance.disks.sda is '0': give a positive"),
        ({"disks": ["sda"]}, "config context acceptance.disks is \"['sda']\": give each disk"),
        ("16G", "config context acceptance is '16G': give memory_gb and disks"),
    ]:
        broken = dataclasses.replace(ws, config_context={"acceptance": bad})
        with pytest.raises(InventoryError, match=re.escape(message)):
            expected_of(broken)


def test_what_a_device_reports_of_its_memory_and_disks() -> None:
    # NAPALM's available_ram is bytes; a driver giving MB (Junos) is not taken for bytes
    assert memory_mb({"available_ram": 1024000 * 1024, "used_ram": 1}) == 1000
    assert memory_mb({"available_ram": 2048}) is None and memory_mb({}) is None
    # Ansible's facts: disks with their size in bytes, or (older facts) by name only
    evidence = {"memory_mb": "15800", "disks": {"sda": 480103981056, "sr0": 0}}
    reported = server_reported(evidence)
    assert reported["memory_mb"] == 15800 and reported["disks"] == {"sda": 480.1, "sr0": 0.0}
    assert server_reported({"disks": ["sda"]})["disks"] == {"sda": None}


def test_interface_names_compare_in_canonical_form() -> None:
    expected = {**EXPECTED, "interfaces": ["GigabitEthernet0/1"]}
    assert differences("r1", expected, {**REPORTED, "interfaces": {"Gi0/1": {}}}) == []


def sample(up: bool = True, rx_errors: int = 0, **temps: dict[str, Any]) -> dict[str, Any]:
    return {
        "interfaces": {"swp1": {"is_up": up}, "swp2": {"is_up": False}},
        "counters": {"swp1": {"rx_errors": rx_errors, "tx_errors": 0}, "swp2": {"rx_errors": 7}},
        "temperatures": temps,
    }


def test_the_burn_in_names_a_cabled_interface_down_errors_growing_and_heat() -> None:
    steady = [sample(rx_errors=3), sample(rx_errors=3), sample(rx_errors=3)]
    assert burn_in_findings("leaf3", ["swp1"], steady) == []  # errors counted, not growing
    hot = {"temperature": 71.0, "is_alert": True, "is_critical": False}
    bad = [sample(rx_errors=3), sample(up=False, rx_errors=3), sample(rx_errors=9, cpu=hot)]
    assert burn_in_findings("leaf3", ["swp1"], bad) == [
        "leaf3 swp1 is down at sample 2 of 3 (NetBox cables it)",
        "leaf3 swp1 rx_errors grew from 3 to 9 during the burn-in",
        "leaf3 temperature cpu 71.0 °C is in alert",
    ]


def test_durations_take_units_and_a_bad_one_is_one_clear_line() -> None:
    params = AcceptanceParams.model_validate(
        {"device": "leaf3", "burn_in": "2m", "sample_every": "15s"}
    )
    assert (params.burn_in, params.sample_every, params.target_status) == (120, 15, "inventory")
    with pytest.raises(ValidationError, match=re.escape("'soon' is no duration: give e.g. 30s")):
        AcceptanceParams.model_validate({"device": "leaf3", "burn_in": "soon"})
    with pytest.raises(ValidationError, match="target_status"):
        AcceptanceParams.model_validate({"device": "leaf3", "target_status": "offline"})


def test_a_server_without_a_firmware_serial_is_read_from_its_asset_fact() -> None:
    evidence = {"serial": "NA", "asset_serial": "LAB-7", "model": "NA", "memory_mb": "1024"}
    reported = server_reported(evidence)
    assert reported["serial"] == "LAB-7"
    assert reported["serial_source"].startswith("asset fact")
    assert server_reported({**evidence, "serial": "R1X"})["serial"] == "R1X"  # firmware first
    assert server_reported({"serial": "NA"})["serial"] == "NA"  # and none is none
    first = {"interfaces": {"eth0": {"is_up": True}}, "counters": {"eth0": {"rx_errors": 0}}}
    later = {"interfaces": {"eth0": {"is_up": False}}}
    assert server_reported({**evidence, "samples": [first, later]})["interfaces"] == {
        "eth0": {"is_up": True}
    }  # the first sample is what it reports; the others are the burn-in's


def test_netbox_expects_its_hardware_interfaces_and_the_cabled_ones_up() -> None:
    ws = dataclasses.replace(working_set("leaf3"), serial="SN-1 ")
    expected = expected_of(ws)
    assert expected["serial"] == "SN-1" and expected["model"] == "FRR Switch 8"
    assert expected["interfaces"] == ["lo", "swp1", "swp2"] and expected["up"] == ["swp1", "swp2"]
    assert expected["version"] is None


# ---- a plan through the engine: leaf3 in NetBox, replayed by NAPALM's mock driver


class Leaf3NetBox(RenderingNetBox):
    """rack_data's NetBox with leaf3's serial and its config context's software version."""

    serial = "SN-LEAF3"

    @reads
    def working_set(self, name: str, *, render: bool = False) -> DeviceWorkingSet:
        ws = working_set(name)
        context = {"software_version": "FRRouting 8.4", "acceptance": {"memory_gb": 8}}
        return dataclasses.replace(ws, serial=self.serial, config_context=context)


def engine(tmp_path: Path, reported_serial: str, netbox_serial: str) -> Engine:
    answers = copy.deepcopy(LEAF1)
    answers["get_facts"].update(hostname="leaf3", serial_number=reported_serial)
    path = write_mock(tmp_path / "leaf3", answers)

    def device(ctx: RunContext, key: str) -> Gateway:
        target = DeviceTarget("leaf3", "198.18.0.250", "frr")
        return NetworkGateway(
            ctx.mode, target, Credentials("netops"), driver="mock",
            optional_args={"path": str(path)},
        )  # fmt: skip

    def netbox(ctx: RunContext, key: str) -> Gateway:
        nb = Leaf3NetBox(ctx.mode)
        nb.serial = netbox_serial
        return nb

    store = RecordStore(tmp_path / "records.sqlite3")
    return Engine(
        store, "olivia", gateway_factories={NetBoxGateway: netbox, NetworkGateway: device}
    )


def test_a_serial_that_differs_refuses_the_plan_naming_it(tmp_path: Path) -> None:
    runbook = EquipmentAcceptance(EquipmentAcceptance.parse_params({"device": "leaf3"}))
    plan = engine(tmp_path, "SN-OTHER", "SN-LEAF3").plan(runbook)
    assert plan.refusal is not None
    assert plan.refusal.splitlines()[-1:] == [
        "- serial: NetBox holds SN-LEAF3, leaf3 reports SN-OTHER"
    ], plan.refusal
    assert plan.changes == 0


def test_a_matching_device_plans_its_status_change(tmp_path: Path) -> None:
    params = {"device": "leaf3", "burn_in": "30s", "target_status": "active"}
    runbook = EquipmentAcceptance(EquipmentAcceptance.parse_params(params))
    plan = engine(tmp_path, "SN-LEAF3", "SN-LEAF3").plan(runbook)
    assert plan.refusal is None, plan.refusal
    steps = {s.step: s for s in plan.steps}
    checked = steps["device_matches_netbox"].evidence
    assert checked["reported"]["serial"] == "SN-LEAF3"
    assert checked["not_compared"] == [
        "model: the device reports none",
        "memory: the device reports none",  # the mock driver has no get_environment
        "disks: NetBox's config context names none (acceptance.disks)",
    ]
    assert steps["burn_in"].evidence["burn_in_s"] == 30
    (status,) = steps["plan_status"].diffs
    assert status.summary == "leaf3: status planned → active"
    assert status.after == {"status": "active"} or "active" in str(status.after)


def test_the_burn_in_step_is_expected_to_last_its_burn_in(tmp_path: Path) -> None:
    """A 2 h burn-in is planned as 2 h (the window check must not start it 10 min before
    the window ends), not a fixed 5 min."""
    params = {"device": "leaf3", "burn_in": "2h", "sample_every": "1m"}
    runbook = EquipmentAcceptance(EquipmentAcceptance.parse_params(params))
    plan = engine(tmp_path, "SN-LEAF3", "SN-LEAF3").plan(runbook)
    steps = {s.step: s for s in plan.steps}
    assert steps["burn_in"].duration_s == 7200 + 60 + 60


@pytest.mark.parametrize(("burn_in", "samples"), [("0", 1), ("5s", 2), ("30s", 4)])
def test_the_burn_in_takes_one_sample_then_one_per_interval(
    burn_in: str, samples: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """burn_in=0 is one sample only (as documented); 5 s with 10 s apart is a second sample
    after 10 s, never none; 30 s is three more."""
    params = {"device": "leaf3", "burn_in": burn_in, "sample_every": "10s"}
    runbook = EquipmentAcceptance(EquipmentAcceptance.parse_params(params))
    asked: list[int] = []

    def read(ctx: Any, samples: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        asked.append(samples)
        sample = {"interfaces": {}, "counters": {}}
        return dict(sample), [dict(sample) for _ in range(samples)]

    monkeypatch.setattr(runbook, "read", read)
    monkeypatch.setattr(
        "runbooks.library.equipment_acceptance.evidence_of", lambda ctx, step: {"up": []}
    )

    class Running:
        planning = False

    evidence = EquipmentAcceptance.burn_in.func(runbook, Running())
    assert evidence["samples"] == samples
    assert asked == [samples - 1]
