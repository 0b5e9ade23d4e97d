"""The `runbook` command as the lab's people use it, each on a machine of their own: a home
(hence a local store and log) of its own, their own NetBox token, and what else the machine is
given (device credentials, a test runbook, a queue). Shared by the lab tests of change control."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runbooks.lab import frr, netbox, node

SUPPORT = Path(__file__).resolve().parents[1] / "support"
LEDGER = str(SUPPORT / "ledger_runbook.py")  # the test runbook (RUNBOOKS_MODULES)


def device_env(device: str = "leaf3") -> dict[str, str]:
    """The lab devices' login (the lab's generated key) for runbooks that reach devices."""
    ssh = frr.device_ssh_params(device)
    return {
        "RUNBOOKS_DEVICE_USERNAME": ssh["username"],
        "RUNBOOKS_DEVICE_KEY_FILE": ssh["key_file"],
        "RUNBOOKS_DEVICE_TIMEOUT": "20",
    }


class Machine:
    """`machine(role, *args)` runs `runbook *args` as the lab person holding ``role``; with
    ``ok`` (the default) it must succeed. No token ever appears in what it prints."""

    def __init__(self, home: Path, **env: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home, self.env = home, env

    @property
    def store(self) -> Path:
        """The machine's local record store (the default place under its home)."""
        return Path(
            self.env.get("RUNBOOKS_STORE")
            or self.home / ".local" / "share" / "runbooks" / "records.sqlite3"
        )

    def __call__(
        self, role: str, *args: str, ok: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        url, token = netbox.credentials(role)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RUNBOOKS_", "NETBOX_", "XDG_"))
        }
        env.update(
            HOME=str(self.home),
            RUNBOOKS_NETBOX_URL=url,
            RUNBOOKS_NETBOX_TOKEN=token,
            RUNBOOKS_SSH_KNOWN_HOSTS=str(node.known_hosts_file()),  # the lab's nodes' host keys
            **self.env,
        )
        done = subprocess.run(
            [sys.executable, "-m", "runbooks.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        assert token not in done.stdout + done.stderr
        return done


Runner = Callable[..., subprocess.CompletedProcess[str]]  # a Machine, or a test's stand-in


def planned_ledger(desk: Runner, workdir: Path, window_end: str = "+2h") -> dict[str, Any]:
    """olivia plans the test runbook at ``desk``, its window open since a minute ago: the
    plan's JSON (change, hash, actor, ...)."""
    args = ["plan", "test-ledger", f"workdir={workdir}", "--window-start", "-1m"]
    done = desk("operator", *args, "--window-end", window_end, "--json")
    return dict(json.loads(done.stdout))


def approved_ledger(
    desk: Runner, office: Runner, workdir: Path, window_end: str = "+2h"
) -> tuple[str, str]:
    """A change of the test runbook planned at olivia's ``desk``, reviewed and approved at the
    ``office``: (change id, plan hash)."""
    planned = planned_ledger(desk, workdir, window_end)
    change, digest = planned["change"], planned["hash"]
    office("reviewer", "review", change, "--accept", "--hash", digest)
    office("approver", "approve", change, "--hash", digest)
    return change, digest
