"""The work both rack runbooks do on NetBox and the devices: reading working sets once,
committing the configurations NetBox renders (with commit-confirm where the platform has it),
restoring them, confirming, the routing checks, which checks each device's driver can answer,
and the device's journal as the run's witness (`runbooks.library.witness`).

Devices are spoken to through NAPALM's API only (`runbooks.gateways.network`): getters,
compare, commit with revert_in, confirm, rollback. A device whose driver has no commit-confirm
(`NetworkGateway.commit_confirm_supported`: a revert_in that is no revert on the device does
not count) is committed without revert_in, named in the plan, not waited for by a
confirmation step, and put back by the run's undo alone. What a device is to run comes from
NetBox's rendering, asked for with the intent of the step (`SERVICE`, `DRAIN`, `BARE`: the
template decides what each means on its platform). Configurations are recorded sanitised; the
gateway puts the secrets back when it commits. The runbook modules say what is checked and
changed; the pure comparisons are in `network_common`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from runbooks.core.context import RunContext
from runbooks.core.errors import (
    DriftError,
    InventoryError,
    LockedError,
    RollbackError,
    SecretUnavailable,
    UnsupportedError,
    VerificationError,
)
from runbooks.core.results import Diff, FieldChange
from runbooks.core.steps import Step
from runbooks.gateways.config_text import sanitize
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_changes import PlannedWrite, plain
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import COMMIT_CONFIRM as CONFIRM_METHODS
from runbooks.gateways.network import DeviceTarget, NetworkGateway
from runbooks.library.base import netbox
from runbooks.library.network_common import (
    Link,
    config_diff,
    device_of,
    device_target,
    links_of,
    loopback_of,
    moves_address,
    route_installed,
)
from runbooks.library.witness import JournalWitness, Witnessed

log = logging.getLogger(__name__)


# What a step asks NetBox to render (the request's ``runbooks_intent``; see the templates)
SERVICE, DRAIN, BARE = "service", "drain", "bare"

# What a change step committing with commit-confirm asks of a driver (`Needs.getter`)
COMMIT_CONFIRM = "commit-confirm"

SecretSources = Callable[[], Sequence[str]]


def no_sources() -> Sequence[str]:
    return ()


def restore_device(
    gw: NetworkGateway, before: str, more_secrets: SecretSources = no_sources, attempts: int = 2
) -> None:
    """Undo a configuration commit: cancel the run's pending commit-confirm (the device goes
    back to its saved configuration at once; on a platform that has commit-confirm), then
    replace with the recorded configuration if it still differs (``before``, sanitised: see
    `diff_to`). A broken session is opened again for a second attempt. Another process's
    commit pending on the device is refused (`NetworkGateway.has_own_pending_commit`:
    `LockedError`, not tried again): neither cancelled nor committed over."""
    for attempt in range(1, attempts + 1):
        try:
            if gw.commit_confirm_supported() and gw.has_own_pending_commit():
                gw.rollback()
            delta, sources = diff_to(gw, before, more_secrets)
            if delta.strip():
                gw.commit(before, secret_sources=sources)
            return
        except (SecretUnavailable, LockedError):
            raise  # another session would not find it either, nor make it the run's
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("%s: restoring failed (%s); again on a new session", gw.target.name, exc)
            gw.close()


def diff_to(
    gw: NetworkGateway, before: str, more_secrets: SecretSources
) -> tuple[str, Sequence[str]]:
    """The device's diff to the sanitised ``before``, and the texts its placeholders were
    filled from besides the running configuration: none when that holds every secret; else
    ``more_secrets()`` (asked only then: NetBox's fresh rendering); and when neither holds
    one (a session NetBox no longer renders, with its password), the driver's own rollback
    first: what the device ran before its last commit (this run's: its targets are locked),
    secrets and all; still missing, `SecretUnavailable` names the line."""
    try:
        return gw.compare(before), ()
    except SecretUnavailable:
        sources = more_secrets()
    try:
        return gw.compare(before, secret_sources=sources), sources
    except SecretUnavailable as exc:
        if not gw.supports("rollback"):
            raise
        log.warning("%s: %s; rolling back to before the last commit", gw.target.name, exc)
    gw.rollback()
    return gw.compare(before, secret_sources=sources), sources


def runs(gw: NetworkGateway, sanitized: str) -> bool:
    """Whether the device runs this (sanitised) configuration. A secret its running
    configuration cannot fill in means a line it does not hold: it does not."""
    try:
        return not gw.compare(sanitized).strip()
    except SecretUnavailable:
        return False


def restore_all(
    pairs: Iterable[tuple[NetworkGateway, str]],
    more_secrets: Callable[[str], Sequence[str]] | None = None,
) -> None:
    """Restore every device, even when one fails; then say which failed."""
    failed = []
    for gw, before in pairs:
        name = gw.target.name
        try:
            restore_device(gw, before, partial(more_secrets, name) if more_secrets else no_sources)
        except Exception as exc:
            failed.append(f"{name}: {exc}")
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


# ---- steps' shared work: a mixin of the rack-in and rack-out runbooks -----------------------


@dataclass
class RackState:
    """One plan's or run's own reading (the engine makes one for each, `Runbook.new_state`):
    NetBox working sets read so far, the address each device was first reached at, and in a
    plan the devices whose commit it would confirm. What a step needs from an earlier
    step's work it takes from the record (``ctx.results``), not from here."""

    seen: dict[str, DeviceWorkingSet] = field(default_factory=dict)
    targets: dict[str, DeviceTarget] = field(default_factory=dict)
    to_confirm: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Needs:
    """A step (its name) that asks something of the driver of the device itself
    (``on="device"``), of its cable peers (``"peers"``) or of both (``"both"``): a check a
    NAPALM getter, a change committing with commit-confirm `COMMIT_CONFIRM`."""

    check: str
    getter: str
    on: str = "device"

    def devices(
        self, ws: DeviceWorkingSet, peers: Mapping[str, DeviceWorkingSet]
    ) -> list[DeviceWorkingSet]:
        own = [ws] if self.on in ("device", "both") else []
        return own + (list(peers.values()) if self.on in ("peers", "both") else [])


def state(ctx: RunContext) -> RackState:
    assert isinstance(ctx.state, RackState), "a rack runbook's context holds a RackState"
    return ctx.state


class RackSteps(JournalWitness):
    """The reading, committing and witnessing both rack runbooks do; ``self.params.device``
    names the device. Nothing here decides: the runbook modules say what is checked and
    changed. The object holds its parameters only: per-plan and per-run data is the engine's
    (``ctx.state``, ``ctx.results``)."""

    params: Any
    checks_need: tuple[Needs, ...] = ()  # which getters the runbook's checks ask of whom

    def new_state(self) -> RackState:
        return RackState()

    # -- NetBox reads
    def ws(self, ctx: RunContext, name: str | None = None, fresh: bool = False) -> DeviceWorkingSet:
        """The device's working set. Checks reuse the last one read; in a run, change steps
        read afresh (their ETags, what earlier steps wrote); a plan writes nothing, so it
        reads each device once."""
        name = name or self.params.device
        seen = state(ctx).seen
        ws = seen.get(name)
        if ws is None or (fresh and not ctx.planning):
            ws = netbox(ctx).working_set(name)
        seen[ws.name] = ws
        return ws

    def peers(
        self, ctx: RunContext, ws: DeviceWorkingSet, fresh: bool = False
    ) -> dict[str, DeviceWorkingSet]:
        names = dict.fromkeys(link.peer_device for link in links_of(ws))
        return {n: self.ws(ctx, n, fresh) for n in names}

    def rendering(self, ctx: RunContext, name: str, intent: str) -> str:
        """The configuration NetBox renders for the device with this intent (raw: it may hold
        secrets; it goes to the device only, never into the record)."""
        ws = self.ws(ctx, name)
        return netbox(ctx).render_config(ws.id, context={"runbooks_intent": intent})

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
        self,
        ctx: RunContext,
        devices: list[DeviceWorkingSet],
        intent: str,
        summary: str,
        confirm: bool = True,
    ) -> list[Diff]:
        """Each device's change to what NetBox renders for it with ``intent``, as the device
        itself compares it; sanitised. With ``confirm``, a later step confirms the commit of
        each device that has commit-confirm. A change that would add or remove the device's
        management address is refused: that address is the box's own, and a configuration
        holding it would take it away on the way back (an undo, a commit-confirm timer)."""
        diffs = []
        for ws in devices:
            gw = self.device(ctx, ws)
            running = gw.config()
            rendered = self.rendering(ctx, ws.name, intent)
            candidate = sanitize(rendered)
            if moves_address(running, candidate, ws.primary_ip4):
                raise InventoryError(
                    f"{ws.name}: the change would move its management address {ws.primary_ip4} "
                    "in or out of the configuration (the address is the box's own: NetBox's "
                    "template must not render its interface, nor the device's configuration "
                    "hold it)"
                )
            delta = gw.compare(rendered)  # the device diffs the real one; we get it sanitised
            if delta.strip():
                if confirm:
                    self.will_confirm(ctx, [ws])
                diffs.append(config_diff(ws.name, running, candidate, delta, summary))
        return diffs

    def will_confirm(self, ctx: RunContext, devices: Iterable[DeviceWorkingSet]) -> None:
        """In a plan: the confirmation step will confirm these devices' commits, those of
        them that have commit-confirm (the others are committed without: nothing to confirm)."""
        for ws in devices:
            if self.device(ctx, ws).commit_confirm_supported():
                state(ctx).to_confirm.add(ws.name)

    def commit_configs(
        self, ctx: RunContext, diffs: list[Diff], intent: str, revert_in: int | None
    ) -> dict[str, Any]:
        """Commit what NetBox renders now for each device, once it is what was planned
        (sanitised, it must read as the diff's ``after``: else NetBox changed since, a drift),
        with ``revert_in`` where the device has commit-confirm, without it elsewhere (named
        under ``without_commit_confirm``; the config sessions of the commits left waiting for
        their confirmation under ``sessions``, where the driver names one: EOS). If one
        device fails, the ones before go back at once."""
        done: list[tuple[NetworkGateway, Diff]] = []
        unconfirmed: list[str] = []
        sessions: dict[str, str] = {}
        try:
            for diff in (d for d in diffs if d.kind == "text"):
                name = device_of(diff)
                candidate = self.rendering(ctx, name, intent)
                if sanitize(candidate) != diff.after:
                    raise DriftError(
                        f"{name}: NetBox now renders another configuration than the one "
                        "planned for this step; plan again"
                    )
                gw = self.gateway_named(ctx, name)
                confirms = gw.commit_confirm_supported()
                if confirms and gw.has_own_pending_commit():  # this run's, interrupted
                    if not gw.compare(candidate).strip():
                        if gw.session:
                            sessions[name] = gw.session
                        continue  # in place and waiting for the confirmation step
                    gw.rollback()
                if revert_in is not None and not confirms:
                    unconfirmed.append(name)
                gw.commit(candidate, revert_in=revert_in if confirms else None)
                done.append((gw, diff))
                if revert_in is not None and gw.session:
                    sessions[name] = gw.session
        except Exception as exc:
            try:
                restore_all((gw, str(diff.before)) for gw, diff in reversed(done))
            except RollbackError as undo:
                raise RollbackError(f"{exc}; and then {undo}") from exc
            raise
        committed: dict[str, Any] = {
            "committed": [gw.target.name for gw, _ in done],
            "revert_in_s": revert_in,
        }
        if sessions:
            committed["sessions"] = sessions
        return committed | ({"without_commit_confirm": unconfirmed} if unconfirmed else {})

    def configs_in_place(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return all(
            runs(self.gateway_named(ctx, device_of(d)), str(d.after))
            for d in diffs
            if d.kind == "text"
        )

    def restore_configs(
        self, ctx: RunContext, diffs: list[Diff], secrets_from: str | None = None
    ) -> None:
        """Each device back to its recorded configuration. ``secrets_from``: an intent whose
        fresh NetBox rendering holds the secrets the running configuration may no longer
        hold (after a removal); asked for only when needed."""

        def rendered(name: str) -> Sequence[str]:
            return (self.rendering(ctx, name, secrets_from),) if secrets_from else ()

        texts = reversed([d for d in diffs if d.kind == "text"])
        restore_all(
            ((self.gateway_named(ctx, device_of(d)), str(d.before)) for d in texts), rendered
        )

    def pending_confirms(
        self, ctx: RunContext, devices: list[DeviceWorkingSet], committed_by: str
    ) -> list[Diff]:
        """Devices whose commit waits for confirmation: in a plan those the plan commits; in a
        run those the record says step ``committed_by`` committed. A device no longer running
        what was committed (its commit-confirm timer ran out: it went back by itself) cannot
        be confirmed: that refuses the step, and the run rolls back. A device without
        commit-confirm has nothing to confirm (it was committed without revert_in); that it
        still runs what was committed is checked all the same."""
        if ctx.planning:
            names = [ws.name for ws in devices if ws.name in state(ctx).to_confirm]
        else:
            names = []
            committed = ctx.results.get(committed_by)
            for diff in committed.diffs if committed else ():
                if diff.kind != "text":
                    continue
                gw = self.gateway_named(ctx, device_of(diff))
                confirms = gw.commit_confirm_supported()
                if not runs(gw, str(diff.after)):
                    why = (
                        "went back to its earlier configuration (its commit-confirm timer ran "
                        "out before the confirmation)"
                        if confirms
                        else "no longer runs what was committed (changed since)"
                    )
                    raise VerificationError(
                        f"{gw.target.name} {why}: what the post-checks passed is not running"
                    )
                if confirms and gw.has_own_pending_commit():
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
            pending = gw.commit_confirm_supported() and gw.has_own_pending_commit()
            if pending or not runs(gw, intended[device_of(diff)]):
                return False
        return True

    def confirm_configs(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        for diff in diffs:
            self.gateway_named(ctx, device_of(diff)).confirm()
        return {"confirmed": [device_of(d) for d in diffs]}

    # -- which checks each device's driver can answer
    def drivers_answer(
        self, ctx: RunContext, ws: DeviceWorkingSet, peers: Mapping[str, DeviceWorkingSet]
    ) -> dict[str, Any]:
        """For each step of ``checks_need``, whether each device it asks has a driver with
        the getter (or commit-confirm). One that has none is named with its platform, driver
        and why: the check will say "not checked" there, the change commits without a
        device-side revert; a device whose driver's compare would write to it (a plan diffs
        it locally instead) is named too. The reviewer decides whether that is acceptable."""
        titles = {need.check: self.title_of(need.check) for need in self.checks_need}
        drivers: dict[str, str] = {}
        cannot: list[dict[str, str]] = []
        warnings: list[str] = []
        for need in self.checks_need:
            for dev in need.devices(ws, peers):
                gw = self.device(ctx, dev)
                drivers[dev.name] = f"{gw.target.platform} (driver {gw.driver_name})"
                if need.getter == COMMIT_CONFIRM:
                    if gw.commit_confirm_supported():
                        continue
                    why = self.no_commit_confirm(gw)
                    warning = f"no commit-confirm on {gw.target.platform} ({dev.name}): {why}"
                elif gw.supports(need.getter):
                    continue
                else:
                    why = f"driver {gw.driver_name} has no {need.getter}"
                    warning = f"cannot check on {gw.target.platform} ({dev.name}): {why}"
                cannot.append(
                    {
                        "check": titles[need.check],
                        "device": dev.name,
                        "platform": gw.target.platform,
                        "driver": gw.driver_name,
                        "why": why,
                    }
                )
                warnings.append(f"{titles[need.check]}: {warning}")
        for name in drivers:  # a plan's configuration diff the device could not make itself
            why = self.gateway_named(ctx, name).compared_locally()
            if why:
                warnings.append(
                    f"{name}: configuration diff made locally from the running configuration, "
                    f"not by the device ({why})"
                )
        if not warnings:
            return {"drivers": drivers, "cannot_check": []}
        return {"warnings": warnings, "cannot_check": cannot, "drivers": drivers}

    @staticmethod
    def no_commit_confirm(gw: NetworkGateway) -> str:
        """Why a device's commit has no device-side revert, for the plan."""
        missing = "/".join(m for m in CONFIRM_METHODS if not gw.supports(m))
        return (
            f"driver {gw.driver_name} has no {missing or 'commit-confirm'} (NAPALM's "
            "commit-confirm): committed without revert_in, nothing on the device reverts it; "
            "if a later check fails, only the run's undo puts its configuration back"
        )

    def title_of(self, step_name: str) -> str:
        step = getattr(type(self), step_name)
        assert isinstance(step, Step), f"{step_name} is no step of {type(self).__name__}"
        return step.resolve_title(self)

    @staticmethod
    def not_checked(gw: NetworkGateway, exc: UnsupportedError) -> str:
        """What a check records where the device's driver cannot answer it: never a pass."""
        getter = exc.context.get("getter")
        why = f"driver {gw.driver_name} has no {getter}" if getter else str(exc)
        text = f"{gw.target.name}: not checked on {gw.target.platform}: {why}"
        log.warning("%s", text)
        return text

    # -- routing checks
    def routed(self, ctx: RunContext, src: DeviceWorkingSet, address: str) -> bool:
        """Whether ``src`` has an installed route to ``address`` (NAPALM's get_route_to)."""
        routes = self.device(ctx, src).route_to(f"{address}/32")
        return route_installed(routes, address)

    def loopbacks_routed(
        self,
        ctx: RunContext,
        ws: DeviceWorkingSet,
        peers: Mapping[str, DeviceWorkingSet],
        timeout_s: float,
    ) -> dict[str, Any]:
        """Each peer has an installed route to the device's loopback and the device one to
        each peer's loopback (the network's view; a ping needs a device-side ping getter).
        A device whose driver has no get_route_to is named under ``not_checked``."""
        own = loopback_of(ws)
        pairs = [(ws, loopback_of(p), p.name) for p in peers.values()]
        pairs += [(p, own, ws.name) for p in peers.values()]
        not_checked: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            missing = []
            for src, lo, name in pairs:
                if src.name in not_checked:
                    continue
                try:
                    if lo is None or not self.routed(ctx, src, lo):
                        missing.append(f"{src.name} has no route to {name}'s loopback {lo}")
                except UnsupportedError as exc:
                    not_checked[src.name] = self.not_checked(self.device(ctx, src), exc)
            if not missing:
                routed = [
                    f"{src.name} → {name} {lo}"
                    for src, lo, name in pairs
                    if src.name not in not_checked
                ]
                return {"routed": routed} | (
                    {"not_checked": sorted(not_checked.values())} if not_checked else {}
                )
            if time.monotonic() >= deadline:
                raise VerificationError("; ".join(missing))
            time.sleep(2)

    # -- the journal: the device witnesses the run
    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        ws = self.ws(ctx)
        return [Witnessed("dcim.device", ws.id, ws.name)]
