"""get_bgp_config from FRR's running configuration and get_bgp_neighbors_detail from bgpd.

Pure functions: each takes what vtysh printed and returns NAPALM's shapes.
"""

from __future__ import annotations

from typing import Any

from napalm.base import models

UNGROUPED = "_"  # NAPALM's group of the neighbours that belong to no peer-group
REDACTED = "<removed>"  # the project-wide placeholder of a secret (as sanitize_config writes)
FAMILIES = {"ipv4": "inet", "ipv6": "inet6"}


def _new_group(name: str) -> models.BGPConfigGroupDict:
    return {
        "type": "",
        "description": "",
        "apply_groups": [],
        "multihop_ttl": 0,
        "multipath": False,
        "local_address": "",
        "local_as": 0,
        "remote_as": 0,
        "import_policy": "",
        "export_policy": "",
        "remove_private_as": False,
        "prefix_limit": {},
        "neighbors": {},
    }


def _new_neighbor(local_as: int) -> models.BGPConfigNeighborDict:
    return {
        "description": "",
        "import_policy": "",
        "export_policy": "",
        "local_address": "",
        "authentication_key": "",
        "nhs": False,
        "route_reflector_client": False,
        "local_as": local_as,
        "remote_as": 0,
        "prefix_limit": {},
    }


def _as_value(word: str, local_as: int) -> tuple[int, str]:
    """(AS number, session type) from ``remote-as N|internal|external``."""
    if word == "internal":
        return local_as, "internal"
    if word.isdigit():
        number = int(word)
        return number, "internal" if number == local_as else "external"
    return 0, "external"


def _router_bgp_lines(config: str) -> tuple[int, list[str]]:
    """The default VRF's ``router bgp N`` block: (N, its lines), (0, []) without one."""
    local_as, lines, inside = 0, [], False
    for raw in config.splitlines():
        words = raw.split()
        if raw.startswith("router bgp ") and "vrf" not in words:
            inside, local_as = True, int(words[2]) if words[2].isdigit() else 0
            continue
        if inside and raw and not raw.startswith(" "):  # "exit" or the next block
            inside = False
        if inside:
            lines.append(raw)
    return local_as, lines


