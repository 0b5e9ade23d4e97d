"""What the Ansible runbooks' lab tests share: an engine on the lab, the real-machine
fingerprint, and the no-secret scan of every artifact, the record store and the log."""

from __future__ import annotations

import hashlib
import io
import secrets as _random
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runbooks.core import secrets
from runbooks.core.context import Confirmer, RunContext, refuse_all
from runbooks.core.engine import Engine
from runbooks.core.gateway import Gateway
from runbooks.core.store import RecordStore
from runbooks.gateways.ansible import AnsibleGateway, AnsibleSettings
from runbooks.gateways.ansible_settings import NETBOX_INVENTORY
from runbooks.lab import hosts, netbox, software
from runbooks.lab.node import ssh_dir
from runbooks.lab.topology import Topology


def fingerprint(watched: Iterable[str], packages: Iterable[str] = ()) -> dict[str, str]:
    """The real machine's state of what the playbooks write on a host: these must not change."""
    out = {"hostname": socket.gethostname()}
    for name in watched:
        path = Path(name)
        if path.is_file():
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[name] = "dir" if path.is_dir() else "absent"
    for package in packages:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        out[f"package {package}"] = done.stdout or "not installed"
    return out


@dataclass
class AnsibleLab:
    engine: Engine
    store: RecordStore
    work: Path
    tmp: Path
    secrets: list[str] = field(default_factory=list)

    def assert_no_secret(self, log_text: str, extra: Iterable[Path] = ()) -> int:
        """Every file of every private data dir, the record store and its export, the log."""
        export = io.StringIO()
        self.store.export_jsonl(export)
        files = [p for p in self.work.rglob("*") if p.is_file()]
        files.append(self.tmp / "records.sqlite3")
        files.extend(extra)
        for value in self.secrets:
            for path in files:
                assert value.encode() not in path.read_bytes(), path
            assert value not in export.getvalue()
            assert value not in log_text
        return len(files)


def ansible_lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, confirmer: Confirmer = refuse_all
) -> AnsibleLab:
    """An engine acting as the lab's operator, Ansible artifacts kept for the secret scan, and
    a planted secret in the environment (it must not reach any artifact)."""
    url, token = netbox.credentials("operator")
    monkeypatch.setenv("RUNBOOKS_NETBOX_URL", url)
    monkeypatch.setenv("RUNBOOKS_NETBOX_TOKEN", token)
    planted = "planted-" + _random.token_hex(16)
    monkeypatch.setenv("RUNBOOKS_TEST_SECRET_TOKEN", planted)
    secrets.register(token, planted)
    monkeypatch.setenv("RUNBOOKS_SOFTWARE_SOURCE", software.source_line())  # the lab's mirror
    work = tmp_path / "ansible"
    work.mkdir()
    settings = AnsibleSettings(
        inventory=NETBOX_INVENTORY,
        netbox_url=url,
        netbox_token=token,
        remote_user="root",
        private_key_file=ssh_dir() / "id_ed25519",
        work_dir=work,
        keep_artifacts=True,
        timeout_s=600,
    )
    store = RecordStore(tmp_path / "records.sqlite3")
    factories: dict[type[Gateway], Callable[[RunContext, str], Gateway]] = {
        AnsibleGateway: lambda ctx, key: AnsibleGateway(ctx.mode, settings)
    }
    engine = Engine(store, "olivia", confirmer=confirmer, gateway_factories=factories)
    return AnsibleLab(engine, store, work, tmp_path, [token, planted])


@contextmanager
def taken_down_after(topo: Topology, host: str, snapshot_glob: str) -> Iterator[threading.Event]:
    """Stop `host` as soon as a file matching `snapshot_glob` exists on it (the playbook took
    its snapshot: the change is under way); start it again afterwards. The event says whether
    it was taken down."""
    stopped = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            probe = hosts.run_on_host(host, ["sh", "-c", f"ls {snapshot_glob}"])
            if probe.returncode == 0:
                hosts.stop_host(host)
                stopped.set()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield stopped
    finally:
        watcher.join(5)
        hosts.start_host(topo, next(h for h in topo.hosts if h.name == host))
