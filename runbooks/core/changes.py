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

import difflib
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from runbooks_rules.ids import new_change_id, new_run_id

from runbooks.core import policy, registry
from runbooks.core.engine import Engine
from runbooks.core.errors import ApprovalError, DriftError, InputError, RunbookError
from runbooks.core.plan import Plan
from runbooks.core.policy import Identity, Signature
from runbooks.core.results import RunResult
from runbooks.core.runbook import Runbook
from runbooks.core.store import RecordStore
from runbooks.core.window import Window

__all__ = [
    "Change",
    "ChangeBook",
    "Changes",
    "RunGrant",
    "drift_message",
    "explain_drift",
    "plan_command",
    "run_change",
]


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

    def precheck_sign(self, change: Change, who: Identity, authority: str, given_hash: str) -> None:
        """Who is acting, before the re-plan a signature needs: refuse (and record) early what
        the rules refuse anyway."""

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
        run_id: str | None = None,
    ) -> RunGrant:
        """Decide, with the plan recomputed now, whether ``who`` may run the change (a server
        judges the window by its own clock, not ``now``); a granted run keeps ``run_id``, the
        id its record was begun under (one is chosen when none is given)."""
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
        """Apply a policy rule; a refusal is recorded before it is raised (under an
        authenticated name only: a name merely claimed is not written anywhere)."""
        try:
            return rule()
        except (ApprovalError, DriftError, RunbookError) as exc:
            if who.source != "local":
                self.refuse(change, who.username, action, str(exc))
            raise

    def precheck_sign(self, change: Change, who: Identity, authority: str, given_hash: str) -> None:
        authenticated(who, authority)
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
        self.precheck_sign(change, who, authority, given_hash)
        if current is not None and current.content_hash != change.plan_hash:
            lines = explain_drift(change.plan, current)
            drift = DriftError(drift_message(change, lines), lines=lines)
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
        run_id: str | None = None,
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
                drift_message(change, lines),
                lines=lines,
                approved=change.plan_hash,
                now=planned.content_hash,
            )
            self.refuse(change, who.username, "run", str(drift))
            raise drift
        run_id = run_id or new_run_id()
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
        authenticated(who, "sign off")
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


def authenticated(who: Identity, action: str) -> None:
    """Signatures and sign-offs bind a person: only an identity a server vouched for (the
    owner of a NetBox token) gives one. Nothing is recorded for a name merely claimed."""
    if who.source == "local":
        raise ApprovalError(
            f"{action} needs an authenticated identity, and {who.username} is only the local "
            "user's name: set RUNBOOKS_NETBOX_URL and RUNBOOKS_NETBOX_TOKEN (NetBox says who "
            "you are)"
        )


