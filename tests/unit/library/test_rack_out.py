"""rack-out's pure logic: who would be cut off, which routes still go through the device,
the drain and removal configurations. No lab."""

from __future__ import annotations

import pytest

from runbooks.core.errors import VerificationError
from runbooks.library import network_common as nc
from runbooks.library.rack_out import RackOut
from tests.unit.library.rack_data import LINKS, working_set


def neighbours(names: list[str], links: list[tuple[str, ...]] = LINKS) -> dict[str, object]:
    return {n: working_set(n, links) for n in names}


def test_leaves_keep_the_other_spine_when_a_spine_goes() -> None:
    remaining = nc.lost_last_path("spine1", neighbours(["leaf1", "leaf2"]))  # type: ignore[arg-type]
    assert remaining == {"leaf1": ["swp2→spine2:swp1"], "leaf2": ["swp2→spine2:swp2"]}


def test_a_leaf_with_one_uplink_left_is_cut_off() -> None:
    # leaf1's link to spine2 is only planned: spine1 is its last path
    links = [
        (*link[:6], "planned") if link[:3] == ("spine2", "swp1", "leaf1") else link
        for link in LINKS
    ]
    remaining = nc.lost_last_path("spine1", neighbours(["leaf1", "leaf2"], links))  # type: ignore[arg-type]
    assert remaining["leaf1"] == []
    assert remaining["leaf2"] == ["swp2→spine2:swp2"]


def test_a_spine_keeps_its_other_leaves_when_a_leaf_goes() -> None:
    remaining = nc.lost_last_path("leaf1", neighbours(["spine1", "spine2"]))  # type: ignore[arg-type]
    # leaf3 is planned, so its cables are not paths
    assert remaining == {"spine1": ["swp2→leaf2:swp1"], "spine2": ["swp2→leaf2:swp2"]}


def test_links_to_devices_that_are_not_active_are_no_path() -> None:
    # only leaf1 and leaf3 on spine1; leaf3 is planned: spine1 would be cut off
    links = [link for link in LINKS if link[0] == "spine1" and link[2] != "leaf2"]
    links = [(*link[:6], "connected") for link in links]
    remaining = nc.lost_last_path("leaf1", neighbours(["spine1"], links))  # type: ignore[arg-type]
    assert remaining == {"spine1": []}


ROUTES = {
    "198.18.255.11/32": [
        {"protocol": "bgp", "installed": True, "nexthops": [{"ip": "198.18.1.1"}]}
    ],
    "198.18.255.12/32": [
        {"protocol": "bgp", "installed": True, "nexthops": [{"ip": "198.18.1.3"}]}
    ],
    "198.18.1.0/31": [{"protocol": "connected", "installed": True, "nexthops": [{}]}],
}


@pytest.mark.parametrize(
    ("hops", "left"),
    [
        (["198.18.1.1", "198.18.1.7"], ["198.18.255.11/32"]),
        (["198.18.1.9"], []),
    ],
)
def test_routes_still_through_the_device(hops: list[str], left: list[str]) -> None:
    assert nc.routes_via(ROUTES, "bgp", hops) == left


RUNNING = """!
frr version 8.4.4
frr defaults traditional
hostname leaf1
log syslog informational
service integrated-vtysh-config
!
interface eth0
 ip address 198.18.0.21/24
exit
!
interface swp1
 ip address 198.18.1.1/31
exit
!
router bgp 65101
 neighbor 198.18.1.0 remote-as 65001
exit
!
end
"""


def test_the_drain_shuts_each_neighbour_inside_router_bgp() -> None:
    drained = nc.with_neighbors_shut(RUNNING, ["198.18.1.0"])
    assert (
        "router bgp 65101\n neighbor 198.18.1.0 shutdown\n neighbor 198.18.1.0 remote-as" in drained
    )
    with pytest.raises(VerificationError):
        nc.with_neighbors_shut("hostname x\n", ["198.18.1.0"])


def test_the_removal_keeps_the_global_lines_and_the_management_address() -> None:
    bare = nc.bare_config(RUNNING, "leaf1", "eth0", "198.18.0.21/24")
    assert bare == (
        "frr defaults traditional\nhostname leaf1\nlog syslog informational\n"
        "service integrated-vtysh-config\n!\ninterface eth0\n ip address 198.18.0.21/24\n"
        "exit\n!\n"
    )


def test_the_steps_read_as_the_work_instruction() -> None:
    names = [s.name for s in RackOut.steps()]
    order = [
        "device_is_active",
        "neighbours_keep_another_path",
        "keep_running_config_as_backup",
        "plan_drain_bgp",
        "wait_until_prefixes_moved_away",
        "neighbours_still_reach_each_other",
        "plan_remove_configuration",
        "plan_cables_decommissioning",
        "plan_device_offline",
        "plan_addresses_released",
        "confirm_physical_removal",
        "plan_journal_entry",
    ]
    assert [n for n in names if n in order] == order
    assert RackOut.instruction.startswith("8 網絡設備下架")
