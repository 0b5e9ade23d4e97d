"""What rack-in and rack-out share: the device behind a NetBox working set, and the pure
comparisons their checks make (LLDP against cables, BGP against NetBox, redundancy).

The comparisons are plain functions on plain data (NetBox working sets, NAPALM getter
shapes) so that they are unit-tested without a lab; the runbooks only fetch and decide.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from netutils.interface import canonical_interface_name

from runbooks import config
from runbooks.core.errors import InventoryError
from runbooks.core.results import Diff, FieldChange
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import DeviceTarget, napalm_driver_for


def device_target(ws: DeviceWorkingSet) -> DeviceTarget:
    """How to reach a device: its primary IPv4 (else out-of-band) address, its platform, and
    the NAPALM driver and options its config context names (`DeviceTarget.from_netbox`)."""
    address = ws.primary_ip4 or ws.oob_ip
    if not address:
        raise InventoryError(f"{ws.name} has no primary or out-of-band IPv4 address in NetBox")
    if ws.platform is None:
        raise InventoryError(f"{ws.name} has no platform in NetBox: which driver would talk to it?")
    host = address.split("/", maxsplit=1)[0]
    platform = ws.platform.slug or ws.platform.name
    return DeviceTarget.from_netbox(ws.name, host, platform, ws.config_context)


def driver_of(ws: DeviceWorkingSet) -> str:
    if ws.platform is None:
        raise InventoryError(f"{ws.name} has no platform in NetBox")
    return napalm_driver_for(ws.platform.slug or ws.platform.name, ws.config_context)


def config_diff(name: str, before: str, after: str, device_diff: str, summary: str) -> Diff:
    """A configuration change as a plan shows it: the device's own diff; ``before`` (the
    running configuration, for undo) and ``after`` (the candidate). All three sanitised:
    a secret value stands as a placeholder the device gateway fills when it commits."""
    return Diff(
        target=f"{name} configuration",
        kind="text",
        summary=summary,
        text=device_diff,
        before=before,
        after=after,
    )


def device_of(diff: Diff) -> str:
    return diff.target.removesuffix(" configuration")


def moves_address(before: str, after: str, address: str | None) -> bool:
    r"""Whether going from ``before`` to ``after`` (or back: an undo, a commit-confirm timer)
    adds or removes ``address`` (with or without its length) in the configuration text.

    The management address belongs to the box's OS, not to the routing configuration: a
    configuration that took it over would take it away again on the way back.

    >>> moves_address("hostname a\n", "hostname a\n ip address 203.0.113.23/24\n", "203.0.113.23")
    True
    >>> moves_address("ip address 203.0.113.231/24\n", "hostname a\n", "203.0.113.23/24")
    False
    """
    if not address:
        return False
    found = re.compile(rf"(?<![\d.]){re.escape(address.split('/', maxsplit=1)[0])}(?![\d.])")
    return bool(found.search(before)) != bool(found.search(after))


# ---- the world as NetBox says it should be ------------------------------------------------


@dataclass(frozen=True)
class Link:
    """One cable of a device as NetBox holds it, seen from the device."""

    interface: str
    peer_device: str
    peer_interface: str
    cable_id: int
    cable_status: str
    peer_status: str | None


def links_of(ws: DeviceWorkingSet, statuses: Iterable[str] | None = None) -> list[Link]:
    """The device's cables to interfaces of other devices (optionally of some statuses)."""
    wanted = set(statuses) if statuses is not None else None
    out = []
    for iface in ws.cabled:
        peer = iface.peer
        assert iface.cable is not None
        if wanted is not None and iface.cable.status not in wanted:
            continue
        if peer is None or peer.kind != "interface" or peer.device is None:
            continue
        out.append(
            Link(
                iface.name,
                peer.device,
                peer.name,
                iface.cable.id,
                iface.cable.status,
                peer.device_status,
            )
        )
    return out


def cable_problems(ws: DeviceWorkingSet) -> list[str]:
    """Why the device's cables cannot be brought up as planned (empty when they can)."""
    problems = []
    if not ws.cabled:
        problems.append(f"{ws.name} has no cables in NetBox")
    for iface in ws.cabled:
        assert iface.cable is not None
        peer = iface.peer
        where = f"{ws.name}:{iface.name} (cable #{iface.cable.id})"
        if iface.cable.status not in ("planned", "connected"):
            problems.append(f"{where} is {iface.cable.status}, not planned")
        if peer is None or peer.kind != "interface" or peer.device is None:
            what = peer.kind if peer else "nothing"
            problems.append(f"{where} ends on {what}, not on an interface of a device")
        elif peer.device_status != "active":
            problems.append(f"{where} ends on {peer.device}, which is {peer.device_status}")
    return problems


