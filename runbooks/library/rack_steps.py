"""The work both rack runbooks do on NetBox and the devices: reading working sets once,
committing NetBox-rendered configurations with commit-confirm, restoring them, confirming,
routing checks, and the device's journal as the run's witness (`runbooks.library.witness`).
The runbook modules say what is checked and changed; the pure comparisons are in
`network_common`."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbooks.core.context import RunContext
from runbooks.core.errors import InventoryError, RollbackError, VerificationError
from runbooks.core.results import Diff, FieldChange
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_changes import PlannedWrite, plain
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import DeviceTarget, NetworkGateway
from runbooks.library.base import netbox
from runbooks.library.network_common import (
    Link,
    config_diff,
    device_of,
    device_target,
    installed_route,
    intended_config,
    leave_unmanaged,
    links_of,
    loopback_of,
    mgmt_interface,
)
from runbooks.library.witness import JournalWitness, Witnessed

log = logging.getLogger(__name__)


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


@dataclass
class RackState:
    """One plan's or run's own reading (the engine makes one for each, `Runbook.new_state`):
    NetBox working sets read so far, the address each device was first reached at, and in a
    plan the devices whose configuration it would commit. What a step needs from an earlier
    step's work it takes from the record (``ctx.results``), not from here."""

    seen: dict[str, DeviceWorkingSet] = field(default_factory=dict)
    targets: dict[str, DeviceTarget] = field(default_factory=dict)
    to_confirm: set[str] = field(default_factory=set)


def state(ctx: RunContext) -> RackState:
    assert isinstance(ctx.state, RackState), "a rack runbook's context holds a RackState"
    return ctx.state


class RackSteps(JournalWitness):
    """The reading, committing and witnessing both rack runbooks do; ``self.params.device``
    names the device. Nothing here decides: the runbook modules say what is checked and
    changed. The object holds its parameters only: per-plan and per-run data is the engine's
    (``ctx.state``, ``ctx.results``)."""

    params: Any

    def new_state(self) -> RackState:
        return RackState()

    # -- NetBox reads
    def ws(
        self, ctx: RunContext, render: bool = False, name: str | None = None, fresh: bool = False
    ) -> DeviceWorkingSet:
        """The device's working set. Checks reuse the last one read; in a run, change steps
        read afresh (their ETags, what earlier steps wrote); a plan writes nothing, so it
        reads each device once (plus its rendering)."""
        name = name or self.params.device
        seen = state(ctx).seen
        ws = seen.get(name)
        if ws is None or (fresh and not ctx.planning):
            ws = netbox(ctx).working_set(name)
        if render:
            ws = dataclasses.replace(ws, config=netbox(ctx).render_config(ws.id))
        seen[ws.name] = ws
        return ws

    def peers(
        self, ctx: RunContext, ws: DeviceWorkingSet, render: bool = False, fresh: bool = False
    ) -> dict[str, DeviceWorkingSet]:
        names = dict.fromkeys(link.peer_device for link in links_of(ws))
        return {n: self.ws(ctx, render, n, fresh) for n in names}

    def device(self, ctx: RunContext, ws: DeviceWorkingSet) -> NetworkGateway:
        """The run's session to a device, at the address it had when first reached (a later
        step may take the address away in NetBox; an undo still needs the device)."""
        targets = state(ctx).targets
        target = targets.get(ws.name) or self.recorded_target(ctx, ws.name) or device_target(ws)
        targets[ws.name] = target
        return NetworkGateway.for_device(ctx, target)

    def gateway_named(self, ctx: RunContext, name: str) -> NetworkGateway:
        target = state(ctx).targets.get(name) or self.recorded_target(ctx, name)
        if target is not None:
            return NetworkGateway.for_device(ctx, target)
        return self.device(ctx, state(ctx).seen.get(name) or self.ws(ctx, name=name))

    def recorded_target(self, ctx: RunContext, name: str) -> DeviceTarget | None:
        """Where the run reached the device, as its record says (``device_answers``): a run
        resumed after NetBox took the address away still reaches it there."""
        answered = ctx.results.get("device_answers")
        reached = answered.evidence.get("reached") if answered else None
        if not isinstance(reached, dict) or reached.get("name") != name:
            return None
        return DeviceTarget(name, str(reached["host"]), str(reached["platform"]))

    def reached(self, ctx: RunContext, ws: DeviceWorkingSet) -> dict[str, str]:
        """The device's address and platform, for the record (see `recorded_target`)."""
        target = self.device(ctx, ws).target
        return {"name": target.name, "host": target.host, "platform": target.platform}

    def rack_of(self, ctx: RunContext, ws: DeviceWorkingSet) -> tuple[int | None, str]:
        wanted = getattr(self.params, "rack", None)
        if wanted is None:
            return (ws.rack.id, ws.rack.name) if ws.rack else (None, "no rack")
        found = netbox(ctx).find("dcim.rack", name=wanted, site_id=ws.site.id)
        if not found:
            raise InventoryError(f"NetBox has no rack {wanted!r} at {ws.site.name}")
        return int(found[0]["id"]), wanted

    def u_height(self, ctx: RunContext, ws: DeviceWorkingSet) -> float:
        device_type = netbox(ctx).get("dcim.devicetype", ws.device_type.id)
        return float(device_type.get("u_height") or 0)

    def units_taken(
        self, ctx: RunContext, rack_id: int, face: str, position: float, height: float, exclude: int
    ) -> list[str]:
        """Devices other than ``exclude`` in units [position, position + height)."""
        taken = []
        for unit in netbox(ctx).rack_units(rack_id, face, exclude):
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
                state(ctx).to_confirm.add(ws.name)
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
                if gw.has_pending_commit():  # an interrupted run's commit, not confirmed
                    if not gw.compare(str(diff.after)).strip():
                        continue  # in place and waiting for the confirmation step
                    gw.rollback()
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

    def pending_confirms(
        self, ctx: RunContext, devices: list[DeviceWorkingSet], committed_by: str
    ) -> list[Diff]:
        """Devices whose commit waits for confirmation: in a plan those the plan commits; in a
        run those the record says step ``committed_by`` committed. A device no longer running
        what was committed (its commit-confirm timer ran out: it went back by itself) cannot
        be confirmed: that refuses the step, and the run rolls back."""
        if ctx.planning:
            names = [ws.name for ws in devices if ws.name in state(ctx).to_confirm]
        else:
            names = []
            committed = ctx.results.get(committed_by)
            for diff in committed.diffs if committed else ():
                if diff.kind != "text":
                    continue
                gw = self.gateway_named(ctx, device_of(diff))
                if gw.compare(str(diff.after)).strip():
                    raise VerificationError(
                        f"{gw.target.name} went back to its earlier configuration (its "
                        "commit-confirm timer ran out before the confirmation): what the "
                        "post-checks passed is no longer running"
                    )
                if gw.has_pending_commit():
                    names.append(gw.target.name)
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

    def confirmed(self, ctx: RunContext, diffs: list[Diff], committed_by: str) -> bool:
        """In place: every device confirmed runs what was committed, nothing pending."""
        committed = ctx.results.get(committed_by)
        if committed is None:
            return False
        intended = {device_of(d): str(d.after) for d in committed.diffs if d.kind == "text"}
        for diff in diffs:
            gw = self.gateway_named(ctx, device_of(diff))
            if gw.has_pending_commit() or gw.compare(intended[device_of(diff)]).strip():
                return False
        return True

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

    # -- the journal: the device witnesses the run
    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        ws = self.ws(ctx)
        return [Witnessed("dcim.device", ws.id, ws.name)]
