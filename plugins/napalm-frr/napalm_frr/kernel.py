"""Getters the Linux kernel answers for an FRR box: neighbours (ARP, NDP), the bridges' MAC
table and VLANs, and the VRFs (network instances), all from iproute2's JSON.

FRR programs the kernel and keeps none of these tables itself, so the kernel is the truth.
Pure functions: each takes what ``ip -j``/``bridge -j`` printed.
"""

from __future__ import annotations

from typing import Any

from napalm.base import models
from napalm.base.helpers import mac as normalise_mac

from napalm_frr.shell import q

# neighbour states without a usable link-layer address
UNRESOLVED = {"INCOMPLETE", "FAILED"}
# the commands, as data (the driver runs them in one round trip where it can)
ARP = "ip -4 -j -s neigh show"
NDP = "ip -6 -j -s neigh show"
FDB = "bridge -j -s fdb show"
BRIDGE_VLANS = "bridge -j vlan show"
LINKS = "ip -j -d link show"


def neigh_command(base: str, vrf: str = "") -> str:
    """``ip ... neigh show`` limited to one VRF's devices when asked.

    >>> neigh_command(ARP, "TEST")
    'ip -4 -j -s neigh show vrf TEST'
    """
    return f"{base} vrf {q(vrf)}" if vrf else base


def _mac(value: str) -> str:
    try:
        return str(normalise_mac(value))
    except Exception:  # not an Ethernet address (tunnels): as the kernel prints it
        return value


def _age(entry: dict[str, Any]) -> float:
    """Seconds since the kernel last confirmed the entry (``-s``'s ``updated``); -1.0 unknown."""
    for key in ("updated", "confirmed", "used"):
        if key in entry:
            try:
                return float(entry[key])
            except (TypeError, ValueError):
                continue
    return -1.0


def _resolved(neighbours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        n
        for n in neighbours
        if n.get("lladdr") and not UNRESOLVED.intersection(n.get("state") or [])
    ]


def parse_arp_table(neighbours: list[dict[str, Any]]) -> list[models.ARPTableDict]:
    """get_arp_table from ``ip -4 -j -s neigh show``: the resolved entries (a neighbour the
    kernel could not resolve has no MAC and is left out)."""
    return [
        {
            "interface": str(n.get("dev", "")),
            "mac": _mac(str(n["lladdr"])),
            "ip": str(n.get("dst", "")),
            "age": _age(n),
        }
        for n in _resolved(neighbours)
    ]


def parse_ipv6_neighbors(neighbours: list[dict[str, Any]]) -> list[models.IPV6NeighborDict]:
    """get_ipv6_neighbors_table from ``ip -6 -j -s neigh show``; ``state`` is the kernel's
    (REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP)."""
    return [
        {
            "interface": str(n.get("dev", "")),
            "mac": _mac(str(n["lladdr"])),
            "ip": str(n.get("dst", "")),
            "age": _age(n),
            "state": ",".join(n.get("state") or []),
        }
        for n in _resolved(neighbours)
    ]


def parse_mac_address_table(fdb: list[dict[str, Any]]) -> list[models.MACAdressTable]:
    """get_mac_address_table from ``bridge -j -s fdb show``.

    Only the bridges' entries (those with a ``master``): the other lines of ``bridge fdb``
    are the multicast filters of plain interfaces, not a MAC table. ``static`` is a
    permanent/static entry (the bridge's own addresses, ``bridge fdb add``); Linux does not
    count moves: ``moves`` -1, ``last_move`` -1.0. ``vlan`` 0 when the bridge does not
    filter VLANs.
    """
    table: list[models.MACAdressTable] = []
    for entry in fdb:
        if not entry.get("master") or "mac" not in entry:
            continue
        state = str(entry.get("state", ""))
        table.append(
            {
                "mac": _mac(str(entry["mac"])),
                "interface": str(entry.get("ifname", "")),
                "vlan": int(entry.get("vlan", 0)),
                "static": state in ("permanent", "static"),
                "active": state != "stale",
                "moves": -1,
                "last_move": -1.0,
            }
        )
    return table


def _link_vlan_id(link: dict[str, Any]) -> int | None:
    info = link.get("linkinfo") or {}
    if info.get("info_kind") != "vlan":
        return None
    return int((info.get("info_data") or {}).get("id", 0)) or None


def parse_vlans(
    bridge_vlans: list[dict[str, Any]], links: list[dict[str, Any]]
) -> dict[int, models.VlanDict]:
    """get_vlans from ``bridge -j vlan show`` (VLAN-aware bridges' ports) and the 802.1Q
    subinterfaces of ``ip -j -d link show`` (``eth1.100`` is in VLAN 100).

    Linux gives VLANs no names: ``name`` is "". A bridge listed on its own VLAN has it as
    ``self`` (its SVI).
    """
    members: dict[int, set[str]] = {}
    for port in bridge_vlans:
        for vlan in port.get("vlans") or []:
            first = int(vlan.get("vlan", 0))
            last = int(vlan.get("vlanEnd", first))
            for vid in range(first, last + 1):
                members.setdefault(vid, set()).add(str(port.get("ifname", "")))
    for link in links:
        link_vid = _link_vlan_id(link)
        if link_vid is not None:
            members.setdefault(link_vid, set()).add(str(link.get("ifname", "")))
    return {
        vid: {"name": "", "interfaces": sorted(names)} for vid, names in sorted(members.items())
    }


def parse_network_instances(
    links: list[dict[str, Any]], name: str = ""
) -> dict[str, models.NetworkInstanceDict]:
    """get_network_instances from ``ip -j -d link show``: the default instance and each VRF
    device (FRR's VRFs are the kernel's), with the interfaces enslaved to it.

    Route distinguishers belong to BGP L3VPN configuration, which this driver does not
    read: ``route_distinguisher`` is "".
    """
    vrfs = {
        str(link["ifname"])
        for link in links
        if (link.get("linkinfo") or {}).get("info_kind") == "vrf"
    }
    interfaces: dict[str, dict[str, dict[str, Any]]] = {"default": {}}
    for vrf in vrfs:
        interfaces[vrf] = {}
    for link in links:
        ifname = str(link.get("ifname", ""))
        if ifname in vrfs:
            continue
        master = str(link.get("master", ""))
        interfaces[master if master in vrfs else "default"][ifname] = {}
    instances: dict[str, models.NetworkInstanceDict] = {
        instance: {
            "name": instance,
            "type": "DEFAULT_INSTANCE" if instance == "default" else "L3VRF",
            "state": {"route_distinguisher": ""},
            "interfaces": {"interface": dict(sorted(members.items()))},
        }
        for instance, members in sorted(interfaces.items())
    }
    if name:
        return {name: instances[name]} if name in instances else {}
    return instances
