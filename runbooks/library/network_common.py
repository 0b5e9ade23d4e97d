"""What rack-in and rack-out share: the device behind a NetBox working set, and the pure
comparisons their checks make (LLDP against cables, BGP against NetBox, redundancy).

The comparisons are plain functions on plain data (NetBox working sets, NAPALM getter
shapes) so that they are unit-tested without a lab; the runbooks only fetch and decide.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runbooks.core.errors import InventoryError, VerificationError
from runbooks.core.results import Diff, FieldChange
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import DeviceTarget, napalm_driver_for

# NetBox custom field holding a router's BGP AS number (the lab's config template uses it)
ASN_FIELD = "bgp_asn"


def device_target(ws: DeviceWorkingSet) -> DeviceTarget:
    """How to reach a device: its primary IPv4 (else out-of-band) address and platform."""
    address = ws.primary_ip4 or ws.oob_ip
    if not address:
        raise InventoryError(f"{ws.name} has no primary or out-of-band IPv4 address in NetBox")
    if ws.platform is None:
        raise InventoryError(f"{ws.name} has no platform in NetBox: which driver would talk to it?")
    return DeviceTarget(ws.name, address.split("/")[0], ws.platform.slug or ws.platform.name)


def driver_of(ws: DeviceWorkingSet) -> str:
    if ws.platform is None:
        raise InventoryError(f"{ws.name} has no platform in NetBox")
    return napalm_driver_for(ws.platform.slug or ws.platform.name)


def intended_config(rendered: str) -> str:
    """NetBox's rendering as a candidate: FRR writes its own ``frr version`` line, so the
    template's (``8.4`` against the device's ``8.4.4``) would be a diff forever."""
    lines = [line for line in rendered.splitlines() if not line.startswith("frr version")]
    return "\n".join(lines).strip("\n") + "\n"


def mgmt_interface(ws: DeviceWorkingSet) -> str | None:
    """The interface holding the device's primary address in NetBox."""
    for iface in ws.interfaces:
        if any(ip.address == ws.primary_ip4 for ip in iface.ip_addresses):
            return iface.name
    return None


def leave_unmanaged(candidate: str, running: str, interface: str | None) -> str:
    r"""The candidate without the management interface's stanza when the running
    configuration has none: the box's own address (factory set-up) stays the box's.

    Were FRR to take it over, any return to the earlier configuration (an undo, the
    commit-confirm timer) would make FRR delete the address and cut the management path.

    >>> leave_unmanaged("hostname a\ninterface eth0\n ip address 1.1.1.1/24\nexit\n!\n",
    ...                 "hostname a\n", "eth0")
    'hostname a\n!\n'
    """
    if interface is None or f"interface {interface}" in running.splitlines():
        return candidate
    out, skipping = [], False
    for line in candidate.splitlines():
        if line == f"interface {interface}":
            skipping = True
        elif skipping and line == "exit":
            skipping = False
            continue
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def config_diff(name: str, running: str, candidate: str, device_diff: str, summary: str) -> Diff:
    """A configuration change as a plan shows it: the device's own diff (FRR's "Lines To
    Delete / Lines To Add"); ``before`` keeps the running configuration for undo."""
    return Diff(
        target=f"{name} configuration",
        kind="text",
        summary=summary,
        text=device_diff,
        before=running,
        after=candidate,
    )


def device_of(diff: Diff) -> str:
    return diff.target.removesuffix(" configuration")


def with_neighbors_shut(running: str, addresses: Iterable[str]) -> str:
    r"""The running configuration with ``neighbor <address> shutdown`` for each address,
    inside its ``router bgp`` block (a drain: the sessions close, the routes move away).

    >>> print(with_neighbors_shut("router bgp 65101\n neighbor 10.0.0.1 remote-as 1\nexit\n",
    ...                           ["10.0.0.1"]), end="")
    router bgp 65101
     neighbor 10.0.0.1 shutdown
     neighbor 10.0.0.1 remote-as 1
    exit
    """
    lines = running.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("router bgp "):
            shut = [f" neighbor {a} shutdown" for a in addresses]
            return "\n".join([*lines[: i + 1], *shut, *lines[i + 1 :]]) + "\n"
    raise VerificationError("the running configuration has no router bgp block to drain")


def bare_config(running: str, hostname: str, mgmt_interface: str, mgmt_address: str) -> str:
    """What is left after the configuration is removed: the global lines (hostname, logging,
    the integrated config) and the management address, so the device stays reachable."""
    keep = [
        line
        for line in running.splitlines()
        if line.startswith(("frr defaults", "log ", "service ", "hostname "))
    ]
    if not any(line.startswith("hostname ") for line in keep):
        keep.insert(0, f"hostname {hostname}")
    return (
        "\n".join(
            [*keep, "!", f"interface {mgmt_interface}", f" ip address {mgmt_address}", "exit", "!"]
        )
        + "\n"
    )


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
    """One session per cable whose far end has an address (the template's rule)."""
    out = []
    for link in links_of(ws):
        peer = peers.get(link.peer_device)
        if peer is None:
            continue
        address = address_of(peer, link.peer_interface)
        if address is None:
            continue
        asn = peer.custom_fields.get(ASN_FIELD)
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

    >>> link = Link("swp1", "spine1", "swp3", 3, "connected", "active")
    >>> lldp_mismatches([link], {"swp1": [{"hostname": "spine1", "port": "swp3"}]})
    []
    >>> lldp_mismatches([link], {"swp1": [{"hostname": "spine2", "port": "swp3"}]})
    ['swp1: NetBox cables it to spine1:swp3, LLDP sees spine2:swp3']
    """
    problems = []
    for link in links:
        seen = [
            (str(n.get("hostname", "")), str(n.get("port", "")))
            for n in lldp.get(link.interface, [])
        ]
        if (link.peer_device, link.peer_interface) in seen:
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


def routes_via(routes: Mapping[str, Any], protocol: str, next_hops: Iterable[str]) -> list[str]:
    """Prefixes of ``show ip route json`` that ``protocol`` routes through any of ``next_hops``."""
    hops = set(next_hops)
    out = []
    for prefix, entries in routes.items():
        for entry in entries:
            if entry.get("protocol") != protocol or not entry.get(
                "installed", entry.get("selected")
            ):
                continue
            if any(nh.get("ip") in hops for nh in entry.get("nexthops", [])):
                out.append(prefix)
                break
    return sorted(out)


def installed_route(routes: Mapping[str, Any], address: str) -> bool:
    """Whether ``show ip route <address> json`` holds an installed route covering it."""
    target = ipaddress.ip_address(address)
    for prefix, entries in routes.items():
        if target not in ipaddress.ip_network(prefix, strict=False):
            continue
        if any(e.get("installed") for e in entries):
            return True
    return False
