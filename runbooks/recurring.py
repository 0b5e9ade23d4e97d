"""Recurring schedules: an approved change run in every window of a rule (issue 18's
maintenance plan, 系統維護計劃編制).

A schedule is a chain of its own in the record store (``SCH-…``), as tamper-evident as the
changes and runs it leads to:

    schedule.created    the change, its runbook, the rule (RRULE, first window, length, zone),
                        the queue, who scheduled it and whether they confirmed manual steps
    schedule.ran        an occurrence's window and the run it became (run id, status)
    schedule.skipped    an occurrence that did not run, and why (its run id, when it began one)
    schedule.finished   no occurrence comes any more, and why
    schedule.cancelled  who stopped it, and why

The approval is the change's: it is bound to the plan's hash. In each window the worker runs
the change as any scheduled change runs (`scheduling.run_in_worker`): the rules, the run's own
record (naming the schedule and the occurrence), the plan recomputed, which runs only when it is
exactly the approved plan, inside the occurrence's window. So a plan that changes nothing
(backup and compliance), or whose only changes recur (a change every run makes anew, such as
the commit of its backups to the configuration history: `ChangeStep.recurs`), runs in every
window under its one approval; a plan whose fresh
recomputation differs is not run unreviewed: the occurrence is skipped with the drift and the
way on (a new change), and the next window is tried. A plan that writes is applied once, in the
first window where it still holds: an approval covers one application, and the schedule then
finishes (remediation "only inside a monthly window" is a writing change scheduled on a monthly
rule: the rule gives its run the window).

A window is claimed in Redis before anything is done in it (SET NX on the schedule and the
window's start, kept longer than the window), so a job delivered twice, or two workers, give a
window one run and one entry. The next window is queued before this one runs (the job ids are
the schedule's and the window's, so queuing one again is harmless), and a worker starting
queues the next window of every open schedule of its store that has none queued: a worker
killed mid-window, or a Redis that lost its data, does not end a schedule silently. A window's
outcome is recorded as soon as its run returns, before anything is cleaned up after it.

Without NetBox's change control only: the netbox-runbooks plugin runs a change once
(`runbooks_rules.lifecycle`), so a recurring schedule of a change held in NetBox is refused.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from runbooks_rules.ids import new_change_id

from runbooks.core import policy
from runbooks.core.changes import Change, ChangeBook, plan_command
from runbooks.core.errors import DriftError, InputError, RunbookError
from runbooks.core.policy import Identity
from runbooks.core.steps import ChangeStep
from runbooks.core.store import RecordStore
from runbooks.core.window import Window
from runbooks.recurrence import Recurrence, ScheduledWindows

log = logging.getLogger(__name__)

__all__ = [
    "Schedule",
    "ScheduleBook",
    "enqueue_next",
    "occurrence_job",
    "plan_writes",
    "requeue_open",
]

_OCCURRENCE_KINDS = ("schedule.ran", "schedule.skipped")
_END_KINDS = ("schedule.finished", "schedule.cancelled")
CLAIM_PREFIX = "runbooks:window:"


def recurring_steps(plan: dict[str, Any]) -> list[str]:
    """The approved plan's change steps with diffs that recur (`ChangeStep.recurs`: a change
    every run makes anew, such as a record of the run), as its runbook declares them."""
    from runbooks.core import registry

    try:
        steps = {s.name: s for s in registry.get(str(plan.get("runbook"))).steps()}
    except RunbookError:  # a runbook no longer installed: none of its changes recurs
        return []
    return [
        str(step["step"])
        for step in plan.get("steps", [])
        if step.get("diffs")
        and isinstance(found := steps.get(str(step.get("step"))), ChangeStep)
        and found.recurs
    ]


def plan_writes(plan: dict[str, Any]) -> bool:
    """Does the approved plan change anything (a step with a diff) that does not recur?

    A plan whose only changes recur runs in every window of its schedule. That gives a
    recurring step no way around review: its diffs stay in the plan and its hash, and each
    window runs only when its fresh plan is exactly the approved one, so a step that writes
    to a device or NetBox (applied, its diffs are gone from the next plan) is refused with
    the drift in the next window, declared recurring or not."""
    recurring = set(recurring_steps(plan))
    return any(
        step.get("diffs") and step.get("step") not in recurring for step in plan.get("steps", [])
    )


@dataclass(frozen=True)
class Schedule:
    id: str
    change: str
    runbook: str
    recurrence: Recurrence
    queue: str
    created_by: str
    confirmed_by: str | None
    writes: bool
    occurrences: tuple[dict[str, Any], ...] = ()  # schedule.ran / skipped payloads, in order
    ended: str = ""  # why no occurrence comes any more (finished or cancelled)

    def handled(self, start: datetime) -> bool:
        return any(o["window"]["start"] == start.isoformat() for o in self.occurrences)

    def windows(self) -> ScheduledWindows:
        return ScheduledWindows(
            self.id, self.change, self.runbook, self.recurrence, self.created_by
        )


class ScheduleBook:
    """The recurring schedules of the local record store."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    def create(
        self,
        change: Change,
        who: Identity,
        recurrence: Recurrence,
        queue: str,
        confirmed_by: str | None,
    ) -> Schedule:
        if change.window is not None:
            raise InputError(
                f"{change.id} was planned for one window ({change.window}); a recurring "
                "schedule gives each run its window: plan it without --window-start"
            )
        schedule_id = "SCH-" + new_change_id().removeprefix("CHG-")
        self.store.append(
            schedule_id,
            "schedule.created",
            {
                "change": change.id,
                "runbook": change.runbook,
                "plan_hash": change.plan_hash,
                "writes": plan_writes(change.plan),
                "recurring_steps": recurring_steps(change.plan),
                "queue": queue,
                "confirmed_by": confirmed_by,
                **recurrence.to_dict(),
            },
            actor=who.username,
        )
        return self.get(schedule_id)

    def get(self, schedule_id: str) -> Schedule:
        full = self.store.resolve_run(schedule_id)
        entries = self.store.entries(full)
        if not entries or entries[0].kind != "schedule.created":
            raise InputError(f"{schedule_id!r} is not a schedule")
        head = entries[0].payload
        ended = [e for e in entries if e.kind in _END_KINDS]
        return Schedule(
            full,
            head["change"],
            head["runbook"],
            Recurrence.from_dict(head),
            head["queue"],
            entries[0].actor,
            head.get("confirmed_by"),
            bool(head.get("writes")),
            tuple({"kind": e.kind, **e.payload} for e in entries if e.kind in _OCCURRENCE_KINDS),
            str(ended[-1].payload.get("reason", "")) if ended else "",
        )

    def list(self) -> list[Schedule]:
        ids = [e.run_id for e in self.store.entries() if e.kind == "schedule.created"]
        return [self.get(i) for i in ids]

    def note(self, schedule: Schedule, kind: str, payload: dict[str, Any], actor: str) -> None:
        self.store.append(schedule.id, kind, payload, actor=actor)

    def cancel(self, schedule: Schedule, who: Identity, reason: str) -> None:
        if not who.holds(policy.HANDLE):
            raise InputError(f"{who.username} cannot cancel a schedule: needs handle")
        if schedule.ended:
            raise InputError(f"{schedule.id} has already ended: {schedule.ended}")
        self.note(schedule, "schedule.cancelled", {"reason": reason}, who.username)