class _BgpConfig:
    """Fills the groups and neighbours of get_bgp_config from ``router bgp`` lines."""

    def __init__(self, local_as: int) -> None:
        self.local_as = local_as
        self.groups: dict[str, models.BGPConfigGroupDict] = {}
        self.neighbors: dict[str, models.BGPConfigNeighborDict] = {}
        self.member_of: dict[str, str] = {}
        self.afi = "ipv4"
        self.multipath = False

    def group(self, name: str) -> models.BGPConfigGroupDict:
        if name not in self.groups:
            self.groups[name] = _new_group(name)
            self.groups[name]["local_as"] = self.local_as
        return self.groups[name]

    def neighbor(self, name: str) -> models.BGPConfigNeighborDict:
        return self.neighbors.setdefault(name, _new_neighbor(self.local_as))

    def line(self, words: list[str]) -> None:
        if words[:1] == ["address-family"]:
            self.afi = words[1] if len(words) > 1 else "ipv4"
        elif words[:1] == ["maximum-paths"] and len(words) > 1 and words[-1].isdigit():
            self.multipath = self.multipath or int(words[-1]) > 1
        elif words[:1] == ["neighbor"] and len(words) >= 3:
            name, rest = words[1], words[2:]
            if rest[0] == "interface":  # BGP unnumbered: "neighbor swp1 interface ..."
                rest = rest[1:]
            if rest:
                self.neighbor_line(name, rest)

    def neighbor_line(self, name: str, rest: list[str]) -> None:
        key, args = rest[0], rest[1:]
        if key == "peer-group":
            if args:
                self.member_of[name] = args[0]
                self.group(args[0])
                self.neighbor(name)
            else:
                self.group(name)
            return
        is_group = name in self.groups
        target: Any = self.groups[name] if is_group else self.neighbor(name)
        if not self._session_line(target, is_group, key, args):
            self._policy_line(target, is_group, key, args)

    def _session_line(self, target: Any, is_group: bool, key: str, args: list[str]) -> bool:
        """Who the peer is: remote-as, description, update-source, local-as, password."""
        if key == "remote-as" and args:
            target["remote_as"], kind = _as_value(args[0], self.local_as)
            if is_group:
                target["type"] = kind
        elif key == "description":
            target["description"] = " ".join(args)
        elif key == "update-source" and args:
            target["local_address"] = args[0]
        elif key == "local-as" and args and args[0].isdigit():
            target["local_as"] = int(args[0])
        elif key == "password" and args and not is_group:
            target["authentication_key"] = REDACTED  # that one is set, never its value
        else:
            return False
        return True

    def _policy_line(self, target: Any, is_group: bool, key: str, args: list[str]) -> None:
        """What is exchanged: route-maps, prefix limits, next-hop-self, reflection, hops."""
        if key == "route-map" and len(args) >= 2:
            target["import_policy" if args[1] == "in" else "export_policy"] = args[0]
        elif key == "maximum-prefix" and args and args[0].isdigit():
            family = FAMILIES.get(self.afi, self.afi)
            target["prefix_limit"] = {family: {"unicast": {"limit": int(args[0])}}}
        elif key == "next-hop-self" and not is_group:
            target["nhs"] = True
        elif key == "route-reflector-client" and not is_group:
            target["route_reflector_client"] = True
        elif key == "remove-private-AS" and is_group:
            target["remove_private_as"] = True
        elif key == "ebgp-multihop" and is_group:
            target["multihop_ttl"] = int(args[0]) if args and args[0].isdigit() else 255

    def result(self) -> dict[str, models.BGPConfigGroupDict]:
        for name, neighbor in self.neighbors.items():
            group_name = self.member_of.get(name, UNGROUPED)
            group = self.group(group_name)
            inherited = self.groups.get(group_name)
            if inherited is not None and not neighbor["remote_as"]:
                neighbor["remote_as"] = inherited["remote_as"]
            group["neighbors"][name] = neighbor
        for group in self.groups.values():
            group["multipath"] = self.multipath
        return self.groups


def parse_bgp_config(
    config: str, group: str = "", neighbor: str = ""
) -> dict[str, models.BGPConfigGroupDict]:
    """get_bgp_config from the running configuration's default-VRF ``router bgp`` block.

    Groups are FRR's peer-groups; neighbours in none are in NAPALM's group ``_``. A
    neighbour's ``authentication_key`` is ``<removed>`` when a password is configured (the
    value never leaves the device through this getter), "" otherwise. ``{}`` without BGP.
    """
    local_as, lines = _router_bgp_lines(config)
    if not lines and not local_as:
        return {}
    builder = _BgpConfig(local_as)
    for raw in lines:
        words = raw.split()
        if words:
            builder.line(words)
    groups = builder.result()
    if group:
        groups = {group: groups[group]} if group in groups else {}
    if neighbor:
        groups = {
            name: {**data, "neighbors": {neighbor: data["neighbors"][neighbor]}}
            for name, data in groups.items()
            if neighbor in data["neighbors"]
        }
    return groups


def _afi_sum(peer: dict[str, Any], key: str) -> int:
    return sum(
        int(info.get(key, 0))
        for info in (peer.get("addressFamilyInfo") or {}).values()
        if isinstance(info, dict)
    )


def _afi_value(peer: dict[str, Any], key: str) -> str:
    for info in (peer.get("addressFamilyInfo") or {}).values():
        if isinstance(info, dict) and info.get(key):
            return str(info[key])
    return ""


