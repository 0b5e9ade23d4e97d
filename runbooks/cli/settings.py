"""Where the CLI keeps things and who is acting: from options and the environment."""

from __future__ import annotations

import getpass
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runbooks.config import Loaded, netbox_settings
from runbooks.core import secrets
from runbooks.core.store import RecordStore

if TYPE_CHECKING:
    from runbooks.gateways.netbox_plugin import PluginAPI
    from runbooks.gateways.netbox_records import RecordMirror


def default_store() -> Path:
    if env := os.environ.get("RUNBOOKS_STORE"):
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "runbooks" / "records.sqlite3"


def current_actor() -> str:
    """Until identity comes from the NetBox token owner, the OS user (or RUNBOOKS_ACTOR)."""
    return os.environ.get("RUNBOOKS_ACTOR") or getpass.getuser()


@dataclass
class Settings:
    """What one command works with: the local record store, and NetBox with the
    netbox-runbooks plugin when one is configured (then the team's changes live there)."""

    store_path: Path
    verbose: bool = False
    loaded: Loaded | None = None  # the settings file and variables, as read at the start
    _store: RecordStore | None = None
    _plugin: PluginAPI | None = None
    _probed: bool = False
    _mirror: RecordMirror | None = None

    def store(self) -> RecordStore:
        if self._store is None:
            self._store = RecordStore(self.store_path)
            setup_logging(self.store_path.parent / "runbook.log", self.verbose)
        return self._store

    def plugin(self) -> PluginAPI | None:
        """NetBox's change control, when NetBox is configured and runs the plugin (asked once
        per command; a NetBox that does not answer is an error, not a fallback)."""
        if not self._probed:
            self._probed = True
            nb = netbox_settings()
            if nb is not None and nb.token:
                from runbooks.gateways import netbox_plugin

                if netbox_plugin.available(nb):
                    self._plugin = netbox_plugin.PluginAPI(nb)
        return self._plugin

    def mirror(self) -> RecordMirror | None:
        """The mirror that sends granted runs' entries to NetBox as the store writes them."""
        api = self.plugin()
        if api is not None and self._mirror is None:
            from runbooks.gateways.netbox_records import RecordMirror

            self._mirror = RecordMirror(api, self.store_path)
            self.store().observers.append(self._mirror.observe)
        return self._mirror

    def close(self) -> None:
        if self._mirror is not None:
            self._mirror.close()
            self._mirror = None
        if self._plugin is not None:
            self._plugin.close()
            self._plugin = None
        if self._store is not None:
            self._store.close()
            self._store = None


class _FileHandler(logging.FileHandler):
    """The CLI's own handler (recognised so logging is set up once per process)."""


def setup_logging(logfile: Path, verbose: bool) -> None:
    """Log to a file beside the store (and to stderr with -v), secrets masked on every handler."""
    secrets.register_environment()
    root = logging.getLogger()
    if any(isinstance(h, _FileHandler) for h in root.handlers):
        return
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        handler: logging.Handler = _FileHandler(logfile, encoding="utf-8")
        handler.setFormatter(fmt)
        root.addHandler(handler)
    except OSError:
        pass
    if verbose:
        handler = logging.StreamHandler()
        handler.setFormatter(fmt)
        root.addHandler(handler)
    secrets.install_log_masking(root)