def address_of(ws: DeviceWorkingSet, interface: str) -> str | None:
    """The first IPv4 address (without length) NetBox assigns to an interface."""
    try:
        iface = ws.interface(interface)
    except KeyError:
        return None
    for ip in iface.ip_addresses:
        if ":" not in ip.address:
            return ip.address.split("/")[0]
    return None


def loopback_of(ws: DeviceWorkingSet) -> str | None:
    """The device's loopback address (without length): the first IPv4 address NetBox marks
    with the role ``loopback``, whatever the platform names the interface (``Loopback0``,
    ``lo0.0``); else the address of an interface named ``lo`` (a Linux router's)."""
    for iface in ws.interfaces:
        for ip in iface.ip_addresses:
            if ip.role == "loopback" and ":" not in ip.address:
                return ip.address.split("/", maxsplit=1)[0]
    return address_of(ws, "lo")


@dataclass(frozen=True)
class Session:
    """A BGP session NetBox implies: over a cable, to the peer's address on it."""

    local_interface: str
    peer_device: str
    peer_interface: str
    peer_address: str
    peer_asn: int | None


def expected_sessions(ws: DeviceWorkingSet, peers: Mapping[str, DeviceWorkingSet]) -> list[Session]:
    """One session per cable whose far end has an address (the template's rule); the peer's
    AS number from the device custom field the settings name (``netbox_asn_field``)."""
    asn_field = config.asn_field()
    out = []
    for link in links_of(ws):
        peer = peers.get(link.peer_device)
        if peer is None:
            continue
        address = address_of(peer, link.peer_interface)
        if address is None:
            continue
        asn = peer.custom_fields.get(asn_field)
        out.append(
            Session(
                link.interface,
                link.peer_device,
                link.peer_interface,
                address,
                int(asn) if asn is not None else None,
            )
        )
    return out


def sessions_note(
    ws: DeviceWorkingSet, peers: Mapping[str, DeviceWorkingSet], *, adding: bool
) -> Diff:
    """The BGP sessions NetBox's template adds (or drops) once the cables change status.

    A plan cannot show them as configuration: NetBox renders only what it holds, and the
    cables change in the run, just before the configuration is rendered again."""
    sessions = [(ws.name, s) for s in expected_sessions(ws, peers)]
    for peer in peers.values():
        sessions += [
            (peer.name, s)
            for s in expected_sessions(peer, {ws.name: ws})
            if s.peer_device == ws.name
        ]
    fields = tuple(
        FieldChange(
            f"{name}: neighbor {s.peer_address}",
            *((None, text) if adding else (text, None)),
        )
        for name, s in sessions
        for text in [f"AS{s.peer_asn} {s.peer_device}:{s.peer_interface}"]
    )
    when = "connected" if adding else "no longer connected"
    return Diff(
        target=f"{ws.name} BGP sessions",
        kind="fields",
        summary=f"BGP sessions NetBox renders once the cables are {when} (at run time)",
        fields=fields,
        before={f.name: f.before for f in fields},
        after={f.name: f.after for f in fields},
    )


# ---- comparisons with what the devices report -----------------------------------------------


def lldp_mismatches(links: Iterable[Link], lldp: Mapping[str, Any]) -> list[str]:
    """Interface by interface: does LLDP see, on each cabled interface, the peer NetBox names?

    ``lldp`` is NAPALM's ``get_lldp_neighbors()``: ``{"swp1": [{"hostname", "port"}]}``.
    Interface names are compared in netutils' canonical form (IOS sends ``Gi0/3`` where
    NetBox holds ``GigabitEthernet0/3``), and a neighbour announcing its FQDN is the device
    its first labels name.

    >>> link = Link("swp1", "core-a", "swp3", 3, "connected", "active")
    >>> lldp_mismatches([link], {"swp1": [{"hostname": "core-a", "port": "swp3"}]})
    []
    >>> lldp_mismatches([link], {"swp1": [{"hostname": "core-b", "port": "swp3"}]})
    ['swp1: NetBox cables it to core-a:swp3, LLDP sees core-b:swp3']
    >>> ios = Link("GigabitEthernet0/1", "sw1", "GigabitEthernet0/3", 4, "connected", "active")
    >>> lldp_mismatches([ios], {"Gi0/1": [{"hostname": "sw1.corp.example", "port": "Gi0/3"}]})
    []
    """
    seen_on: dict[str, list[tuple[str, str]]] = {}
    for local, neighbours in lldp.items():
        seen_on.setdefault(canonical_interface_name(str(local)), []).extend(
            (str(n.get("hostname", "")), str(n.get("port", ""))) for n in neighbours
        )
    problems = []
    for link in links:
        seen = seen_on.get(canonical_interface_name(link.interface), [])
        wanted = canonical_interface_name(link.peer_interface)
        if any(
            (host == link.peer_device or host.startswith(f"{link.peer_device}."))
            and canonical_interface_name(port) == wanted
            for host, port in seen
        ):
            continue
        found = ", ".join(f"{h}:{p}" for h, p in seen) or "no neighbour"
        problems.append(
            f"{link.interface}: NetBox cables it to {link.peer_device}:{link.peer_interface}, "
            f"LLDP sees {found}"
        )
    return problems