def _peer_detail(vrf: str, name: str, peer: dict[str, Any]) -> models.PeerDetailsDict:
    stats = peer.get("messageStats") or {}
    accepted = _afi_sum(peer, "acceptedPrefixCounter")
    four_byte = str((peer.get("neighborCapabilities") or {}).get("4byteAs", ""))
    return {
        "up": peer.get("bgpState") == "Established",
        "local_as": int(peer.get("localAs", 0)),
        "remote_as": _int(peer.get("remoteAs")),
        "router_id": str(peer.get("remoteRouterId", "")),
        "local_address": str(peer.get("hostLocal", "")),
        "routing_table": vrf,
        "local_address_configured": "updateSource" in peer,
        "local_port": int(peer.get("portLocal", 0)),
        "remote_address": str(peer.get("hostForeign", name)),
        "remote_port": int(peer.get("portForeign", 0)),
        "multihop": int(peer.get("externalBgpNbrMaxHopsAway", 1)) > 1,
        "multipath": False,
        "remove_private_as": any(
            isinstance(i, dict) and i.get("privateAsNumsRemovedInUpdatesToNbr")
            for i in (peer.get("addressFamilyInfo") or {}).values()
        ),
        "import_policy": _afi_value(peer, "routeMapForIncomingAdvertisements"),
        "export_policy": _afi_value(peer, "routeMapForOutgoingAdvertisements"),
        "input_messages": int(stats.get("totalRecv", 0)),
        "output_messages": int(stats.get("totalSent", 0)),
        "input_updates": int(stats.get("updatesRecv", 0)),
        "output_updates": int(stats.get("updatesSent", 0)),
        "messages_queued_out": int(stats.get("depthOutq", 0)),
        "connection_state": str(peer.get("bgpState", "")),
        "previous_connection_state": "",
        "last_event": str(peer.get("lastResetDueTo", "")),
        "suppress_4byte_as": bool(four_byte) and "Received" not in four_byte,
        "local_as_prepend": not peer.get("localAsNoPrepend", False),
        "holdtime": int(peer.get("bgpTimerHoldTimeMsecs", 0)) // 1000,
        "configured_holdtime": int(peer.get("bgpTimerConfiguredHoldTimeMsecs", 0)) // 1000,
        "keepalive": int(peer.get("bgpTimerKeepAliveIntervalMsecs", 0)) // 1000,
        "configured_keepalive": int(peer.get("bgpTimerConfiguredKeepAliveIntervalMsecs", 0))
        // 1000,
        "active_prefix_count": accepted,
        "received_prefix_count": accepted,
        "accepted_prefix_count": accepted,
        "suppressed_prefix_count": 0,
        "advertised_prefix_count": _afi_sum(peer, "sentPrefixCounter"),
        "flap_count": int(peer.get("connectionsDropped", 0)),
    }


def parse_bgp_neighbors_detail(
    neighbors: dict[str, Any], neighbor_address: str = ""
) -> dict[str, dict[int, list[models.PeerDetailsDict]]]:
    """get_bgp_neighbors_detail from ``show bgp vrf all neighbors json``.

    Keyed by VRF (the default one is ``global``) then remote AS. FRR counts the prefixes
    it accepted from a peer (after inbound policy); received and active report that count
    too. ``previous_connection_state`` is "" (FRR does not keep it); ``last_event`` is the
    reason of the last reset.
    """
    result: dict[str, dict[int, list[models.PeerDetailsDict]]] = {}
    for vrf in sorted(neighbors):
        peers = neighbors[vrf]
        if not isinstance(peers, dict):
            continue
        for name, peer in sorted(peers.items()):
            if not isinstance(peer, dict) or "remoteAs" not in peer:
                continue
            if neighbor_address and name != neighbor_address:
                continue
            detail = _peer_detail(vrf, name, peer)
            key = "global" if vrf == "default" else vrf
            result.setdefault(key, {}).setdefault(detail["remote_as"], []).append(detail)
    return result


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
