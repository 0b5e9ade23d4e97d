"""Changes: a plan stored for review, signed by other people, run within its window.

Where a team's changes live is a `Changes` book: `ChangeBook` keeps them in the local record
store (one person, no server), and the NetBox book (`runbooks.gateways.netbox_plugin`) keeps
them in NetBox through the netbox-runbooks plugin, where the server decides. Both apply the same
rules (`runbooks_rules.policy`).

In the local store a change lives in the record chain itself (the entries of the chain named
by the change id), so its plan, every signature and every refusal are as tamper-evident as the
runs it leads to:

    change.planned   runbook, parameters, the plan, its hash, the preparer, the window
    change.signed    review | approve | emergency, by whom, bound to a hash
    change.refused   an attempt that broke a rule: who, what, why
    change.ran       the run it led to
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from runbooks_rules.ids import new_change_id, new_run_id

from runbooks.core import policy
from runbooks.core.engine import Engine
from runbooks.core.errors import ApprovalError, DriftError, InputError, RunbookError
from runbooks.core.plan import Plan
from runbooks.core.policy import Identity, Signature
from runbooks.core.results import RunResult
from runbooks.core.runbook import Runbook
from runbooks.core.store import RecordStore
from runbooks.core.window import Window

__all__ = ["Change", "ChangeBook", "Changes", "RunGrant", "explain_drift", "run_change"]


@dataclass(frozen=True)
class Change:
    id: str
    runbook: str
    params: dict[str, Any]
    plan: dict[str, Any]
    plan_hash: str
    preparer: str
    created: str
    window: Window | None
    signatures: tuple[Signature, ...] = ()
    runs: tuple[str, ...] = ()
    state: str = ""  # the status the server holds (NetBox); derived locally when empty
    url: str = ""  # where people read it (its NetBox page)
    refusal: str = ""  # the last refusal that changed its status
    key: str = ""  # the server's own id of it (NetBox's primary key)
    scheduled_by: str = ""  # who queued it for its window (NetBox records it)
    confirm_manual: bool = False  # ... confirming its manual steps in advance, in their name

    def signers(self, authority: str) -> list[str]:
        return policy.signers(self.signatures, authority, self.plan_hash)

    @property
    def status(self) -> str:
        if self.state:
            return self.state
        if self.runs:
            return "ran"
        return policy.status(self.plan_hash, self.signatures)


@dataclass(frozen=True)
class RunGrant:
    """A run the book allowed: its id, and whether it runs as an emergency (outside the window)."""

    run_id: str
    emergency: bool


class Changes(Protocol):
    """Where a team's changes, signatures and sign-offs are kept, and who decides."""

    def create(
        self, plan: Plan, preparer: Identity, window: Window | None, unreviewed: bool = False
    ) -> Change: ...

    def get(self, change_id: str) -> Change: ...

    def list(self) -> list[Change]: ...

    def sign(
        self,
        change: Change,
        who: Identity,
        authority: str,
        given_hash: str,
        note: str = "",
        current: Plan | None = None,
    ) -> Change: ...

    def precheck_run(
        self, change: Change, who: Identity, in_window: bool, scheduled: bool = False
    ) -> None:
        """Refuse early (before the re-plan) what the rules refuse anyway; record it."""

    def start_run(
        self,
        change: Change,
        who: Identity,
        planned: Plan,
        now: datetime,
        *,
        scheduled: bool = False,
        worker: str | None = None,
    ) -> RunGrant:
        """Decide, with the plan recomputed now, whether ``who`` may run the change (a server
        judges the window by its own clock, not ``now``)."""
        ...

    def schedule(self, change: Change, who: Identity, confirm_manual: bool) -> Change: ...

    def signoff(self, run_id: str, who: Identity, note: str = "") -> str:
        """Sign a finished run's record; the role signed (responsible or supervisor)."""
        ...


