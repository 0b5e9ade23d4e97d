"""What the CLI's commands share: options, parameters, identity, engine construction."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.prompt import Confirm

from runbooks.cli import output
from runbooks.cli.output import err
from runbooks.cli.settings import Settings, current_actor
from runbooks.config import netbox_settings
from runbooks.core import policy, registry
from runbooks.core.changes import ChangeBook, Changes
from runbooks.core.context import Confirmation, Confirmer, confirm_all, refuse_all
from runbooks.core.engine import Engine
from runbooks.core.errors import InputError
from runbooks.core.policy import Identity
from runbooks.core.runbook import Runbook

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


def identity(ctx: typer.Context) -> Identity:
    return identity_of(settings(ctx))


def identity_of(s: Settings) -> Identity:
    """The owner of the NetBox token in use, with the authorities the server grants; without
    NetBox, the local user, who may only prepare and run (never review, approve or sign off)."""
    api = s.plugin()
    if api is not None:
        from runbooks.gateways.netbox_plugin import whoami

        return whoami(api)
    nb = netbox_settings()
    if nb is None:
        return Identity(current_actor(), frozenset({policy.HANDLE}), source="local")
    from runbooks.gateways.identity import NetBoxIdentity

    return NetBoxIdentity(nb).whoami()


def book(ctx: typer.Context) -> Changes:
    return book_of(settings(ctx))


def book_of(s: Settings) -> Changes:
    """Where the team's changes live: NetBox (the plugin decides) or the local store."""
    api = s.plugin()
    if api is None:
        return ChangeBook(s.store())
    from runbooks.gateways.netbox_plugin import NetBoxChanges

    mirror = s.mirror()
    return NetBoxChanges(api, on_grant=mirror.track if mirror else None)


def parse_params(items: list[str] | None, params_file: Path | None = None) -> dict[str, Any]:
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


def rebuild_runbook(name: str, recorded: dict[str, Any], overrides: dict[str, Any]) -> Runbook:
    """The runbook of a recorded run or change; secrets the record masked must be given again."""
    raw = {**recorded, **overrides}
    masked = [k for k, v in raw.items() if isinstance(v, str) and v.strip("*") == "" and v]
    if masked:
        raise InputError(
            f"parameter {masked[0]!r} was secret and is not in the record: "
            f"give it again as {masked[0]}=..."
        )
    return build_runbook(name, raw)


def confirmer_for(yes: bool) -> Confirmer:
    if yes:
        return confirm_all()
    if not sys.stdin.isatty():
        return refuse_all

    def ask(step_title: str, instruction: str, actor: str) -> Confirmation:
        err.print(f"[bold yellow]Manual step[/]: {escape(step_title)}\n  {escape(instruction)}")
        ok = Confirm.ask(f"  {actor}, confirm it is done?", console=err, default=False)
        return Confirmation(ok, actor, datetime.now(UTC), "confirmed at the prompt" if ok else "")

    return ask


def make_engine(ctx: typer.Context, actor: str, yes: bool = False, quiet: bool = False) -> Engine:
    return Engine(
        settings(ctx).store(),
        actor,
        confirmer=confirmer_for(yes),
        listener=output.Progress(quiet=quiet),
    )
