"""`runbook records`: the required records of every run — list, show, verify, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from runbooks.cli.output import emit_json, out
from runbooks.core.errors import InputError, IntegrityError
from runbooks.core.store import RecordStore, read_jsonl, verify_entries

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def _store(ctx: typer.Context) -> RecordStore:
    from runbooks.cli.common import settings

    return settings(ctx).store()


@app.command("list")
def list_runs(
    ctx: typer.Context,
    runbook: Annotated[str | None, typer.Option(help="Only runs of this runbook.")] = None,
    search: Annotated[
        str | None, typer.Option(help="Only runs whose record mentions this.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    runs = _store(ctx).runs(runbook=runbook, text=search)
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


@app.command()
def show(ctx: typer.Context, run_id: str, json_out: JsonOpt = False) -> None:
    """Show every entry of one run's record."""
    store = _store(ctx)
    entries = store.entries(store.resolve_run(run_id))
    if json_out:
        emit_json([e.to_dict() for e in entries])
        return
    for e in entries:
        detail = e.payload.get("status") or e.payload.get("error") or e.payload.get("title") or ""
        step = f" {e.step}" if e.step else ""
        out.print(
            f"{e.seq:>6} {e.ts[:23]} [bold]{e.kind:<15}[/]{escape(step)} "
            f"[dim]{escape(e.actor)}[/] {escape(str(detail))}"
        )
    out.print(f"head {store.run_head(entries[0].run_id)}")


@app.command()
def verify(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Option(help="Verify a JSONL export instead of the store.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Recompute the hash chain; exit 5 and name each break when the record was tampered with."""
    if file is not None:
        try:
            with file.open(encoding="utf-8") as fh:
                report = verify_entries(read_jsonl(fh))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cannot read export {file}: {exc}") from exc
    else:
        report = _store(ctx).verify()
    if json_out:
        emit_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "head": report.head,
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    elif report.ok:
        out.print(f"[green]ok[/]: {report.entries} entries, chain intact, head {report.head}")
    else:
        for p in report.problems:
            out.print(f"[bold red]{p.kind}[/] at entry {p.seq}: {escape(p.detail)}")
    if not report.ok:
        first = report.problems[0]
        raise IntegrityError(
            f"record chain broken: {len(report.problems)} problem(s), first: {first.kind} at "
            f"entry {first.seq}"
        )


@app.command()
def export(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(help="One run; all runs when omitted.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl (verifiable), or md/html: the record sheet")
    ] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File; stdout if omitted.")
    ] = None,
) -> None:
    """Export entries (hashes included) so an archived copy can be verified later."""
    if fmt not in ("jsonl", "md", "html"):
        raise InputError(f"unknown export format {fmt!r} (known: jsonl, md, html)")
    store = _store(ctx)
    run = store.resolve_run(run_id) if run_id else None
    if fmt != "jsonl":
        if run is None:
            raise InputError(f"the {fmt} record sheet is of one run: name it")
        from runbooks.report import sheet

        entries = store.entries(run)
        render = sheet.html if fmt == "html" else sheet.markdown
        text = render(entries, store.run_head(run), store.verify().ok)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            out.print(f"record sheet written to {output}")
        return
    if output is None:
        store.export_jsonl(sys.stdout, run)
        return
    with output.open("w", encoding="utf-8") as fh:
        count = store.export_jsonl(fh, run)
    out.print(f"exported {count} entries to {output}")
