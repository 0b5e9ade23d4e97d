"""`runbook config`: the settings in effect and where each came from; whether they work."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.markup import escape

from runbooks import config
from runbooks.cli.common import JsonOpt
from runbooks.cli.output import emit_json, out
from runbooks.core import secrets
from runbooks.core.errors import RunbookError

app = typer.Typer(no_args_is_help=True, help="The settings: show them, check them.")


@app.command("show")
def show(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every setting in effect, its variable and its source (env, file or default); secrets
    masked."""
    loaded = _loaded(ctx)
    rows = loaded.rows()
    if json_out:
        emit_json(
            {
                "file": str(loaded.path),
                "file_exists": loaded.path.exists(),
                "settings": [r.__dict__ for r in rows],
            }
        )
        return
    state = "" if loaded.path.exists() else " [dim](not there: defaults and environment)[/]"
    out.print(f"configuration file: {escape(str(loaded.path))}{state}")
    width = max(len(r.name) for r in rows)
    for r in rows:
        value = escape(secrets.mask_text(r.value)) if r.value else "[dim]-[/]"
        out.print(f"  {r.name:<{width}}  {value}  [dim]({escape(r.source)}; {r.variable})[/]")


def _loaded(ctx: typer.Context) -> config.Loaded:
    """What the command read at its start (``--config``), else the file and variables now."""
    loaded = getattr(ctx.obj, "loaded", None)
    return loaded if isinstance(loaded, config.Loaded) else config.load()


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _check(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except RunbookError as exc:
        return Check(name, False, str(exc))
    except Exception as exc:  # a check reports, whatever broke
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def _netbox() -> str:
    nb = config.netbox_settings()
    if nb is None:
        raise RunbookError("not configured: set netbox_url and netbox_token")
    from runbooks.gateways.identity import NetBoxIdentity

    who = NetBoxIdentity(nb).whoami()
    held = ", ".join(sorted(who.authorities)) or "none (no runbook-* group)"
    return f"{nb.url}: the token of {who.username}; authorities: {held}"


def _redis() -> str:
    from runbooks import scheduling

    url = scheduling.redis_url()
    scheduling.connect(url).close()
    return f"{url} answers"


def _credentials() -> str:
    from runbooks.gateways.device_credentials import SELECTOR, credential_source

    creds = credential_source().for_device("", "", "")
    how = "a key file" if creds.key_file else "a password" if creds.password else "no secret"
    chosen = os.environ.get(SELECTOR) or "env"
    return f"{chosen} ({SELECTOR}): default login {creds.username} with {how}"


def _store(path: Path) -> Callable[[], str]:
    def probe() -> str:
        from runbooks.core.store import RecordStore

        store = RecordStore(path)
        try:
            report = store.verify()
        finally:
            store.close()
        if not report.ok:
            raise RunbookError(f"{path}: {report.problems[0]}")
        return f"{path}: {report.entries} entries, every chain intact"

    return probe


@app.command("check")
def check(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Reach NetBox (whose token, which authorities), Redis, the device credentials' source and
    the record store: one line each; exit 1 when any fails."""
    store_path = ctx.obj.store_path if ctx.obj is not None else config_store_default()
    checks = [
        _check("netbox", _netbox),
        _check("redis", _redis),
        _check("credentials", _credentials),
        _check("store", _store(store_path)),
    ]
    if json_out:
        emit_json([c.__dict__ for c in checks])
    else:
        for c in checks:
            mark = "[green]ok[/]  " if c.ok else "[red]FAIL[/]"
            out.print(f"{mark} {c.name:<12} {escape(secrets.mask_text(c.detail))}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def config_store_default() -> Path:
    from runbooks.cli.settings import default_store

    return default_store()


@app.command("table", hidden=True)
def table() -> None:
    """The README's settings table (Markdown), made from the settings model."""
    out.print(config.settings_table(), markup=False, end="")
