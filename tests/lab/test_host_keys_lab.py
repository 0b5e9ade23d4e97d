"""Host keys on the lab's real sshd's: each SSH transport (a device through NAPALM/Netmiko, the
database server through ssh, a server through Ansible) logs in with the lab's known_hosts and
refuses, in one line naming the file, when the file holds another key for the node."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.errors import ConnectError
from runbooks.core.gateway import Mode
from runbooks.gateways.ansible import AnsibleGateway, AnsibleSettings
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.gateways.postgres_shell import SshShell
from runbooks.lab import frr, hosts, node
from runbooks.lab import lab as lab_ops

PING = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"


@pytest.fixture
def held(lab: Any) -> Iterator[Any]:
    """Read-only: no reset, but none by another session meanwhile either."""
    with lab_ops.held(reset_first=False):
        yield lab


def forged(tmp_path: Path, name: str, address: str) -> Path:
    """The lab's known_hosts with another key for one node (what a man in the middle shows)."""
    key = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, value = key.with_suffix(".pub").read_text().split()[:2]
    lines = node.known_hosts_file().read_text().splitlines()
    others = [ln for ln in lines if address not in ln.split(" ", 1)[0].split(",")]
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"{ln}\n" for ln in others) + f"{address},{name} {kind} {value}\n")
    return path


def one_line(exc: pytest.ExceptionInfo[ConnectError], start: str, known: Path) -> None:
    message = str(exc.value)
    assert message == f"{start} its host key does not match the one in {known}"


def test_the_labs_known_hosts_names_every_node(held: Any) -> None:
    lines = node.known_hosts_file().read_text().splitlines()
    names = {ln.split(" ", 1)[0] for ln in lines}
    topo = held.topology
    want = {f"{n.mgmt},{n.name}" for n in [*topo.devices, *topo.hosts]}
    assert want <= names


def test_a_device_with_another_key_is_refused(held: Any, tmp_path: Path) -> None:
    ssh = frr.device_ssh_params("leaf1")

    def gateway(known: Path) -> NetworkGateway:
        creds = Credentials("root", key_file=ssh["key_file"], timeout=10, known_hosts=known)
        return NetworkGateway(Mode.PLAN, DeviceTarget("leaf1", ssh["host"], "frr"), creds, "t")

    trusted = gateway(Path(ssh["known_hosts"]))
    try:
        assert trusted.facts()["hostname"] == "leaf1"
    finally:
        trusted.close()
    known = forged(tmp_path, "leaf1", ssh["host"])
    with pytest.raises(ConnectError) as refused:
        gateway(known).facts()
    one_line(refused, f"leaf1: refused while connecting to {ssh['host']}:", known)


def test_the_database_server_with_another_key_is_refused(held: Any, tmp_path: Path) -> None:
    ssh = hosts.host_ssh_params("db1")
    login = {"user": ssh["username"]}  # the lab's login (the shell has no default user)
    trusted = SshShell(ssh["host"], ssh["key_file"], known_hosts=ssh["known_hosts"], **login)
    try:
        assert trusted.run(["id", "-un"]).stdout.strip() == "postgres"
    finally:
        trusted.close()
    known = forged(tmp_path, "db1", ssh["host"])
    shell = SshShell(ssh["host"], ssh["key_file"], known_hosts=known, **login)
    try:
        with pytest.raises(ConnectError) as refused:
            shell.run(["id", "-un"])
    finally:
        shell.close()
    message = str(refused.value)
    assert message == (
        f"root@{ssh['host']}: refused: the host key of {ssh['host']} does not match the one in "
        f"{known}"
    )


def test_a_server_with_another_key_is_unreachable_for_ansible(held: Any, tmp_path: Path) -> None:
    ssh = hosts.host_ssh_params("srv1")
    project = tmp_path / "project"
    project.mkdir()
    (project / "ping.yml").write_text(PING)

    def gateway(known: Path) -> AnsibleGateway:
        return AnsibleGateway(
            Mode.PLAN,
            AnsibleSettings(
                project_dir=project,
                inventory=f"srv1 ansible_host={ssh['host']}",
                remote_user="root",
                private_key_file=Path(ssh["key_file"]),
                known_hosts=known,
                timeout_s=60,
            ),
        )

    assert gateway(Path(ssh["known_hosts"])).check("ping.yml").status == "successful"
    known = forged(tmp_path, "srv1", ssh["host"])
    with pytest.raises(ConnectError) as refused:
        gateway(known).check("ping.yml")
    one_line(refused, "ping.yml: srv1 refused:", known)
