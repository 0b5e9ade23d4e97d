"""Pure functions turning FRR/Linux command output into NAPALM's data shapes.

Nothing here talks to a device: every function takes the text a command printed and
returns plain data, so the whole module is tested with recorded output.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any

from napalm.base import models
from napalm.base.helpers import mac as normalise_mac

VENDOR = "FRRouting"
UNKNOWN_ID = "0.0.0.0"  # noqa: S104 - FRR's "no router id yet", not a bind address

# FRR's address-family keys in JSON -> NAPALM's names.
AFI_NAMES = {
    "ipv4Unicast": "ipv4",
    "ipv6Unicast": "ipv6",
    "ipv4Multicast": "ipv4 multicast",
    "ipv6Multicast": "ipv6 multicast",
    "ipv4Vpn": "vpnv4",
    "ipv6Vpn": "vpnv6",
    "l2VpnEvpn": "l2vpn evpn",
    "ipv4Flowspec": "ipv4 flowspec",
    "ipv6Flowspec": "ipv6 flowspec",
}

# lldpd capability names -> NAPALM's canonical ones (napalm.base.constants).
LLDP_CAPABILITIES = {
    "other": "other",
    "repeater": "repeater",
    "bridge": "bridge",
    "wlan": "wlan-access-point",
    "router": "router",
    "telephone": "telephone",
    "docsis": "docsis-cable-device",
    "station": "station",
}

# FRR prints its interface timestamps in local time like this.
FRR_TIME_FORMAT = "%Y/%m/%d %H:%M:%S"


def parse_version(show_version: str) -> str:
    """Return "FRRouting 8.4.4" from the first line of ``show version``.

    >>> parse_version("FRRouting 8.4.4 (r1) on Linux(6.1.0).\\nCopyright 1996-2005")
    'FRRouting 8.4.4'
    """
    match = re.search(r"FRRouting\s+(\S+)", show_version)
    return f"{VENDOR} {match.group(1)}" if match else show_version.strip().split("\n")[0]


def parse_facts(system: str, interfaces: dict[str, Any]) -> models.FactsDict:
    """Build get_facts from the system probe (see ``shell.FACTS``) and ``show interface json``.

    The probe prints one line each: hostname, /proc/uptime, DMI product name, DMI
    serial, first line of ``show version``.
    """
    lines = (system.strip("\n").split("\n") + [""] * 5)[:5]
    hostname, uptime, model, serial, version = (line.strip() for line in lines)
    try:
        uptime_s = float(uptime.split()[0])
    except (ValueError, IndexError):
        uptime_s = -1.0
    return {
        "hostname": hostname.split(".")[0],
        "fqdn": hostname,
        "vendor": VENDOR,
        "model": model,
        "serial_number": serial,
        "os_version": parse_version(version),
        "uptime": uptime_s,
        "interface_list": sorted(interfaces),
    }


def _last_flapped(data: dict[str, Any], now: datetime | None) -> float:
    stamps = []
    for key in ("lastLinkUp", "lastLinkDown"):
        try:
            stamps.append(datetime.strptime(data[key].split(".")[0], FRR_TIME_FORMAT))
        except (KeyError, ValueError):
            continue
    if not stamps or now is None:
        return -1.0
    return max((now - max(stamps)).total_seconds(), 0.0)


def parse_device_time(line: str) -> datetime | None:
    """Parse the device's ``date '+%Y/%m/%d %H:%M:%S'``; None if it is not a date."""
    try:
        return datetime.strptime(line.strip(), FRR_TIME_FORMAT)
    except ValueError:
        return None


def _speed(value: Any) -> float:
    """Mbit/s; an unknown speed (absent, or ethtool's -1 read as unsigned) is 0.0."""
    try:
        speed = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return speed if 0 < speed < 0xFFFFFFFF else 0.0


def parse_interfaces(
    interfaces: dict[str, Any], now: datetime | None = None
) -> dict[str, models.InterfaceDict]:
    """get_interfaces from ``show interface json``; ``now`` is the device's local time.

    Speeds are in Mbit/s as FRR reports them; last_flapped is -1.0 when FRR has seen no
    link change since it started.
    """
    result: dict[str, models.InterfaceDict] = {}
    for name, data in sorted(interfaces.items()):
        hw = data.get("hardwareAddress", "")
        try:
            mac_address = normalise_mac(hw) if hw else ""
        except Exception:  # an unusual link-layer address (tunnels, ...)
            mac_address = hw
        result[name] = {
            "is_enabled": data.get("administrativeStatus") == "up",
            "is_up": data.get("operationalStatus") == "up",
            "description": data.get("description", ""),
            "last_flapped": _last_flapped(data, now),
            "mtu": int(data.get("mtu", 0)),
            "speed": _speed(data.get("speed")),
            "mac_address": mac_address,
        }
    return result


