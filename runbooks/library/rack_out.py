"""8 網絡設備下架 — network device rack-out.

The work instruction, in order:

1. Pre-checks: the device is active in NetBox; every neighbour keeps another path (a
   neighbour whose last connected link goes through this device is a refusal); the device
   answers; each device's driver can answer the checks below (a check a driver cannot answer
   is named in the plan, with its platform and why, and recorded "not checked" in the run:
   never a silent pass) and has commit-confirm (a device without is named in the plan
   likewise). Its running configuration (sanitised) goes into the record as the backup.
2. NetBox: the device is decommissioning.
3. Drain: the device gets NetBox's rendering with intent "drain" (every BGP session
   administratively shut); wait until the neighbours take no routes from it over BGP; verify
   the neighbours still route to each other's loopbacks.
4. The configuration is removed: NetBox's rendering with intent "bare" (the global lines and
   the hostname; the management address is the box's own and stays), with commit-confirm
   where the platform has it; the device still answers, with no BGP session left, then the
   removal is confirmed (a device without commit-confirm has nothing to confirm).
5. NetBox: the cables are marked decommissioning; the neighbours get the configuration NetBox
   now renders for them (their sessions to the device go), with commit-confirm where the
   platform has it, checked, then confirmed; the device is offline and out of its rack
   position; its addresses are released (as configured).
6. The operator confirms the physical removal; a journal entry on the device witnesses the run.

A failure anywhere rolls back every completed step in reverse: configurations come back
from the record (sanitised: their secrets from the running configuration, else NetBox's fresh
rendering, else the driver's rollback to before the run's commit), NetBox from its recorded
values. On a device without commit-confirm this undo is the only way back: nothing on the
device reverts a commit by itself.
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any

from pydantic import Field

from runbooks.core.context import RunContext
from runbooks.core.errors import InventoryError, UnsupportedError, VerificationError
from runbooks.core.results import Diff
from runbooks.core.runbook import Params
from runbooks.core.steps import change, check, manual
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.library import network_common as nc
from runbooks.library import rack_steps as rs
from runbooks.library.base import LibraryRunbook
from runbooks.library.witness import journal_step


class RackOutParams(Params):
    device: str = Field(min_length=1, description="the NetBox device to rack out")
    release_addresses: bool = Field(True, description="unassign its addresses (deprecated)")
    confirm_within_s: int = Field(
        300,
        ge=30,
        le=3600,
        description="commit-confirm (where the platform has it): devices revert unless confirmed",
    )
    settle_timeout_s: float = Field(90, gt=0, le=900, description="how long routing may take")


class RackOut(rs.RackSteps, LibraryRunbook[RackOutParams]):
    """Rack out an active network device without cutting anyone off."""

    name = "rack-out"
    title = "Rack out a network device"
    instruction = "8 網絡設備下架 network device rack-out"
    expected_duration = timedelta(minutes=30)
    Params = RackOutParams
    journaled = (
        "plan_device_decommissioning",
        "plan_drain_bgp",
        "plan_remove_configuration",
        "plan_cables_decommissioning",
        "plan_neighbour_configs",
        "plan_device_offline",
        "plan_addresses_released",
    )
    checks_need = (
        rs.Needs("wait_until_prefixes_moved_away", "get_bgp_neighbors", on="peers"),
        rs.Needs("neighbours_still_reach_each_other", "get_route_to", on="peers"),
        rs.Needs("device_still_answers", "get_bgp_neighbors"),
        rs.Needs("verify_neighbour_sessions", "get_bgp_neighbors", on="peers"),
        rs.Needs("plan_remove_configuration", rs.COMMIT_CONFIRM),
        rs.Needs("plan_neighbour_configs", rs.COMMIT_CONFIRM, on="peers"),
    )

    def neighbours(self, ctx: RunContext, ws: DeviceWorkingSet) -> dict[str, DeviceWorkingSet]:
        names = dict.fromkeys(link.peer_device for link in nc.links_of(ws, ["connected"]))
        return {n: self.ws(ctx, name=n) for n in names}

    def p2p_addresses(self, ws: DeviceWorkingSet) -> list[str]:
        return [a for link in nc.links_of(ws) if (a := nc.address_of(ws, link.interface))]

    # ---- 1. pre-checks -----------------------------------------------------------------------

    @check("{device} is active in NetBox", targets="{device}")
    def device_is_active(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx, fresh=True)
        if ws.status != "active":
            raise InventoryError(f"{ws.name} is {ws.status} in NetBox; rack-out needs active")
        location = f"{ws.rack.name if ws.rack else 'no rack'} U{ws.position or 0:g}"
        return {"status": ws.status, "location": location}  # the removal step reads it here

    @check("Every neighbour keeps another path", targets="{device}")
    def neighbours_keep_another_path(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        remaining = nc.lost_last_path(ws.name, self.neighbours(ctx, ws))
        cut = [n for n, paths in remaining.items() if not paths]
        if cut:
            raise InventoryError(
                f"{', '.join(cut)} would lose its last uplink: every connected link it has "
                f"goes through {ws.name}"
            )
        return {"remaining_paths": remaining}

    @check("{device} answers on its management address", targets="{device}")
    def device_answers(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        facts = self.device(ctx, ws).facts()
        keys = ("hostname", "os_version", "serial_number", "uptime")
        return {**{k: facts.get(k) for k in keys}, "reached": self.reached(ctx, ws)}

    @check("Each device's driver can answer the checks", targets="{device}")
    def drivers_can_answer(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        return self.drivers_answer(ctx, ws, self.peers(ctx, ws))

    @check("Keep its running configuration in the record (the backup)", targets="{device}")
    def keep_running_config_as_backup(self, ctx: RunContext) -> dict[str, Any]:
        running = self.device(ctx, self.ws(ctx)).config()
        return {"running_config": running, "lines": len(running.splitlines())}

    # ---- 2. NetBox: decommissioning

    @change("Mark {device} decommissioning in NetBox", targets="{device}")
    def plan_device_decommissioning(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx, fresh=True)
        return [self.netbox(ctx).plan_device_status(ws, "decommissioning")]

    @plan_device_decommissioning.apply
    def mark_decommissioning(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.netbox(ctx).apply(diffs).evidence()

    @plan_device_decommissioning.undo
    def restore_status(self, ctx: RunContext, diffs: list[Diff]) -> None:
        rs.restore_fields(self.netbox(ctx), diffs)  # status is written twice in a run

    # ---- 3. drain

    @change("Drain: shut the BGP sessions of {device}", targets="{device}")
    def plan_drain_bgp(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx)
        sessions = nc.expected_sessions(ws, self.neighbours(ctx, ws))
        summary = f"shut down BGP to {', '.join(s.peer_address for s in sessions) or 'nobody'}"
        return self.config_diffs(ctx, [ws], rs.DRAIN, summary, confirm=False)

    @plan_drain_bgp.apply
    def shut_bgp_sessions(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.commit_configs(ctx, diffs, rs.DRAIN, None)

    @plan_drain_bgp.verify
    def bgp_sessions_shut(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.configs_in_place(ctx, diffs)

    @plan_drain_bgp.undo
    def reopen_bgp_sessions(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.restore_configs(ctx, diffs, secrets_from=rs.SERVICE)

    @check("Wait until the neighbours route nothing through {device}", targets="{device}")
    def wait_until_prefixes_moved_away(self, ctx: RunContext) -> dict[str, Any]:
        """Each neighbour's BGP sessions to the device's addresses (get_bgp_neighbors) are
        down, shut or carry no prefix. Asked of the sessions rather than of routes to the
        device's own prefixes (get_route_to): a count of what a neighbour takes from the
        device covers everything it would send through it (the routes it passes on from
        others too, which no list of its own prefixes names), in one call per neighbour,
        and get_bgp_neighbors is the getter NAPALM's drivers implement most widely."""
        ws = self.ws(ctx)
        addresses = self.p2p_addresses(ws)
        not_checked: dict[str, str] = {}
        started = time.monotonic()
        while True:
            left: dict[str, list[str]] = {}
            for name, peer in self.neighbours(ctx, ws).items():
                if name in not_checked:
                    continue
                gw = self.device(ctx, peer)
                try:
                    carrying = nc.still_received(gw.bgp_neighbors(), addresses)
                except UnsupportedError as exc:
                    not_checked[name] = self.not_checked(gw, exc)
                    continue
                if carrying:
                    left[name] = carrying
            waited = round(time.monotonic() - started, 1)
            if not left:
                done = {"moved_away_after_s": waited, "sessions_to": addresses}
                return done | ({"not_checked": sorted(not_checked.values())} if not_checked else {})
            if waited >= self.p.settle_timeout_s:
                raise VerificationError(f"still routed through {ws.name}: {left}")
            time.sleep(2)

    @check("Verify the neighbours still reach each other", targets="{device}")
    def neighbours_still_reach_each_other(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        neighbours = self.neighbours(ctx, ws)
        reached: list[str] = []
        missing: list[str] = []
        not_checked: dict[str, str] = {}
        for a, b in itertools.permutations(neighbours.values(), 2):
            lo = nc.loopback_of(b)
            if a.name in not_checked:
                continue
            try:
                ok = lo is not None and self.routed(ctx, a, lo)
            except UnsupportedError as exc:
                not_checked[a.name] = self.not_checked(self.device(ctx, a), exc)
                continue
            (reached if ok else missing).append(f"{a.name} → {b.name} {lo}")
        if missing:
            raise VerificationError(f"no route without {ws.name}: {'; '.join(missing)}")
        return {"reached": reached} | (
            {"not_checked": sorted(not_checked.values())} if not_checked else {}
        )

    # ---- 4. remove the configuration

    @change(
        "Remove the configuration of {device} (commit-confirm where the platform has it)",
        targets="{device}",
    )
    def plan_remove_configuration(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx)
        summary = "remove all but the global lines; the management address stays the box's"
        return self.config_diffs(ctx, [ws], rs.BARE, summary)

    @plan_remove_configuration.apply
    def remove_configuration(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.commit_configs(ctx, diffs, rs.BARE, self.p.confirm_within_s)

    @plan_remove_configuration.verify
    def configuration_removed(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.configs_in_place(ctx, diffs)

    @plan_remove_configuration.undo
    def restore_configuration(self, ctx: RunContext, diffs: list[Diff]) -> None:
        # the removed configuration's secrets are no longer on the device: NetBox renders them
        self.restore_configs(ctx, diffs, secrets_from=rs.SERVICE)

    @check("Post-check: {device} still answers, with no BGP session left", targets="{device}")
    def device_still_answers(self, ctx: RunContext) -> dict[str, Any]:
        gw = self.device(ctx, self.ws(ctx))
        answered = {"hostname": gw.facts().get("hostname")}
        try:
            peers = [a for vrf in gw.bgp_neighbors().values() for a in vrf.get("peers", {})]
        except UnsupportedError as exc:
            return answered | {"not_checked": [self.not_checked(gw, exc)]}
        if peers:
            raise VerificationError(f"BGP neighbours still configured: {', '.join(peers)}")
        return answered

    @change("Confirm the removal", targets="{device}")
    def plan_confirm_removal(self, ctx: RunContext) -> list[Diff]:
        return self.pending_confirms(ctx, [self.ws(ctx)], committed_by="plan_remove_configuration")

    @plan_confirm_removal.apply
    def confirm_removal(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.confirm_configs(ctx, diffs)

    @plan_confirm_removal.verify
    def removal_confirmed(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.confirmed(ctx, diffs, committed_by="plan_remove_configuration")

    @plan_confirm_removal.undo
    def nothing_to_unconfirm(self, ctx: RunContext, diffs: list[Diff]) -> None:
        """A confirmation is undone with the configuration itself (the removal step)."""

    # ---- 5. NetBox and the neighbours

    @change("Mark the cables of {device} decommissioning in NetBox", targets="{device}")
    def plan_cables_decommissioning(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx, fresh=True)
        connected = [link.interface for link in nc.links_of(ws, ["connected", "planned"])]
        diffs = self.netbox(ctx).plan_cable_status(ws, "decommissioning", connected)
        return diffs

    @plan_cables_decommissioning.apply
    def mark_cables(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.netbox(ctx).apply(diffs).evidence()

    @plan_cables_decommissioning.undo
    def restore_cables(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.netbox(ctx).undo(diffs)

    @change(
        "Configure the neighbours as NetBox now renders them "
        "(commit-confirm where the platform has it)",
        targets="{device}",
        duration=timedelta(minutes=2),
    )
    def plan_neighbour_configs(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx, fresh=True)
        peers = self.peers(ctx, ws)
        diffs = self.config_diffs(
            ctx, list(peers.values()), rs.SERVICE, "configuration rendered by NetBox"
        )
        cables = ctx.results.get("plan_cables_decommissioning")
        if ctx.planning and cables is not None and cables.diffs:
            diffs.append(nc.sessions_note(ws, peers, adding=False))
            self.will_confirm(ctx, peers.values())  # their sessions change at run time
        return diffs

    @plan_neighbour_configs.apply
    def commit_neighbour_configs(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.commit_configs(ctx, diffs, rs.SERVICE, self.p.confirm_within_s)

    @plan_neighbour_configs.verify
    def neighbour_configs_in_place(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.configs_in_place(ctx, diffs)

    @plan_neighbour_configs.undo
    def restore_neighbour_configs(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.restore_configs(ctx, diffs)

    @check("Post-check: the neighbours' other BGP sessions are established", targets="{device}")
    def verify_neighbour_sessions(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        out: dict[str, Any] = {}
        not_checked: list[str] = []
        deadline = time.monotonic() + self.p.settle_timeout_s
        for name, peer in self.peers(ctx, ws).items():
            others = {n: self.ws(ctx, name=n) for n in {x.peer_device for x in nc.links_of(peer)}}
            sessions = [s for s in nc.expected_sessions(peer, others) if s.peer_device != ws.name]
            sessions = [s for s in sessions if others[s.peer_device].status == "active"]
            gw = self.device(ctx, peer)
            try:
                while problems := nc.bgp_problems(sessions, gw.bgp_neighbors()):
                    if time.monotonic() >= deadline:
                        raise VerificationError(f"{name}: {'; '.join(problems)}")
                    time.sleep(2)
            except UnsupportedError as exc:
                not_checked.append(self.not_checked(gw, exc))
                continue
            out[name] = [f"{s.peer_device} {s.peer_address}" for s in sessions]
        return {"established": out} | ({"not_checked": not_checked} if not_checked else {})

    @change("Confirm the neighbours' configurations", targets="{device}")
    def plan_confirm_neighbours(self, ctx: RunContext) -> list[Diff]:
        peers = list(self.peers(ctx, self.ws(ctx)).values())
        return self.pending_confirms(ctx, peers, committed_by="plan_neighbour_configs")

    @plan_confirm_neighbours.apply
    def confirm_neighbours(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.confirm_configs(ctx, diffs)

    @plan_confirm_neighbours.verify
    def neighbours_confirmed(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.confirmed(ctx, diffs, committed_by="plan_neighbour_configs")

    @plan_confirm_neighbours.undo
    def nothing_to_unconfirm_on_neighbours(self, ctx: RunContext, diffs: list[Diff]) -> None:
        """Undone with the neighbours' configurations (the step above)."""

    @change("Mark {device} offline and free its rack position in NetBox", targets="{device}")
    def plan_device_offline(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx, fresh=True)
        fields: dict[str, Any] = {"status": "offline", "position": None, "face": None}
        if self.p.release_addresses:
            fields["primary_ip4"] = None  # NetBox keeps a primary address assigned
        diff = self.netbox(ctx).plan_update("dcim.device", ws.id, fields, "offline, unracked")
        return [diff]

    @plan_device_offline.apply
    def mark_offline(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.netbox(ctx).apply(diffs).evidence()

    @plan_device_offline.undo
    def restore_device(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.netbox(ctx).undo(diffs)

    @change("Release the addresses of {device} in NetBox (as configured)", targets="{device}")
    def plan_addresses_released(self, ctx: RunContext) -> list[Diff]:
        if not self.p.release_addresses:
            return []
        ws = self.ws(ctx, fresh=True)
        released = {
            ip.id: {
                "assigned_object_type": None,
                "assigned_object_id": None,
                "status": "deprecated",
            }
            for ip in ws.ip_addresses
        }
        diffs = self.netbox(ctx).plan_updates("ipam.ipaddress", released, "release address")
        return diffs

    @plan_addresses_released.apply
    def release_addresses(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.netbox(ctx).apply(diffs).evidence()

    @plan_addresses_released.undo
    def restore_addresses(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.netbox(ctx).undo(diffs)

    # ---- 6. the operator, then the journal

    @manual("Confirm {device} is physically removed", targets="{device}")
    def confirm_physical_removal(self, ctx: RunContext) -> str:
        ws = self.ws(ctx)
        cables = "; ".join(self.link_text(link) for link in nc.links_of(ws))
        location = ctx.results["device_is_active"].evidence["location"]
        return f"{ws.name} is unplugged ({cables}) and removed from {location}"

    plan_journal_entry = journal_step(
        "Witness the run in the NetBox journal of {device}", targets="{device}"
    )
