"""Shell completion of `runbook` (Typer's: `runbook --install-completion`): the runbook names an
argument takes, so `runbook plan <TAB>` offers the installed runbooks.

A completer runs inside the shell's TAB, before any command: it reads the settings file the
command would (``--config`` on the line, else ``RUNBOOKS_CONFIG``, else the user's), so runbooks
the file's ``modules`` adds are offered too, and it never prints an error — a broken setting
completes to nothing and the command itself says what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import typer

from runbooks import config
from runbooks.core import registry
from runbooks.core.errors import RunbookError


def _config_file(ctx: typer.Context) -> Path | None:
    root = ctx.find_root()
    given = root.params.get("config_file")
    return given if isinstance(given, Path) else None


def runbook_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """The registered runbooks whose names start with what was typed."""
    try:
        config.apply(config.load(_config_file(ctx)))
        names = registry.discover()
    except RunbookError:
        return []
    return [name for name in names if name.startswith(incomplete)]