def parse_interfaces_ip(interfaces: dict[str, Any]) -> dict[str, models.InterfacesIPDict]:
    """get_interfaces_ip from ``show interface json`` (link-local IPv6 included)."""
    result: dict[str, models.InterfacesIPDict] = {}
    for name, data in sorted(interfaces.items()):
        entry: models.InterfacesIPDict = {}
        for item in data.get("ipAddresses", []):
            try:
                iface = ipaddress.ip_interface(item["address"])
            except (KeyError, ValueError):
                continue
            family = "ipv4" if iface.version == 4 else "ipv6"
            entry.setdefault(family, {})[str(iface.ip)] = {"prefix_length": iface.network.prefixlen}
        if entry:
            result[name] = entry
    return result


def parse_interfaces_counters(
    links: list[dict[str, Any]],
) -> dict[str, models.InterfaceCounterDict]:
    """get_interfaces_counters from the kernel (``ip -j -s link show``); FRR keeps none.

    Linux counts received multicast but no broadcast, and no transmitted multicast or
    broadcast: those counters are -1, and the packets are inside the unicast ones.
    """
    result: dict[str, models.InterfaceCounterDict] = {}
    for link in sorted(links, key=lambda item: str(item.get("ifname", ""))):
        stats = link.get("stats64") or link.get("stats") or {}
        rx, tx = stats.get("rx", {}), stats.get("tx", {})
        rx_multicast = int(rx.get("multicast", 0))
        result[str(link.get("ifname", ""))] = {
            "rx_octets": int(rx.get("bytes", 0)),
            "tx_octets": int(tx.get("bytes", 0)),
            "rx_errors": int(rx.get("errors", 0)),
            "tx_errors": int(tx.get("errors", 0)),
            "rx_discards": int(rx.get("dropped", 0)),
            "tx_discards": int(tx.get("dropped", 0)),
            "rx_unicast_packets": int(rx.get("packets", 0)) - rx_multicast,
            "tx_unicast_packets": int(tx.get("packets", 0)),
            "rx_multicast_packets": rx_multicast,
            "tx_multicast_packets": -1,
            "rx_broadcast_packets": -1,
            "tx_broadcast_packets": -1,
        }
    return result


def _first(items: Any, key: str = "value", default: str = "") -> str:
    """lldpd's json0 wraps every value in a list of {"value": ...} objects."""
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return str(items[0].get(key, default))
    return default


def _lldp_interfaces(lldp: dict[str, Any]) -> list[dict[str, Any]]:
    interfaces: list[dict[str, Any]] = []
    for block in lldp.get("lldp", []):
        interfaces.extend(block.get("interface", []))
    return interfaces


def _port_name(port: dict[str, Any]) -> str:
    """The remote port as a person would name it.

    lldpd on Linux sends the MAC as port ID and the interface name as PortDescr, so
    the ID is used only when it is a name (``ifname``/``local``).
    """
    port_id = port.get("id", [{}])[0] if port.get("id") else {}
    descr = _first(port.get("descr"))
    if port_id.get("type") in ("ifname", "local") or not descr:
        return str(port_id.get("value", descr))
    return descr


def parse_lldp_neighbors_detail(lldp: dict[str, Any]) -> models.LLDPNeighborsDetailDict:
    """get_lldp_neighbors_detail from ``lldpcli -f json0 show neighbors details``.

    json0 is lldpd's stable JSON (every value a list); plain ``-f json`` changes shape
    with the number of neighbours.
    """
    result: models.LLDPNeighborsDetailDict = {}
    for iface in _lldp_interfaces(lldp):
        chassis = (iface.get("chassis") or [{}])[0]
        port = (iface.get("port") or [{}])[0]
        caps = chassis.get("capability", [])
        capab = sorted(LLDP_CAPABILITIES.get(c.get("type", "").lower(), "other") for c in caps)
        enabled = sorted(
            LLDP_CAPABILITIES.get(c.get("type", "").lower(), "other")
            for c in caps
            if c.get("enabled")
        )
        result.setdefault(iface.get("name", ""), []).append(
            {
                "parent_interface": "",
                "remote_port": _port_name(port),
                "remote_port_description": _first(port.get("descr")),
                "remote_chassis_id": _first(chassis.get("id")),
                "remote_system_name": _first(chassis.get("name")),
                "remote_system_description": _first(chassis.get("descr")),
                "remote_system_capab": capab,
                "remote_system_enable_capab": enabled,
            }
        )
    return result


def parse_lldp_neighbors(lldp: dict[str, Any]) -> dict[str, list[models.LLDPNeighborDict]]:
    """get_lldp_neighbors: hostname and port of each neighbour, per local interface."""
    return {
        name: [{"hostname": n["remote_system_name"], "port": n["remote_port"]} for n in items]
        for name, items in parse_lldp_neighbors_detail(lldp).items()
    }


def _peer_afs(
    peer: dict[str, Any], summary_peers: dict[str, dict[str, Any]]
) -> dict[str, models.BGPStateAddressFamilyDict]:
    afs: dict[str, models.BGPStateAddressFamilyDict] = {}
    for afi, info in peer.get("addressFamilyInfo", {}).items():
        accepted = int(info.get("acceptedPrefixCounter", 0))
        received = summary_peers.get(afi, {}).get("pfxRcd", accepted)
        afs[AFI_NAMES.get(afi, afi)] = {
            "received_prefixes": int(received),
            "accepted_prefixes": accepted,
            "sent_prefixes": int(info.get("sentPrefixCounter", 0)),
        }
    return afs


