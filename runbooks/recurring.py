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
(backup and compliance) runs in every window under its one approval; a plan whose fresh
recomputation differs is not run unreviewed: the occurrence is skipped with the drift and the
way on (a new change), and the next window is tried. A plan that writes is applied once, in the
first window where it still holds: an approval covers one application, and the schedule then
finishes (remediation "only inside a monthly window" is a writing change scheduled on a monthly
rule: the rule gives its run the window).

Without NetBox's change control only: the netbox-runbooks plugin runs a change once
(`runbooks_rules.lifecycle`), so a recurring schedule of a change held in NetBox is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rq import Queue
from runbooks_rules.ids import new_change_id

from runbooks.core import policy
from runbooks.core.changes import Change, ChangeBook, plan_command
from runbooks.core.errors import DriftError, InputError, RunbookError
from runbooks.core.policy import Identity
from runbooks.core.store import RecordStore
from runbooks.core.window import Window
from runbooks.recurrence import Recurrence, ScheduledWindows

log = logging.getLogger(__name__)

__all__ = ["Schedule", "ScheduleBook", "enqueue_next", "occurrence_job", "plan_writes"]

_OCCURRENCE_KINDS = ("schedule.ran", "schedule.skipped")
_END_KINDS = ("schedule.finished", "schedule.cancelled")


def plan_writes(plan: dict[str, Any]) -> bool:
    """Does the approved plan change anything (a step with a diff)?"""
    return any(step.get("diffs") for step in plan.get("steps", []))


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
    from runbooks.scheduling import connect

    window = schedule.recurrence.next_window(now, after=after)
    if window is None:
        return None
    queue = Queue(schedule.queue, connection=connect())
    start_utc = window.start.astimezone(UTC)
    args = (schedule.id, window.start.isoformat(), str(store_path.resolve()))
    options: dict[str, Any] = {
        "job_timeout": int(max(6 * 3600, schedule.recurrence.length.total_seconds() + 3600)),
        "job_id": f"runbooks-{schedule.id}-{start_utc:%Y%m%dT%H%M%S}",
    }
    if start_utc > now:
        queue.enqueue_at(start_utc, occurrence_job, *args, **options)
    else:
        queue.enqueue(occurrence_job, *args, **options)
    return window


def occurrence_job(schedule_id: str, start: str, store_path: str) -> dict[str, Any]:
    """The RQ job of one window of a recurring schedule: run it (or record why not), then
    queue the next window."""
    from runbooks.cli.common import identity_of
    from runbooks.cli.settings import Settings, setup_logging

    s = Settings(Path(store_path))
    try:
        setup_logging(s.store_path.parent / "runbook.log", verbose=False)
        book = ScheduleBook(s.store())
        schedule = book.get(schedule_id)
        window = schedule.recurrence.window_at(datetime.fromisoformat(start))
        if schedule.ended or schedule.handled(window.start):
            return {"schedule": schedule.id, "window": window.to_dict(), "ended": schedule.ended}
        actor = identity_of(s).username
        try:
            return _occurrence(s, book, schedule, window, actor)
        except Exception as exc:  # a failure of ours: on record, and the rule goes on
            failed = {"window": window.to_dict(), "reason": f"failed: {type(exc).__name__}: {exc}"}
            book.note(schedule, "schedule.skipped", failed, actor)
            raise
        finally:
            _queue_next(book, schedule_id, s.store_path, window.start, actor)
    finally:
        s.close()


def _queue_next(
    book: ScheduleBook, schedule_id: str, store_path: Path, after: datetime, actor: str
) -> None:
    schedule = book.get(schedule_id)
    if not schedule.ended and enqueue_next(schedule, store_path, _now(), after) is None:
        done = {"reason": "the rule has no more windows"}
        book.note(schedule, "schedule.finished", done, actor)


def _now() -> datetime:
    return datetime.now(UTC)


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
    try:
        result = run_in_worker(s, schedule.change, schedule.confirmed_by, None, window, extra)
    except RunbookError as exc:
        run_id = _run_of(book.store, schedule.id, window.start)
        if run_id:
            entry["run_id"] = run_id
        entry["reason"] = _drift_reason(book.store, schedule, exc)
        book.note(schedule, "schedule.skipped", entry, actor)
        log.warning("%s: window %s skipped: %s", schedule.id, window, entry["reason"])
        return entry
    entry.update(run_id=result["run_id"], status=result["status"])
    if result.get("error"):
        entry["error"] = result["error"]
    book.note(schedule, "schedule.ran", entry, actor)
    if schedule.writes:
        reason = (
            f"{schedule.change} writes and ran in {window} (run {result['run_id']}, "
            f"{result['status']}): an approval covers one application; plan a new change"
        )
        book.note(schedule, "schedule.finished", {"reason": reason}, actor)
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
