"""7 網絡設備上架 — network device rack-in.

The work instruction, in order:

1. Pre-checks from NetBox: the device is planned (or staged); its rack and position are set
   and free; its platform and type are known; its planned cables end on interfaces of active
   devices; its management and loopback addresses are assigned. Anything else is a refusal.
2. The operator confirms the device is mounted and cabled (who and when are recorded).
3. The device answers on its management address; each device's driver can answer the
   post-checks (a check a driver cannot answer is named in the plan, with its platform and
   why, and recorded "not checked" in the run: never a silent pass) and has commit-confirm
   (a device whose driver has none is named in the plan likewise).
4. NetBox records the cables as connected: the configuration NetBox renders follows from them
   (a cabled peer becomes a BGP neighbour), so they are written first and undone on failure.
5. The device and its cable peers get the configuration NetBox renders (intent "service"),
   with commit-confirm where the platform has it: such a device reverts by itself unless
   confirmed in time; one without is committed as it is, and only the undo puts it back.
6. Post-checks, through NAPALM's getters: LLDP matches the NetBox cables interface by
   interface; BGP is established to every peer NetBox gives it; the loopbacks are routed both
   ways (an installed route on each side).
7. Only then the configurations committed with commit-confirm are confirmed; the device and
   its addresses become active in NetBox, and a journal entry on the device witnesses the run.

A failure anywhere rolls back every completed step in reverse: the devices go back to their
recorded configurations, NetBox to its recorded values. On a device already racked in, every
change step plans "no change".
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from pydantic import Field

from runbooks.core.context import RunContext
from runbooks.core.errors import InventoryError, UnsupportedError, VerificationError
from runbooks.core.results import Diff
from runbooks.core.runbook import Params
from runbooks.core.steps import change, check, manual
from runbooks.library import network_common as nc
from runbooks.library import rack_steps as rs
from runbooks.library.base import LibraryRunbook
from runbooks.library.witness import journal_step


class RackInParams(Params):
    device: str = Field(min_length=1, description="the NetBox device to rack in")
    rack: str | None = Field(None, description="rack name, when NetBox has none or another")
    position: float | None = Field(None, ge=1, description="lowest rack unit, likewise")
    confirm_within_s: int = Field(
        300,
        ge=30,
        le=3600,
        description="commit-confirm (where the platform has it): devices revert unless confirmed",
    )
    settle_timeout_s: float = Field(90, gt=0, le=900, description="how long BGP may take")


class RackIn(rs.RackSteps, LibraryRunbook[RackInParams]):
    """Rack in a planned network device: NetBox's plan becomes the running network."""

    name = "rack-in"
    title = "Rack in a network device"
    instruction = "7 網絡設備上架 network device rack-in"
    expected_duration = timedelta(minutes=20)
    Params = RackInParams
    journaled = (
        "plan_rack_position",
        "plan_cables_connected",
        "plan_device_config",
        "plan_device_active",
    )
    checks_need = (
        rs.Needs("verify_lldp_matches_cables", "get_lldp_neighbors"),
        rs.Needs("verify_bgp_established", "get_bgp_neighbors"),
        rs.Needs("verify_loopbacks_answer", "get_route_to", on="both"),
        rs.Needs("plan_device_config", rs.COMMIT_CONFIRM, on="both"),
    )

    # ---- 1. pre-checks from NetBox -----------------------------------------------------------

    @check("{device} is planned or staged in NetBox", targets="{device}")
    def device_is_planned(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx, fresh=True)
        if ws.status in ("planned", "staged"):
            return {"status": ws.status}
        if ws.status == "active":
            return {"status": ws.status, "note": "already racked in: expect no change below"}
        raise InventoryError(f"{ws.name} is {ws.status} in NetBox; rack-in needs planned or staged")

    @check("Its rack and position are set and free", targets="{device}")
    def rack_position_is_set_and_free(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        rack_id, rack = self.rack_of(ctx, ws)
        position = self.p.position if self.p.position is not None else ws.position
        if rack_id is None or position is None:
            raise InventoryError(f"{ws.name} has no rack or position: give rack= and position=")
        face = ws.face or "front"
        height = self.u_height(ctx, ws)
        taken = self.units_taken(ctx, rack_id, face, position, height, exclude=ws.id)
        if taken:
            raise InventoryError(f"{rack} U{position:g} ({face}) is taken: {', '.join(taken)}")
        return {"rack": rack, "position": position, "face": face, "u_height": height}

    @check("Its platform and device type are known", targets="{device}")
    def platform_and_type_are_known(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        return {
            "platform": ws.platform.slug if ws.platform else None,
            "driver": nc.driver_of(ws),
            "device_type": f"{ws.manufacturer.name} {ws.device_type.name}",
        }

    @check("Its planned cables end on existing interfaces", targets="{device}")
    def planned_cables_end_on_existing_interfaces(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        problems = nc.cable_problems(ws)
        if problems:
            raise InventoryError("; ".join(problems))
        return {"cables": [self.link_text(link) for link in nc.links_of(ws)]}

    @check("Its management and loopback addresses are assigned", targets="{device}")
    def addresses_are_assigned(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        missing = [
            what
            for what, value in (("management", ws.primary_ip4), ("loopback", nc.loopback_of(ws)))
            if not value
        ]
        if missing:
            raise InventoryError(f"{ws.name} has no {' or '.join(missing)} address in NetBox")
        return {"management": ws.primary_ip4, "loopback": nc.loopback_of(ws)}

    # ---- 2. the operator

    @manual("Confirm {device} is mounted and cabled", targets="{device}")
    def confirm_mounted_and_cabled(self, ctx: RunContext) -> str:
        ws = self.ws(ctx)
        _, rack = self.rack_of(ctx, ws)
        position = self.p.position if self.p.position is not None else ws.position
        cables = "; ".join(self.link_text(link) for link in nc.links_of(ws))
        return (
            f"{ws.name} ({ws.device_type.name}) is mounted in {rack} U{position or 0:g} "
            f"({ws.face or 'front'}), powered, and cabled: {cables}"
        )

    # ---- 3. reach it

    @check("{device} answers on its management address", targets="{device}")
    def device_answers(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        facts = self.device(ctx, ws).facts()
        have = set(facts.get("interface_list", []))
        missing = [link.interface for link in nc.links_of(ws) if link.interface not in have]
        if missing:
            raise VerificationError(f"{ws.name} has no interface {', '.join(missing)}")
        keys = ("hostname", "os_version", "serial_number", "uptime")
        return {**{k: facts.get(k) for k in keys}, "reached": self.reached(ctx, ws)}

    @check("Each device's driver can answer the post-checks", targets="{device}")
    def drivers_can_answer(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        return self.drivers_answer(ctx, ws, self.peers(ctx, ws))

    # ---- 4. NetBox: the cables are in

    @change("Record the position in NetBox (when given)", targets="{device}")
    def plan_rack_position(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx, fresh=True)
        if self.p.rack is None and self.p.position is None:
            return []
        rack_id, _ = self.rack_of(ctx, ws)
        position = self.p.position if self.p.position is not None else ws.position
        if rack_id == (ws.rack.id if ws.rack else None) and position == ws.position:
            return []
        diff = self.netbox(ctx).plan_rack_position(ws.id, rack_id, position, ws.face or "front")
        return [diff]

    @plan_rack_position.apply
    def write_rack_position(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.netbox(ctx).apply(diffs).evidence()

    @plan_rack_position.undo
    def restore_rack_position(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.netbox(ctx).undo(diffs)

    @change("Record the cables as connected in NetBox", targets="{device}")
    def plan_cables_connected(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx, fresh=True)
        return self.netbox(ctx).plan_cable_status(ws, "connected")

    @plan_cables_connected.apply
    def connect_cables(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.netbox(ctx).apply(diffs).evidence()

    @plan_cables_connected.undo
    def restore_cables(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.netbox(ctx).undo(diffs)

    # ---- 5. the configuration, with commit-confirm where the platform has it -----------------

    @change(
        "Configure {device} and its cable peers as NetBox renders them "
        "(commit-confirm where the platform has it)",
        targets="{device}",
        duration=timedelta(minutes=2),
    )
    def plan_device_config(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx)
        peers = self.peers(ctx, ws)
        devices = [ws, *peers.values()]
        diffs = self.config_diffs(ctx, devices, rs.SERVICE, "configuration rendered by NetBox")
        cables = ctx.results.get("plan_cables_connected")
        if ctx.planning and cables is not None and cables.diffs:
            diffs.append(nc.sessions_note(ws, peers, adding=True))
            self.will_confirm(ctx, peers.values())  # their sessions change at run time
        return diffs

    @plan_device_config.apply
    def commit_device_config(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.commit_configs(ctx, diffs, rs.SERVICE, self.p.confirm_within_s)

    @plan_device_config.verify
    def device_config_in_place(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.configs_in_place(ctx, diffs)

    @plan_device_config.undo
    def restore_device_config(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.restore_configs(ctx, diffs)

    # ---- 6. post-checks ------------------------------------------------------------------------

    @check("Post-check: LLDP matches the NetBox cables, interface by interface", targets="{device}")
    def verify_lldp_matches_cables(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        links = nc.links_of(ws)
        gw = self.device(ctx, ws)
        try:
            lldp = gw.lldp_neighbors()
        except UnsupportedError as exc:
            return {"not_checked": [self.not_checked(gw, exc)]}
        problems = nc.lldp_mismatches(links, lldp)
        if problems:
            raise VerificationError(f"{ws.name}: {'; '.join(problems)}")
        return {
            "lldp": {link.interface: f"{link.peer_device}:{link.peer_interface}" for link in links}
        }

    @check("Post-check: BGP is established to every peer NetBox gives it", targets="{device}")
    def verify_bgp_established(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        sessions = nc.expected_sessions(ws, self.peers(ctx, ws))
        if not sessions:
            raise VerificationError(f"NetBox gives {ws.name} no BGP peer")
        gw = self.device(ctx, ws)
        deadline = time.monotonic() + self.p.settle_timeout_s
        while True:
            try:
                problems = nc.bgp_problems(sessions, gw.bgp_neighbors())
            except UnsupportedError as exc:
                return {"not_checked": [self.not_checked(gw, exc)]}
            if not problems:
                return {
                    "established": [
                        f"{s.peer_device} {s.peer_address} AS{s.peer_asn}" for s in sessions
                    ]
                }
            if time.monotonic() >= deadline:
                raise VerificationError(f"{ws.name}: {'; '.join(problems)}")
            time.sleep(2)

    @check("Post-check: the loopbacks are routed both ways", targets="{device}")
    def verify_loopbacks_answer(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx)
        return self.loopbacks_routed(ctx, ws, self.peers(ctx, ws), self.p.settle_timeout_s)

    # ---- 7. confirm, then NetBox

    @change("Confirm the configurations (every post-check passed)", targets="{device}")
    def plan_confirm_config(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx)
        devices = [ws, *self.peers(ctx, ws).values()]
        return self.pending_confirms(ctx, devices, committed_by="plan_device_config")

    @plan_confirm_config.apply
    def confirm_config(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.confirm_configs(ctx, diffs)

    @plan_confirm_config.verify
    def configs_confirmed(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.confirmed(ctx, diffs, committed_by="plan_device_config")

    @plan_confirm_config.undo
    def nothing_to_unconfirm(self, ctx: RunContext, diffs: list[Diff]) -> None:
        """A confirmation is undone with the configuration itself (the step above)."""

    @change("Mark {device} and its addresses active in NetBox", targets="{device}")
    def plan_device_active(self, ctx: RunContext) -> list[Diff]:
        nb, ws = self.netbox(ctx), self.ws(ctx, fresh=True)
        diffs = [nb.plan_device_status(ws, "active")]
        reserved = {
            ip.id: {"status": "active"} for ip in ws.ip_addresses if ip.status == "reserved"
        }
        diffs += nb.plan_updates("ipam.ipaddress", reserved, "address in use")
        return diffs

    @plan_device_active.apply
    def mark_device_active(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.netbox(ctx).apply(diffs).evidence()

    @plan_device_active.undo
    def restore_device_status(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.netbox(ctx).undo(diffs)

    plan_journal_entry = journal_step(
        "Witness the run in the NetBox journal of {device}", targets="{device}"
    )
