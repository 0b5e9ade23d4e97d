"""`runbook records`: the required records of every run — list, show, verify, export."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from runbooks_rules.sheet import batches_line

from runbooks import config
from runbooks.cli.output import emit_json, out
from runbooks.core.errors import InputError, IntegrityError
from runbooks.core.store import (
    Entry,
    Problem,
    RecordStore,
    VerifyReport,
    canonical,
    compare_with_witness,
    read_jsonl,
    verify_entries,
)
from runbooks.gateways.netbox_records import NetBoxRecords

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
LocalOpt = Annotated[
    bool,
    typer.Option("--local", help="This machine's store, not the team's records in NetBox."),
]


def _store(ctx: typer.Context) -> RecordStore:
    from runbooks.cli.common import settings

    return settings(ctx).store()


def _netbox(ctx: typer.Context, local: bool = False) -> NetBoxRecords | None:
    """The team's records in NetBox, when its change control is configured (and not --local)."""
    from runbooks.cli.common import settings

    api = None if local else settings(ctx).plugin()
    return NetBoxRecords(api) if api is not None else None


@dataclass(frozen=True)
class _Run:
    """One run's record, wherever it is kept, with what its sheet shows."""

    entries: list[Entry]
    head: str
    chain_ok: bool
    server: dict[str, Any] = field(default_factory=dict)  # sign-offs NetBox holds


def _run(ctx: typer.Context, run_id: str, local: bool) -> _Run:
    netbox = _netbox(ctx, local)
    if netbox is not None and run_id.upper().startswith("CHG-"):  # a change's own chain
        entries = netbox.change_entries(run_id)
        head = entries[-1].hash if entries else ""
        return _Run(entries, head, verify_entries(entries).ok)
    if netbox is not None:
        run = netbox.run(run_id)
        entries = netbox.entries(int(run["id"]))
        head = str(run.get("head") or "")
        report = verify_entries(entries, {str(run["run_id"]): head} if head else None)
        server = {"signatures": netbox.signatures(run), "authorities": netbox.authorities(run)}
        return _Run(entries, head, report.ok, server)
    store = _store(ctx)
    full = store.resolve_run(run_id)
    return _Run(store.entries(full), store.run_head(full), store.verify(full).ok)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    runbook: Annotated[str | None, typer.Option(help="Only runs of this runbook.")] = None,
    search: Annotated[
        str | None, typer.Option(help="Only runs whose record mentions this.")
    ] = None,
    local: LocalOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """List runs, newest first. From NetBox, this machine's runs that were killed show as
    interrupted (NetBox cannot tell a run that stopped from one still running), and one killed
    before NetBox granted it shows too."""
    netbox = _netbox(ctx, local)
    runs = (netbox or _store(ctx)).runs(runbook=runbook, text=search)
    if netbox is not None:
        runs = _with_interrupted(runs, _store(ctx).runs(runbook=runbook, text=search))
    if json_out:
        emit_json(runs)
        return
    table = Table("run", "runbook", "targets", "by", "started", "status", box=None)
    for r in runs:
        table.add_row(
            r["run_id"],
            r["runbook"],
            ", ".join(r["targets"]),
            r["actor"],
            r["started"][:19],
            r["status"],
        )
    out.print(table)


