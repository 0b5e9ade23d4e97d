"""3 網絡系統故障處理 network system fault handling: the evidence of one device, and what differs
from NetBox's intent.

The procedure, in order (read-only: the device is read through its driver behind the plan's
read-only guard, in runs too, on one login):

1. The device in NetBox: its platform and address, its connected cables (far end device and
   interface) and the BGP sessions NetBox's template implies over them (one per cable whose far
   end has an address; the peer's AS from its custom field).
2. The device as it reports itself, through NAPALM's getters: facts and uptime, interfaces
   (up, enabled), interface error counters, BGP neighbours, LLDP neighbours; the routes to
   the reported destination (``get_route_to``) when one is given; recent log lines where the
   platform has a log buffer a ``show`` command reads (`LOG_COMMANDS`). A getter the driver
   lacks is recorded not checked, a getter that fails is that part's error: both are named in
   the diagnosis, never a silent pass.
3. Diagnosis: each cable NetBox holds whose interface is down, disabled or missing, or whose
   LLDP neighbour is not the cable's far end; each session NetBox implies that is missing,
   admin-down or not Established, or to another AS; interfaces counting errors; no installed
   route to the destination.
4. Remedy, only when named (a change: reviewed and approved, or run at once under an
   emergency approval): ``remedy=bounce-bgp neighbor=<address>`` takes the session down and up
   again: a session shut in the configuration (``neighbor X shutdown``) is enabled again (the
   line removed); any other is shut and re-enabled (two commits; the running configuration
   is restored as it was). The session must come back Established within
   ``settle_timeout_s``; undo puts back the configuration the plan read.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from runbooks.core.context import RunContext
from runbooks.core.errors import InputError, UnsupportedError, VerificationError
from runbooks.core.results import Diff
from runbooks.core.steps import check
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import NetworkGateway
from runbooks.library import network_common as nc
from runbooks.library import network_survey as ns
from runbooks.library.base import LibraryRunbook
from runbooks.library.fault_common import (
    IncidentParams,
    diagnosis,
    evidence_of,
    remedy,
    remedy_params,
)
from runbooks.library.network_maintenance import STATE_QUERY, read_only, working_sets

log = logging.getLogger(__name__)

TARGET = "{device}"
# The platforms whose log buffer a read-only command shows (by NAPALM driver name); the last
# `LOG_LINES` lines are recorded. FRR logs to syslog or a file, not to a buffer vtysh shows.
LOG_COMMANDS = {"ios": "show logging", "eos": "show logging", "nxos": "show logging last 50"}
LOG_LINES = 30
REMEDIES = {"bounce-bgp": "neighbor"}
ERROR_COUNTERS = ("rx_errors", "tx_errors")  # findings; discards stay evidence


class FaultNetworkParams(IncidentParams):
    device: str = Field(min_length=1, description="the device, by its NetBox name")
    destination: str | None = Field(
        default=None,
        description="a reported destination (address or prefix): the device's routes to it",
    )
    remedy: Literal["bounce-bgp"] | None = Field(
        default=None,
        description="a change after the diagnosis (approved as any change): bounce-bgp takes "
        "the session to neighbor= down and up (enables it again when it is shut)",
    )
    neighbor: str | None = Field(default=None, description="the BGP neighbour's address")
    settle_timeout_s: float = Field(
        default=60, gt=0, le=900, description="how long a bounced session may take to come back"
    )

    @field_validator("destination", "neighbor")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError as exc:
                raise ValueError(f"{value[:60]!r} is no address or prefix") from exc
        return value

    @model_validator(mode="after")
    def _remedy_complete(self) -> FaultNetworkParams:
        remedy_params(self.remedy, {"neighbor": self.neighbor}, REMEDIES)
        return self


# ---- the diagnosis: plain functions on the recorded evidence --------------------------------


def _parts(state: dict[str, Any], key: str) -> Any:
    """A part of the device's evidence, or None when it was not read (error, not checked)."""
    part = state.get(key)
    if isinstance(part, dict) and isinstance(part.get("error"), str) and len(part) == 1:
        return None
    return part


