"""SSH host keys are checked by every transport by default: the database server's ssh, Ansible's
ssh and the network devices' Netmiko all use the one known_hosts file of the settings
(RUNBOOKS_SSH_KNOWN_HOSTS, default ~/.ssh/known_hosts) and refuse an unknown or changed key in
one line. (The refusal against real sshd's: tests/lab/test_network_gateway_lab.py.)"""

from __future__ import annotations

import base64
import contextlib
import doctest
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import paramiko
import pytest
from napalm import get_network_driver
from napalm.base import exceptions as napalm_errors
from napalm.base.mock import MockDriver
from napalm.base.netmiko_helpers import netmiko_args
from napalm_bird2.bird2 import BIRD2Driver  # type: ignore[import-untyped]
from netmiko import ConnectHandler
from paramiko.ssh_exception import BadHostKeyException, SSHException

from runbooks import config
from runbooks.core.errors import ConnectError
from runbooks.core.gateway import Mode
from runbooks.gateways import network, network_host_keys, ssh_host_keys
from runbooks.gateways.ansible import AnsibleGateway, AnsibleSettings
from runbooks.gateways.ansible_events import PlaybookResult, TaskResult
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.gateways.postgres_shell import SshShell

# An ed25519 public key (any valid one: the tests never connect).
KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIIUm8pHRPys5VY16McnvSYe68fzgZBhRH7VuS/fLR8Th"

_KEY = paramiko.Ed25519Key(data=base64.b64decode(KEY))


@pytest.fixture
def known_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "known hosts"  # a space: the path must reach ssh as one file
    path.write_text(f"198.18.0.41 ssh-ed25519 {KEY}\n")
    monkeypatch.setenv("RUNBOOKS_SSH_KNOWN_HOSTS", str(path))
    return path


def test_the_setting_defaults_to_the_users_known_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOKS_SSH_KNOWN_HOSTS", raising=False)
    monkeypatch.setenv("HOME", "/home/olivia")
    assert config.ssh_known_hosts() == Path("/home/olivia/.ssh/known_hosts")
    assert doctest.testmod(config).failed == 0


def _no_blind_trust(argv: list[str]) -> None:
    joined = " ".join(argv)
    assert "StrictHostKeyChecking=no" not in joined
    assert "/dev/null" not in joined
    assert "accept-new" not in joined


def test_the_database_servers_ssh_checks_keys_against_the_setting(known_hosts: Path) -> None:
    shell = SshShell("198.18.0.41", "/k")
    try:
        argv = shell._prefix(["psql", "-c", "select 1"])
        _no_blind_trust(argv)
        assert "StrictHostKeyChecking=yes" in argv
        assert f'UserKnownHostsFile="{known_hosts}"' in argv
        assert shell.known_hosts == known_hosts
    finally:
        shell.close()


def test_ssh_reads_the_setting_as_one_file_and_checks_strictly(known_hosts: Path) -> None:
    """What ssh itself makes of our options (`ssh -G` prints its configuration, no connection)."""
    shell = SshShell("198.18.0.41", "/k")
    try:
        ssh = shell._ssh()
        done = subprocess.run(
            [*ssh, "-G", "root@198.18.0.41"], capture_output=True, text=True, check=True
        )
    finally:
        shell.close()
    settings = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert settings["stricthostkeychecking"] == "true"
    assert settings["userknownhostsfile"] == str(known_hosts)


@pytest.mark.parametrize(
    ("stderr", "says"),
    [
        (
            "No ED25519 host key is known for 198.18.0.41 and you have requested strict "
            "checking.\nHost key verification failed.\n",
            "the host key of 198.18.0.41 is not in",
        ),
        (
            "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@\n"
            "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\nHost key for 198.18.0.41 "
            "has changed and you have requested strict checking.\nHost key verification failed.\n",
            "the host key of 198.18.0.41 does not match the one in",
        ),
    ],
)  # ssh's own words (OpenSSH 9.2, LogLevel=ERROR), measured against a real sshd
def test_a_refused_server_is_one_line_naming_the_file(
    known_hosts: Path, monkeypatch: pytest.MonkeyPatch, stderr: str, says: str
) -> None:
    def refused(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 255, "", stderr)

    monkeypatch.setattr(subprocess, "run", refused)
    shell = SshShell("198.18.0.41", "/k", user="root")
    with pytest.raises(ConnectError) as info:
        shell.run(["true"], check=False)  # refused even when the caller reads the exit code
    message = str(info.value)
    assert message.startswith(f"root@198.18.0.41: refused: {says} {known_hosts}")
    assert "\n" not in message


# --------------------------------------------------------------------------------- Ansible