def enqueue_next(
    schedule: Schedule, store_path: Path, now: datetime, after: datetime | None = None
) -> Window | None:
    """Queue the schedule's next window (the first not over at ``now``, after ``after``) on
    its queue, for the window's start; None when the rule has no more."""
    window = schedule.recurrence.next_window(now, after=after)
    if window is None:
        return None
    _enqueue(schedule, store_path, window, now)
    return window


def _job_id(schedule: Schedule, window: Window) -> str:
    return f"runbooks-{schedule.id}-{window.start.astimezone(UTC):%Y%m%dT%H%M%S}"


def _enqueue(schedule: Schedule, store_path: Path, window: Window, now: datetime) -> None:
    """One window's job, on the schedule's queue for the window's start (now if it began);
    its id is the schedule's and the window's, so queuing it again replaces it."""
    from runbooks.scheduling import connect

    queue = Queue(schedule.queue, connection=connect())
    start_utc = window.start.astimezone(UTC)
    args = (schedule.id, window.start.isoformat(), str(store_path.resolve()))
    options: dict[str, Any] = {
        "job_timeout": int(max(6 * 3600, schedule.recurrence.length.total_seconds() + 3600)),
        "job_id": _job_id(schedule, window),
    }
    if start_utc > now:
        queue.enqueue_at(start_utc, occurrence_job, *args, **options)
    else:
        queue.enqueue(occurrence_job, *args, **options)