def cable_findings(device: str, links: list[nc.Link], state: dict[str, Any]) -> list[str]:
    """Each connected cable whose interface is missing, disabled or down, or whose LLDP
    neighbour is not the cable's far end.

    >>> link = nc.Link("swp2", "core2", "swp2", 6, "connected", "active")
    >>> cable_findings("edge2", [link], {"interfaces": {"swp2": {"is_up": False,
    ...     "is_enabled": True}}, "lldp": {}})[0]
    'edge2 swp2: cable #6 to core2:swp2 in NetBox, interface is down'
    """
    out = []
    interfaces = _parts(state, "interfaces")
    for link in links:
        where = f"{device} {link.interface}: cable #{link.cable_id} to "
        where += f"{link.peer_device}:{link.peer_interface} in NetBox"
        if interfaces is not None:
            iface = interfaces.get(link.interface)
            if iface is None:
                out.append(f"{where}, the device has no such interface")
            elif not iface.get("is_enabled", True):
                out.append(f"{where}, interface is admin-down")
            elif not iface.get("is_up"):
                out.append(f"{where}, interface is down")
    lldp = _parts(state, "lldp")
    if lldp is not None:
        for problem in nc.lldp_mismatches(links, lldp):
            interface, _, rest = problem.partition(": ")
            seen = rest.rsplit("LLDP sees ", 1)[-1]
            what = "LLDP neighbour missing" if seen == "no neighbour" else f"LLDP sees {seen}"
            out.append(f"{device} {interface}: {rest.split(',')[0]}, {what}")
    return out


def bgp_findings(device: str, sessions: list[nc.Session], state: dict[str, Any]) -> list[str]:
    """Each session NetBox implies that is missing, admin-down, not Established, or to
    another AS.

    >>> s = nc.Session("swp1", "core1", "swp1", "192.0.2.0", 65001)
    >>> bgp_findings("edge1", [s], {"bgp": {"192.0.2.0": {"is_up": False,
    ...     "is_enabled": False, "remote_as": 65001}}})[0][42:]
    'is Idle/admin-down, NetBox cable expects it Established'
    """
    peers = _parts(state, "bgp")
    if peers is None:
        return []
    out = []
    for s in sessions:
        name = f"BGP session {device}↔{s.peer_device} ({s.local_interface}, {s.peer_address})"
        peer = peers.get(s.peer_address)
        if peer is None:
            out.append(f"{name} is not configured, NetBox cable expects it Established")
        elif not peer.get("is_enabled", True):
            out.append(f"{name} is Idle/admin-down, NetBox cable expects it Established")
        elif not peer.get("is_up"):
            out.append(f"{name} is down (not Established), NetBox cable expects it Established")
        elif s.peer_asn is not None and int(peer.get("remote_as", -1)) != s.peer_asn:
            out.append(f"{name} is to AS{peer.get('remote_as')}, NetBox says AS{s.peer_asn}")
    return out


def route_findings(state: dict[str, Any], destination: str | None) -> list[str]:
    """No installed route to the reported destination.

    >>> route_findings({"routes": {}}, "203.0.113.2")
    ['no installed route to 203.0.113.2']
    """
    routes = _parts(state, "routes")
    if destination is None or routes is None:
        return []
    if nc.route_installed(routes, destination):
        return []
    return [f"no installed route to {destination}"]


def error_findings(device: str, state: dict[str, Any]) -> list[str]:
    """Interfaces counting errors (discards, which a healthy link counts too, stay evidence).

    >>> error_findings("r1", {"interface_errors": {"eth1": {"rx_errors": 3, "rx_discards": 1},
    ...                                            "eth2": {"tx_discards": 2}}})
    ['r1 eth1 counts errors: rx_errors 3']
    """
    errors = _parts(state, "interface_errors") or {}
    out = []
    for name, counters in sorted(errors.items()):
        counted = {k: v for k, v in counters.items() if k in ERROR_COUNTERS}
        if counted:
            said = ", ".join(f"{key} {value}" for key, value in counted.items())
            out.append(f"{device} {name} counts errors: {said}")
    return out


def unread(state: dict[str, Any]) -> list[str]:
    """What of the device's evidence was not checked, or failed, with why."""
    out = [str(item) for item in state.get("not_checked") or ()]
    for key, part in state.items():
        if isinstance(part, dict) and isinstance(part.get("error"), str):
            out.append(f"{key}: {part['error']}")
    return out


def network_diagnosis(
    device: str, netbox: dict[str, Any], state: dict[str, Any], destination: str | None = None
) -> tuple[list[str], list[str]]:
    """The findings and what was not checked, from the recorded evidence: ``netbox`` as
    `FaultNetwork.device_in_netbox` records it (``cables``, ``sessions``), ``state`` as
    `FaultNetwork.device_state` does."""
    if state.get("unreachable"):
        return [f"{device} cannot be reached: {state['unreachable']}"], []
    links = [nc.Link(**c) for c in netbox.get("cables", [])]
    sessions = [nc.Session(**s) for s in netbox.get("sessions", [])]
    findings = (
        cable_findings(device, links, state)
        + bgp_findings(device, sessions, state)
        + error_findings(device, state)
        + route_findings(state, destination)
    )
    return findings, unread(state)