def test_ansible_checks_keys_against_the_setting_by_default(
    known_hosts: Path, tmp_path: Path
) -> None:
    settings = AnsibleSettings.from_env()
    assert settings.host_key_checking is True
    assert settings.known_hosts == known_hosts
    private, scratch = tmp_path / "private", tmp_path / "scratch"
    private.mkdir()
    scratch.mkdir()
    env = AnsibleGateway(Mode.PLAN, settings)._env(private, scratch, "id")
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    args = env["ANSIBLE_SSH_ARGS"]
    _no_blind_trust([args])
    assert "-o StrictHostKeyChecking=yes" in args
    assert f'UserKnownHostsFile="{known_hosts}"\'' in args  # quoted for Ansible's shlex
    assert str(scratch) not in args.split("ControlPersist")[1]


def test_ansible_without_checking_uses_a_per_run_file(known_hosts: Path, tmp_path: Path) -> None:
    """Turned off explicitly: Ansible adds StrictHostKeyChecking=no itself; ~/.ssh and the
    setting's file are left alone (keys seen go to the run's scratch dir)."""
    from dataclasses import replace

    settings = replace(AnsibleSettings.from_env(), host_key_checking=False)
    env = AnsibleGateway(Mode.PLAN, settings)._env(tmp_path, tmp_path / "s", "id")
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "False"
    assert "StrictHostKeyChecking" not in env["ANSIBLE_SSH_ARGS"]
    assert str(tmp_path / "s" / "known_hosts") in env["ANSIBLE_SSH_ARGS"]


@pytest.mark.parametrize(
    ("msg", "says"),
    [
        (
            "Task failed: Failed to connect to the host via ssh: No ED25519 host key is known "
            "for 198.18.0.41 and you have requested strict checking.\r\nHost key verification "
            "failed.",
            "srv1 refused: its host key is not in",
        ),
        (
            "Task failed: Failed to connect to the host via ssh: @@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@@@@@@@@@"
            "@@@@@@@@\nIT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\nThe fingerprint",
            "srv1 refused: its host key does not match the one in",
        ),  # Ansible's message as the gateway keeps it: cut before ssh's last line
    ],
)
def test_ansible_refusal_is_one_line(known_hosts: Path, msg: str, says: str) -> None:
    task = TaskResult("srv1", "Gather facts", "play", "unreachable", msg=msg)
    result = PlaybookResult("site.yml", False, "failed", 4, tasks=(task,))
    with pytest.raises(ConnectError) as info:
        AnsibleGateway(Mode.PLAN, AnsibleSettings.from_env())._raise_for(result)
    assert str(info.value) == f"site.yml: {says} {known_hosts}"
    assert info.value.context["hosts"] == ["srv1"]
    assert doctest.testmod(ssh_host_keys).failed == 0


# ------------------------------------------------------------------------ network devices


class _Recorder:
    """A NAPALM driver that records what it is given and fails to connect as told."""

    given: dict[str, Any] = {}
    error: BaseException | None = None

    def __init__(self, host: str, user: str, password: str, **kw: Any) -> None:
        _Recorder.given = kw["optional_args"]
        self.netmiko_optional_args = netmiko_args(kw["optional_args"])  # as the FRR driver

    def open(self) -> None:
        if _Recorder.error is not None:
            raise _Recorder.error

    def close(self) -> None:
        pass

    def get_facts(self) -> dict[str, Any]:
        return {"hostname": "leaf1"}


def _gateway(monkeypatch: pytest.MonkeyPatch, error: BaseException | None = None) -> Any:
    monkeypatch.setattr(network, "get_network_driver", lambda name: _Recorder)
    _Recorder.error = error
    creds = Credentials.from_env({"RUNBOOKS_DEVICE_USERNAME": "root", **_env()})
    return NetworkGateway(Mode.PLAN, DeviceTarget("leaf1", "198.18.0.11", "frr"), creds, "t")


def _env() -> dict[str, str]:
    import os

    return {"RUNBOOKS_SSH_KNOWN_HOSTS": os.environ["RUNBOOKS_SSH_KNOWN_HOSTS"]}