def _claim_key(schedule: Schedule, window: Window) -> str:
    return f"{CLAIM_PREFIX}{schedule.id}:{window.start.astimezone(UTC):%Y%m%dT%H%M%S}"


def claim(conn: redis.Redis, schedule: Schedule, window: Window, holder: str) -> bool:
    """Take the window for this job, atomically (SET NX), for longer than the window lasts:
    a second delivery of its job, or another worker, finds it taken and does nothing."""
    keep = int(schedule.recurrence.length.total_seconds() + 86400)
    return bool(conn.set(_claim_key(schedule, window), holder, nx=True, ex=keep))


def requeue_open(store_path: Path, queue: str, now: datetime | None = None) -> list[str]:
    """At a worker's start: queue the next window of every open schedule of the store on
    ``queue`` that has no window queued (its worker was killed, or Redis lost its data);
    the window's job ids queued, one per schedule that needed one."""
    from runbooks.scheduling import connect

    if not store_path.exists():
        return []
    now = now or _now()
    conn = connect()
    q = Queue(queue, connection=conn)
    pending = set(q.job_ids) | set(q.scheduled_job_registry.get_job_ids())
    pending |= set(q.started_job_registry.get_job_ids())
    queued = []
    with RecordStore(store_path) as store:
        for schedule in ScheduleBook(store).list():
            if schedule.ended or schedule.queue != queue:
                continue
            if any(job.startswith(f"runbooks-{schedule.id}-") for job in pending):
                continue
            window = schedule.recurrence.next_window(now)
            while window is not None and (
                schedule.handled(window.start) or conn.exists(_claim_key(schedule, window))
            ):
                window = schedule.recurrence.next_window(now, after=window.start)
            if window is None:
                continue
            _enqueue(schedule, store_path, window, now)
            log.info("%s: window %s queued again at the worker's start", schedule.id, window)
            queued.append(_job_id(schedule, window))
    return queued


def occurrence_job(schedule_id: str, start: str, store_path: str) -> dict[str, Any]:
    """The RQ job of one window of a recurring schedule: claim the window, queue the next
    one, then run this one (or record why not)."""
    from runbooks.cli.common import identity_of
    from runbooks.cli.settings import Settings, setup_logging
    from runbooks.scheduling import connect

    s = Settings(Path(store_path))
    try:
        setup_logging(s.store_path.parent / "runbook.log", verbose=False)
        book = ScheduleBook(s.store())
        schedule = book.get(schedule_id)
        window = schedule.recurrence.window_at(datetime.fromisoformat(start))
        done = {"schedule": schedule.id, "window": window.to_dict()}
        if schedule.ended or schedule.handled(window.start):
            return {**done, "ended": schedule.ended}
        actor = identity_of(s).username
        if not claim(connect(), schedule, window, f"{actor}@{socket.gethostname()}:{os.getpid()}"):
            log.info("%s: window %s is another job's", schedule.id, window)
            return {**done, "ended": schedule.ended, "claimed": "by another job"}
        # the next window first: this one's worker may die, or its run fail, part-way
        following = enqueue_next(schedule, s.store_path, _now(), after=window.start)
        try:
            return _occurrence(s, book, schedule, window, actor)
        finally:
            if book.get(schedule_id).ended:  # a writing plan ran, or it was cancelled
                _drop(schedule, following)
            elif following is None:
                done = {"reason": "the rule has no more windows"}
                book.note(schedule, "schedule.finished", done, actor)
    finally:
        s.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _drop(schedule: Schedule, window: Window | None) -> None:
    """A window's queued job, gone (its schedule ended before it)."""
    from runbooks.scheduling import connect

    if window is not None:
        job = Queue(schedule.queue, connection=connect()).fetch_job(_job_id(schedule, window))
        if job is not None:
            job.delete()


