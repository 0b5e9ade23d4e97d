"""`runbook incident`: a fault reported, its red-line clock, the runs that triaged it, its
recovery and the two signatures that close it. Every command that touches an incident prints
its clock line; so do `plan`, `run`, `resume`, `review`, `approve` and `records show/export`
of a run or change whose parameters name one (``incident=INC-7``), on stderr."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from runbooks import config
from runbooks.cli.common import identity, parse_params, settings
from runbooks.cli.output import emit_json, err, out
from runbooks.cli.settings import current_actor
from runbooks.config import netbox_settings
from runbooks.core import incidents as core
from runbooks.core import policy
from runbooks.core.errors import ConnectError, InputError, RunbookError
from runbooks.core.incidents import KINDS, PARAM, Incident, IncidentBook, Incidents, Reading
from runbooks.core.policy import Identity
from runbooks.core.window import parse_time

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
IncidentArg = Annotated[str, typer.Argument(metavar="N", help="The incident: 7 or INC-7.")]
NoteOpt = Annotated[str, typer.Option("--note", help="A note kept in the record.")]

_STYLE = {
    core.OK: "green",
    core.WARN_50: "yellow",
    core.WARN_90: "bold red",
    core.CROSSED: "bold white on red",
}


def book(ctx: typer.Context) -> Incidents:
    """Where incidents are kept: the local record store (NetBox-backed: not yet)."""
    return IncidentBook(settings(ctx).store(), zone=config.time_zone())


def styled(reading: Reading) -> str:
    zone = config.time_zone()
    return f"[{_STYLE[reading.alarm]}]{escape(reading.line(zone))}[/]"


def _show_line(incidents: Incidents, incident: Incident, to_err: bool = False) -> None:
    (err if to_err else out).print(styled(incidents.reading(incident, config.time_zone())))


def handler(ctx: typer.Context) -> Identity:
    """Who opens or recovers an incident: NetBox's answer; when NetBox is configured but does
    not answer (the outage may be the incident), the local user's name, recorded as
    unverified. Signing never falls back (`close` asks NetBox)."""
    try:
        return identity(ctx)
    except ConnectError as exc:
        who = Identity(current_actor(), frozenset({policy.HANDLE}), source=core.UNVERIFIED)
        err.print(
            f"[yellow]{escape(str(exc))}: recorded as {escape(who.username)}, "
            f"{core.UNVERIFIED.split(':')[0]}[/]"
        )
        return who


def _when(text: str) -> Any:
    """A time as the command line gives it: now, -40m, ISO (without an offset: in the
    department's time zone)."""
    return parse_time(text, config.time_zone())


@app.command("open")
def open_incident(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="The red line whose budget applies: network, application (2 h), backbone "
            "(4 h), datacentre (2 h), or virus (counted: more than 3 a year).",
        ),
    ],
    reporter: Annotated[str, typer.Option("--reporter", help="Who reported the fault.")],
    affected: Annotated[
        list[str],
        typer.Option(
            "--affected",
            help="What the fault affects: NetBox objects by name (device, circuit, "
            "application) or free text; repeat it or separate with commas.",
        ),
    ],
    reported_at: Annotated[
        str,
        typer.Option(
            "--reported-at",
            help="When it was reported: now, -40m, or ISO 8601 (without an offset: in the "
            "time_zone setting). The budget runs from here.",
        ),
    ] = "now",
    summary: Annotated[str, typer.Option("--summary", help="What was reported.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """Open an incident when a fault is reported: its red-line clock starts at the report."""
    if kind not in KINDS:
        raise InputError(f"unknown incident kind {kind!r} (known: {', '.join(KINDS)})")
    things = [part.strip() for item in affected for part in item.split(",") if part.strip()]
    when = _when(reported_at)
    who = handler(ctx)
    incidents = book(ctx)
    objects = netbox_objects(things)
    incident = incidents.open(who, kind, reporter, things, when, summary, objects)
    if json_out:
        _emit(incidents, incident)
        return
    out.print(f"opened [bold]{incident.id}[/]: {escape(KINDS[kind])}")
    _show_line(incidents, incident)


@app.command("list")
def list_incidents(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Closed incidents too.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List incidents, newest first, each with its clock (open and recovered ones; --all)."""
    incidents = book(ctx)
    shown = [i for i in incidents.all() if all_ or i.status != "closed"]
    zone = config.time_zone()
    if json_out:
        emit_json([core.record(incidents.reading(i, zone), incidents.runs(i)) for i in shown])
        return
    if not shown:
        out.print("no incidents" + ("" if all_ else " open (--all shows closed ones)"))
        return
    table = Table("incident", "kind", "status", "reported", "affected", "clock", box=None)
    for i in shown:
        reading = incidents.reading(i, zone)
        table.add_row(
            i.id,
            i.kind,
            i.status,
            core.local_time(i.reported_at, zone),
            escape(", ".join(i.affected)),
            f"[{_STYLE[reading.alarm]}]{escape(reading.short())}[/]",
        )
    out.print(table)


@app.command()
def show(ctx: typer.Context, number: IncidentArg, json_out: JsonOpt = False) -> None:
    """Show an incident: who reported what and when, the clock, the runs it collected, the
    recovery and the signatures."""
    incidents = book(ctx)
    incident = incidents.get(number)
    if json_out:
        _emit(incidents, incident)
        return
    zone = config.time_zone()
    i = incident
    out.print(f"[bold]{i.id}[/] {i.kind}: {escape(KINDS[i.kind])} — {i.status}")
    out.print(f"  reported by {escape(i.reporter)} at {core.local_time(i.reported_at, zone)}")
    out.print(f"  affected: {escape(i.affected_text())}")
    if i.summary:
        out.print(f"  summary: {escape(i.summary)}")
    out.print(
        f"  opened by {escape(i.opened_by)}{_vouched(i.opened_source)} at "
        f"{core.local_time(i.opened_at, zone)}"
    )
    if i.recovered_at is not None:
        note = f" ({escape(i.recovery_note)})" if i.recovery_note else ""
        out.print(
            f"  recovered at {core.local_time(i.recovered_at, zone)} by "
            f"{escape(i.recovered_by)}{_vouched(i.recovered_source)}{note}"
        )
    out.print("  " + styled(incidents.reading(i, zone)))
    for run in incidents.runs(i):
        out.print(
            f"  {run['kind']} [bold]{run['id']}[/] {escape(str(run['runbook']))} by "
            f"{escape(run['actor'])} {run['status'] or ''} [dim]({run['how']})[/]"
        )
    for s in i.signatures:
        out.print(f"  signed as {s.authority} by {escape(s.actor)} at {_local(s.at)}")


@app.command()
def attach(
    ctx: typer.Context,
    number: IncidentArg,
    run_id: Annotated[
        str, typer.Argument(metavar="RUN", help="A run or change (a unique prefix is enough).")
    ],
) -> None:
    """Collect a triage run (or change) for the incident. Runs whose parameters name the
    incident (incident=INC-7) are collected without this."""
    incidents = book(ctx)
    incident = incidents.attach(incidents.get(number), identity(ctx), run_id)
    out.print(f"{incident.id} collects {incident.attached[-1]}")
    _show_line(incidents, incident)


@app.command()
def recover(
    ctx: typer.Context,
    number: IncidentArg,
    at: Annotated[
        str,
        typer.Option(
            "--at", help="When the service came back: now, -10m, or ISO 8601 (as --reported-at)."
        ),
    ] = "now",
    note: NoteOpt = "",
) -> None:
    """The service is back: the recovery time is fixed and the clock stops."""
    incidents = book(ctx)
    incident = incidents.recover(incidents.get(number), handler(ctx), _when(at), note)
    _show_line(incidents, incident)


@app.command()
def close(ctx: typer.Context, number: IncidentArg, note: NoteOpt = "") -> None:
    """Sign a recovered incident's record: the responsible person (one who handled it) first,
    then a supervisor who did not handle it; the second signature closes it."""
    incidents = book(ctx)
    who = identity(ctx)
    role = incidents.sign(incidents.get(number), who, note)
    incident = incidents.get(number)
    out.print(f"[green]signed[/] {incident.id} as {role}: {escape(who.username)}")
    if incident.status == "closed":
        out.print(f"{incident.id} is closed")
    _show_line(incidents, incident)


@app.command()
def export(
    ctx: typer.Context,
    number: IncidentArg,
    fmt: Annotated[
        str, typer.Option("--format", help="md (the incident's sheet) or jsonl (verifiable)")
    ] = "md",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File; stdout if omitted.")
    ] = None,
) -> None:
    """Export an incident's record: its sheet in Markdown, or its hash-chained entries."""
    if fmt not in ("md", "jsonl"):
        raise InputError(f"unknown export format {fmt!r} (known: md, jsonl)")
    incidents = book(ctx)
    incident = incidents.get(number)
    store = settings(ctx).store()
    if fmt == "jsonl":
        from runbooks.core.store import canonical

        text = "".join(canonical(e.to_dict()) + "\n" for e in store.entries(incident.id))
    else:
        from runbooks.report import incident as sheet

        zone = config.time_zone()
        data = core.record(incidents.reading(incident, zone), incidents.runs(incident))
        report = store.verify(incident.id)
        head = store.run_head(incident.id)
        text = sheet.markdown(data, head, report.ok, zone, config.sheet_language())
    if output is None:
        sys.stdout.write(text)
        _show_line(incidents, incident, to_err=True)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:  # a directory that is not there, no permission, a full disk
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from exc
    out.print(f"{incident.id} written to {output}")
    _show_line(incidents, incident)


# what NetBox holds under the affected names: one GraphQL request (a read)
AFFECTED_QUERY = """
query Affected($names: [String!]!) {
  device_list(filters: {name: {in_list: $names}}) { id name }
  virtual_machine_list(filters: {name: {in_list: $names}}) { id name }
  circuit_list(filters: {cid: {in_list: $names}}) { id cid }
  site_list(filters: {name: {in_list: $names}}) { id name }
  service_list(filters: {name: {in_list: $names}}) { id name }
}
"""
_OBJECT_LISTS = {
    "device_list": ("dcim.device", "name"),
    "virtual_machine_list": ("virtualization.virtualmachine", "name"),
    "circuit_list": ("circuits.circuit", "cid"),
    "site_list": ("dcim.site", "name"),
    "service_list": ("ipam.service", "name"),
}


def netbox_objects(names: list[str]) -> dict[str, list[str]] | None:
    """What NetBox holds under each name, when NetBox is configured (None when it is not, or
    does not answer: an incident opens all the same, and says so)."""
    nb = netbox_settings()
    if nb is None or not nb.token or not names:
        return None
    from runbooks.gateways.netbox_http import NetBoxHTTP

    http = NetBoxHTTP(nb, allow_writes=False, timeout=10.0)
    try:
        data = http.graphql(AFFECTED_QUERY, {"names": names}, "the affected names")
    except RunbookError as exc:
        err.print(f"[yellow]NetBox was not asked what the names are[/]: {escape(str(exc))}")
        return None
    finally:
        http.close()
    return affected_objects(data, names)


def affected_objects(data: dict[str, Any], names: list[str]) -> dict[str, list[str]]:
    """The answer of `AFFECTED_QUERY` per name (an empty list: free text).

    >>> affected_objects({"device_list": [{"id": "3", "name": "leaf1"}],
    ...                   "circuit_list": [{"id": "8", "cid": "HK-0042"}]},
    ...                  ["leaf1", "HK-0042", "OA system"])
    {'leaf1': ['dcim.device #3'], 'HK-0042': ['circuits.circuit #8'], 'OA system': []}
    """
    found: dict[str, list[str]] = {name: [] for name in names}
    for key, (kind, field) in _OBJECT_LISTS.items():
        for obj in data.get(key) or []:
            name = str(obj.get(field))
            if name in found:
                found[name].append(f"{kind} #{obj.get('id')}")
    return found


def _emit(incidents: Incidents, incident: Incident) -> None:
    reading = incidents.reading(incident, config.time_zone())
    data = core.record(reading, incidents.runs(incident))
    emit_json({**data, "line": reading.line(config.time_zone())})


def _vouched(source: str) -> str:
    """A name no server vouched for, said so (NetBox did not answer)."""
    return f" [yellow]({core.UNVERIFIED})[/]" if source == core.UNVERIFIED else ""


def _local(ts: str) -> str:
    from datetime import datetime

    try:
        return core.local_time(datetime.fromisoformat(ts), config.time_zone())
    except ValueError:
        return ts


# --- the clock on the commands that touch a run or change naming an incident ----------------


def clock_for(ctx: typer.Context, params: dict[str, Any], strict: bool = True) -> None:
    """Print the clock of the incident a runbook's parameters name (on stderr: a --json
    output stays clean). ``strict``: an incident that does not exist is bad input, before any
    work (`plan`, `run`); otherwise nothing is printed (a record is shown all the same)."""
    named = params.get(PARAM)
    if not named:
        return
    incidents = book(ctx)
    try:
        incident = incidents.get(str(named))
    except InputError:
        if strict:
            raise
        return
    _show_line(incidents, incident, to_err=True)


def _params_of(ctx: typer.Context, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The parameters `plan` or `run` will use (a change's own, with the overrides)."""
    given = parse_params(kwargs.get("params"), kwargs.get("params_file"))
    target = str(kwargs.get("target") or "")
    if target.upper().startswith("CHG-"):
        return {**_change_params(ctx, target), **given}
    return given


def _change_params(ctx: typer.Context, change_id: str) -> dict[str, Any]:
    from runbooks.cli.common import book as change_book

    return dict(change_book(ctx).get(change_id).params)


def _recorded_params(ctx: typer.Context, record_id: str) -> dict[str, Any]:
    """The parameters a record names: a run's (its run.started), a change's (its book), an
    incident's own chain names itself."""
    if record_id.upper().startswith("CHG-"):
        return _change_params(ctx, record_id)
    store = settings(ctx).store()
    first = store.entries(store.resolve_run(record_id))[0]
    if first.kind == "incident.opened":
        return {PARAM: first.run_id}
    if first.kind == "change.planned":
        return _change_params(ctx, first.run_id)
    return dict(first.payload.get("params") or {})


def _resume_params(ctx: typer.Context, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**_recorded_params(ctx, str(kwargs["run_id"])), **parse_params(kwargs.get("params"))}


def _shown_params(ctx: typer.Context, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`records show/export`: all runs at once (no run named) touch no one incident."""
    return _recorded_params(ctx, str(kwargs["run_id"])) if kwargs.get("run_id") else {}


def _signed_params(ctx: typer.Context, kwargs: dict[str, Any]) -> dict[str, Any]:
    return _change_params(ctx, str(kwargs["change_id"]))


ParamsOf = Callable[[typer.Context, dict[str, Any]], dict[str, Any]]


def _with_clock(
    command: Callable[..., Any], params_of: ParamsOf = _params_of, strict: bool = True
) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx")  # typer passes its own click's Context
        if ctx is not None:
            try:
                params = params_of(ctx, kwargs)
            except RunbookError:  # the command itself says what is wrong with its input
                params = {}
            clock_for(ctx, params, strict)
        return command(*args, **kwargs)

    return wrapped


def watch(
    app_: typer.Typer,
    names: tuple[str, ...] = ("plan", "run"),
    params_of: ParamsOf = _params_of,
    strict: bool = True,
) -> None:
    """Have the named commands print the clock of the incident their parameters name."""
    for info in app_.registered_commands:
        callback = info.callback
        if callback is not None and (info.name or callback.__name__) in names:
            info.callback = _with_clock(callback, params_of, strict)


def register(app_: typer.Typer) -> None:
    app_.add_typer(
        app,
        name="incident",
        help="Incidents: a reported fault, its red-line clock, recovery and signatures.",
    )
    from runbooks.cli.records import app as records_app

    watch(app_)  # plan, run: an incident that does not exist is refused before any work
    watch(app_, ("resume",), _resume_params, strict=False)
    watch(app_, ("review", "approve"), _signed_params, strict=False)
    watch(records_app, ("show", "export"), _shown_params, strict=False)
