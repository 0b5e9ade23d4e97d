"""The crash-consistency suite's machinery: the `runbook` command as the lab's operator, a run
killed (its whole process tree, SIGKILL) at chosen pause points and resumed, and the state a
run leaves, normalised so that two runs of the same change compare equal.

Pause points are installed in the `runbook` process by tests/support/crash_points.py. One run
is killed at many points in turn: each `runbook resume` gets the points not reached yet, so a
chain of N points costs one run plus N restarts, not N runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runbooks_rules.sheet import rows as sheet_rows

from runbooks.core.store import RecordStore
from runbooks.gateways.ansible_process import descendants
from runbooks.lab import frr, netbox

SUPPORT = Path(__file__).resolve().parents[1] / "support"
RACK_MODULES = "runbooks.library.rack_in,runbooks.library.rack_out"
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b")
CHANGE_ID = re.compile(r"\bCHG-\d{8}-[0-9a-f]{6}\b")
HASH = re.compile(r"\b[0-9a-f]{64}\b")
TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")  # e.g. ETags


@dataclass
class Operator:
    """olivia at her own machine: her NetBox token, her store, the lab's device key."""

    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.home / "records.sqlite3"

    def env(self, crash_at: Sequence[str] = ()) -> dict[str, str]:
        url, token = netbox.credentials("operator")
        ssh = frr.device_ssh_params("leaf3")
        env = {
            **os.environ,
            "RUNBOOKS_NETBOX_URL": url,
            "RUNBOOKS_NETBOX_TOKEN": token,
            "RUNBOOKS_STORE": str(self.store),
            "RUNBOOKS_DEVICE_USERNAME": ssh["username"],
            "RUNBOOKS_DEVICE_KEY_FILE": ssh["key_file"],
            "RUNBOOKS_DEVICE_TIMEOUT": "20",
            "RUNBOOKS_MODULES": f"{RACK_MODULES},{SUPPORT / 'crash_points.py'}",
            "RUNBOOKS_CRASH_DIR": str(self.home),
            "RUNBOOKS_CRASH_AT": ";".join(crash_at),
            **self.extra_env,
        }
        env.pop("RUNBOOKS_ACTOR", None)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "runbooks.cli", *args]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def until_paused(
        self, args: Sequence[str], crash_at: Sequence[str], timeout: float = 600
    ) -> tuple[str, subprocess.CompletedProcess[str] | None]:
        """Start the command; when it pauses at one of ``crash_at``, kill its whole process
        tree (SIGKILL) and return the point. A command that ends first returns ("", result)."""
        paused = self.home / "paused"
        paused.unlink(missing_ok=True)
        log = (self.home / "stderr.log").open("a")
        proc = subprocess.Popen(
            self.command(*args),
            env=self.env(crash_at),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        try:
            while not paused.exists():
                if proc.poll() is not None:
                    out = proc.stdout.read() if proc.stdout else ""
                    return "", subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{args} neither paused nor ended in {timeout:g} s")
                time.sleep(0.05)
            point = paused.read_text()
            kill_tree(proc)
            return point, None
        finally:
            log.close()
            if proc.poll() is None:
                kill_tree(proc)


def kill_tree(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process group we started and the groups of everything below it (Ansible
    runs its workers in groups of their own), as a crash of the machine would."""
    groups = {proc.pid}
    below = descendants(proc.pid)
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(pid))
    # only groups led by the process we started or one of its descendants: ours to end
    for group in groups & {proc.pid, *below}:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    proc.wait(30)


def run_id_of(store: Path) -> str:
    """The newest run in the operator's store."""
    with RecordStore(store) as records:
        runs = records.runs()
    assert runs, "no run in the local store"
    return str(runs[0]["run_id"])


def finished_steps(store: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's record sheet, row by row (runbooks_rules.sheet), as two runs of one change
    must agree on it: each step's title, kind, status, targets, actor, error and diffs (what
    and from what to what), run ids and hashes normalised. Times, evidence (uptimes, counts)
    and the notes a resume adds are left out."""
    with RecordStore(store) as records:
        entries = records.entries(run_id)
    keep = ("step", "title", "kind", "status", "targets", "actor", "diffs", "error")
    return [
        json.loads(normalise(json.dumps({k: asdict(row)[k] for k in keep}, sort_keys=True)))
        for row in sheet_rows(entries)
    ]


def normalise(text: str) -> str:
    """Run ids, hashes and times out: two runs of one change then read the same."""
    text = TIME.sub("<time>", text)
    return HASH.sub("<hash>", CHANGE_ID.sub("<change>", RUN_ID.sub("<run>", text)))


def normalised_journal(comments: Iterable[str]) -> list[str]:
    return sorted(normalise(c) for c in comments)


def status_of(done: subprocess.CompletedProcess[str]) -> str:
    try:
        return str(json.loads(done.stdout).get("status"))
    except ValueError:
        return f"exit {done.returncode}: {done.stdout[-500:]}"


def network_state(devices: Iterable[str]) -> dict[str, Any]:
    """Every device's BGP sessions (peer → up) and LLDP neighbours (interface → peer)."""
    from rack_support import device_gateway

    from runbooks.core.gateway import Mode
    from runbooks.gateways.network import NetworkGateway

    out: dict[str, Any] = {}
    for name in devices:
        gw = device_gateway(NetworkGateway, Mode.PLAN, name)
        try:
            peers = gw.bgp_neighbors().get("global", {}).get("peers", {})
            out[f"{name} bgp"] = {a: bool(p.get("is_up")) for a, p in sorted(peers.items())}
            out[f"{name} lldp"] = {
                i: sorted(f"{n['hostname']}:{n['port']}" for n in ns)
                for i, ns in sorted(gw.lldp_neighbors().items())
            }
        finally:
            gw.close()
    return out


def rack_world() -> dict[str, Any]:
    """What a rack run leaves: configurations (running, startup, pending), NetBox's objects,
    the journal (normalised), BGP and LLDP."""
    from rack_support import DEVICES, snapshot

    state = snapshot()
    journal = state.pop("extras.journalentry")
    state["journal"] = normalised_journal(j["comments"] for j in journal.values())
    return {**state, **network_state(DEVICES)}


def wait_for_bgp(devices: Iterable[str], timeout: float = 60) -> None:
    """Sessions that a run brought up settle for a few seconds after it: compare them settled."""
    deadline = time.monotonic() + timeout
    while True:
        state = network_state(devices)
        down = [k for k, v in state.items() if k.endswith(" bgp") and not all(v.values())]
        if not down or time.monotonic() > deadline:
            return
        time.sleep(1)


SERVER_FILES = (
    "/etc/motd",
    "/etc/ssh/sshd_config.d/50-it-baseline.conf",
    "/etc/default/baseline-agent",
    "/etc/init.d/baseline-agent",
    "/srv/baseline-agent/status.json",
)


def server_env() -> dict[str, str]:
    """What the `runbook` command needs for the Ansible runbooks on the lab."""
    from runbooks.lab import software
    from runbooks.lab.node import ssh_dir

    return {
        "RUNBOOKS_SOFTWARE_SOURCE": software.source_line(),
        "RUNBOOKS_ANSIBLE_PRIVATE_KEY": str(ssh_dir() / "id_ed25519"),
        "RUNBOOKS_ANSIBLE_USER": "root",
        "RUNBOOKS_BASELINE_AGENT_PORT": "9100",  # the lab's status agent port: no default
    }


def server_world(names: Iterable[str]) -> dict[str, Any]:
    """What server-maintenance leaves on each host (the managed files, the package, the agent,
    the snapshot it keeps for a rollback) and in NetBox's journal, normalised."""
    from rack_support import snapshot_journal

    from runbooks.lab import hosts

    out: dict[str, Any] = {}
    script = (
        "for f in " + " ".join(SERVER_FILES) + "; do "
        '[ -f "$f" ] && sha256sum "$f" || echo "absent $f"; done; '
        "dpkg-query -W -f='pv ${Status}\\n' pv 2>/dev/null || echo 'pv absent'; "
        "[ -x /etc/init.d/baseline-agent ] && /etc/init.d/baseline-agent status >/dev/null 2>&1; "
        'echo "agent $?"; ls /var/backups/runbooks 2>/dev/null; '
        "cat /var/backups/runbooks/*/manifest.json 2>/dev/null"
    )
    for name in names:
        done = hosts.run_on_host(name, ["sh", "-c", script])
        out[name] = normalise(done.stdout).splitlines()
    out["journal"] = normalised_journal(snapshot_journal())
    return out
