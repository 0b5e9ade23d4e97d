"""What rack-in and rack-out share: the device behind a NetBox working set, and the pure
comparisons their checks make (LLDP against cables, BGP against NetBox, redundancy).

The comparisons are plain functions on plain data (NetBox working sets, NAPALM getter
shapes) so that they are unit-tested without a lab; the runbooks only fetch and decide.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runbooks.core.context import RunContext
from runbooks.core.errors import InventoryError, RollbackError, VerificationError
from runbooks.core.results import Diff, FieldChange
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_changes import PlannedWrite, plain
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import DeviceTarget, NetworkGateway, napalm_driver_for

log = logging.getLogger(__name__)

# NetBox custom field holding a router's BGP AS number (the lab's config template uses it)
ASN_FIELD = "bgp_asn"


def netbox(ctx: RunContext) -> NetBoxGateway:
    return ctx.gateway(NetBoxGateway)


def device_target(ws: DeviceWorkingSet) -> DeviceTarget:
    """How to reach a device: its primary IPv4 (else out-of-band) address and platform."""
    address = ws.primary_ip4 or ws.oob_ip
    if not address:
        raise InventoryError(f"{ws.name} has no primary or out-of-band IPv4 address in NetBox")
    if ws.platform is None:
        raise InventoryError(f"{ws.name} has no platform in NetBox: which driver would talk to it?")
    return DeviceTarget(ws.name, address.split("/")[0], ws.platform.slug or ws.platform.name)


def device(ctx: RunContext, ws: DeviceWorkingSet) -> NetworkGateway:
    """The run's one session to the device; credentials from RUNBOOKS_DEVICE_* on first use."""
    return NetworkGateway.for_device(ctx, device_target(ws))


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


def restore_device(gw: NetworkGateway, running_before: str, attempts: int = 2) -> None:
    """Undo a configuration commit: cancel a pending commit-confirm (the device goes back
    to its saved configuration at once), then replace with the recorded configuration if
    it still differs. A broken session is opened again for a second attempt."""
    for attempt in range(1, attempts + 1):
        try:
            if gw.has_pending_commit():
                gw.rollback()
            if gw.compare(running_before).strip():
                gw.commit(running_before)
            return
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("%s: restoring failed (%s); again on a new session", gw.target.name, exc)
            gw.close()


def restore_all(pairs: Iterable[tuple[NetworkGateway, str]]) -> None:
    """Restore every device, even when one fails; then say which failed."""
    failed = []
    for gw, before in pairs:
        try:
            restore_device(gw, before)
        except Exception as exc:
            failed.append(f"{gw.target.name}: {exc}")
    if failed:
        raise RollbackError(f"configuration not restored on {'; '.join(failed)}")


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


def restore_fields(nb: NetBoxGateway, diffs: Iterable[Diff]) -> None:
    """Undo NetBox updates by writing each diff's ``before`` back, if the fields still hold
    what the diff wrote (else someone else changed them since: refuse).

    For a field this run writes twice (status decommissioning, later offline): the gateway's
    undo takes the newest change of the run that touched the field, the later step's, and
    would put back the value in between."""
    restores = []
    for diff in diffs:
        write = PlannedWrite.from_diff(diff)
        if write is None or write.action != "update" or write.id is None:
            continue
        now = nb.get(write.obj_type, write.id)
        current = {k: plain(now.get(k)) for k in write.after}
        if current == dict(write.before):
            continue  # never written, or already restored
        if current != dict(write.after):
            raise RollbackError(
                f"NetBox {write.obj_type} {write.display} changed since this run wrote it "
                f"({current}); not undoing over it"
            )
        restores.append(nb.plan_update(write.obj_type, write.id, dict(write.before), "undo"))
    if restores:
        nb.apply(restores)


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


def cli_json(gw: NetworkGateway, command: str) -> dict[str, Any]:
    """One vtysh command whose output is JSON (``… json``)."""
    text = gw.cli([command]).get(command, "")
    if isinstance(text, dict):
        return text
    try:
        data = json.loads(text) if str(text).strip() else {}
    except ValueError as exc:
        raise VerificationError(f"{gw.target.name}: {command!r} did not answer JSON") from exc
    return data if isinstance(data, dict) else {}


# ---- steps' shared work: a mixin of the rack-in and rack-out runbooks -----------------------


