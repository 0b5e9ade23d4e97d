"""The `runbook` command: list, show, plan, review, approve, run, resume, records, lab.

Bad input is one line on stderr and exit code 2; a traceback reaching a user is a bug.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from runbooks import config
from runbooks.cli import output
from runbooks.cli.common import (
    JsonOpt,
    ParamsArg,
    ParamsFile,
    YesOpt,
    book,
    build_runbook,
    identity,
    make_engine,
    parse_params,
    rebuild_runbook,
    settings,
)
from runbooks.cli.completion import runbook_names
from runbooks.cli.output import emit_json, err, out
from runbooks.cli.settings import Settings, default_store
from runbooks.core import registry
from runbooks.core.changes import ChangeBook, run_change
from runbooks.core.errors import ApprovalError, InputError, RollbackError, RunbookError
from runbooks.core.results import RunResult, RunStatus
from runbooks.core.runbook import Runbook
from runbooks.core.window import Window

app = typer.Typer(
    name="runbook",
    help="Executable, reviewable, recorded work instructions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


# a runbook's name; the shell completes it (`runbook plan <TAB>`)
RunbookName = Annotated[str, typer.Argument(autocompletion=runbook_names)]


@app.callback()
def _root(
    ctx: typer.Context,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Record store (SQLite). Env: RUNBOOKS_STORE."),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log to stderr too.")] = False,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file (TOML). Env: RUNBOOKS_CONFIG; default "
            "~/.config/runbooks/config.toml.",
        ),
    ] = None,
) -> None:
    # the file's values become the unset RUNBOOKS_* variables before anything reads them
    loaded = config.load(config_file)
    config.apply(loaded)
    ctx.obj = Settings(store or default_store(), verbose, loaded=loaded)
    ctx.call_on_close(ctx.obj.close)


@app.command("list")
def list_runbooks(json_out: JsonOpt = False) -> None:
    """List the runbooks that can be planned and run."""
    books = registry.discover()
    if json_out:
        emit_json(
            [
                {"name": c.name, "title": c.title, "instruction": c.instruction}
                for c in books.values()
            ]
        )
        return
    if not books:
        out.print("no runbooks installed")
    for cls in books.values():
        out.print(
            f"[bold]{cls.name:<22}[/] {escape(cls.title)} [dim]({escape(cls.instruction)})[/]"
        )


@app.command()
def show(name: RunbookName, json_out: JsonOpt = False) -> None:
    """Show a runbook: its instruction, roles, parameters and steps."""
    cls = registry.get(name)
    schema = cls.Params.model_json_schema()
    steps = [
        {
            "name": s.name,
            "title": s.title,
            "kind": str(s.kind),
            "expected_s": s.duration.total_seconds(),
        }
        for s in cls.steps()
    ]
    if json_out:
        emit_json(
            {
                "name": cls.name,
                "title": cls.title,
                "instruction": cls.instruction,
                "roles": dict(cls.roles),
                "parameters": schema,
                "steps": steps,
                "expected_duration_s": cls.expected_duration.total_seconds(),
            }
        )
        return
    out.print(f"[bold]{cls.name}[/] — {escape(cls.title)}")
    out.print(f"  implements: {escape(cls.instruction)}")
    out.print(f"  roles: {escape(', '.join(f'{k}: {v}' for k, v in cls.roles.items()))}")
    out.print(f"  expected duration: {cls.expected_duration}")
    required = set(schema.get("required", []))
    for pname, prop in schema.get("properties", {}).items():
        req = "required" if pname in required else f"default {prop.get('default')!r}"
        desc = prop.get("description", "")
        out.print(f"  param [bold]{pname}[/] ({prop.get('type', 'any')}, {req}) {escape(desc)}")
    for n, step in enumerate(steps, 1):
        out.print(f"  {n:>2}. {escape(str(step['title']))} [dim]({step['kind']})[/]")


WindowStart = Annotated[
    str | None,
    typer.Option(
        "--window-start",
        help="Maintenance window start: ISO time (without an offset: in the time_zone "
        "setting), now, +30m.",
    ),
]
WindowEnd = Annotated[
    str | None,
    typer.Option("--window-end", help="Maintenance window end: ISO time (as the start), +2h."),
]


@app.command()
def plan(
    ctx: typer.Context,
    name: RunbookName,
    params: ParamsArg = None,
    params_file: ParamsFile = None,
    window_start: WindowStart = None,
    window_end: WindowEnd = None,
    save: Annotated[bool, typer.Option(help="Store the plan as a change for review.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Plan a runbook in dry-run and store it as a change: every intended change, none made."""
    runbook = build_runbook(name, parse_params(params, params_file))
    settings(ctx).store()  # an unreadable store is bad input: say so before any work
    if (window_start is None) != (window_end is None):
        raise InputError("give both --window-start and --window-end, or neither")
    window = (
        Window.parse(window_start, window_end, config.time_zone())
        if window_start and window_end
        else None
    )
    who = identity(ctx)
    result = make_engine(ctx, who.username, quiet=json_out).plan(runbook)
    change = None
    if save and not result.refusal:
        change = book(ctx).create(result, who, window)
    if json_out:
        emit_json(
            {
                **result.to_dict(),
                "change": change.id if change else None,
                "url": change.url if change else None,
            }
        )
    else:
        output.show_plan(result)
        if change:
            out.print(
                f"stored as change [bold]{change.id}[/] — review it: runbook review {change.id}"
            )
            if change.url:
                out.print(f"in NetBox: {change.url}")
    if result.refusal:
        raise typer.Exit(1)


