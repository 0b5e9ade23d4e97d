"""Kernel tables the lab's kernel cannot hold (VRFs, VLANs), as data tables.

The samples are iproute2 6.1's JSON (Debian 12) for the shapes; the lab-recorded cases of
the same getters are in mocked_data.
"""

from __future__ import annotations

from typing import Any

import pytest

from napalm_frr import kernel

VRF_LINKS: list[dict[str, Any]] = [
    {"ifname": "lo", "flags": ["LOOPBACK", "UP"]},
    {"ifname": "eth0", "flags": ["UP"]},
    {"ifname": "TEST", "linkinfo": {"info_kind": "vrf", "info_data": {"table": 1001}}},
    {"ifname": "swp1", "master": "TEST", "linkinfo": {"info_slave_kind": "vrf"}},
    {"ifname": "br0", "linkinfo": {"info_kind": "bridge"}},
    {"ifname": "swp2", "master": "br0", "linkinfo": {"info_slave_kind": "bridge"}},
    {
        "ifname": "swp3.100",
        "link": "swp3",
        "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 100}},
    },
]


def test_network_instances_put_vrf_members_in_their_vrf() -> None:
    instances = kernel.parse_network_instances(VRF_LINKS)
    assert sorted(instances) == ["TEST", "default"]
    assert instances["TEST"]["type"] == "L3VRF"
    assert instances["TEST"]["interfaces"] == {"interface": {"swp1": {}}}
    assert "swp1" not in instances["default"]["interfaces"]["interface"]
    assert "swp2" in instances["default"]["interfaces"]["interface"]  # a bridge is no VRF
    assert instances["default"]["type"] == "DEFAULT_INSTANCE"
    assert kernel.parse_network_instances(VRF_LINKS, "TEST").keys() == {"TEST"}
    assert kernel.parse_network_instances(VRF_LINKS, "nope") == {}


def test_vlans_from_bridge_ports_ranges_and_subinterfaces() -> None:
    bridge_vlans = [
        {"ifname": "swp2", "vlans": [{"vlan": 10, "flags": ["PVID", "Egress Untagged"]}]},
        {"ifname": "swp4", "vlans": [{"vlan": 10}, {"vlan": 20, "vlanEnd": 22}]},
        {"ifname": "br0", "vlans": [{"vlan": 10}]},
    ]
    vlans = kernel.parse_vlans(bridge_vlans, VRF_LINKS)
    assert vlans[10] == {"name": "", "interfaces": ["br0", "swp2", "swp4"]}
    assert sorted(vlans) == [10, 20, 21, 22, 100]
    assert vlans[100]["interfaces"] == ["swp3.100"]


@pytest.mark.parametrize(
    ("vrf", "command"),
    [("", "ip -4 -j -s neigh show"), ("TEST", "ip -4 -j -s neigh show vrf TEST")],
)
def test_arp_vrf_limits_to_the_vrf_devices(vrf: str, command: str) -> None:
    assert kernel.neigh_command(kernel.ARP, vrf) == command


def test_unresolved_neighbours_are_left_out() -> None:
    neighbours = [
        {
            "dst": "198.18.1.1",
            "dev": "swp1",
            "lladdr": "02:00:00:00:00:01",
            "updated": 5,
            "state": ["REACHABLE"],
        },
        {"dst": "198.18.1.9", "dev": "swp2", "state": ["FAILED"]},
        {"dst": "198.18.1.7", "dev": "swp2", "state": ["INCOMPLETE"]},
        {"dst": "198.18.1.3", "dev": "swp3", "lladdr": "02:00:00:00:00:03", "state": ["PERMANENT"]},
    ]
    assert kernel.parse_arp_table(neighbours) == [
        {"interface": "swp1", "mac": "02:00:00:00:00:01", "ip": "198.18.1.1", "age": 5.0},
        {"interface": "swp3", "mac": "02:00:00:00:00:03", "ip": "198.18.1.3", "age": -1.0},
    ]


def test_mac_table_keeps_bridge_entries_only() -> None:
    fdb = [
        {"mac": "33:33:00:00:00:01", "ifname": "eth0", "flags": ["self"], "state": "permanent"},
        {"mac": "02:00:00:00:00:0a", "ifname": "swp2", "master": "br0", "vlan": 10, "state": ""},
        {"mac": "02:00:00:00:00:0b", "ifname": "swp2", "master": "br0", "state": "stale"},
    ]
    table = kernel.parse_mac_address_table(fdb)
    assert [(e["mac"], e["vlan"], e["static"], e["active"]) for e in table] == [
        ("02:00:00:00:00:0A", 10, False, True),
        ("02:00:00:00:00:0B", 0, False, False),
    ]