def parse_bgp_neighbors(
    summary: dict[str, Any], neighbors: dict[str, Any]
) -> dict[str, models.BGPStateNeighborsPerVRFDict]:
    """get_bgp_neighbors from ``show bgp vrf all summary json`` + ``... neighbors json``.

    The default VRF is called ``global``. Peers are keyed as FRR names them: an address,
    or the interface for BGP unnumbered (``neighbor eth1 interface``). uptime is the
    time in the current state: since Established when up, since the last reset otherwise.
    """
    result: dict[str, models.BGPStateNeighborsPerVRFDict] = {}
    for vrf in sorted(set(summary) | set(neighbors)):
        afs = summary.get(vrf, {})
        router_id = next(
            (a["routerId"] for a in afs.values() if isinstance(a, dict) and "routerId" in a), ""
        )
        # per peer: {afi: summary entry}, for the received-prefix counts
        per_peer: dict[str, dict[str, dict[str, Any]]] = {}
        for afi, data in afs.items():
            if isinstance(data, dict):
                for name, entry in data.get("peers", {}).items():
                    per_peer.setdefault(name, {})[afi] = entry
        peers: dict[str, models.BGPStateNeighborDict] = {}
        for name, peer in neighbors.get(vrf, {}).items():
            if not isinstance(peer, dict) or "remoteAs" not in peer:
                continue
            up = peer.get("bgpState") == "Established"
            uptime_ms = peer.get("bgpTimerUpMsec") if up else peer.get("lastResetTimerMsecs")
            remote_id = peer.get("remoteRouterId", "")
            peers[name] = {
                "local_as": int(peer.get("localAs", 0)),
                "remote_as": _as_number(peer.get("remoteAs", 0)),
                "remote_id": "" if remote_id == UNKNOWN_ID else remote_id,
                "is_up": up,
                "is_enabled": not peer.get("adminShutDown", False),
                "description": peer.get("nbrDesc", ""),
                "uptime": int((uptime_ms or 0) // 1000),
                "address_family": _peer_afs(peer, per_peer.get(name, {})),
            }
        result["global" if vrf == "default" else vrf] = {
            "router_id": router_id,
            "peers": peers,
        }
    return result


def _as_number(value: Any) -> int:
    """remoteAs is an int, or "external"/"internal" before an unnumbered peer comes up."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# FRR's address-family keys -> the words of ``show bgp vrf V <afi> <safi> ...``
AFI_WORDS = {"ipv4Unicast": "ipv4 unicast", "ipv6Unicast": "ipv6 unicast"}
_TOTAL = re.compile(r'"totalPrefixCounter":\s*(\d+)')


def soft_reconfig_peers(neighbors: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(vrf, peer, afi) of the sessions that keep what they received before inbound policy
    (``soft-reconfiguration inbound``): only for those can FRR count received prefixes apart
    from accepted ones."""
    found = []
    for vrf, peers in sorted(neighbors.items()):
        for name, peer in sorted(peers.items()) if isinstance(peers, dict) else []:
            if not isinstance(peer, dict) or peer.get("bgpState") != "Established":
                continue
            for afi, info in sorted((peer.get("addressFamilyInfo") or {}).items()):
                soft = isinstance(info, dict) and info.get("inboundSoftConfigPermit")
                if afi in AFI_WORDS and soft:
                    found.append((vrf, name, afi))
    return found


def received_routes_command(vrf: str, peer: str, afi: str) -> str:
    """vtysh's count of what one soft-reconfiguration session received before policy.

    >>> received_routes_command("default", "198.18.1.0", "ipv4Unicast")
    'show bgp vrf default ipv4 unicast neighbors 198.18.1.0 received-routes json'
    """
    return f"show bgp vrf {vrf} {AFI_WORDS[afi]} neighbors {peer} received-routes json"


def parse_received_totals(output: str, count: int) -> list[int | None]:
    """One ``totalPrefixCounter`` (or None) per line of ``count`` greps, in order.

    >>> parse_received_totals('"totalPrefixCounter":5\\nnone\\n', 2)
    [5, None]
    """
    lines = [line for line in output.splitlines() if line.strip()][-count:] if count else []
    totals: list[int | None] = []
    for line in lines:
        match = _TOTAL.search(line)
        totals.append(int(match.group(1)) if match else None)
    return totals + [None] * (count - len(totals))


def apply_received(
    result: dict[str, models.BGPStateNeighborsPerVRFDict],
    sessions: list[tuple[str, str, str]],
    totals: list[int | None],
) -> None:
    """Put the pre-policy counts into ``received_prefixes`` where FRR has them."""
    for (vrf, peer, afi), total in zip(sessions, totals, strict=False):
        key = "global" if vrf == "default" else vrf
        family = result.get(key, {}).get("peers", {}).get(peer, {}).get("address_family", {})
        if total is not None and AFI_NAMES.get(afi, afi) in family:
            family[AFI_NAMES.get(afi, afi)]["received_prefixes"] = total
