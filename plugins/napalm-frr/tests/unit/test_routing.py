"""Route, BGP configuration and probe parsing: the cases the recorded lab does not show
(ECMP, a route that lost to another protocol, peer-groups and passwords, failed probes)."""

from __future__ import annotations

from typing import Any

import pytest

from napalm_frr import bgp, probes, routes


def _route(protocol: str, selected: bool, hops: list[dict[str, Any]], vrf: str = "default") -> Any:
    return {
        "prefix": "198.18.255.12/32",
        "protocol": protocol,
        "vrfName": vrf,
        "selected": selected,
        "installed": selected,
        "distance": 20 if protocol == "bgp" else 0,
        "uptime": "1d02h03m",
        "nexthops": hops,
    }


ECMP = [
    {"fib": True, "ip": "198.18.1.0", "interfaceName": "swp1", "active": True},
    {"fib": True, "ip": "198.18.1.6", "interfaceName": "swp2", "active": True},
]


def test_ecmp_route_is_one_active_entry_per_next_hop() -> None:
    rib = {"198.18.255.12/32": [_route("bgp", True, ECMP)]}
    entries = routes.parse_route_to(rib, {}, "bgp", 65101)["198.18.255.12/32"]
    assert [(e["next_hop"], e["current_active"]) for e in entries] == [
        ("198.18.1.0", True),
        ("198.18.1.6", True),
    ]
    assert entries[0]["age"] == 93780 and entries[0]["routing_table"] == "default"


def test_route_that_lost_is_listed_inactive_and_filtered_by_protocol() -> None:
    connected = _route("connected", True, [{"fib": True, "interfaceName": "lo", "active": True}])
    lost = _route("bgp", False, [{"ip": "198.18.1.0", "interfaceName": "swp1", "active": True}])
    rib = {"198.18.255.12/32": [connected, lost]}
    both = routes.parse_route_to(rib, {})["198.18.255.12/32"]
    assert [(e["protocol"], e["current_active"]) for e in both] == [
        ("connected", True),
        ("bgp", False),
    ]
    assert both[1]["inactive_reason"].startswith("not selected")
    only_bgp = routes.parse_route_to(rib, {}, "BGP")["198.18.255.12/32"]
    assert [e["protocol"] for e in only_bgp] == ["bgp"]
    assert routes.parse_route_to(rib, {}, "direct")["198.18.255.12/32"][0]["next_hop"] == ""


def test_route_in_a_vrf_names_its_table() -> None:
    rib = {"10.0.0.0/8": [_route("static", True, ECMP[:1], vrf="TEST")]}
    assert routes.parse_route_to(rib, {})["10.0.0.0/8"][0]["routing_table"] == "TEST"


def test_unrouted_address_is_empty() -> None:
    assert routes.parse_route_to({"0.0.0.0/0": []}, {}) == {}


def test_ipv6_destination_asks_ipv6() -> None:
    assert routes.route_commands("2001:db8::/32")[0] == "show ipv6 route vrf all 2001:db8::/32 json"
    with pytest.raises(ValueError):
        routes.route_commands("not-an-address")


RUNNING = """\
router bgp 65001
 bgp router-id 198.18.255.1
 neighbor FABRIC peer-group
 neighbor FABRIC remote-as external
 neighbor FABRIC ebgp-multihop 2
 neighbor 198.18.1.1 remote-as 65101
 neighbor 198.18.1.1 description leaf1:swp1
 neighbor 198.18.1.1 password s3cr3t-value
 neighbor 198.18.1.1 update-source lo
 neighbor swp4 interface peer-group FABRIC
 !
 address-family ipv4 unicast
  neighbor 198.18.1.1 route-map IN in
  neighbor 198.18.1.1 route-map OUT out
  neighbor 198.18.1.1 maximum-prefix 100
  neighbor 198.18.1.1 next-hop-self
  neighbor FABRIC remove-private-AS
  maximum-paths 4
 exit-address-family
exit
!
router bgp 65001 vrf TEST
 neighbor 10.0.0.1 remote-as 65009
exit
"""


def test_bgp_config_groups_neighbours_and_never_the_password() -> None:
    config = bgp.parse_bgp_config(RUNNING)
    assert sorted(config) == ["FABRIC", "_"]
    neighbour = config["_"]["neighbors"]["198.18.1.1"]
    assert neighbour["authentication_key"] == "<removed>"
    assert "s3cr3t" not in repr(config)
    assert (neighbour["import_policy"], neighbour["export_policy"]) == ("IN", "OUT")
    assert neighbour["prefix_limit"] == {"inet": {"unicast": {"limit": 100}}}
    assert neighbour["nhs"] and neighbour["local_address"] == "lo"
    assert neighbour["remote_as"] == 65101 and neighbour["local_as"] == 65001
    fabric = config["FABRIC"]
    assert fabric["type"] == "external" and fabric["multihop_ttl"] == 2
    assert fabric["remove_private_as"] and fabric["multipath"]
    assert list(fabric["neighbors"]) == ["swp4"]
    assert "10.0.0.1" not in repr(config)  # another VRF's BGP is not the global config


def test_bgp_config_filters_and_no_bgp() -> None:
    assert list(bgp.parse_bgp_config(RUNNING, group="FABRIC")) == ["FABRIC"]
    only = bgp.parse_bgp_config(RUNNING, neighbor="198.18.1.1")
    assert list(only) == ["_"] and list(only["_"]["neighbors"]) == ["198.18.1.1"]
    assert bgp.parse_bgp_config("hostname leaf3\n!\n") == {}


@pytest.mark.parametrize(
    ("output", "key"),
    [
        ("ping: unknown-host: Name or service not known", "error"),
        ("ping: connect: Network is unreachable", "error"),
        (
            "PING 8.8.8.8 (8.8.8.8) 100(128) bytes of data.\n\n--- 8.8.8.8 ping statistics ---\n"
            "5 packets transmitted, 0 received, 100% packet loss, time 801ms\n",
            "success",
        ),
    ],
)
def test_ping_errors_and_total_loss(output: str, key: str) -> None:
    result = probes.parse_ping(output)
    assert list(result) == [key]
    if key == "success":
        assert result["success"]["packet_loss"] == 5 and result["success"]["results"] == []


def test_traceroute_with_ecmp_and_lost_probes() -> None:
    output = (
        "traceroute to 198.18.255.12 (198.18.255.12), 30 hops max, 60 byte packets\n"
        " 1  198.18.1.0  0.061 ms 198.18.1.6  0.050 ms  0.045 ms\n"
        " 2  * * *\n"
        " 3  198.18.255.12  0.100 ms !H  0.090 ms *\n"
    )
    hops = probes.parse_traceroute(output)["success"]
    assert [p["ip_address"] for p in hops[1]["probes"].values()] == [
        "198.18.1.0",
        "198.18.1.6",
        "198.18.1.6",
    ]
    assert all(p["ip_address"] == "*" for p in hops[2]["probes"].values())
    assert [p["rtt"] for p in hops[3]["probes"].values()] == [0.1, 0.09, 0.0]
    assert probes.parse_traceroute("sh: 1: traceroute: not found") == {
        "error": "sh: 1: traceroute: not found"
    }