def run_change(
    engine: Engine,
    book: Changes,
    change: Change,
    who: Identity,
    runbook: Runbook,
    *,
    scheduled: bool = False,
    worker: str | None = None,
    run_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> RunResult:
    """Run an approved change: the rules first (before any work); then the run's record
    starts, so that from here on a killed run is on record; then the plan recomputed now,
    which the book compares with the approved one (NetBox decides, when it is the book),
    granting the run under the id it was recorded with; then the steps inside the window,
    unless the run was granted as an emergency.

    ``run_id`` continues a run that was begun and killed before it was granted (its re-plan
    and the grant happen again). ``extra`` goes into the run's first entry (a recurring
    schedule names itself and the occurrence there)."""
    now = engine.clock()
    book.precheck_run(
        change, who, change.window is None or change.window.contains(now), scheduled=scheduled
    )
    started: dict[str, Any] = {
        **(extra or {}),
        "change": change.id,
        "authorities": {
            "handle": [change.preparer, who.username],
            "review": change.signers(policy.REVIEW),
            "approve": change.signers(policy.APPROVE),
            "emergency": change.signers(policy.EMERGENCY),
        },
    }
    if worker:
        started["worker"] = worker
    resumed = run_id is not None
    if run_id is None:
        run_id = engine.begin(
            runbook,
            plan_hash=change.plan_hash,
            window=change.window,
            extra=started,
            awaiting_grant=True,
        )
    with engine.holding(run_id):
        if resumed:
            engine.note(run_id, "run.resumed", {"in_flight": "the re-plan", "done": []})
        planned = engine.replan(runbook, run_id)
        try:
            grant = book.start_run(
                change,
                who,
                planned,
                engine.clock(),
                scheduled=scheduled,
                worker=worker,
                run_id=run_id,
            )
        except (ApprovalError, DriftError) as exc:  # NetBox away: stays interrupted
            engine.refuse(run_id, exc)
            raise
        return engine.granted(
            runbook,
            run_id,
            plan_hash=planned.content_hash,
            emergency=grant.emergency,
            window=None if grant.emergency else change.window,
        )


def explain_drift(approved: dict[str, Any], now: Plan) -> list[str]:
    """Each value that drifted between the approved plan and the plan of this moment, as
    ``what: then → now`` (the world as the plan found it then, and as it finds it now)."""
    lines: list[str] = []
    old_steps = {s["step"]: s for s in approved.get("steps", [])}
    for step in now.steps:
        old = old_steps.pop(step.step, None)
        new = step.intent()
        if old is None:
            lines.append(f"{step.title}: a new step")
            continue
        if old.get("status") != new["status"]:
            lines.append(f"{step.title}: {old.get('status')} → {new['status']}")
        old_diffs = {d["target"]: d for d in old.get("diffs", [])}
        for diff in new["diffs"]:
            before = old_diffs.pop(diff["target"], None)
            if before is None:
                lines.append(f"{diff['target']}: no change planned → {_short(diff['summary'])}")
            elif before != diff:
                lines.extend(_value_drift(before, diff))
        lines.extend(f"{t}: {_short(d['summary'])} → already so" for t, d in old_diffs.items())
    lines.extend(f"{s.get('title', name)}: the step is gone" for name, s in old_steps.items())
    if approved.get("params") != now.params:
        lines.append("the parameters differ")
    return lines or ["the plan differs"]


def drift_message(change: Change, lines: list[str], shown: int = 5) -> str:
    """One short line: what drifted, value by value, and the way on."""
    items = lines[:shown] + ([f"and {len(lines) - shown} more"] if len(lines) > shown else [])
    return (
        f"refused: {change.id} no longer matches the world ({'; '.join(items)}); "
        f"plan again: {plan_command(change)}"
    )


def plan_command(change: Change) -> str:
    """The `runbook plan` that prepares the same change anew."""
    words = ["runbook", "plan", change.runbook]
    for name, value in change.params.items():
        if value is None or value == _default(change.runbook, name):
            continue
        text = str(value)
        if isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            text = text.lower()
        words.append(shlex.quote(f"{name}={text}"))
    if change.window is not None:
        words += ["--window-start", "…", "--window-end", "…"]
    return " ".join(words)


def _default(runbook: str, name: str) -> Any:
    """A parameter's default (left out of a command line), when the runbook is known here."""
    try:
        field = registry.get(runbook).Params.model_fields.get(name)
    except RunbookError:
        return None
    if field is None or field.is_required():
        return None
    default = field.get_default(call_default_factory=True)
    return default.model_dump(mode="json") if hasattr(default, "model_dump") else default


def _value_drift(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    target = after["target"]
    if after.get("kind") == "text" or before.get("kind") == "text":
        then, now = str(before.get("before") or ""), str(after.get("before") or "")
        if then != now:
            moved = sum(
                1
                for line in difflib.unified_diff(then.splitlines(), now.splitlines(), lineterm="")
                if line[:1] in "+-" and not line.startswith(("+++", "---"))
            )
            return [f"{target}: the configuration planned against changed ({moved} lines)"]
        return [f"{target}: the intended configuration changed"]
    old = {f["name"]: f for f in before.get("fields", [])}
    out = []
    for f in after.get("fields", []):
        was = old.pop(f["name"], None)
        if was == f:
            continue
        if was is None:
            out.append(f"{target} {f['name']}: unchanged → {_short(f['after'])}")
        elif was["before"] != f["before"]:
            out.append(f"{target} {f['name']}: {_short(was['before'])} → {_short(f['before'])}")
        else:
            out.append(
                f"{target} {f['name']} would become {_short(f['after'])}, "
                f"not {_short(was['after'])}"
            )
    out.extend(f"{target} {name}: {_short(f['after'])} → already so" for name, f in old.items())
    return out or [f"{target}: {_short(after.get('summary', ''))} differs"]


def _short(value: Any, width: int = 40) -> str:
    text = " ".join(str(value).split()) if isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
