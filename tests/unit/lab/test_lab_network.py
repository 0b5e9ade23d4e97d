"""The lab's pure logic: the address-overlap check (data tables), parsers, expected neighbours."""

from __future__ import annotations

import ipaddress
import json

import pytest

from runbooks.lab import frr, topology
from runbooks.lab.network import (
    BRIDGE,
    LAB_PROTO,
    Address,
    Route,
    find_conflicts,
    parse_addresses,
    parse_routes,
)

LAB = [
    ipaddress.IPv4Network(p)
    for p in ("198.18.0.0/24", "198.18.255.0/24", "198.18.1.0/24", "198.18.64.0/24")
]
GW = ipaddress.IPv4Interface("198.18.0.1/24")


def _addr(ifname: str, cidr: str) -> Address:
    return Address(ifname, ipaddress.IPv4Interface(cidr))


ROUTE_TABLE = [
    # (routes on the machine, number of conflicts, why)
    ([Route("default", "eth0")], 0, "the default route covers everything and is ignored"),
    ([Route("0.0.0.0/0", "eth0")], 0, "so is its spelled-out form"),
    ([Route("192.0.2.0/24", "eth0")], 0, "the uplink range is not a lab prefix"),
    ([Route("198.19.200.0/26", "nfrr-br")], 0, "the NAPALM developer's range is not a lab prefix"),
    ([Route("198.18.0.0/24", BRIDGE)], 0, "the lab's own bridge route"),
    ([Route("198.18.255.0/24", None, "unreachable", str(LAB_PROTO))], 0, "the lab's own guard"),
    ([Route("198.18.255.0/24", None, "unreachable", "0xf5")], 0, "guard, protocol in hex"),
    ([Route("198.18.0.0/24", "eth1")], 1, "same prefix on another interface"),
    ([Route("198.18.0.0/15", "eth0")], 1, "a covering route (counted once)"),
    ([Route("198.18.1.4/31", "veth9")], 1, "a more specific route inside a lab prefix"),
    ([Route("198.18.64.7", "tun0")], 1, "a host route"),
    ([Route("198.18.255.0/24", None, "unreachable", "static")], 1, "somebody else's blackhole"),
    ([Route("198.18.0.5", "eth0", "local", "kernel", "local")], 1, "a local-table entry"),
    ([Route("198.18.0.0/24", "eth1"), Route("198.18.1.0/24", "eth2")], 2, "each reported"),
]


@pytest.mark.parametrize(
    ("routes", "expected", "why"), ROUTE_TABLE, ids=[row[2] for row in ROUTE_TABLE]
)
def test_route_overlap(routes: list[Route], expected: int, why: str) -> None:
    assert len(find_conflicts(LAB, routes, [], GW)) == expected, why


ADDRESS_TABLE = [
    ([_addr("eth0", "192.0.2.2/24")], 0, "the uplink address"),
    ([_addr("lo", "127.0.0.1/8")], 0, "loopback"),
    ([_addr(BRIDGE, "198.18.0.1/24")], 0, "the lab's own gateway on its bridge"),
    ([_addr(BRIDGE, "198.18.0.2/24")], 1, "another address on the lab's bridge"),
    ([_addr("eth1", "198.18.0.1/24")], 1, "the gateway address on a foreign interface"),
    ([_addr("dummy0", "198.18.255.1/32")], 1, "a loopback-range address"),
    ([_addr("eth1", "198.16.0.1/13")], 1, "an address whose subnet covers the lab"),
    ([_addr("nfrr-br", "198.19.200.1/26")], 0, "the NAPALM developer's range"),
]


@pytest.mark.parametrize(
    ("addresses", "expected", "why"), ADDRESS_TABLE, ids=[row[2] for row in ADDRESS_TABLE]
)
def test_address_overlap(addresses: list[Address], expected: int, why: str) -> None:
    assert len(find_conflicts(LAB, [], addresses, GW)) == expected, why


def test_conflict_message_names_route_and_prefix() -> None:
    [line] = find_conflicts(LAB, [Route("198.18.0.0/16", "eth1")], [], GW)
    assert line == "route 198.18.0.0/16 dev eth1 overlaps lab prefix 198.18.0.0/24"


def test_parse_ip_json() -> None:
    routes = parse_routes(
        json.dumps(
            [
                {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0", "flags": []},
                {
                    "type": "local",
                    "dst": "192.0.2.2",
                    "dev": "eth0",
                    "table": "local",
                    "protocol": "kernel",
                    "scope": "host",
                    "prefsrc": "192.0.2.2",
                    "flags": [],
                },
                {"type": "unreachable", "dst": "198.18.1.0/24", "protocol": "245", "flags": []},
            ]
        )
    )
    assert routes[0] == Route("default", "eth0", "unicast", "", "main")
    assert routes[1].table == "local" and routes[1].type == "local"
    assert routes[2].dev is None and routes[2].protocol == "245"
    addrs = parse_addresses(
        json.dumps(
            [
                {
                    "ifname": "eth0",
                    "addr_info": [{"family": "inet", "local": "192.0.2.2", "prefixlen": 24}],
                },
                {
                    "ifname": "lo",
                    "addr_info": [{"family": "inet6", "local": "::1", "prefixlen": 128}],
                },
            ]
        )
    )
    assert addrs == [_addr("eth0", "192.0.2.2/24")]
    assert parse_routes("") == []


def test_parse_lldp_json0() -> None:
    payload = {
        "lldp": [
            {
                "interface": [
                    {
                        "name": "swp1",
                        "chassis": [{"name": [{"value": "leaf1"}]}],
                        "port": [{"id": [{"type": "ifname", "value": "swp1"}]}],
                    },
                    {
                        "name": "swp2",
                        "chassis": [{"name": [{"value": "leaf2"}]}],
                        "port": [{"id": [{"type": "ifname", "value": "swp1"}]}],
                    },
                ]
            }
        ]
    }
    assert frr.parse_lldp(json.dumps(payload)) == {
        "swp1": ("leaf1", "swp1"),
        "swp2": ("leaf2", "swp1"),
    }
    assert frr.parse_lldp(json.dumps({"lldp": [{}]})) == {}


def test_expected_neighbours_from_the_topology() -> None:
    topo = topology.load()
    # spine1 peers with the active leaves only; leaf3 is planned (no BGP), but LLDP sees it.
    assert frr.expected_peers(topo, "spine1") == {"198.18.1.1": "leaf1", "198.18.1.3": "leaf2"}
    assert frr.expected_peers(topo, "leaf3") == {}
    assert frr.expected_lldp(topo, "spine1")["swp3"] == ("leaf3", "swp1")
    assert frr.expected_lldp(topo, "leaf3") == {
        "swp1": ("spine1", "swp3"),
        "swp2": ("spine2", "swp3"),
    }


def test_every_lab_address_is_inside_the_lab_prefixes() -> None:
    topo = topology.load()
    nets = topo.addressing.all_prefixes()
    addresses = (
        [d.mgmt for d in topo.devices]
        + [d.loopback for d in topo.devices]
        + [h.mgmt for h in topo.hosts]
        + [a.ip for link in topo.links for a in link.addresses()]
    )
    assert all(any(a in n for n in nets) for a in addresses)
    uplink = ipaddress.IPv4Network("192.0.2.0/24")
    assert not any(n.overlaps(uplink) for n in nets)