@app.command()
def run(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            help="An approved change (CHG-…), or a runbook name.", autocompletion=runbook_names
        ),
    ],
    params: ParamsArg = None,
    params_file: ParamsFile = None,
    yes: YesOpt = False,
    no_change_control: Annotated[
        bool,
        typer.Option(
            "--no-change-control",
            help="Run a runbook directly, without review or approval (recorded as such).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run an approved change inside its window (or, explicitly, a runbook without one)."""
    overrides = parse_params(params, params_file)
    changes = book(ctx)
    if target.upper().startswith("CHG-"):
        change = changes.get(target)
        runbook = rebuild_runbook(change.runbook, change.params, overrides)
        who = identity(ctx)
        engine = make_engine(ctx, who.username, yes, json_out)
        if not json_out:
            err.print(
                f"[bold]Running[/] change {change.id} ({escape(change.runbook)}) as "
                f"{escape(who.username)}"
            )
        result = run_change(engine, changes, change, who, runbook)
    else:
        runbook = build_runbook(target, overrides)
        if not no_change_control:
            raise InputError(
                f"{target} is a runbook, not a change: plan it (runbook plan {target} ...), have "
                "it reviewed and approved, then run the change — or pass --no-change-control"
            )
        who = identity(ctx)
        engine = make_engine(ctx, who.username, yes, json_out)
        planned = engine.plan(runbook)
        if planned.refusal:
            raise RunbookError(f"plan refused: {planned.refusal}")
        if isinstance(changes, ChangeBook):
            result = engine.run(
                runbook, plan_hash=planned.content_hash, extra={"change": None, "unreviewed": True}
            )
        else:  # NetBox keeps it too, as an unreviewed change run by its preparer
            change = changes.create(planned, who, None, unreviewed=True)
            result = run_change(engine, changes, change, who, runbook)
    _report(ctx, result, json_out)


@app.command()
def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to continue (a unique prefix is enough).")],
    params: ParamsArg = None,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Continue a run that was interrupted, from its record (a run killed before it was
    granted is re-planned and asks for its grant again)."""
    full_id = _resumable(ctx, run_id)
    overrides = parse_params(params)

    def factory(started: dict[str, Any]) -> Runbook:
        return rebuild_runbook(str(started["runbook"]), started.get("params", {}), overrides)

    who = identity(ctx)
    engine = make_engine(ctx, who.username, yes, json_out)
    if engine.awaiting_grant(full_id):
        started = settings(ctx).store().entries(full_id)[0].payload
        changes = book(ctx)
        change = changes.get(str(started["change"]))
        result = run_change(engine, changes, change, who, factory(started), run_id=full_id)
    else:
        result = engine.resume(full_id, factory, overrides)
    _report(ctx, result, json_out)


@app.command()
def abandon(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The interrupted run (a unique prefix is enough).")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")] = "",
    params: ParamsArg = None,
    json_out: JsonOpt = False,
) -> None:
    """Give up an interrupted run: what its record says it completed is rolled back, and the
    run ends (one never granted just ends: it did nothing)."""
    full_id = _resumable(ctx, run_id)
    overrides = parse_params(params)

    def factory(started: dict[str, Any]) -> Runbook:
        return rebuild_runbook(str(started["runbook"]), started.get("params", {}), overrides)

    who = identity(ctx)
    engine = make_engine(ctx, who.username, quiet=json_out)
    why = reason or f"given up by {who.username}"
    result = engine.abandon(full_id, factory, why)
    _report(ctx, result, json_out, ok=result.status in ("abandoned", "rolled-back", "stopped"))


def _resumable(ctx: typer.Context, run_id: str) -> str:
    """The run's full id. A run NetBox keeps is brought into the local store when this machine
    lacks entries of it (resumed elsewhere), and its mirror picks up where NetBox stands."""
    s = settings(ctx)
    store, api = s.store(), s.plugin()
    if api is None:
        return store.resolve_run(run_id)
    from runbooks.gateways.netbox_records import NetBoxRecords

    records = NetBoxRecords(api)
    try:
        run = records.run(run_id)
    except InputError:  # a run only this machine knows (not started through NetBox)
        return store.resolve_run(run_id)
    full_id, length = str(run["run_id"]), int(run.get("length") or 0)
    who = identity(ctx)
    if run.get("operator") != who.username:  # before anything touches a device
        raise ApprovalError(
            f"{who.username} did not start run {full_id}: only its operator "
            f"{run.get('operator')} continues it (NetBox keeps its record in their name)"
        )
    if run.get("status") not in (None, "running"):
        raise InputError(f"run {full_id} already finished ({run['status']}); nothing to resume")
    if len(store.entries(full_id)) < length:
        store.import_chain(records.entries(int(run["id"])))
    mirror = s.mirror()
    if mirror is not None:
        mirror.track(full_id, int(run["id"]), length, str(run.get("head") or ""))
    return full_id


def _report(ctx: typer.Context, result: RunResult, json_out: bool, ok: bool = False) -> None:
    anchored = _anchor(ctx, result.run_id)
    if json_out:
        emit_json({**result.to_dict(), **anchored})
    else:
        output.show_run(result)
        if anchored:
            out.print(
                f"record in NetBox: {anchored['netbox_entries']} entries, head "
                f"{anchored['netbox_head'][:16]}… {anchored['netbox_url']}"
            )
    if result.status is RunStatus.ROLLBACK_FAILED:
        raise typer.Exit(RollbackError.exit_code)  # something changed could not be undone
    if not (result.ok or ok):
        raise typer.Exit(1)


def _anchor(ctx: typer.Context, run_id: str) -> dict[str, Any]:
    """Wait until NetBox holds the run's whole record (runs granted by NetBox only)."""
    mirror = settings(ctx).mirror()
    if mirror is None or not mirror.tracks(run_id):
        return {}
    held = mirror.flush(run_id)
    return {
        "netbox_entries": held.sent,
        "netbox_head": held.head,
        "netbox_url": held.url,
    }


def _mount_subcommands() -> None:
    from runbooks.cli import changes, incidents
    from runbooks.cli.config_cmd import app as config_app
    from runbooks.cli.records import app as records_app

    changes.register(app)
    incidents.register(app)  # `runbook incident`; its clock on what touches a run naming one
    app.add_typer(config_app, name="config", help="The settings: show them, check them.")
    app.add_typer(
        records_app, name="records", help="The required records: list, show, verify, export."
    )
    try:
        lab_cli = importlib.import_module("runbooks.lab.cli")
    except ImportError:  # the lab is optional on machines that only run runbooks
        return
    app.add_typer(lab_cli.app, name="lab", help="The lab: real NetBox, FRR devices, Linux hosts.")


_mount_subcommands()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, like Ctrl-C: gateways stop what they started (an
    Ansible run's whole process tree), the record keeps the run open for `runbook resume`."""


_terminated = threading.Event()


def _terminate(signum: int, frame: Any) -> None:
    _terminated.set()
    raise Terminated


def _interrupted() -> int:
    """Typer turns an interrupt into exit code 130 (click, into Abort): say which it was."""
    if _terminated.is_set():
        output.fail("terminated (SIGTERM); an unfinished run continues with `runbook resume`")
        return 143
    output.fail("interrupted; an unfinished run continues with `runbook resume`")
    return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning every deliberate error into one line and an exit code."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        _terminated.clear()
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        # without standalone mode, click returns typer.Exit's code instead of raising it
        code = app(args=argv, prog_name="runbook", standalone_mode=False)
    except RunbookError as exc:
        output.fail(str(exc))
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted()
    except typer.TyperException as exc:  # usage errors: unknown command, option, bad value
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        output.fail(str(message).strip().splitlines()[0])
        return int(getattr(exc, "exit_code", 2))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code == 130:
        return _interrupted()
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
