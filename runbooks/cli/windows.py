"""Scheduling commands: schedule (once, or on a recurring rule), unschedule, windows, worker."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from runbooks import config
from runbooks.cli.common import JsonOpt, book, identity, settings
from runbooks.cli.output import emit_json, err, out
from runbooks.core.errors import InputError
from runbooks.core.window import Window, parse_time

QueueOpt = Annotated[str, typer.Option("--queue", help="The RQ queue.")]


def schedule(
    ctx: typer.Context,
    change_id: Annotated[str, typer.Argument(metavar="CHANGE")],
    queue: QueueOpt = "runbooks",
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm the manual steps now, as yourself (recorded).")
    ] = False,
    rule: Annotated[
        str | None,
        typer.Option(
            "--rule",
            help="A recurring schedule: an RRULE (RFC 5545) in the department's time zone, "
            "e.g. 'FREQ=DAILY;BYHOUR=2;BYMINUTE=0' (02:00 local every night) or "
            "'FREQ=MONTHLY;BYDAY=1SA;BYHOUR=22;BYMINUTE=0'.",
        ),
    ] = None,
    length: Annotated[
        str | None, typer.Option("--length", help="Each window's length (with --rule): 4h, 90m.")
    ] = None,
    first: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="The rule starts here (with --rule; local time, default today 00:00): "
            "its first window is the rule's first time at or after it.",
        ),
    ] = None,
) -> None:
    """Put an approved change on the queue (RQ on Redis) for its window's start; with --rule,
    in every window of a recurring rule.

    Each window of a rule is a scheduled run of its own, with its own record naming the
    schedule. The approval is bound to the plan's hash: a window runs only when the plan
    recomputed then is exactly the approved one. A plan that changes nothing (backup,
    compliance), or whose only changes recur (a record of each run, such as
    network-maintenance's history commit), runs in every window under its one approval; a
    window whose fresh plan differs is skipped, recorded with the drift (it needs a new change
    and approval), and the next window is tried. A plan that writes is applied once, in the
    first window where it still holds, and the schedule then ends. The change must be planned
    without a window of its own (the rule gives each run its window), and kept in the local
    store (NetBox's change control runs a change once). `runbook windows` lists the coming windows;
    `runbook unschedule` stops a rule."""
    from runbooks import scheduling

    if rule is None:
        if length is not None or first is not None:
            raise InputError("--length and --from go with --rule")
        _schedule_once(ctx, change_id, queue, yes)
        return
    if length is None:
        raise InputError("a recurring schedule needs --length (each window's length, e.g. 4h)")
    from runbooks.recurrence import Recurrence, parse_length
    from runbooks.recurring import ScheduleBook, enqueue_next

    zone = config.time_zone()
    now = datetime.now(UTC)
    start = parse_time(first, zone) if first else None
    recurrence = Recurrence.parse(rule, parse_length(length), zone, now, start)
    if settings(ctx).plugin() is not None:
        raise InputError(
            "a recurring schedule needs the local change book: NetBox's change control "
            "(netbox-runbooks) runs a change once"
        )
    scheduling.connect()  # Redis answers before anything is recorded
    changes = book(ctx)
    who = identity(ctx)
    change = changes.schedule(changes.get(change_id), who, confirm_manual=yes)
    store_path = settings(ctx).store_path
    schedules = ScheduleBook(settings(ctx).store())
    created = schedules.create(change, who, recurrence, queue, who.username if yes else None)
    window = enqueue_next(created, store_path, now)
    out.print(
        f"scheduled {change.id} as {created.id}: {escape(recurrence.rule)} in {zone}, each "
        f"window {recurrence.length}; next {_span(window, zone) if window else 'none'}; "
        "a `runbook worker` runs each window"
    )


def _schedule_once(ctx: typer.Context, change_id: str, queue: str, yes: bool) -> None:
    from runbooks import scheduling

    changes = book(ctx)
    who = identity(ctx)
    change = changes.schedule(changes.get(change_id), who, confirm_manual=yes)
    start = change.window.start if change.window else None
    api = settings(ctx).plugin()
    if api is None:  # the job names this machine's store
        job = scheduling.schedule(
            change.id, start, settings(ctx).store_path, queue, who.username if yes else None
        )
    else:  # NetBox holds who scheduled it and what they confirmed: any worker can run it
        job = scheduling.schedule(change.id, start, None, queue, None, api.settings.url)
    zone = config.time_zone()
    when = f"at {start.astimezone(zone).isoformat(timespec='seconds')} ({zone})" if start else "now"
    out.print(f"scheduled {change.id} {when} (job {job}); a `runbook worker` will run it")


def unschedule(
    ctx: typer.Context,
    schedule_id: Annotated[str, typer.Argument(metavar="SCHEDULE")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "cancelled",
) -> None:
    """Stop a recurring schedule: no later window runs (the record keeps it, and who stopped it)."""
    from runbooks.recurring import ScheduleBook

    schedules = ScheduleBook(settings(ctx).store())
    found = schedules.get(schedule_id)
    schedules.cancel(found, identity(ctx), reason)
    out.print(f"{found.id} stopped: no later window of {found.change} runs")


def windows(
    ctx: typer.Context,
    days: Annotated[float, typer.Option("--days", help="How far ahead (days).")] = 14,
    ics: Annotated[
        Path | None,
        typer.Option("--ics", help="Also write the schedules as an iCalendar file (RRULEs)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """The coming maintenance windows of the recurring schedules, in the department's time
    zone; --ics writes them for the department's calendar (one event per schedule, its RRULE
    and time zone as they are)."""
    from runbooks.recurrence import calendar
    from runbooks.recurring import ScheduleBook, coming, period

    zone = config.time_zone()
    now = datetime.now(UTC)
    until = now + period(days)
    live = [s for s in ScheduleBook(settings(ctx).store()).list() if not s.ended]
    rows = coming(live, now, until)
    if ics is not None:
        ics.write_bytes(calendar([s.windows() for s in live], now))
        err.print(f"{len(live)} schedule(s) written to {ics}")
    if json_out:
        emit_json([_row(s.id, s.change, s.runbook, s.recurrence.rule, w, zone) for s, w in rows])
        return
    if not rows:
        out.print(f"no window in the next {days:g} days ({zone})")
    for sched, window in rows:
        out.print(
            f"{_span(window, zone)}  [bold]{escape(sched.runbook)}[/] {sched.change} "
            f"[dim]{sched.id} {escape(sched.recurrence.rule)}[/]"
        )


def _span(window: Window, zone: tzinfo) -> str:
    start, end = window.start.astimezone(zone), window.end.astimezone(zone)
    return f"{start:%Y-%m-%d %H:%M:%S%z} to {end:%Y-%m-%d %H:%M:%S%z} ({zone})"


def _row(
    schedule: str, change: str, runbook: str, rule: str, window: Window, zone: tzinfo
) -> dict[str, Any]:
    return {
        "schedule": schedule,
        "change": change,
        "runbook": runbook,
        "rule": rule,
        "start": window.start.astimezone(zone).isoformat(),
        "end": window.end.astimezone(zone).isoformat(),
        "time_zone": str(zone),
    }


def worker(
    queue: QueueOpt = "runbooks",
    burst: Annotated[bool, typer.Option("--burst", help="Stop when the queue is empty.")] = False,
) -> None:
    """Run due changes and windows from the queue, as the owner of this worker's NetBox token."""
    from runbooks import scheduling

    scheduling.work(queue, burst)


def register(app: typer.Typer) -> None:
    app.command()(schedule)
    app.command()(unschedule)
    app.command()(windows)
    app.command()(worker)
