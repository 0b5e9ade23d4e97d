"""get_route_to from zebra's RIB (``show ip route ... json``) and bgpd's paths.

Pure functions: each takes what vtysh printed and returns NAPALM's shapes.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from napalm.base import models

# zebra's protocol names that NAPALM callers spell otherwise
PROTOCOL_ALIASES = {"direct": "connected", "local": "connected", "ospf3": "ospf6"}
_UPTIME = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DEFAULT_VRF = "default"


def family(destination: str) -> str:
    """``ip`` or ``ipv6``, as vtysh's ``show <family> route`` wants it.

    >>> family("198.18.255.1/32"), family("2001:db8::/32")
    ('ip', 'ipv6')
    """
    try:
        version = ipaddress.ip_network(destination, strict=False).version
    except ValueError as exc:
        raise ValueError(f"not an IP address or prefix: {destination!r}") from exc
    return "ip" if version == 4 else "ipv6"


def route_commands(destination: str, longer: bool = False) -> tuple[str, str, str]:
    """The vtysh commands get_route_to runs: zebra's routes (every VRF), bgpd's paths to the
    same destination and bgpd's summary (for the local AS). bgpd answers one VRF at a time
    ("vrf all" is refused for a prefix): BGP attributes are the default VRF's.

    An address (no mask) asks for the longest match; ``longer`` for the prefix and every
    more specific one (zebra wants a mask then: an address becomes a host prefix).

    >>> route_commands("198.18.255.1")[:2]
    ('show ip route vrf all 198.18.255.1 json', 'show bgp ipv4 unicast 198.18.255.1 json')
    >>> route_commands("198.18.255.0/24", longer=True)[0]
    'show ip route vrf all 198.18.255.0/24 longer-prefixes json'
    """
    fam = family(destination)
    afi = "ipv4" if fam == "ip" else "ipv6"
    target = destination
    if longer:
        target = f"{ipaddress.ip_network(destination, strict=False)} longer-prefixes"
    return (
        f"show {fam} route vrf all {target} json",
        f"show bgp {afi} unicast {target} json",
        f"show bgp {afi} unicast summary json",
    )


def parse_uptime(text: str) -> int:
    """Seconds from zebra's route age: ``HH:MM:SS``, ``1d02h03m`` or ``01w2d03h``.

    >>> parse_uptime("00:01:02"), parse_uptime("1d02h03m"), parse_uptime("01w2d03h")
    (62, 93780, 788400)
    """
    text = text.strip()
    if ":" in text:
        try:
            hours, minutes, seconds = (int(p) for p in text.split(":"))
        except ValueError:
            return -1
        return hours * 3600 + minutes * 60 + seconds
    match = _UPTIME.match(text)
    if not text or match is None:
        return -1
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds


def _rib_routes(rib: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(vrf, prefix, route) of zebra's answer. With ``vrf all`` FRR 8 prints
    ``{prefix: [routes]}`` per VRF, each route naming its ``vrfName``; a ``{vrf: {prefix:
    [...]}}`` nesting (other versions) is read too."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for key, value in rib.items():
        if isinstance(value, list):
            found += [(str(r.get("vrfName", DEFAULT_VRF)), key, r) for r in value]
        elif isinstance(value, dict):
            found += [(key, p, r) for p, routes in value.items() for r in routes]
    return found


def _bgp_paths(bgp: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(vrf, prefix) -> bgpd's paths, from ``show bgp <afi> unicast <destination> json``:
    ``{"prefix": p, "paths": [...]}`` for one prefix, ``{"routes": {p: [paths]}}`` for
    longer-prefixes; ``{}`` or a warning without BGP."""
    if "paths" in bgp and "prefix" in bgp:
        return {(DEFAULT_VRF, str(bgp["prefix"])): list(bgp["paths"])}
    routes = bgp.get("routes") or {}
    return {(DEFAULT_VRF, p): paths for p, paths in routes.items() if isinstance(paths, list)}