def _occurrence(
    s: Any, book: ScheduleBook, schedule: Schedule, window: Window, actor: str
) -> dict[str, Any]:
    from runbooks.scheduling import run_in_worker

    entry: dict[str, Any] = {"window": window.to_dict()}
    if _now() >= window.end:
        entry["reason"] = "missed: no worker took it up before the window closed"
        book.note(schedule, "schedule.skipped", entry, actor)
        return entry
    extra = {"schedule": schedule.id, "occurrence": window.start.isoformat()}
    ran: list[dict[str, Any]] = []

    def on_run(result: dict[str, Any]) -> None:
        """The run returned: on record at once, before its locks are released."""
        entry.update(run_id=result["run_id"], status=result["status"])
        if result.get("error"):
            entry["error"] = result["error"]
        book.note(schedule, "schedule.ran", entry, actor)
        ran.append(entry)
        if schedule.writes:
            reason = (
                f"{schedule.change} writes and ran in {window} (run {result['run_id']}, "
                f"{result['status']}): an approval covers one application; plan a new change"
            )
            book.note(schedule, "schedule.finished", {"reason": reason}, actor)

    try:
        run_in_worker(s, schedule.change, schedule.confirmed_by, None, window, extra, on_run)
    except RunbookError as exc:
        if ran:  # after the run, cleaning up: the run is on record
            log.warning("%s: window %s ran, then: %s", schedule.id, window, exc)
            raise
        run_id = _run_of(book.store, schedule.id, window.start)
        if run_id:
            entry["run_id"] = run_id
        entry["reason"] = _drift_reason(book.store, schedule, exc)
        book.note(schedule, "schedule.skipped", entry, actor)
        log.warning("%s: window %s skipped: %s", schedule.id, window, entry["reason"])
        return entry
    except Exception as exc:  # a failure of ours: on record, and the rule goes on
        if ran:
            raise
        run_id = _run_of(book.store, schedule.id, window.start)
        if run_id:
            entry["run_id"] = run_id
        entry["reason"] = f"failed: {type(exc).__name__}: {exc}"
        book.note(schedule, "schedule.skipped", entry, actor)
        if run_id and schedule.writes:  # it may have applied part of the change
            reason = (
                f"{schedule.change} writes and its run {run_id} began in {window}, then "
                f"failed: an approval covers one application; plan a new change"
            )
            book.note(schedule, "schedule.finished", {"reason": reason}, actor)
        raise
    return entry


def _drift_reason(store: RecordStore, schedule: Schedule, exc: RunbookError) -> str:
    """Why a window did not run; for a plan that changed, what changed and the way on."""
    if not isinstance(exc, DriftError):
        return str(exc)
    lines = [str(line) for line in exc.context.get("lines") or []] or ["the plan differs"]
    shown = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
    again = plan_command(ChangeBook(store).get(schedule.change))
    return (
        f"the plan changed since it was approved ({shown}); it needs a new approval: "
        f"plan it again ({again}), have it reviewed and approved, and schedule that change"
    )


def _run_of(store: RecordStore, schedule_id: str, start: datetime) -> str | None:
    """The run a refused occurrence began (its first entry names the schedule and window)."""
    for run in store.runs(text=schedule_id):
        first = store.entries(run["run_id"])[0].payload
        if first.get("schedule") == schedule_id and first.get("occurrence") == start.isoformat():
            return str(run["run_id"])
    return None


def coming(
    schedules: list[Schedule], since: datetime, until: datetime
) -> list[tuple[Schedule, Window]]:
    """The windows of the schedules still running between ``since`` and ``until``, in order."""
    found = [
        (sch, window)
        for sch in schedules
        if not sch.ended
        for window in sch.recurrence.windows(since, until)
        if not sch.handled(window.start)
    ]
    return sorted(found, key=lambda item: (item[1].start, item[0].id))


def period(days: float) -> timedelta:
    if days <= 0:
        raise InputError(f"--days {days:g}: give a positive number of days")
    return timedelta(days=days)