# ---- the device's evidence ---------------------------------------------------------------


def _interfaces(answer: dict[str, Any]) -> dict[str, Any]:
    keep = ("is_up", "is_enabled", "description", "speed", "mtu")
    return {name: {k: v.get(k) for k in keep if k in v} for name, v in sorted(answer.items())}


def _bgp(answer: dict[str, Any]) -> dict[str, Any]:
    keep = ("is_up", "is_enabled", "remote_as", "local_as", "remote_id", "uptime", "description")
    peers: dict[str, Any] = {}
    for vrf, data in answer.items():
        for address, peer in data.get("peers", {}).items():
            peers[address] = {k: peer.get(k) for k in keep if k in peer} | {"vrf": vrf}
    return peers


def read_device(gw: NetworkGateway, destination: str | None) -> dict[str, Any]:
    """Every getter's answer, as the record keeps it; each part an answer, ``{"error"}`` or
    named in ``not_checked``. A device that cannot be reached at all: ``unreachable``."""
    out: dict[str, Any] = {"driver": gw.driver_name}
    not_checked: list[str] = []
    getters: dict[str, Any] = {
        "facts": lambda: {k: v for k, v in gw.facts().items() if k in ns.FACTS},
        "interfaces": lambda: _interfaces(gw.interfaces()),
        "interface_errors": lambda: ns.interface_errors(ns.interface_counters(gw)),
        "bgp": lambda: _bgp(gw.bgp_neighbors()),
        "lldp": gw.lldp_neighbors,
    }
    if destination:
        getters["routes"] = lambda: gw.route_to(destination)
    command = LOG_COMMANDS.get(gw.driver_name)
    if command:
        getters["log"] = lambda: str(gw.cli([command])[command]).splitlines()[-LOG_LINES:]
    else:
        not_checked.append(f"log: no log buffer a show command reads on {gw.driver_name}")
    for key, getter in getters.items():
        try:
            out[key] = getter()
        except UnsupportedError as exc:
            not_checked.append(f"{key}: {exc}")
        except Exception as exc:  # the device's boundary: recorded, the others still read
            if key == "facts" and not out.get("facts"):
                return {**out, "unreachable": ns._reason(exc)}
            out[key] = {"error": ns._reason(exc)}
    if not_checked:
        out["not_checked"] = not_checked
    return out


# ---- the remedy: configuration text of a BGP neighbour's shutdown ----------------------------


def shutdown_re(neighbor: str) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*neighbor {re.escape(neighbor)} shutdown[ \t]*$\n?", re.M)


def without_shutdown(config: str, neighbor: str) -> str:
    """The configuration with the neighbour's ``shutdown`` line removed.

    >>> without_shutdown("router bgp 1\\n neighbor 10.0.0.1 shutdown\\n"
    ...                  " neighbor 10.0.0.1 remote-as 2\\n", "10.0.0.1")
    'router bgp 1\\n neighbor 10.0.0.1 remote-as 2\\n'
    """
    return shutdown_re(neighbor).sub("", config)


def with_shutdown(config: str, neighbor: str) -> str:
    """The configuration with ``neighbor X shutdown`` after the neighbour's first line in
    its ``router bgp`` block (the syntax of FRR, IOS, EOS and NX-OS's classic form).

    >>> with_shutdown("router bgp 1\\n neighbor 10.0.0.1 remote-as 2\\n!\\n", "10.0.0.1")
    'router bgp 1\\n neighbor 10.0.0.1 remote-as 2\\n neighbor 10.0.0.1 shutdown\\n!\\n'
    """
    first = re.search(rf"^([ \t]*)neighbor {re.escape(neighbor)} .*$", config, re.M)
    if first is None:
        raise VerificationError(f"the configuration has no neighbor {neighbor}")
    line = f"\n{first.group(1)}neighbor {neighbor} shutdown"
    return config[: first.end()] + line + config[first.end() :]


# ---- the runbook --------------------------------------------------------------------------