def test_devices_get_strict_host_key_options(
    known_hosts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _gateway(monkeypatch).facts() == {"hostname": "leaf1"}
    given = _Recorder.given
    assert given["ssh_strict"] is True
    assert given["system_host_keys"] is False
    assert (given["alt_host_keys"], given["alt_key_file"]) == (True, str(known_hosts))
    assert doctest.testmod(network).failed == 0


def test_netmiko_given_those_options_trusts_the_file_only(known_hosts: Path) -> None:
    """Through the FRR driver's own filter (napalm's netmiko_args) into Netmiko's client:
    the file's keys are loaded and a missing key is refused (paramiko's RejectPolicy)."""
    frr_driver = get_network_driver("frr")  # the project's driver, as the gateway finds it
    key = known_hosts.parent / "id_ed25519"  # Netmiko wants the file to exist; never read
    key.touch()
    args = {**network.host_key_args(known_hosts), "key_file": str(key), "port": 22}
    driver = frr_driver("198.18.0.41", "root", "", optional_args=args)
    conn = ConnectHandler(
        device_type="linux",
        host="198.18.0.41",
        username="root",
        auto_connect=False,
        **driver.netmiko_optional_args,
    )
    client = conn._build_ssh_client()
    try:
        assert isinstance(conn.key_policy, paramiko.RejectPolicy)
        assert client.get_host_keys().lookup("198.18.0.41") is not None  # from our file
        assert client.get_host_keys().lookup("198.18.0.42") is None
    finally:
        client.close()


@pytest.mark.parametrize(
    ("cause", "says"),
    [
        (SSHException("Server '198.18.0.11' not found in known_hosts"), "is not in"),
        (
            BadHostKeyException("198.18.0.11", _KEY, _KEY),
            "does not match the one in",
        ),
    ],
)
def test_a_refused_device_is_one_line_naming_the_file(
    known_hosts: Path, monkeypatch: pytest.MonkeyPatch, cause: Exception, says: str
) -> None:
    try:  # as the FRR driver raises it: NAPALM's ConnectionException from paramiko's error
        raise napalm_errors.ConnectionException("Cannot connect to 198.18.0.11") from cause
    except napalm_errors.ConnectionException as exc:
        error = exc
    with pytest.raises(ConnectError) as info:
        _gateway(monkeypatch, error).facts()
    assert str(info.value) == (
        f"leaf1: refused while connecting to 198.18.0.11: its host key {says} {known_hosts}"
    )


# ------------------------------------- drivers that do not check: the gateway checks itself


class _NoAuth(paramiko.ServerInterface):  # type: ignore[misc]
    """Records every authentication a client tries (none must come) and accepts none."""

    def __init__(self, tried: list[str]) -> None:
        self.tried = tried

    def get_allowed_auths(self, username: str) -> str:
        self.tried.append(f"methods for {username}")
        return "password,publickey"

    def check_auth_none(self, username: str) -> int:
        self.tried.append(f"none {username}")
        return int(paramiko.common.AUTH_FAILED)

    def check_auth_password(self, username: str, password: str) -> int:
        self.tried.append(f"password {username}")
        return int(paramiko.common.AUTH_FAILED)

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.tried.append(f"publickey {username}")
        return int(paramiko.common.AUTH_FAILED)


class _KeyServer:
    """An SSH server on 127.0.0.1 at an ephemeral port showing ``keys``: key exchange only
    (``interface``: how it answers authentication; `_NoAuth` takes none)."""

    interface: ClassVar[type[_NoAuth]] = _NoAuth

    def __init__(self, *keys: paramiko.PKey) -> None:
        self.keys = keys
        self.tried: list[str] = []
        self.connections = 0
        self._transports: list[paramiko.Transport] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            transport = paramiko.Transport(conn)
            for key in self.keys:
                transport.add_server_key(key)
            self._transports.append(transport)
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                transport.start_server(server=self.interface(self.tried))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept (close alone does not)
        self._sock.close()
        for transport in self._transports:
            transport.close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def server_key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate()


@pytest.fixture
def key_server(server_key: paramiko.PKey) -> Iterator[_KeyServer]:
    server = _KeyServer(server_key)
    yield server
    server.close()


class _BirdLike(BIRD2Driver):  # type: ignore[misc]
    """napalm-bird2's driver class (its own __init__ and transport choice), opening nothing:
    ``open`` records that it was reached."""

    opened: ClassVar[list[str]] = []

    def open(self) -> None:
        _BirdLike.opened.append(self.hostname)

    def close(self) -> None:
        pass

    def get_facts(self) -> dict[str, Any]:
        return {"hostname": "border1"}


def _bird_gateway(monkeypatch: pytest.MonkeyPatch, known_hosts: Path, port: int) -> NetworkGateway:
    monkeypatch.setattr(network, "get_network_driver", lambda name: _BirdLike)
    _BirdLike.opened = []
    creds = Credentials("netops", "pw-not-real", port=port, timeout=5, known_hosts=known_hosts)
    target = DeviceTarget("border1", "127.0.0.1", "bird2", "bird2", {"transport": "ssh"})
    return NetworkGateway(Mode.PLAN, target, creds, "t")


def _line(port: int, key: paramiko.PKey) -> str:
    return f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n"


@pytest.mark.parametrize(
    ("known", "says"),
    [
        ("unknown", "is not in"),
        ("changed", "does not match the one in"),
    ],
)
def test_a_driver_that_does_not_check_is_refused_before_it_opens(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key_server: _KeyServer,
    server_key: paramiko.PKey,
    known: str,
    says: str,
) -> None:
    """napalm-bird2 accepts any key (paramiko's AutoAddPolicy): the gateway asks the box for
    its key first and refuses, one line, before the driver opens and before any credential."""
    known_hosts = tmp_path / "known_hosts"
    other = paramiko.ECDSAKey.generate()
    lines = {
        "unknown": f"198.18.0.31 {server_key.get_name()} {server_key.get_base64()}\n",
        "changed": _line(key_server.port, other),
    }
    known_hosts.write_text(lines[known])
    gw = _bird_gateway(monkeypatch, known_hosts, key_server.port)
    with pytest.raises(ConnectError) as info:
        gw.facts()
    assert str(info.value) == (
        f"border1: refused while connecting to 127.0.0.1: its host key {says} {known_hosts}"
    )
    assert _BirdLike.opened == []
    assert key_server.connections == 1
    assert key_server.tried == []  # no authentication tried: no credential sent


def test_a_driver_that_does_not_check_opens_when_the_key_is_known(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key_server: _KeyServer,
    server_key: paramiko.PKey,
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(_line(key_server.port, server_key))
    gw = _bird_gateway(monkeypatch, known_hosts, key_server.port)
    assert gw.facts() == {"hostname": "border1"}
    assert _BirdLike.opened == ["127.0.0.1"]
    assert key_server.connections == 1 and key_server.tried == []
    gw.facts()
    assert key_server.connections == 1  # once per device per run


def test_the_check_asks_for_the_key_type_the_file_holds(tmp_path: Path) -> None:
    """A server with an ECDSA and an RSA key, the file holding its RSA key: paramiko would
    negotiate ECDSA first; the check asks for RSA (as OpenSSH does) and passes."""
    rsa = paramiko.RSAKey.generate(1024)
    server = _KeyServer(paramiko.ECDSAKey.generate(), rsa)
    try:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(_line(server.port, rsa))
        assert network_host_keys.key_refusal("127.0.0.1", server.port, known_hosts, 5) == ""
        missing = tmp_path / "absent"
        assert network_host_keys.key_refusal("127.0.0.1", server.port, missing, 5) == "is not in"
        assert server.tried == []
    finally:
        server.close()


def test_a_closed_port_is_unreachable_not_a_key_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = int(sock.getsockname()[1])
    gw = _bird_gateway(monkeypatch, tmp_path / "known_hosts", port)
    with pytest.raises(ConnectError) as info:
        gw.facts()
    assert str(info.value) == (
        "border1: unreachable while connecting to 127.0.0.1 (ConnectionRefusedError)"
    )
    assert _BirdLike.opened == []


def _built(name: str, **optional_args: Any) -> Any:
    """The driver object the gateway builds (no connection), given the gateway's options."""
    known_hosts = Path("/etc/runbooks/known_hosts")
    args = {"port": 22, **network.host_key_args(known_hosts), **optional_args}
    return get_network_driver(name)("198.18.0.31", "netops", "pw", optional_args=args)


@pytest.mark.parametrize(
    ("driver", "options", "checked"),
    [
        ("bird2", {}, True),  # paramiko with AutoAddPolicy, no option to change it
        ("bird2", {"transport": "socket"}, False),  # birdc's local socket: no SSH
        ("frr", {}, False),  # Netmiko with ssh_strict and the file
        ("ios", {}, False),
        ("nxos_ssh", {}, False),
        ("eos", {"transport": "ssh"}, False),
        ("eos", {}, False),  # eAPI over https: no SSH host key
        ("ios", {"ssh_strict": False}, True),  # the config context turned Netmiko's check off
        ("ios", {"alt_key_file": "/tmp/other"}, True),  # another file than the settings'
    ],
)
def test_which_drivers_the_gateway_checks_itself(
    driver: str, options: dict[str, Any], checked: bool
) -> None:
    built = _built(driver, **options)
    known_hosts = Path("/etc/runbooks/known_hosts")
    assert network_host_keys.needs_key_check(built, known_hosts) is checked
    assert network_host_keys.needs_key_check(MockDriver("h", "u", "p"), known_hosts) is False
    assert doctest.testmod(network_host_keys).failed == 0
