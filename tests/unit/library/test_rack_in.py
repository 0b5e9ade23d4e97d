"""rack-in's pure logic: cables that can come up, LLDP against cables, the sessions NetBox
implies and the BGP check, NetBox's rendering as a candidate. No lab."""

from __future__ import annotations

import pytest

from runbooks.core.errors import InventoryError
from runbooks.library import network_common as nc
from runbooks.library.rack_in import RackIn
from tests.unit.library.rack_data import LINKS, working_set


def test_the_steps_read_as_the_work_instruction() -> None:
    names = [s.name for s in RackIn.steps()]
    assert names[:5] == [
        "device_is_planned",
        "rack_position_is_set_and_free",
        "platform_and_type_are_known",
        "planned_cables_end_on_existing_interfaces",
        "addresses_are_assigned",
    ]
    order = [
        "confirm_mounted_and_cabled",
        "plan_device_config",
        "verify_lldp_matches_cables",
        "plan_confirm_config",
        "plan_device_active",
        "plan_journal_entry",
    ]
    assert [n for n in names if n in order] == order
    assert RackIn.instruction.startswith("7 網絡設備上架")


def test_planned_cables_to_active_devices_can_come_up() -> None:
    assert nc.cable_problems(working_set("leaf3")) == []


def test_a_cable_to_a_device_that_is_not_active_is_a_problem() -> None:
    ws = working_set("leaf1", [("spine1", "swp1", "leaf1", "swp1", "a", "b", "connected")])
    peerless = working_set("leaf3", [("leaf3", "swp1", "leaf1", "swp3", "a", "b", "planned")])
    assert nc.cable_problems(ws) == []
    assert nc.cable_problems(peerless) == []
    blocked = working_set("leaf2", [("leaf2", "swp1", "leaf3", "swp3", "a", "b", "planned")])
    assert nc.cable_problems(blocked) == ["leaf2:swp1 (cable #1) ends on leaf3, which is planned"]


def test_no_cables_is_a_problem() -> None:
    assert nc.cable_problems(working_set("leaf3", [])) == ["leaf3 has no cables in NetBox"]


@pytest.mark.parametrize(
    ("lldp", "problems"),
    [
        (
            {
                "swp1": [{"hostname": "spine1", "port": "swp3"}],
                "swp2": [{"hostname": "spine2", "port": "swp3"}],
            },
            [],
        ),
        (
            {
                "swp1": [{"hostname": "spine1", "port": "swp3"}],
                "swp2": [{"hostname": "spine1", "port": "swp4"}],
            },
            ["swp2: NetBox cables it to spine2:swp3, LLDP sees spine1:swp4"],
        ),
        (
            {"swp1": [{"hostname": "spine1", "port": "swp3"}]},
            ["swp2: NetBox cables it to spine2:swp3, LLDP sees no neighbour"],
        ),
        (  # two neighbours on one port: the cabled one among them is enough
            {
                "swp1": [{"hostname": "x", "port": "y"}, {"hostname": "spine1", "port": "swp3"}],
                "swp2": [{"hostname": "spine2", "port": "swp3"}],
            },
            [],
        ),
    ],
)
def test_lldp_is_compared_with_the_cables_interface_by_interface(
    lldp: dict[str, list[dict[str, str]]], problems: list[str]
) -> None:
    assert nc.lldp_mismatches(nc.links_of(working_set("leaf3")), lldp) == problems