class FaultNetwork(LibraryRunbook[FaultNetworkParams]):
    """Triage a network device: its evidence against NetBox's intent, and a diagnosis."""

    name = "fault-network"
    title = "Network fault handling: a device's evidence against NetBox, and a diagnosis"
    instruction = "3 網絡系統故障處理 network system fault handling"
    expected_duration = timedelta(minutes=2)
    Params = FaultNetworkParams

    def new_state(self) -> dict[str, Any]:
        return {}

    def working_set(self, ctx: RunContext) -> DeviceWorkingSet:
        state: dict[str, Any] = ctx.state
        if "ws" not in state:
            state["ws"] = self.netbox(ctx).working_set(self.p.device)
        ws: DeviceWorkingSet = state["ws"]
        return ws

    def gateway(self, ctx: RunContext) -> NetworkGateway:
        return NetworkGateway.for_device(ctx, nc.device_target(self.working_set(ctx)))

    @check("The device in NetBox: platform, address, cables, expected BGP sessions", targets=TARGET)
    def device_in_netbox(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.working_set(ctx)
        target = nc.device_target(ws)
        links = nc.links_of(ws, ["connected"])
        names = sorted({link.peer_device for link in links} - {ws.name})
        peers = working_sets(self.netbox(ctx), names, STATE_QUERY) if names else {}
        peers[ws.name] = ws
        connected = {link.interface for link in links}
        sessions = [s for s in nc.expected_sessions(ws, peers) if s.local_interface in connected]
        return {
            "status": ws.status,
            "platform": target.platform,
            "driver": target.driver_name,
            "address": target.host,
            "cables": [asdict(link) for link in links],
            "sessions": [asdict(s) for s in sessions],
        }

    @check(
        "The device's evidence: facts, interfaces and errors, BGP, LLDP, routes, log lines",
        targets=TARGET,
        duration=timedelta(seconds=45),
    )
    def device_state(self, ctx: RunContext) -> dict[str, Any]:
        reading = read_only(ctx)  # the driver behind the read-only guard, in runs too
        target = nc.device_target(self.working_set(ctx))
        try:
            gw = NetworkGateway.for_device(reading, target)
            out = read_device(gw, self.p.destination)
        finally:
            if reading is not ctx:
                reading.close()
        if self.p.destination:
            out["destination"] = self.p.destination
        return out

    @check("Diagnosis: what differs from NetBox's intent or a healthy device", targets=TARGET)
    def diagnosis(self, ctx: RunContext) -> dict[str, Any]:
        findings, not_checked = network_diagnosis(
            self.p.device,
            evidence_of(ctx, "device_in_netbox"),
            evidence_of(ctx, "device_state"),
            self.p.destination,
        )
        return diagnosis(findings, not_checked, self.p.incident)

    # ---- the remedy (a change: only when named)
    @remedy("Remedy: bounce the BGP session to {neighbor}", targets=TARGET)
    def plan_remedy(self, ctx: RunContext) -> list[Diff]:
        if self.p.remedy is None or self.p.neighbor is None:
            return []
        gw = self.gateway(ctx)
        peers = _bgp(gw.bgp_neighbors())
        if self.p.neighbor not in peers:
            raise InputError(
                f"{self.p.device} has no BGP neighbor {self.p.neighbor} "
                f"(it has {', '.join(sorted(peers)) or 'none'})"
            )
        running = gw.config()
        if shutdown_re(self.p.neighbor).search(running):
            candidate = without_shutdown(running, self.p.neighbor)
            summary = f"enable the BGP session to {self.p.neighbor} again (it is shut)"
        else:
            candidate = with_shutdown(running, self.p.neighbor)
            summary = f"bounce the BGP session to {self.p.neighbor}: shut, then enabled again"
        device_diff = gw.compare(candidate)
        return [nc.config_diff(self.p.device, running, candidate, device_diff, summary)]

    @plan_remedy.apply
    def bounce_bgp(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        gw, out = self.gateway(ctx), {}
        for diff in diffs:
            before, candidate = str(diff.before), str(diff.after)
            out["committed"] = gw.commit(candidate)
            if not shutdown_re(str(self.p.neighbor)).search(before):
                time.sleep(1)  # the session goes down; then the configuration as it was
                out["restored"] = gw.commit(before)
        return out

    @plan_remedy.verify
    def session_established(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        deadline = time.monotonic() + self.p.settle_timeout_s
        gw = self.gateway(ctx)
        while True:
            peer = _bgp(gw.bgp_neighbors()).get(str(self.p.neighbor), {})
            if peer.get("is_up"):
                return True
            if time.monotonic() >= deadline:
                log.warning("%s: session to %s not back", self.p.device, self.p.neighbor)
                return False
            time.sleep(2)

    @plan_remedy.undo
    def restore_configuration(self, ctx: RunContext, diffs: list[Diff]) -> None:
        gw = self.gateway(ctx)
        for diff in diffs:
            gw.commit(str(diff.before))
