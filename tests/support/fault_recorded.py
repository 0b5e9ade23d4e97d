"""Recorded evidence for the fault-handling unit tests: NAPALM getter answers of the lab's
leaf1 (FRR, healthy, read 2026-12-07 through the lab's FRR driver), a database server's lock
graph as fault-database recorded it on the lab's db1, and the answers written as NAPALM's mock
driver reads them (``<getter>.1``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PEER = {"local_as": 65101, "is_up": True, "is_enabled": True, "uptime": 84,
        "address_family": {"ipv4": {"received_prefixes": 3, "accepted_prefixes": 3,
                                    "sent_prefixes": 4}}}  # fmt: skip
IFACE = {"is_up": True, "is_enabled": True, "description": "", "last_flapped": -1.0,
         "speed": 10000.0, "mtu": 1500, "mac_address": "aa:c1:ab:00:00:01"}  # fmt: skip
COUNTERS = {"rx_errors": 0, "tx_errors": 0, "rx_discards": 1, "tx_discards": 0,
            "rx_octets": 9000, "tx_octets": 9000, "rx_unicast_packets": 90,
            "tx_unicast_packets": 90, "rx_multicast_packets": 3, "tx_multicast_packets": 3,
            "rx_broadcast_packets": 0, "tx_broadcast_packets": 0}  # fmt: skip

# leaf1 of the lab, healthy: two sessions up, both cables seen by LLDP, the routes installed
LEAF1: dict[str, Any] = {
    "get_facts": {"hostname": "leaf1", "fqdn": "leaf1", "vendor": "FRRouting", "model": "",
                  "serial_number": "", "os_version": "FRRouting 8.4.4", "uptime": 506.49,
                  "interface_list": ["eth0", "lo", "swp1", "swp2"]},
    "get_interfaces": {"eth0": IFACE, "lo": {**IFACE, "speed": 0.0, "mtu": 65536},
                       "swp1": IFACE, "swp2": IFACE},
    "get_interfaces_counters": {"swp1": COUNTERS, "swp2": COUNTERS},
    "get_bgp_neighbors": {"global": {"router_id": "198.18.255.11", "peers": {
        "198.18.1.0": {**PEER, "remote_as": 65001, "remote_id": "198.18.255.1",
                       "description": "spine1:swp1"},
        "198.18.1.6": {**PEER, "remote_as": 65002, "remote_id": "198.18.255.2",
                       "description": "spine2:swp1"}}}},
    "get_lldp_neighbors": {"swp1": [{"hostname": "spine1", "port": "swp1"}],
                           "swp2": [{"hostname": "spine2", "port": "swp1"}]},
    "get_route_to": {"198.18.255.2/32": [{
        "protocol": "bgp", "current_active": True, "last_active": True, "age": 83,
        "next_hop": "198.18.1.6", "outgoing_interface": "swp2", "selected_next_hop": True,
        "preference": 20, "inactive_reason": "", "routing_table": "default",
        "protocol_attributes": {"local_as": 65101, "remote_as": 65002}}]},
}  # fmt: skip


def shut(answers: Mapping[str, Any], peer: str) -> dict[str, Any]:
    """The answers with the session to ``peer`` shut (``neighbor X shutdown``): Idle, admin
    down, as FRR reports it."""
    out = copy.deepcopy(dict(answers))
    out["get_bgp_neighbors"]["global"]["peers"][peer].update(
        is_up=False, is_enabled=False, uptime=-1
    )
    return out


def far_end_down(answers: Mapping[str, Any], interface: str, peer: str) -> dict[str, Any]:
    """The answers with ``interface``'s cable dead at its far end: the interface down, its
    LLDP neighbour gone, the session over it (to ``peer``) down."""
    out = copy.deepcopy(dict(answers))
    out["get_interfaces"][interface] = {**IFACE, "is_up": False}
    out["get_lldp_neighbors"].pop(interface)
    out["get_bgp_neighbors"]["global"]["peers"][peer].update(is_up=False, uptime=-1)
    return out


def write_mock(directory: Path, answers: Mapping[str, Any]) -> Path:
    """The answers as NAPALM's mock driver replays them."""
    directory.mkdir(parents=True, exist_ok=True)
    for getter, answer in answers.items():
        (directory / f"{getter}.1").write_text(json.dumps(answer))
    return directory


# fault-database's locks evidence on db1 with one session holding ACCESS EXCLUSIVE on
# public.orders (its transaction open 3.1 s) and another's SELECT waiting 2.4 s for it
LOCKS = {
    "inventory": {
        "waiting": [{"pid": 4242, "user": "runbook", "application": "fault-test-waiter",
                     "database": "inventory", "blocked_by": [4241], "waiting_s": 2.4,
                     "wants": {"mode": "AccessShareLock", "locktype": "relation",
                               "relation": "public.orders"},
                     "query": "SELECT count(*) FROM public.orders"}],
        "blocking": [{"pid": 4241, "user": "runbook", "application": "fault-test-holder",
                      "database": "inventory", "state": "idle in transaction",
                      "xact_age_s": 3.1,
                      "holds": [{"mode": "AccessExclusiveLock", "relation": "public.orders"}],
                      "query": "LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE"}],
    }
}  # fmt: skip
