"""3 網絡系統故障處理 network system fault handling: the evidence of one device, and what differs
from NetBox's intent.

The procedure, in order (read-only: the device is read through its driver behind the plan's
read-only guard, in runs too, on one login):

1. The device in NetBox: its platform and address, its connected cables (far end device and
   interface) and the BGP sessions NetBox's template implies over them (one per cable whose far
   end has an address; the peer's AS from its custom field).
2. The device as it reports itself, through NAPALM's getters: facts and uptime, interfaces
   (up, enabled), interface error counters, BGP neighbours, LLDP neighbours; the routes to
   the reported destination (``get_route_to``) when one is given; the last lines of its log
   buffer where NetBox names the platform's read-only command for it (config context
   ``napalm.log_command``; `NetworkGateway.device_log`). A getter the driver lacks, or a log
   NetBox names no command for, is recorded not checked, a getter that fails is that part's
   error: both are named in the diagnosis, never a silent pass.
3. Diagnosis: each cable NetBox holds whose interface is down, disabled or missing, or whose
   LLDP neighbour is not the cable's far end; each session NetBox implies that is missing,
   admin-down or not Established, or to another AS; interfaces counting errors; no installed
   route to the reported destination.
4. Remedy, only when named (a change: reviewed and approved, or run at once under an
   emergency approval): ``remedy=bounce-bgp neighbor=<address>`` takes the session down and up
   again through NetBox's renderings, never by editing configuration text here:
   a. the device gets NetBox's service rendering with that session shut (render context
      ``runbooks_shut_neighbors``: the template says how its platform shuts a session),
      with commit-confirm; wait until the session is down; confirm;
   b. the device gets NetBox's service rendering (which also removes any hand-made drift,
      such as a session shut by hand), with commit-confirm; wait until the session is
      Established (within ``settle_timeout_s``); confirm.
   A template that renders the same with the session shut cannot express it: the plan is
   refused. A device whose driver has no commit-confirm is named in the plan's warnings and
   committed without a device-side revert. Undo: NetBox's service rendering.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from runbooks.core.context import RunContext
from runbooks.core.errors import (
    DriftError,
    InputError,
    InventoryError,
    UnsupportedError,
    VerificationError,
)
from runbooks.core.results import Diff
from runbooks.core.steps import check
from runbooks.gateways.config_text import sanitize
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import NetworkGateway
from runbooks.library import network_common as nc
from runbooks.library import network_survey as ns
from runbooks.library import rack_steps as rs
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
LOG_LINES = 30  # the last lines of the device's log buffer the record keeps
# The render context asking NetBox's template for the service rendering with these BGP
# neighbours' sessions administratively shut (a list of addresses; see the templates)
SHUT_NEIGHBORS = "runbooks_shut_neighbors"
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
        "the session to neighbor= down and up through NetBox's renderings (ending with the "
        "service rendering: a session shut by hand is enabled again)",
    )
    neighbor: str | None = Field(default=None, description="the BGP neighbour's address")
    settle_timeout_s: float = Field(
        default=60,
        gt=0,
        le=900,
        description="how long a bounced session may take to go down, and to come back",
    )
    confirm_within_s: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="commit-confirm (where the platform has it): the device reverts each of "
        "the remedy's commits unless it is confirmed within this time",
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
    getters["log"] = lambda: gw.device_log(LOG_LINES)
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


# ---- the remedy: NetBox's renderings, the session's state ----------------------------------


def steps_diff(shut: str, service: str) -> str:
    r"""What the remedy's second commit changes: from the rendering with the session shut to
    the service rendering (both sanitised; diffed here: the device runs the first only
    once the run's first commit is in).

    >>> print(steps_diff("a\nb shut\nc\n", "a\nc\n"))
    --- NetBox's rendering, the session shut (first commit)
    +++ NetBox's service rendering (second commit)
    @@ -1,3 +1,2 @@
     a
    -b shut
     c
    """
    old, new = shut.strip("\n").splitlines(), service.strip("\n").splitlines()
    first = "NetBox's rendering, the session shut (first commit)"
    second = "NetBox's service rendering (second commit)"
    return "\n".join(difflib.unified_diff(old, new, first, second, lineterm=""))


def session_up(gw: NetworkGateway, neighbor: str) -> bool:
    return bool(_bgp(gw.bgp_neighbors()).get(neighbor, {}).get("is_up"))


def wait_for_session(gw: NetworkGateway, neighbor: str, up: bool, timeout_s: float) -> float:
    """Seconds until the session to ``neighbor`` is Established (``up``) or not; after
    ``timeout_s``, `VerificationError`."""
    started = time.monotonic()
    while session_up(gw, neighbor) is not up:
        waited = time.monotonic() - started
        if waited >= timeout_s:
            state = "Established" if up else "down"
            raise VerificationError(
                f"{gw.target.name}: the BGP session to {neighbor} is not {state} after "
                f"{waited:.0f} s"
            )
        time.sleep(1)
    return round(time.monotonic() - started, 1)


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
    def rendering(self, ctx: RunContext, shut: list[str]) -> str:
        """NetBox's service rendering, with the sessions to ``shut`` administratively shut
        (raw: it may hold secrets; it goes to the device only, never into the record)."""
        context: dict[str, Any] = {"runbooks_intent": rs.SERVICE}
        if shut:
            context[SHUT_NEIGHBORS] = shut
        return self.netbox(ctx).render_config(self.working_set(ctx).id, context=context)

    @check("Remedy: whether {device} reverts a commit by itself (commit-confirm)", targets=TARGET)
    def remedy_can_revert(self, ctx: RunContext) -> dict[str, Any]:
        if self.p.remedy is None:
            return {"remedy": None}
        gw = self.gateway(ctx)
        if gw.commit_confirm_supported():
            return {"commit_confirm": True}
        why = rs.RackSteps.no_commit_confirm(gw)
        warning = f"no commit-confirm on {gw.target.platform} ({self.p.device}): {why}"
        return {"commit_confirm": False, "warnings": [f"Remedy {self.p.remedy}: {warning}"]}

    @remedy("Remedy: bounce the BGP session to {neighbor}", targets=TARGET)
    def plan_remedy(self, ctx: RunContext) -> list[Diff]:
        """Two commits of NetBox's renderings (see the module's docstring): the device's own
        diff to the one with the session shut (none when it runs that already), then the
        diff from that one to the service rendering."""
        if self.p.remedy is None or self.p.neighbor is None:
            return []
        neighbor, ws, gw = self.p.neighbor, self.working_set(ctx), self.gateway(ctx)
        peers = _bgp(gw.bgp_neighbors())
        if neighbor not in peers:
            raise InputError(
                f"{self.p.device} has no BGP neighbor {neighbor} "
                f"(it has {', '.join(sorted(peers)) or 'none'})"
            )
        raw_shut = self.rendering(ctx, [neighbor])
        shut, service = sanitize(raw_shut), sanitize(self.rendering(ctx, []))
        if shut == service:
            raise InventoryError(
                f"NetBox's template for {gw.target.platform} renders {self.p.device} the same "
                f"with {SHUT_NEIGHBORS}={neighbor}: it cannot shut that session (no bounce-bgp "
                "there)"
            )
        running = gw.config()
        if nc.moves_address(running, service, ws.primary_ip4):
            raise InventoryError(
                f"{self.p.device}: NetBox's rendering would move its management address "
                f"{ws.primary_ip4} in or out of the configuration"
            )
        diffs = []
        delta = gw.compare(raw_shut)
        if delta.strip():
            summary = f"bounce BGP to {neighbor}, 1 of 2: NetBox's rendering with it shut"
            diffs.append(nc.config_diff(self.p.device, running, shut, delta, summary))
        summary = f"bounce BGP to {neighbor}, 2 of 2: NetBox's service rendering (it comes up)"
        diffs.append(
            nc.config_diff(self.p.device, shut, service, steps_diff(shut, service), summary)
        )
        return diffs

    @plan_remedy.apply
    def bounce_bgp(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        """Each commit once NetBox still renders what was planned; the session down after the
        first, Established after the second, each confirmed then. A failure puts the service
        rendering back at once."""
        neighbor, gw = str(self.p.neighbor), self.gateway(ctx)
        *first, last = diffs
        revert_in = self.p.confirm_within_s if gw.commit_confirm_supported() else None
        out: dict[str, Any] = {"revert_in_s": revert_in}
        shut = self.planned_rendering(ctx, [neighbor], str(last.before))
        service = self.planned_rendering(ctx, [], str(last.after))
        try:
            if first:
                out["shut"] = self.commit(gw, shut, revert_in)
            out["down_after_s"] = wait_for_session(gw, neighbor, False, self.p.settle_timeout_s)
            self.confirm(gw, revert_in)
            out["service"] = self.commit(gw, service, revert_in)
            out["up_after_s"] = wait_for_session(gw, neighbor, True, self.p.settle_timeout_s)
            self.confirm(gw, revert_in)
        except Exception:
            self.put_service_back(ctx, diffs)
            raise
        return out

    def planned_rendering(self, ctx: RunContext, shut: list[str], planned: str) -> str:
        rendered = self.rendering(ctx, shut)
        if sanitize(rendered) != planned:
            raise DriftError(
                f"{self.p.device}: NetBox now renders another configuration than the one "
                "planned for this remedy; plan again"
            )
        return rendered

    @staticmethod
    def commit(gw: NetworkGateway, candidate: str, revert_in: int | None) -> str:
        if revert_in is not None and gw.has_own_pending_commit():
            gw.rollback()  # this run's, interrupted: the commit below replaces it
        return gw.commit(candidate, revert_in=revert_in)

    @staticmethod
    def confirm(gw: NetworkGateway, revert_in: int | None) -> None:
        if revert_in is not None and gw.has_own_pending_commit():
            gw.confirm()

    @plan_remedy.verify
    def session_established(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        """The device runs NetBox's service rendering, nothing pending, the session up."""
        gw, neighbor = self.gateway(ctx), str(self.p.neighbor)
        pending = gw.commit_confirm_supported() and gw.has_own_pending_commit()
        if pending or not rs.runs(gw, str(diffs[-1].after)):
            return False
        if not session_up(gw, neighbor):
            log.warning("%s: session to %s not Established", self.p.device, neighbor)
            return False
        return True

    @plan_remedy.undo
    def restore_service(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.put_service_back(ctx, diffs)

    def put_service_back(self, ctx: RunContext, diffs: list[Diff]) -> None:
        """NetBox's service rendering (the secrets from NetBox's fresh rendering if the
        device no longer holds them); a pending commit of the run is cancelled first."""

        def rendered() -> tuple[str, ...]:
            return (self.rendering(ctx, []),)

        rs.restore_device(self.gateway(ctx), str(diffs[-1].after), rendered)
