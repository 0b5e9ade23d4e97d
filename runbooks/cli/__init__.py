"""The `runbook` command: list, show, plan, run, resume, records, lab.

Bad input is one line on stderr and exit code 2; a traceback reaching a user is a bug.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.prompt import Confirm

from runbooks.cli import output
from runbooks.cli.output import emit_json, err, out
from runbooks.cli.settings import Settings, current_actor, default_store
from runbooks.core import registry
from runbooks.core.context import Confirmation, Confirmer, confirm_all, refuse_all
from runbooks.core.engine import Engine
from runbooks.core.errors import InputError, RunbookError
from runbooks.core.runbook import Runbook

app = typer.Typer(
    name="runbook",
    help="Executable, reviewable, recorded work instructions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
ParamsArg = Annotated[
    list[str] | None, typer.Argument(help="Parameters as name=value.", show_default=False)
]
ParamsFile = Annotated[
    Path | None, typer.Option("--params-file", help="YAML file with parameters.")
]
YesOpt = Annotated[
    bool, typer.Option("--yes", help="Confirm every manual step as yourself (recorded).")
]


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


@app.callback()
def _root(
    ctx: typer.Context,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Record store (SQLite). Env: RUNBOOKS_STORE."),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log to stderr too.")] = False,
) -> None:
    ctx.obj = Settings(store or default_store(), verbose)
    ctx.call_on_close(ctx.obj.close)


def parse_params(items: list[str] | None, params_file: Path | None) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if params_file is not None:
        try:
            loaded = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read parameters file {params_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InputError(f"parameters file {params_file} must hold a mapping")
        raw.update(loaded)
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"parameter {item!r} is not name=value")
        raw[name.strip()] = value
    return raw


def build_runbook(name: str, raw: dict[str, Any]) -> Runbook:
    cls = registry.get(name)
    return cls(cls.parse_params(raw))


def confirmer_for(yes: bool) -> Confirmer:
    if yes:
        return confirm_all()
    if not sys.stdin.isatty():
        return refuse_all

    def ask(step_title: str, instruction: str, actor: str) -> Confirmation:
        from datetime import UTC, datetime

        err.print(f"[bold yellow]Manual step[/]: {escape(step_title)}\n  {escape(instruction)}")
        ok = Confirm.ask(f"  {actor}, confirm it is done?", console=err, default=False)
        return Confirmation(ok, actor, datetime.now(UTC), "confirmed at the prompt" if ok else "")

    return ask


def make_engine(ctx: typer.Context, yes: bool, quiet: bool) -> Engine:
    return Engine(
        settings(ctx).store(),
        current_actor(),
        confirmer=confirmer_for(yes),
        listener=output.Progress(quiet=quiet),
    )


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
def show(name: str, json_out: JsonOpt = False) -> None:
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


@app.command()
def plan(
    ctx: typer.Context,
    name: str,
    params: ParamsArg = None,
    params_file: ParamsFile = None,
    json_out: JsonOpt = False,
) -> None:
    """Plan a runbook in dry-run: every intended change, nothing changed."""
    runbook = build_runbook(name, parse_params(params, params_file))
    result = make_engine(ctx, False, json_out).plan(runbook)
    if json_out:
        emit_json(result.to_dict())
    else:
        output.show_plan(result)
    if result.refusal:
        raise typer.Exit(1)


@app.command()
def run(
    ctx: typer.Context,
    name: str,
    params: ParamsArg = None,
    params_file: ParamsFile = None,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Plan, then run a runbook, recording every step; failures roll back."""
    runbook = build_runbook(name, parse_params(params, params_file))
    engine = make_engine(ctx, yes, json_out)
    planned = engine.plan(runbook)
    if planned.refusal:
        raise RunbookError(f"plan refused: {planned.refusal}")
    if not json_out:
        err.print(f"[bold]Running[/] {escape(runbook.name)} (plan {planned.content_hash[:12]})")
    result = engine.run(runbook, plan_hash=planned.content_hash)
    if json_out:
        emit_json(result.to_dict())
    else:
        output.show_run(result)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to continue (a unique prefix is enough).")],
    params: ParamsArg = None,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Continue a run that was interrupted, from its record."""
    store = settings(ctx).store()
    full_id = store.resolve_run(run_id)
    overrides = parse_params(params, None)

    def factory(started: dict[str, Any]) -> Runbook:
        raw = {**started.get("params", {}), **overrides}
        masked = [k for k, v in raw.items() if v in ("********", "**********")]
        if masked:
            raise InputError(
                f"parameter {masked[0]!r} was secret and is not in the record: "
                f"give it again as {masked[0]}=..."
            )
        return build_runbook(str(started["runbook"]), raw)

    result = make_engine(ctx, yes, json_out).resume(full_id, factory, overrides)
    if json_out:
        emit_json(result.to_dict())
    else:
        output.show_run(result)
    if not result.ok:
        raise typer.Exit(1)


def _mount_subcommands() -> None:
    from runbooks.cli.records import app as records_app

    app.add_typer(
        records_app, name="records", help="The required records: list, show, verify, export."
    )
    try:
        lab_cli = importlib.import_module("runbooks.lab.cli")
    except ImportError:  # the lab is optional on machines that only run runbooks
        return
    app.add_typer(lab_cli.app, name="lab", help="The lab: real NetBox, FRR devices, Linux hosts.")


_mount_subcommands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning every deliberate error into one line and an exit code."""
    try:
        # without standalone mode, click returns typer.Exit's code instead of raising it
        code = app(args=argv, prog_name="runbook", standalone_mode=False)
    except RunbookError as exc:
        output.fail(str(exc))
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):
        output.fail("interrupted")
        return 130
    except typer.TyperException as exc:  # usage errors: unknown command, option, bad value
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        output.fail(str(message).strip().splitlines()[0])
        return int(getattr(exc, "exit_code", 2))
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
