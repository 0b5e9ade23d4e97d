"""napalm-bird2 accepts any SSH host key (paramiko's AutoAddPolicy, no option to change it):
the gateway makes the driver's SSH client itself, with RejectPolicy and the known_hosts
file of the settings, so the key is checked on the driver's own connection, before any
credential, and each device gets one connection and one login
(`runbooks.gateways.network_host_keys.open_checked`). Tested on napalm-bird2's real driver
against an SSH server on 127.0.0.1; a driver the gateway cannot open so (a subclass with its
own ``open``) is checked on a connection of its own first (tests/unit/gateways/
test_host_keys.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import paramiko
import pytest
from napalm_bird2.bird2 import BIRD2Driver  # type: ignore[import-untyped]

from runbooks.core.errors import AuthenticationError, ConnectError
from runbooks.core.gateway import Mode
from runbooks.gateways import network, network_host_keys
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from tests.unit.gateways.test_host_keys import _KeyServer, _line, _NoAuth, key_server, server_key

__all__ = ["key_server", "server_key"]  # the fixtures, used by name

OPTIONS = {"transport": "ssh", "look_for_keys": False, "allow_agent": False}


class _Accepting(_NoAuth):
    """Takes the password ``pw-not-real``, gives a session channel (nothing runs on it)."""

    def check_auth_password(self, username: str, password: str) -> int:
        self.tried.append(f"password {username}")
        ok = password == "pw-not-real"
        return int(paramiko.common.AUTH_SUCCESSFUL if ok else paramiko.common.AUTH_FAILED)


class _AcceptingServer(_KeyServer):
    interface = _Accepting


@pytest.fixture
def no_separate_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's check on a connection of its own must not run for napalm-bird2."""

    def refused(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the key was checked on a separate connection")

    monkeypatch.setattr(network, "key_refusal", refused)


def bird_gateway(known_hosts: Path, port: int, password: str = "pw-not-real") -> NetworkGateway:
    creds = Credentials("netops", password, port=port, timeout=5, known_hosts=known_hosts)
    target = DeviceTarget("border1", "127.0.0.1", "bird2", "bird2", OPTIONS)
    return NetworkGateway(Mode.PLAN, target, creds, "t")


@pytest.mark.parametrize(
    ("known", "says"), [("unknown", "is not in"), ("changed", "does not match the one in")]
)
@pytest.mark.usefixtures("no_separate_check")
def test_an_unknown_or_changed_key_is_refused_on_the_drivers_connection_before_credentials(
    tmp_path: Path, key_server: _KeyServer, server_key: paramiko.PKey, known: str, says: str
) -> None:
    known_hosts = tmp_path / "known_hosts"
    lines = {
        "unknown": f"198.18.0.31 {server_key.get_name()} {server_key.get_base64()}\n",
        "changed": _line(key_server.port, paramiko.ECDSAKey.generate()),
    }
    known_hosts.write_text(lines[known])
    before = known_hosts.read_text()
    gw = bird_gateway(known_hosts, key_server.port)
    with pytest.raises(ConnectError) as info:
        gw.facts()
    assert str(info.value) == (
        f"border1: refused while connecting to 127.0.0.1: its host key {says} {known_hosts}"
    )
    assert key_server.connections == 1 and key_server.tried == []  # no credential sent
    assert gw._device is None and gw.logins == 0
    assert known_hosts.read_text() == before  # nothing added to the file


@pytest.mark.usefixtures("no_separate_check")
def test_a_known_key_logs_in_on_the_same_one_connection(
    tmp_path: Path, server_key: paramiko.PKey
) -> None:
    """Key checked, then the login, on one TCP connection: the driver holds that client."""
    server = _AcceptingServer(server_key)
    try:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(_line(server.port, server_key))
        gw = bird_gateway(known_hosts, server.port)
        gw._open()
        device = gw._device
        assert isinstance(device, BIRD2Driver)
        client = device.transport.client
        assert client.get_transport().is_authenticated()
        assert device.is_alive() == {"is_alive": True}
        assert server.connections == 1 and server.tried == ["password netops"]
        assert gw.logins == 1
        gw.close()
        assert device.transport is None
    finally:
        server.close()


@pytest.mark.usefixtures("no_separate_check")
def test_refused_credentials_on_a_known_box_are_an_authentication_error(
    tmp_path: Path, key_server: _KeyServer, server_key: paramiko.PKey
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(_line(key_server.port, server_key))
    gw = bird_gateway(known_hosts, key_server.port)
    with pytest.raises(AuthenticationError, match="border1: credentials refused"):
        gw.facts()
    assert key_server.connections == 1 and key_server.tried  # tried there, nowhere else


def test_only_the_hosts_own_lines_are_read_and_they_give_what_paramikos_load_gives(
    tmp_path: Path,
) -> None:
    """The known keys of one host: plain or hashed names, several key types, the other
    hosts' lines skipped (paramiko's HostKeys.load parses them all: 3 ms a device on the
    lab's file), comments and unreadable lines skipped as paramiko skips them."""
    mine, other = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    rsa = paramiko.RSAKey.generate(1024)
    name = "[127.0.0.1]:2222"
    path = tmp_path / "known_hosts"
    path.write_text(
        "# a comment\n"
        f"198.18.0.9,r9 {other.get_name()} {other.get_base64()}\n"
        f"{paramiko.HostKeys.hash_host(name)} {mine.get_name()} {mine.get_base64()}\n"
        f"r8,{name} ssh-rsa {rsa.get_base64()}\n"
        "a line paramiko cannot read\n"
    )
    ours = paramiko.HostKeys()
    network_host_keys.add_known_keys(ours, path, "127.0.0.1", 2222)
    loaded = paramiko.HostKeys()
    loaded.load(str(path))
    assert dict(ours.lookup(name) or {}) == dict(loaded.lookup(name) or {})
    assert dict(ours.lookup(name) or {}) == {mine.get_name(): mine, "ssh-rsa": rsa}
    assert ours.lookup("198.18.0.9") is None  # another host's line was not read
    network_host_keys.add_known_keys(ours, tmp_path / "absent", "127.0.0.1", 2222)


def test_a_revoked_key_leaves_the_host_unknown(
    tmp_path: Path, key_server: _KeyServer, server_key: paramiko.PKey
) -> None:
    """paramiko's load fails on any marker line; here another host's markers are skipped, and
    a @revoked line for the box refuses it even beside a line trusting its key."""
    path = tmp_path / "known_hosts"
    other = paramiko.ECDSAKey.generate()
    trusted = _line(key_server.port, server_key)
    path.write_text(f"@revoked 198.18.0.9 {other.get_name()} {other.get_base64()}\n{trusted}")
    keys = paramiko.HostKeys()
    network_host_keys.add_known_keys(keys, path, "127.0.0.1", key_server.port)
    assert keys.lookup(f"[127.0.0.1]:{key_server.port}") is not None
    path.write_text(f"{trusted}@revoked {trusted}")
    with pytest.raises(ConnectError, match="its host key is not in"):
        bird_gateway(path, key_server.port).facts()
    assert key_server.tried == []


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "198.18.0.9,r9",
        "[127.0.0.1]:*",
        pytest.param(  # hashed, a fixed salt (the same test id in every process)
            paramiko.HostKeys.hash_host("198.18.0.9", "LKR6RsV0PN+tKgi6UhN3O6w7yUM="), id="hashed"
        ),
    ],
)
def test_a_key_revoked_under_any_host_pattern_is_refused(
    tmp_path: Path, key_server: _KeyServer, server_key: paramiko.PKey, pattern: str
) -> None:
    """Found by review: OpenSSH revokes the key itself, whatever host the @revoked line
    names (``*`` too); only a line naming this very box used to refuse it. The box's key,
    revoked so and trusted by a line of its own, is refused on the separate check and on
    napalm-bird2's own connection, before any credential; the box's other keys stay."""
    path = tmp_path / "known_hosts"
    unreadable = "@revoked * ssh-ed25519 !!!not-base64\n@revoked 198.18.0.9 ssh-ed25519 AAAA\n"
    revoked = f"@revoked {pattern} {server_key.get_name()} {server_key.get_base64()}\n"
    path.write_text(unreadable + revoked + _line(key_server.port, server_key))
    keys = paramiko.HostKeys()
    network_host_keys.add_known_keys(keys, path, "127.0.0.1", key_server.port)
    assert keys.lookup(f"[127.0.0.1]:{key_server.port}") is None
    why = network_host_keys.key_refusal("127.0.0.1", key_server.port, path, 5)
    assert why == "is revoked in"
    with pytest.raises(ConnectError, match="its host key is not in"):
        bird_gateway(path, key_server.port).facts()
    assert key_server.tried == []
    other = paramiko.ECDSAKey.generate()  # another key of the box, not revoked
    path.write_text(revoked + _line(key_server.port, server_key) + _line(key_server.port, other))
    keys = paramiko.HostKeys()
    network_host_keys.add_known_keys(keys, path, "127.0.0.1", key_server.port)
    assert dict(keys.lookup(f"[127.0.0.1]:{key_server.port}") or {}) == {other.get_name(): other}


def test_a_revocation_of_another_key_leaves_the_box_trusted(
    tmp_path: Path, key_server: _KeyServer, server_key: paramiko.PKey
) -> None:
    path = tmp_path / "known_hosts"
    other = paramiko.ECDSAKey.generate()
    path.write_text(
        f"@revoked * {other.get_name()} {other.get_base64()}\n"
        "@revoked * ssh-ed25519 !!!not-base64\n" + _line(key_server.port, server_key)
    )
    assert network_host_keys.key_refusal("127.0.0.1", key_server.port, path, 5) == ""
