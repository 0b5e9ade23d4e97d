"""Change control commands: changes, review, approve, signoff."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown
from rich.markup import escape

from runbooks import config
from runbooks.cli.common import (
    JsonOpt,
    ParamsArg,
    book,
    identity,
    make_engine,
    parse_params,
    rebuild_runbook,
    settings,
)
from runbooks.cli.output import emit_json, err, out
from runbooks.core import policy
from runbooks.core.changes import Change, Changes
from runbooks.core.plan import Plan
from runbooks.core.store import RecordStore
from runbooks.report import review as review_doc

HashOpt = Annotated[
    str | None, typer.Option("--hash", help="The plan hash you read in the review (≥ 12 chars).")
]
NoteOpt = Annotated[str, typer.Option("--note", help="A note kept with the signature.")]


def _replan(ctx: typer.Context, change: Change, actor: str, params: list[str] | None) -> Plan:
    """The plan of this moment, to refuse signing a plan that no longer holds."""
    runbook = rebuild_runbook(change.runbook, change.params, parse_params(params))
    return make_engine(ctx, actor, quiet=True).plan(runbook)


def changes(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List changes, newest first, with their status (``interrupted`` when this machine holds
    a run of it that was killed: `runbook resume <run>` or `runbook abandon <run>`)."""
    rows = book(ctx).list()
    stopped = interrupted_runs(settings(ctx).store())
    rows = [
        replace(c, state="interrupted", refusal=f"run {stopped[c.id]} was interrupted")
        if c.id in stopped
        else c
        for c in rows
    ]
    if json_out:
        emit_json(
            [
                {
                    "id": c.id,
                    "runbook": c.runbook,
                    "status": c.status,
                    "preparer": c.preparer,
                    "created": c.created,
                    "hash": c.plan_hash,
                    "window": c.window.to_dict() if c.window else None,
                    "url": c.url or None,
                    "refusal": c.refusal or None,
                }
                for c in rows
            ]
        )
        return
    zone = config.time_zone()
    for c in rows:
        out.print(
            f"[bold]{c.id}[/] {c.status:<9} {escape(c.runbook):<20} by {escape(c.preparer)} "
            f"{_local(c.created, zone)} [dim]{c.plan_hash[:12]}[/]"
            + (f" [dim]{escape(c.url)}[/]" if c.url else "")
        )


def _local(ts: str, zone: tzinfo) -> str:
    """A stored time stamp (UTC when it names no offset) in ``zone``, to the second."""
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return ts[:19]
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).isoformat(timespec="seconds")


def interrupted_runs(store: RecordStore) -> dict[str, str]:
    """change id -> its run that this machine began and no process holds any more."""
    return {
        str(r["change"]): str(r["run_id"])
        for r in store.runs()
        if r.get("change") and r["status"] == "interrupted"
    }


def review(
    ctx: typer.Context,
    change_id: Annotated[str, typer.Argument(metavar="CHANGE")],
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML page here.")] = None,
    accept: Annotated[
        bool, typer.Option("--accept", help="Sign as reviewer (needs --hash).")
    ] = False,
    given_hash: HashOpt = None,
    note: NoteOpt = "",
    params: ParamsArg = None,
) -> None:
    """Render the review document of a change; with --accept, sign it as its reviewer."""
    changes = book(ctx)
    change = changes.get(change_id)
    if html is not None:
        html.write_text(review_doc.html(change, config.time_zone()), encoding="utf-8")
        err.print(f"review page written to {html}")
    else:
        out.print(Markdown(review_doc.markdown(change, config.time_zone())))
    if change.url:
        err.print(f"in NetBox: {change.url}")
    if accept:
        _sign(ctx, changes, change, policy.REVIEW, given_hash, note, params)


def approve(
    ctx: typer.Context,
    change_id: Annotated[str, typer.Argument(metavar="CHANGE")],
    given_hash: HashOpt = None,
    emergency: Annotated[
        bool, typer.Option("--emergency", help="The extra approval for a run outside the window.")
    ] = False,
    note: NoteOpt = "",
    params: ParamsArg = None,
) -> None:
    """Approve a reviewed change, naming its plan hash (the plan is recomputed first)."""
    changes = book(ctx)
    authority = policy.EMERGENCY if emergency else policy.APPROVE
    _sign(ctx, changes, changes.get(change_id), authority, given_hash, note, params)


def _sign(
    ctx: typer.Context,
    changes: Changes,
    change: Change,
    authority: str,
    given_hash: str | None,
    note: str,
    params: list[str] | None,
) -> None:
    """Sign after recomputing the plan: nobody signs a plan that no longer holds. Who is
    acting is checked first (and a refusal recorded), before the re-plan reads anything."""
    who = identity(ctx)
    changes.precheck_sign(change, who, authority, given_hash or "")
    current = _replan(ctx, change, who.username, params)
    change = changes.sign(change, who, authority, given_hash or "", note, current)
    kind = {policy.REVIEW: "reviewed", policy.EMERGENCY: "emergency approval"}.get(
        authority, "approved"
    )
    out.print(f"[green]{kind}[/] by {escape(who.username)} (hash {change.plan_hash[:12]})")


def signoff(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    note: NoteOpt = "",
) -> None:
    """Sign a finished run's record: as its responsible person (the operator) or supervisor."""
    who = identity(ctx)
    role = book(ctx).signoff(run_id, who, note)
    out.print(f"[green]signed[/] as {role}: {escape(who.username)}")


def register(app: typer.Typer) -> None:
    from runbooks.cli import windows  # schedule, unschedule, windows, worker

    windows.register(app)
    app.command()(changes)
    app.command()(review)
    app.command()(approve)
    app.command()(signoff)