def _with_interrupted(
    team: list[dict[str, Any]], mine: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    stopped = {r["run_id"]: r for r in mine if r["status"] == "interrupted"}
    listed = {r["run_id"] for r in team}
    merged = [{**r, "status": "interrupted"} if r["run_id"] in stopped else r for r in team]
    merged += [r for k, r in stopped.items() if k not in listed]  # never granted
    return sorted(merged, key=lambda r: str(r["started"]), reverse=True)


@app.command()
def show(
    ctx: typer.Context, run_id: str, local: LocalOpt = False, json_out: JsonOpt = False
) -> None:
    """Show every entry of one run's record."""
    run = _run(ctx, run_id, local)
    if json_out:
        emit_json([e.to_dict() for e in run.entries])
        return
    for e in run.entries:
        detail = e.payload.get("status") or e.payload.get("error") or e.payload.get("title") or ""
        if e.kind == "run.finished" and e.payload.get("batches"):
            detail = f"{detail} — {batches_line(e.payload['batches'])}"
        step = f" {e.step}" if e.step else ""
        out.print(
            f"{e.seq:>6} {e.ts[:23]} [bold]{e.kind:<15}[/]{escape(step)} "
            f"[dim]{escape(e.actor)}[/] {escape(str(detail))}"
        )
    out.print(f"head {run.head}")


@app.command()
def verify(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Argument(help="Verify this run's copy in NetBox too.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="Verify a JSONL export instead of the store.")
    ] = None,
    head: Annotated[str | None, typer.Option(help="The head a one-run export must end at.")] = None,
    local: Annotated[
        bool, typer.Option("--local", help="This machine's store alone, not compared with NetBox.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Recompute the hash chains; with NetBox's change control, compare each run's head with
    the head NetBox anchored. Exit 5 and name each break when a record was tampered with."""
    if file is not None:
        report, compared = _verify_export(file, head), 0
    else:
        report, compared = _verify_store(ctx, run_id, local)
    if json_out:
        emit_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "runs": len(report.heads),
                "compared_with_netbox": compared,
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    elif report.ok:
        anchored_note = f"; {compared} run(s) match the heads NetBox anchored" if compared else ""
        out.print(
            f"[green]ok[/]: {report.entries} entries in {len(report.heads)} run(s), every "
            f"chain intact{anchored_note}"
        )
    else:
        for p in report.problems:
            out.print(f"[bold red]{p.kind}[/] {escape(p.run_id)} #{p.seq}: {escape(p.detail)}")
    if not report.ok:
        first = report.problems[0]
        raise IntegrityError(
            f"record chain broken: {len(report.problems)} problem(s), first: {first.kind} in "
            f"{first.run_id} at entry {first.seq}"
        )


def _verify_export(file: Path, head: str | None) -> VerifyReport:
    """A JSONL export's chains; a one-run export against the head it must end at."""
    try:
        with file.open(encoding="utf-8") as fh:
            entries = read_jsonl(fh)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read export {file}: {exc}") from exc
    names = {e.run_id for e in entries}
    if head is not None and len(names) != 1:
        holds = "no entry" if not names else f"{len(names)} runs"
        raise InputError(f"--head checks a one-run export; {file} holds {holds}")
    return verify_entries(entries, {names.pop(): head} if head else None)


def _verify_store(ctx: typer.Context, run_id: str | None, local: bool) -> tuple[VerifyReport, int]:
    """This machine's chains, each compared with the head NetBox anchored (unless ``local``),
    and NetBox's own copy of ``run_id``; the report and how many runs were compared."""
    store = _store(ctx)
    report = store.verify()
    netbox = _netbox(ctx, local)
    if netbox is None:
        return report, 0
    chains = store.chains()
    anchored = netbox.anchored_heads(chains)
    report = _with(report, compare_with_witness(chains, anchored))
    if run_id is not None:
        report = _with(report, _netbox_copy(netbox, run_id))
    return report, len(anchored)


def _with(report: VerifyReport, problems: list[Problem]) -> VerifyReport:
    return replace(report, problems=(*report.problems, *problems))


def _netbox_copy(netbox: NetBoxRecords, run_id: str) -> list[Problem]:
    """NetBox's copy of one run, recomputed here and by the server."""
    run = netbox.run(run_id)
    key, name = int(run["id"]), str(run["run_id"])
    mine = verify_entries(netbox.entries(key), {name: str(run.get("head") or "")})
    theirs = netbox.verify(key)
    server = [
        Problem(name, int(p.get("seq", 0)), str(p.get("kind")), f"NetBox: {p.get('detail')}")
        for p in theirs.get("problems", [])
    ]
    return list(mine.problems) + server


@app.command()
def push(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(help="One run; all runs when omitted.")] = None,
) -> None:
    """Send NetBox the entries of runs it granted that it does not hold yet (NetBox was away
    when they were written)."""
    from runbooks.cli.common import settings

    s = settings(ctx)
    netbox, mirror = _netbox(ctx), s.mirror()
    if netbox is None or mirror is None:
        raise InputError("no NetBox change control configured: nothing to push to")
    store = s.store()
    mine = store.heads()
    wanted = [store.resolve_run(run_id)] if run_id else sorted(mine)
    sent = 0
    for name, (length, _) in netbox.anchored_heads(wanted).items():
        if mine[name][0] > length:
            run = netbox.run(name)
            mirror.track(name, int(run["id"]), length, str(run.get("head") or ""))
            held = mirror.flush(name)
            out.print(f"{name}: NetBox now holds {held.sent} entries")
            sent += 1
    if not sent:
        out.print("NetBox holds every entry of the runs it granted")


@app.command()
def export(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(help="One run; all runs when omitted.")] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="jsonl (verifiable), or md/html: the record sheet, in the sheet_language and "
            "time_zone settings",
        ),
    ] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File; stdout if omitted.")
    ] = None,
    local: LocalOpt = False,
    language: Annotated[
        str | None,
        typer.Option(
            "--language", help="The sheet's language: zh-Hant, en or both (sheet_language)."
        ),
    ] = None,
    time_zone: Annotated[
        str | None,
        typer.Option("--time-zone", help="The sheet's time zone, an IANA name (time_zone)."),
    ] = None,
) -> None:
    """Export entries (hashes included) so an archived copy can be verified later, or the
    record sheet of a run."""
    if fmt not in ("jsonl", "md", "html"):
        raise InputError(f"unknown export format {fmt!r} (known: jsonl, md, html)")
    zone = config.zone(time_zone) if time_zone else config.time_zone()
    language = config.language(language) if language else config.sheet_language()
    count: int | None = None
    if run_id is None:
        if fmt != "jsonl":
            raise InputError(f"the {fmt} record sheet is of one run: name it")
        entries = _store(ctx).entries()
    else:
        run = _run(ctx, run_id, local)
        entries = run.entries
    if fmt == "jsonl":
        text, count = "".join(canonical(e.to_dict()) + "\n" for e in entries), len(entries)
    else:
        from runbooks.report import sheet

        render = sheet.html if fmt == "html" else sheet.markdown
        text = render(entries, run.head, run.chain_ok, zone, language, **run.server)
    try:
        _write(text, output, count)
    except OSError as exc:  # a directory that is not there, no permission, a full disk
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from exc


def _write(text: str, output: Path | None, entries: int | None = None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    what = f"exported {entries} entries" if entries is not None else "record sheet written"
    out.print(f"{what} to {output}")