def _bgp_attributes(path: dict[str, Any], local_as: int) -> dict[str, Any]:
    """NAPALM's usual BGP protocol_attributes (the keys EOS gives); ``peer_id`` is the
    address of the neighbour the path came from, ``metric2`` -1 (FRR has no second metric)."""
    # the one-prefix form has "aspath" and "peer" objects, the table form "path" and "peerId"
    aspath = path.get("aspath")
    as_path = str(aspath.get("string", "") if isinstance(aspath, dict) else path.get("path", ""))
    as_path = as_path.strip()
    first_as = as_path.split()[0] if as_path.split() else ""
    peer_id = (path.get("peer") or {}).get("peerId", path.get("peerId", ""))
    remote_as = int(first_as) if first_as.isdigit() else local_as  # empty AS path: iBGP/local
    communities = str((path.get("community") or {}).get("string", "")).split()
    return {
        "local_as": local_as,
        "remote_as": remote_as,
        "peer_id": str(peer_id),  # the neighbour's address, which both forms name
        "as_path": as_path,
        "communities": communities,
        "local_preference": int(path.get("locPrf", 100)),
        "preference2": int(path.get("weight", 0)),
        "metric": int(path.get("metric", path.get("med", 0))),
        "metric2": -1,
    }


def _is_best(path: dict[str, Any]) -> bool:
    best = path.get("bestpath")
    return bool(best.get("overall")) if isinstance(best, dict) else bool(best)


def _path_for(paths: list[dict[str, Any]], next_hop: str) -> dict[str, Any] | None:
    """The bgpd path whose next hop is ``next_hop`` (best path first)."""
    ordered = sorted(paths, key=lambda p: not _is_best(p))
    for path in ordered:
        hops = [str(h.get("ip", "")) for h in path.get("nexthops", [])]
        if next_hop in hops or (not next_hop and not hops):
            return path
    return None


def _inactive_reason(route: dict[str, Any], hop: dict[str, Any]) -> str:
    if not route.get("selected"):
        return "not selected (a better route exists)"
    if not route.get("installed"):
        return "not installed in the kernel"
    if not (hop.get("fib") or hop.get("active")):
        return "next hop inactive"
    return ""


def _route_entries(
    vrf: str,
    route: dict[str, Any],
    bgp_paths: list[dict[str, Any]],
    local_as: int,
) -> list[models.RouteDict]:
    """One RouteDict per next hop of one zebra route."""
    protocol = str(route.get("protocol", ""))
    selected = bool(route.get("selected")) and bool(route.get("installed"))
    entries: list[models.RouteDict] = []
    for hop in route.get("nexthops") or [{}]:
        next_hop = str(hop.get("ip", ""))
        in_fib = bool(hop.get("fib"))
        attributes: dict[str, Any] = {}
        if protocol == "bgp":
            path = _path_for(bgp_paths, next_hop)
            if path is not None:
                attributes = _bgp_attributes(path, local_as)
        entries.append(
            {
                "protocol": protocol,
                "current_active": selected and in_fib,
                "last_active": selected and in_fib,
                "age": parse_uptime(str(route.get("uptime", ""))),
                "next_hop": next_hop,
                "outgoing_interface": str(hop.get("interfaceName", "")),
                "selected_next_hop": in_fib,
                "preference": int(route.get("distance", 0)),
                "inactive_reason": _inactive_reason(route, hop),
                "routing_table": vrf,
                "protocol_attributes": attributes,
            }
        )
    return entries


def wanted_protocol(protocol: str) -> str:
    """The zebra name of a protocol as a NAPALM caller may write it.

    >>> wanted_protocol("BGP"), wanted_protocol("direct"), wanted_protocol("")
    ('bgp', 'connected', '')
    """
    name = protocol.strip().lower()
    return PROTOCOL_ALIASES.get(name, name)


def parse_route_to(
    rib: dict[str, Any], bgp: dict[str, Any], protocol: str = "", local_as: int = 0
) -> dict[str, list[models.RouteDict]]:
    """get_route_to from zebra's routes and bgpd's paths to the same destination.

    An entry per (route, next hop); ``current_active`` is true for a next hop that zebra
    selected and installed in the kernel (FIB), i.e. the traffic follows it. Routes that lost
    to another protocol (a BGP route under a connected one) are listed with
    ``current_active`` false and their ``inactive_reason``. ``routing_table`` is the VRF.
    """
    wanted = wanted_protocol(protocol)
    paths = _bgp_paths(bgp)
    result: dict[str, list[models.RouteDict]] = {}
    for vrf, prefix, route in _rib_routes(rib):
        if wanted and str(route.get("protocol", "")).lower() != wanted:
            continue
        entries = _route_entries(vrf, route, paths.get((vrf, prefix), []), local_as)
        result.setdefault(prefix, []).extend(entries)
    return result


def local_as_of(summary: dict[str, Any]) -> int:
    """The router's AS from bgpd's summary (``as``), 0 without BGP."""
    try:
        return int(summary.get("as", 0))
    except (TypeError, ValueError):
        return 0