class ChangeBook:
    """Creates, reads and signs changes in the local record store."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    def create(
        self, plan: Plan, preparer: Identity, window: Window | None, unreviewed: bool = False
    ) -> Change:
        policy.check_prepare(preparer)
        if plan.refusal:
            raise InputError(f"a refused plan cannot become a change: {plan.refusal}")
        change_id = new_change_id()
        self.store.append(
            change_id,
            "change.planned",
            {
                "runbook": plan.runbook,
                "params": plan.params,
                "plan": plan.to_dict(),
                "plan_hash": plan.content_hash,
                "window": window.to_dict() if window else None,
            },
            actor=preparer.username,
        )
        return self.get(change_id)

    def get(self, change_id: str) -> Change:
        full = self.store.resolve_run(change_id)
        entries = self.store.entries(full)
        if not entries or entries[0].kind != "change.planned":
            raise InputError(f"{change_id!r} is not a change")
        head = entries[0].payload
        window = head.get("window")
        signatures = tuple(
            Signature(
                e.payload["authority"],
                e.actor,
                e.ts,
                e.payload["plan_hash"],
                e.payload.get("note", ""),
            )
            for e in entries
            if e.kind == "change.signed"
        )
        runs = tuple(str(e.payload["run_id"]) for e in entries if e.kind == "change.ran")
        return Change(
            full,
            head["runbook"],
            head["params"],
            head["plan"],
            head["plan_hash"],
            entries[0].actor,
            entries[0].ts,
            Window.parse(window["start"], window["end"]) if window else None,
            signatures,
            runs,
        )

    def list(self) -> list[Change]:
        ids = [e.run_id for e in self.store.entries() if e.kind == "change.planned"]
        return [self.get(i) for i in reversed(ids)]

    def refuse(self, change: Change, who: str, action: str, reason: str) -> None:
        """Record a refused attempt: the record shows who tried what, and why not."""
        self.store.append(
            change.id, "change.refused", {"action": action, "reason": reason}, actor=who
        )

    def guarded(self, change: Change, who: Identity, action: str, rule: Callable[[], Any]) -> Any:
        """Apply a policy rule; a refusal is recorded before it is raised."""
        try:
            return rule()
        except (ApprovalError, DriftError, RunbookError) as exc:
            self.refuse(change, who.username, action, str(exc))
            raise

    def sign(
        self,
        change: Change,
        who: Identity,
        authority: str,
        given_hash: str,
        note: str = "",
        current: Plan | None = None,
    ) -> Change:
        """Sign a change. With ``current`` (the plan recomputed now), a plan that drifted
        since it was prepared cannot be signed: the signer would sign what no longer holds."""
        if current is not None and current.content_hash != change.plan_hash:
            lines = explain_drift(change.plan, current)
            drift = DriftError(
                "refused: the plan no longer holds: " + "; ".join(lines), lines=lines
            )
            self.refuse(change, who.username, authority, str(drift))
            raise drift
        rule = partial(
            policy.check_sign,
            who,
            authority,
            change.preparer,
            change.plan_hash,
            given_hash,
            change.signatures,
        )
        self.guarded(change, who, authority, rule)
        self.store.append(
            change.id,
            "change.signed",
            {
                "authority": authority,
                "plan_hash": change.plan_hash,
                "note": note,
                "authorities": sorted(who.authorities),
                "identity_source": who.source,
            },
            actor=who.username,
        )
        return self.get(change.id)

    def precheck_run(
        self, change: Change, who: Identity, in_window: bool, scheduled: bool = False
    ) -> None:
        self.guarded(
            change,
            who,
            "run",
            partial(policy.check_run, who, change.plan_hash, change.signatures, in_window),
        )

    def start_run(
        self,
        change: Change,
        who: Identity,
        planned: Plan,
        now: datetime,
        *,
        scheduled: bool = False,
        worker: str | None = None,
    ) -> RunGrant:
        in_window = change.window is None or change.window.contains(now)
        emergency = bool(
            self.guarded(
                change,
                who,
                "run",
                partial(policy.check_run, who, change.plan_hash, change.signatures, in_window),
            )
        )
        if planned.content_hash != change.plan_hash:
            lines = explain_drift(change.plan, planned)
            drift = DriftError(
                "refused: the world changed since the plan was approved: " + "; ".join(lines),
                lines=lines,
                approved=change.plan_hash,
                now=planned.content_hash,
            )
            self.refuse(change, who.username, "run", str(drift))
            raise drift
        run_id = new_run_id()
        payload: dict[str, Any] = {"run_id": run_id, "emergency": emergency}
        if worker:
            payload["worker"] = worker
        self.store.append(change.id, "change.ran", payload, actor=who.username)
        return RunGrant(run_id, emergency)

    def schedule(self, change: Change, who: Identity, confirm_manual: bool) -> Change:
        if change.status != "approved":
            raise ApprovalError(
                f"{change.id} is {change.status}, not approved: it cannot be scheduled"
            )
        return change

    def signoff(self, run_id: str, who: Identity, note: str = "") -> str:
        full = self.store.resolve_run(run_id)
        entries = self.store.entries(full)
        if not entries or entries[0].kind != "run.started":
            raise InputError(f"{run_id} is not a run")
        operators = {e.actor for e in entries if e.kind in ("run.started", "run.resumed")}
        signed = [str(e.payload.get("role")) for e in entries if e.kind == "record.signed"]
        finished = any(e.kind == "run.finished" for e in entries)
        try:
            role = policy.signoff_role(who, operators, finished, signed)
        except ApprovalError as exc:
            if finished and who.username not in operators:
                self.store.append(full, "record.refused", {"reason": str(exc)}, actor=who.username)
            raise
        self.store.append(
            full,
            "record.signed",
            {"role": role, "note": note, "authorities": sorted(who.authorities)},
            actor=who.username,
        )
        return role


def run_change(
    engine: Engine,
    book: Changes,
    change: Change,
    who: Identity,
    runbook: Runbook,
    *,
    scheduled: bool = False,
    worker: str | None = None,
) -> RunResult:
    """Run an approved change: the rules first (before any work), then the plan recomputed
    now, which the book compares with the approved one (NetBox decides, when it is the book);
    then the run inside the window, unless it was granted as an emergency."""
    now = engine.clock()
    book.precheck_run(
        change, who, change.window is None or change.window.contains(now), scheduled=scheduled
    )
    planned = engine.plan(runbook)
    grant = book.start_run(change, who, planned, engine.clock(), scheduled=scheduled, worker=worker)
    extra: dict[str, Any] = {
        "change": change.id,
        "emergency": grant.emergency,
        "authorities": {
            "handle": [change.preparer, who.username],
            "review": change.signers(policy.REVIEW),
            "approve": change.signers(policy.APPROVE),
            "emergency": change.signers(policy.EMERGENCY),
        },
    }
    if worker:
        extra["worker"] = worker
    return engine.run(
        runbook,
        plan_hash=change.plan_hash,
        run_id=grant.run_id,
        window=None if grant.emergency else change.window,
        extra=extra,
    )


def explain_drift(approved: dict[str, Any], now: Plan) -> list[str]:
    """What differs between the approved plan and the plan of this moment, step by step."""
    lines: list[str] = []
    old_steps = {s["step"]: s for s in approved.get("steps", [])}
    for step in now.steps:
        old = old_steps.pop(step.step, None)
        new = step.intent()
        if old is None:
            lines.append(f"{step.title}: a new step")
            continue
        if old.get("status") != new["status"]:
            lines.append(f"{step.title}: was {old.get('status')}, now {new['status']}")
        old_diffs = {d["target"]: d for d in old.get("diffs", [])}
        for diff in new["diffs"]:
            before = old_diffs.pop(diff["target"], None)
            if before is None:
                lines.append(f"{step.title}: {diff['target']} now changes")
            elif before != diff:
                changed = _field_drift(before, diff) or "its intended change differs"
                lines.append(f"{step.title}: {diff['target']}: {changed}")
        lines.extend(f"{step.title}: {t} no longer changes" for t in old_diffs)
    lines.extend(f"{s.get('title', name)}: the step is gone" for name, s in old_steps.items())
    if approved.get("params") != now.params:
        lines.append("the parameters differ")
    return lines or ["the plan differs"]


def _field_drift(before: dict[str, Any], after: dict[str, Any]) -> str:
    old = {f["name"]: f for f in before.get("fields", [])}
    parts = []
    for f in after.get("fields", []):
        was = old.get(f["name"])
        if was == f:
            continue
        if was is None or was["before"] != f["before"]:
            parts.append(
                f"{f['name']} was planned from {_short(was['before'] if was else '—')}, "
                f"now from {_short(f['before'])}"
            )
        else:
            parts.append(
                f"{f['name']} was planned to become {_short(was['after'])}, "
                f"now {_short(f['after'])}"
            )
    return "; ".join(parts)


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