def test_the_sessions_netbox_implies_and_the_bgp_check() -> None:
    leaf3 = working_set("leaf3")
    peers = {n: working_set(n) for n in ("spine1", "spine2")}
    sessions = nc.expected_sessions(leaf3, peers)
    assert [(s.peer_device, s.peer_address, s.peer_asn) for s in sessions] == [
        ("spine1", "198.18.1.4", 65001),
        ("spine2", "198.18.1.10", 65002),
    ]
    up = {
        "global": {
            "peers": {
                "198.18.1.4": {"is_up": True, "remote_as": 65001},
                "198.18.1.10": {"is_up": True, "remote_as": 65002},
            }
        }
    }
    assert nc.bgp_problems(sessions, up) == []
    wrong = {
        "global": {
            "peers": {
                "198.18.1.4": {"is_up": False, "remote_as": 65001},
                "198.18.1.10": {"is_up": True, "remote_as": 64999},
            }
        }
    }
    assert nc.bgp_problems(sessions, wrong) == [
        "BGP session to spine1 (198.18.1.4) is not established",
        "BGP peer spine2 (198.18.1.10) is AS64999, NetBox says AS65002",
    ]
    assert nc.bgp_problems(sessions, {}) == [
        "no BGP session to spine1 (198.18.1.4)",
        "no BGP session to spine2 (198.18.1.10)",
    ]


def test_the_plan_lists_the_sessions_both_sides_gain() -> None:
    leaf3 = working_set("leaf3")
    peers = {n: working_set(n) for n in ("spine1", "spine2")}
    note = nc.sessions_note(leaf3, peers, adding=True)
    assert {(f.name, f.before, f.after) for f in note.fields} == {
        ("leaf3: neighbor 198.18.1.4", None, "AS65001 spine1:swp3"),
        ("leaf3: neighbor 198.18.1.10", None, "AS65002 spine2:swp3"),
        ("spine1: neighbor 198.18.1.5", None, "AS65103 leaf3:swp1"),
        ("spine2: neighbor 198.18.1.11", None, "AS65103 leaf3:swp2"),
    }


def test_the_rendered_config_drops_the_version_line_frr_writes_itself() -> None:
    rendered = "frr version 8.4\nfrr defaults traditional\nhostname leaf3\n!\n"
    assert nc.intended_config(rendered) == "frr defaults traditional\nhostname leaf3\n!\n"


def test_a_device_is_reached_on_its_primary_address_with_its_platform() -> None:
    target = nc.device_target(working_set("leaf3"))
    assert (target.name, target.host, target.platform) == ("leaf3", "198.18.0.5", "frr")


def test_parameters_are_strict() -> None:
    with pytest.raises(Exception, match="unknown parameter"):
        RackIn.parse_params({"device": "leaf3", "colour": "red"})
    assert len(LINKS) == 6


def test_installed_route_covers_the_address() -> None:
    routes = {"198.18.255.13/32": [{"installed": True}]}
    assert nc.installed_route(routes, "198.18.255.13")
    assert not nc.installed_route({"198.18.255.13/32": [{"selected": True}]}, "198.18.255.13")
    assert not nc.installed_route({}, "198.18.255.13")
    with pytest.raises(InventoryError):
        nc.device_target(
            working_set("leaf3").__class__(
                **{**working_set("leaf3").__dict__, "primary_ip4": None, "oob_ip": None}
            )
        )


def test_a_management_address_frr_does_not_configure_stays_the_boxs() -> None:
    candidate = "hostname leaf3\n!\ninterface eth0\n ip address 198.18.0.23/24\nexit\n!\n"
    factory = "hostname leaf3\n!\nend\n"
    assert nc.leave_unmanaged(candidate, factory, "eth0") == "hostname leaf3\n!\n!\n"
    managed = "hostname leaf3\n!\ninterface eth0\n ip address 198.18.0.23/24\nexit\n"
    assert nc.leave_unmanaged(candidate, managed, "eth0") == candidate
    assert nc.mgmt_interface(working_set("leaf3")) is None  # no interface holds 198.18.0.5


def test_the_doctests_of_the_shared_module() -> None:
    import doctest

    assert doctest.testmod(nc).failed == 0


def test_both_runbooks_are_found_through_runbooks_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    from runbooks.core import registry

    monkeypatch.setenv("RUNBOOKS_MODULES", "runbooks.library.rack_in,runbooks.library.rack_out")
    found = registry.discover()
    assert found["rack-in"] is RackIn
    assert found["rack-out"].instruction.startswith("8 ")