class RackSteps:
    """The reading, committing and witnessing both rack runbooks do; ``self.p.device`` names
    the device. Nothing here decides: the runbook modules say what is checked and changed."""

    params: Any

    @property
    def changed(self) -> dict[str, list[str]]:
        """What the change steps of this plan or run found to do: step group → summaries."""
        if not hasattr(self, "_changed"):
            self._changed: dict[str, list[str]] = {}
        return self._changed

    @property
    def to_confirm(self) -> set[str]:
        """Devices whose configuration this plan or run commits."""
        if not hasattr(self, "_to_confirm"):
            self._to_confirm: set[str] = set()
        return self._to_confirm

    @property
    def seen(self) -> dict[str, DeviceWorkingSet]:
        if not hasattr(self, "_seen"):
            self._seen: dict[str, DeviceWorkingSet] = {}
        return self._seen

    def noted(self, group: str, diffs: list[Diff]) -> list[Diff]:
        found = [f"{d.target}: {d.summary}" for d in diffs if not d.empty]
        if found:
            self.changed[group] = found
        return diffs

    # -- NetBox reads
    def ws(
        self, ctx: RunContext, render: bool = False, name: str | None = None, fresh: bool = False
    ) -> DeviceWorkingSet:
        """The device's working set. Checks reuse the last one read; in a run, change steps
        read afresh (their ETags, what earlier steps wrote); a plan writes nothing, so it
        reads each device once (plus its rendering)."""
        name = name or self.params.device
        ws = self.seen.get(name)
        if ws is None or (fresh and not ctx.planning):
            ws = netbox(ctx).working_set(name)
        if render:
            ws = dataclasses.replace(ws, config=netbox(ctx).render_config(ws.id))
        self.seen[ws.name] = ws
        return ws

    def peers(
        self, ctx: RunContext, ws: DeviceWorkingSet, render: bool = False, fresh: bool = False
    ) -> dict[str, DeviceWorkingSet]:
        names = dict.fromkeys(link.peer_device for link in links_of(ws))
        return {n: self.ws(ctx, render, n, fresh) for n in names}

    def device(self, ctx: RunContext, ws: DeviceWorkingSet) -> NetworkGateway:
        """The run's session to a device, at the address it had when first reached (a later
        step may take the address away in NetBox; an undo still needs the device)."""
        if not hasattr(self, "_targets"):
            self._targets: dict[str, DeviceTarget] = {}
        target = self._targets.setdefault(ws.name, device_target(ws))
        return NetworkGateway.for_device(ctx, target)

    def gateway_named(self, ctx: RunContext, name: str) -> NetworkGateway:
        if name in getattr(self, "_targets", {}):
            return NetworkGateway.for_device(ctx, self._targets[name])
        return self.device(ctx, self.seen.get(name) or self.ws(ctx, name=name))

    def rack_of(self, ctx: RunContext, ws: DeviceWorkingSet) -> tuple[int | None, str]:
        wanted = getattr(self.params, "rack", None)
        if wanted is None:
            return (ws.rack.id, ws.rack.name) if ws.rack else (None, "no rack")
        found = netbox(ctx).find("dcim.rack", name=wanted, site_id=ws.site.id)
        if not found:
            raise InventoryError(f"NetBox has no rack {wanted!r} at {ws.site.name}")
        return int(found[0]["id"]), wanted

    def u_height(self, ctx: RunContext, ws: DeviceWorkingSet) -> float:
        reply = netbox(ctx).http.call(
            "GET", f"/api/dcim/device-types/{ws.device_type.id}/", what="device type"
        )
        return float(reply.data.get("u_height") or 0)

    def units_taken(
        self, ctx: RunContext, rack_id: int, face: str, position: float, height: float, exclude: int
    ) -> list[str]:
        """Devices other than ``exclude`` in units [position, position + height)."""
        reply = netbox(ctx).http.call(
            "GET",
            f"/api/dcim/racks/{rack_id}/elevation/",
            params={"face": face, "exclude": exclude, "limit": 0},
            what=f"elevation of rack #{rack_id}",
        )
        taken = []
        for unit in reply.data.get("results", []):
            if position <= float(unit["id"]) < position + max(height, 1) and unit.get("device"):
                taken.append(f"U{float(unit['id']):g} by {unit['device'].get('name')}")
        return taken

    @staticmethod
    def link_text(link: Link) -> str:
        return f"{link.interface}→{link.peer_device}:{link.peer_interface} ({link.cable_status})"

    # -- device configurations
    def config_diffs(
        self, ctx: RunContext, devices: list[DeviceWorkingSet], summary: str
    ) -> list[Diff]:
        diffs = []
        for ws in devices:
            gw = self.device(ctx, ws)
            running = gw.config()
            candidate = intended_config(ws.config or "")
            candidate = leave_unmanaged(candidate, running, mgmt_interface(ws))
            delta = gw.compare(candidate)
            if delta.strip():
                self.to_confirm.add(ws.name)
                diffs.append(config_diff(ws.name, running, candidate, delta, summary))
        return diffs

    def commit_configs(
        self, ctx: RunContext, diffs: list[Diff], revert_in: int | None
    ) -> dict[str, Any]:
        """Commit each device's candidate; if one fails, the ones before go back at once."""
        done: list[tuple[NetworkGateway, Diff]] = []
        try:
            for diff in (d for d in diffs if d.kind == "text"):
                gw = self.gateway_named(ctx, device_of(diff))
                gw.commit(str(diff.after), revert_in=revert_in)
                done.append((gw, diff))
        except Exception as exc:
            try:
                restore_all((gw, str(diff.before)) for gw, diff in reversed(done))
            except RollbackError as undo:
                raise RollbackError(f"{exc}; and then {undo}") from exc
            raise
        return {"committed": [gw.target.name for gw, _ in done], "revert_in_s": revert_in}

    def configs_in_place(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return all(
            not self.gateway_named(ctx, device_of(d)).compare(str(d.after)).strip()
            for d in diffs
            if d.kind == "text"
        )

    def restore_configs(self, ctx: RunContext, diffs: list[Diff]) -> None:
        texts = reversed([d for d in diffs if d.kind == "text"])
        restore_all((self.gateway_named(ctx, device_of(d)), str(d.before)) for d in texts)

    def pending_confirms(self, ctx: RunContext, devices: list[DeviceWorkingSet]) -> list[Diff]:
        """Devices whose commit waits for confirmation (in a plan: those the plan changes)."""
        if ctx.planning:
            names = [ws.name for ws in devices if ws.name in self.to_confirm]
        else:
            names = [ws.name for ws in devices if self.device(ctx, ws).has_pending_commit()]
        return [
            Diff(
                target=f"{name} configuration",
                kind="fields",
                summary="confirm the commit",
                fields=(FieldChange("commit", "reverts by itself unless confirmed", "confirmed"),),
                before={"commit": "pending"},
                after={"commit": "confirmed"},
            )
            for name in names
        ]

    def confirm_configs(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        for diff in diffs:
            self.gateway_named(ctx, device_of(diff)).confirm()
        return {"confirmed": [device_of(d) for d in diffs]}

    # -- routing checks
    def loopbacks_routed(
        self,
        ctx: RunContext,
        ws: DeviceWorkingSet,
        peers: Mapping[str, DeviceWorkingSet],
        timeout_s: float,
    ) -> dict[str, Any]:
        """Each peer has an installed route to the device's loopback and the device one to
        each peer's loopback (the network's view; a ping needs a device-side ping getter)."""
        own = loopback_of(ws)
        pairs = [(ws, loopback_of(p), p.name) for p in peers.values()]
        pairs += [(p, own, ws.name) for p in peers.values()]
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [
                f"{src.name} has no route to {name}'s loopback {lo}"
                for src, lo, name in pairs
                if lo is None
                or not installed_route(
                    cli_json(self.device(ctx, src), f"show ip route {lo} json"), lo
                )
            ]
            if not missing:
                return {"routed": [f"{src.name} → {name} {lo}" for src, lo, name in pairs]}
            if time.monotonic() >= deadline:
                raise VerificationError("; ".join(missing))
            time.sleep(2)

    # -- the journal
    def journal_diffs(self, ctx: RunContext, ws: DeviceWorkingSet) -> list[Diff]:
        if not {k: v for k, v in self.changed.items() if k != "journal"}:
            return []
        runbook = ctx.runbook
        lines = [
            f"**{runbook.instruction}** — runbook `{runbook.name}`, "
            f"run `{ctx.run_id}` by {ctx.actor}",
            "",
            *[f"- {item}" for group in self.changed.values() for item in group],
            "",
            f"Record: `runbook records show {ctx.run_id}`; its head hash is in the record store.",
        ]
        text = "\n".join(lines)
        return [
            Diff(
                target=f"NetBox journal of {ws.name}",
                kind="create",
                summary="journal entry witnessing this run",
                fields=(FieldChange("comments", None, text),),
                after={"comments": text},
            )
        ]

    def write_journal(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        ws = self.ws(ctx)
        entry = netbox(ctx).journal("dcim.device", ws.id, str(diffs[0].after["comments"]))
        return {"journal_entry": entry.get("id")}

    def journal_entry_of_run(self, ctx: RunContext, ws: DeviceWorkingSet) -> int | None:
        entries = netbox(ctx).find(
            "extras.journalentry", assigned_object_type="dcim.device", assigned_object_id=ws.id
        )
        for entry in entries:
            if f"run `{ctx.run_id}`" in str(entry.get("comments", "")):
                return int(entry["id"])
        return None

    def delete_journal(self, ctx: RunContext, ws: DeviceWorkingSet) -> None:
        entry = self.journal_entry_of_run(ctx, ws)
        if entry is not None:
            nb = netbox(ctx)
            nb.apply([nb.plan_delete("extras.journalentry", entry)])
