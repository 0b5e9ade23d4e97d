"""Cancelling a playbook stops the command it started on a lab host, not only local processes."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

from lab_fixtures import LabHandle

from runbooks.core.errors import GatewayError
from runbooks.core.gateway import Mode
from runbooks.gateways.ansible import AnsibleGateway, AnsibleSettings
from runbooks.lab import network
from runbooks.lab.node import ssh_dir


def remote_sleeps(host: str, marker: str) -> list[int]:
    """Processes of the lab host (its network namespace) running our uniquely long sleep."""
    found = []
    for pid in network.netns_pids(network.netns_name(host)):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", marker.encode()]:
            found.append(pid)
    return found


def test_cancel_stops_the_remote_command(lab: LabHandle, tmp_path: Path) -> None:
    seconds = str(3000 + secrets.randbelow(999))  # unique: only our sleep has this argument
    (tmp_path / "sleep.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        f"    - name: a long remote command\n      ansible.builtin.command: sleep {seconds}\n"
    )
    settings = AnsibleSettings(
        project_dir=tmp_path,
        inventory="srv1 ansible_host=198.18.0.31\n",
        remote_user="root",
        private_key_file=ssh_dir() / "id_ed25519",
    )
    gw = AnsibleGateway(Mode.RUN, settings)
    errors: list[BaseException] = []

    def play() -> None:
        try:
            gw.run("sleep.yml")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=play)
    thread.start()
    deadline = time.monotonic() + 60
    while not remote_sleeps("srv1", seconds):
        assert time.monotonic() < deadline, "the remote command never started"
        time.sleep(0.2)
    started = time.monotonic()
    gw.cancel()
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(errors[0], GatewayError) and "cancelled" in str(errors[0])
    while remote_sleeps("srv1", seconds) and time.monotonic() - started < 10:
        time.sleep(0.2)
    left = remote_sleeps("srv1", seconds)
    assert not left, f"remote command still running after the cancel: {left}"
