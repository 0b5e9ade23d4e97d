"""The process side of running Ansible: a child environment without secrets, killing a whole
process tree, closing SSH masters, and a last scrub of the private data directory.

Why each exists (measured, see LAB-NOTES):
- ansible-runner writes the child's *whole* environment to ``artifacts/<ident>/command``, so the
  child gets an allow-listed environment and never holds a secret of ours at all.
- cancelling ansible-runner kills only ansible-playbook's process group; Ansible's workers and
  their ``ssh`` clients run in process groups of their own and keep going. The canceller here
  walks the tree under the runner's child and signals every process group found in it.
- ``ControlPersist`` SSH masters daemonise out of the tree; they are told to exit through their
  control sockets, which live in the run's private directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from runbooks.core import secrets

log = logging.getLogger(__name__)

# What an ansible-playbook child needs from our environment; everything else stays out.
ENV_ALLOW = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TERM", "TZ", "USER", "LOGNAME"})
ENV_ALLOW_PREFIXES = ("LC_",)


def child_env(
    source: Mapping[str, str], extra: Mapping[str, str], venv_bin: str | None = None
) -> dict[str, str]:
    """An allow-listed environment plus ``extra`` (ANSIBLE_* settings); nothing secret-named.

    Raises ValueError if ``extra`` itself names or holds a registered secret: a secret must
    reach a playbook through the private extra-vars file, never through the environment."""
    env = {k: v for k, v in source.items() if k in ENV_ALLOW or k.startswith(ENV_ALLOW_PREFIXES)}
    for key, value in extra.items():
        if secrets.is_secret_key(key) or secrets.mask_text(value) != value:
            raise ValueError(f"environment variable {key} for Ansible would carry a secret")
        env[key] = value
    if venv_bin:
        # ansible-runner looks ansible-playbook up on PATH: ours first
        parts = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin]
        env["PATH"] = os.pathsep.join([venv_bin, *parts])
    return env


def _ppid_map() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = int(fields[1])
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren ...), from /proc."""
    children: dict[int, list[int]] = {}
    for child, parent in _ppid_map().items():
        children.setdefault(parent, []).append(child)
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def process_groups(pids: Iterable[int]) -> set[int]:
    groups: set[int] = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(pid))
    return groups


def kill_tree(pid: int, grace_s: float = 2.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process group in the tree of ``pid`` (pid's own included).

    Never our own process group, nor group 0/1. Returns the groups signalled."""
    ours = {os.getpgrp(), 0, 1}
    pids = [pid, *descendants(pid)]
    groups = sorted(process_groups(pids) - ours)
    loose = [p for p in pids if _pgid(p) in ours and p != os.getpid()]
    log.info("cancel: process groups %s, processes %s", groups, pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        for p in loose:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
        if sig is signal.SIGTERM:
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.05)
    return groups


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return -1


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def close_ssh_masters(control_dir: Path, timeout: float = 5.0) -> int:
    """Tell every ControlPersist master with a socket in ``control_dir`` to exit."""
    closed = 0
    if not control_dir.is_dir():
        return 0
    for sock in control_dir.iterdir():
        if not sock.is_socket():
            continue
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(
                ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "runbooks-ansible"],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            closed += 1
    return closed


def scrub_tree(root: Path) -> list[Path]:
    """Mask every registered secret in every text file under ``root``; returns files changed.

    The last net: the environment and the extra-vars already keep secrets out of the files
    ansible-runner writes; this catches what a careless playbook printed."""
    changed: list[Path] = []
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        masked = secrets.mask_text(text)
        if masked != text:
            path.write_text(masked, encoding="utf-8")
            changed.append(path)
    if changed:
        log.warning("masked secrets in %d file(s) under %s", len(changed), root)
    return changed
