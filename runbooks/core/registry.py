"""Finding runbooks: entry points of installed packages, plus modules named in RUNBOOKS_MODULES.

Another package registers its runbooks in its own pyproject.toml::

    [project.entry-points."runbooks.runbooks"]
    rack-in = "mypkg.rack_in:RackIn"

``RUNBOOKS_MODULES`` (comma-separated importable module names or paths to .py files)
adds runbooks without installing anything, e.g. for tests and drafts.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from runbooks.core.errors import InputError
from runbooks.core.runbook import Runbook

log = logging.getLogger(__name__)
GROUP = "runbooks.runbooks"


def _load_module(spec: str) -> ModuleType:
    if spec.endswith(".py"):
        path = Path(spec).resolve()
        name = f"runbooks_user_{path.stem}"
        if name in sys.modules:
            return sys.modules[name]
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise InputError(f"cannot load runbook module {spec}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        mod_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def _runbooks_in(module: ModuleType) -> list[type[Runbook]]:
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Runbook)
        and obj is not Runbook
        and "name" in vars(obj)
        and obj.__module__ == module.__name__
    ]


def discover() -> dict[str, type[Runbook]]:
    """Every runbook that can be named on the command line, by name."""
    found: dict[str, type[Runbook]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # one broken plugin must not take the CLI down
            log.warning("runbook entry point %s failed to load: %s", ep.name, exc)
            continue
        if inspect.isclass(cls) and issubclass(cls, Runbook):
            found[cls.name] = cls
    for spec in filter(
        None, (s.strip() for s in os.environ.get("RUNBOOKS_MODULES", "").split(","))
    ):
        try:
            module = _load_module(spec)
        except (ImportError, OSError) as exc:
            raise InputError(f"cannot load runbook module {spec!r}: {exc}") from exc
        for cls in _runbooks_in(module):
            found[cls.name] = cls
    return dict(sorted(found.items()))


def get(name: str) -> type[Runbook]:
    runbooks = discover()
    if name not in runbooks:
        known = ", ".join(runbooks) or "none installed"
        raise InputError(f"unknown runbook {name!r} (known: {known})", runbook=name)
    return runbooks[name]