def bgp_problems(sessions: Iterable[Session], bgp: Mapping[str, Any]) -> list[str]:
    """Sessions NetBox implies that are missing, down or to the wrong AS.

    ``bgp`` is NAPALM's ``get_bgp_neighbors()`` (``{"global": {"peers": {address: …}}}``).
    """
    peers: dict[str, Any] = {}
    for vrf in bgp.values():
        peers.update(vrf.get("peers", {}))
    problems = []
    for s in sessions:
        peer = peers.get(s.peer_address)
        name = f"{s.peer_device} ({s.peer_address})"
        if peer is None:
            problems.append(f"no BGP session to {name}")
        elif not peer.get("is_up"):
            problems.append(f"BGP session to {name} is not established")
        elif s.peer_asn is not None and int(peer.get("remote_as", -1)) != s.peer_asn:
            problems.append(
                f"BGP peer {name} is AS{peer.get('remote_as')}, NetBox says AS{s.peer_asn}"
            )
    return problems


def lost_last_path(device: str, neighbours: Mapping[str, DeviceWorkingSet]) -> dict[str, list[str]]:
    """For each neighbour, its other connected cables to active devices once ``device`` is
    gone; a neighbour with none would be cut off.

    >>> # see tests/unit/library/test_rack_out.py for examples
    """
    out: dict[str, list[str]] = {}
    for name, ws in neighbours.items():
        out[name] = sorted(
            f"{link.interface}→{link.peer_device}:{link.peer_interface}"
            for link in links_of(ws, ["connected"])
            if link.peer_device != device and link.peer_status == "active"
        )
    return out


def route_installed(routes: Mapping[str, Any], address: str) -> bool:
    """Whether NAPALM's ``get_route_to(destination=…)`` answer holds an installed route
    (an entry ``current_active``) to a prefix covering ``address``.

    >>> route_installed({"203.0.113.13/32": [{"current_active": True}]}, "203.0.113.13")
    True
    >>> route_installed({"203.0.113.13/32": [{"current_active": False}]}, "203.0.113.13")
    False
    """
    target = ipaddress.ip_address(address.split("/", maxsplit=1)[0])
    for prefix, entries in routes.items():
        if target not in ipaddress.ip_network(prefix, strict=False):
            continue
        if any(entry.get("current_active") for entry in entries):
            return True
    return False


def still_received(bgp: Mapping[str, Any], addresses: Iterable[str]) -> list[str]:
    """The sessions to ``addresses`` over which a neighbour still takes routes: up, enabled,
    and with prefixes received (NAPALM's ``get_bgp_neighbors()``; ``received_prefixes`` -1,
    "unknown", counts as routes). A session absent, down or shut carries nothing.

    >>> peer = {"is_up": True, "is_enabled": True,
    ...         "address_family": {"ipv4": {"received_prefixes": 3}}}
    >>> still_received({"global": {"peers": {"203.0.113.1": peer}}}, ["203.0.113.1"])
    ['203.0.113.1: 3 prefixes received']
    >>> shut = {**peer, "is_up": False, "is_enabled": False}
    >>> still_received({"global": {"peers": {"203.0.113.1": shut}}}, ["203.0.113.1"])
    []
    """
    wanted = set(addresses)
    out = []
    for vrf in bgp.values():
        for address, peer in vrf.get("peers", {}).items():
            if address not in wanted or not peer.get("is_up") or not peer.get("is_enabled", True):
                continue
            families = peer.get("address_family", {}).values()
            received = [int(f.get("received_prefixes", -1)) for f in families] or [-1]
            if any(n != 0 for n in received):
                count = sum(n for n in received if n > 0) if all(n >= 0 for n in received) else "?"
                out.append(f"{address}: {count} prefixes received")
    return sorted(out)
