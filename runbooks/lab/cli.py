"""`runbook lab up | down | status | reset | software | env`: the lab (mounted by runbooks.cli)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from runbooks.core.errors import RunbookError
from runbooks.lab import lab, netbox_schema, software
from runbooks.lab.lab import Timings

app = typer.Typer(
    help="The lab: real NetBox, FRR network devices, Linux hosts and PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except RunbookError as exc:
        err.print(f"[bold red]runbook lab: error:[/] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[bold red]runbook lab: interrupted[/] (run `runbook lab down` to clean up)")
        raise typer.Exit(130) from None


def _progress(line: str) -> None:
    err.print(f"  [bold]▶[/] {escape(line)}")


@contextmanager
def _migration_progress(quiet: bool) -> Iterator[None]:
    """NetBox's migrations, while a real migrate runs (a fresh machine without the shipped
    dump): a progress bar with the count on a terminal, a line every tenth of the way in a log."""
    bar: Progress | None = None
    shown = -1

    def report(started: int, total: int, name: str) -> None:
        nonlocal bar, shown
        if quiet:
            return
        if not err.is_terminal:
            tenth = started * 10 // max(total, 1)
            if tenth > shown or started == total:
                shown = tenth
                _progress(f"netbox migrate: {started}/{total} migrations ({name})")
            return
        if bar is None:
            name_column = Column(ratio=1, no_wrap=True, overflow="ellipsis")  # cut first
            bar = Progress(
                TextColumn("  [bold]▶[/] netbox migrate"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}", table_column=name_column),
                console=err,
                expand=True,
            )
            bar.start()
            bar.add_task("", total=total)
        bar.update(bar.task_ids[0], completed=started, total=total, description=escape(name))

    try:
        with netbox_schema.reporting(report):
            yield
    finally:
        if bar is not None:
            bar.stop()


def _finish(verb: str, action: Callable[..., Timings], as_json: bool) -> None:
    with _one_line_errors(), _migration_progress(as_json):
        timings = action(progress=(lambda _line: None) if as_json else _progress)
    if as_json:
        sys.stdout.write(
            json.dumps(
                {"action": verb, "seconds": timings.phases, "total": round(timings.total, 3)}
            )
            + "\n"
        )
    else:
        out.print(f"[green]lab {verb}[/] in {timings.total:.1f} s")


@app.command()
def up(as_json: JsonOpt = False) -> None:
    """Bring the lab up (idempotent: a second run verifies and repairs)."""
    _finish("up", lab.up, as_json)


@app.command()
def down(as_json: JsonOpt = False) -> None:
    """Tear everything down: processes, namespaces, links, mounts, state. The cache stays."""
    _finish("down", lab.down, as_json)


@app.command()
def reset(as_json: JsonOpt = False) -> None:
    """NetBox, devices and hosts back to their seeded state, in seconds."""
    _finish("reset", lab.reset, as_json)


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Each component and whether it answers (exit code 1 if any does not)."""
    with _one_line_errors():
        components = lab.status()
    if as_json:
        sys.stdout.write(json.dumps([c.__dict__ for c in components], indent=2) + "\n")
    else:
        table = Table(show_header=True, header_style="bold")
        table.add_column("component")
        table.add_column("answers")
        table.add_column("detail")
        for c in components:
            table.add_row(
                escape(c.name), "[green]yes[/]" if c.ok else "[bold red]no[/]", escape(c.detail)
            )
        out.print(table)
    if not all(c.ok for c in components):
        raise typer.Exit(1)


@app.command("netbox-snapshot")
def netbox_snapshot() -> None:
    """Regenerate the NetBox core schema dump shipped for this NetBox version (after a NetBox
    upgrade): a real migrate in a scratch database, about 7 minutes; the lab stays as it is."""
    from runbooks.lab import netbox  # late: the other commands need none of NetBox's side

    with _one_line_errors(), _migration_progress(False):
        dest = netbox.build_snapshot()
    err.print(f"[green]wrote[/] {escape(str(dest))} ({dest.stat().st_size // 1024} KiB)")


@app.command("software")
def software_repository() -> None:
    """Fetch the department's software repository the lab hosts install from (once, cached);
    print the apt source line for RUNBOOKS_SOFTWARE_SOURCE."""
    with _one_line_errors():
        fetched = software.ensure(progress=_progress)
    err.print(
        f"[green]software repository[/] {software.repo_dir()}: "
        f"{len(fetched)} package(s) fetched, index current; the hosts' apt source on stdout"
    )
    # for RUNBOOKS_SOFTWARE_SOURCE="$(runbook lab software)"
    sys.stdout.write(software.source_line() + "\n")


@app.command("env")
def environment(as_json: JsonOpt = False) -> None:
    """The settings runbooks need for the lab's devices and hosts (its key, its known_hosts):
    `eval "$(runbook lab env)"`. Paths only, no secret."""
    settings = lab.runbooks_env()
    if as_json:
        sys.stdout.write(json.dumps(settings, indent=2) + "\n")
    else:
        sys.stdout.write("".join(f"export {k}={shlex.quote(v)}\n" for k, v in settings.items()))
