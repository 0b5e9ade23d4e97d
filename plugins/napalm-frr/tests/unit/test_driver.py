"""Driver plumbing: discovery by name, options, connection errors, cli."""

from __future__ import annotations

from typing import Any

import napalm
import pytest
from napalm.base.exceptions import (
    CommandTimeoutException,
    CommitConfirmException,
    ConnectAuthError,
    ConnectionClosedException,
    ConnectionException,
)
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException, ReadTimeout

from napalm_frr import FRRDriver, frr


def test_napalm_finds_the_driver_by_name() -> None:
    assert napalm.get_network_driver("frr") is FRRDriver


def test_optional_args_split_between_netmiko_and_paths() -> None:
    dev = FRRDriver(
        "r1",
        "admin",
        "",
        optional_args={
            "port": 2222,
            "key_file": "/k",
            "sudo": True,
            "state_dir": "/var/lib/napalm-frr",
            "lldpcli": "lldpcli -u /run/lldpd-r1.socket",
            "reload_args": ["--vty_socket", "/run/frr/r1"],
            "command_timeout": 5,
        },
    )
    assert dev.netmiko_optional_args == {"port": 2222, "key_file": "/k", "use_keys": True}
    assert dev.sudo and dev.command_timeout == 5
    assert dev.paths.state_dir == "/var/lib/napalm-frr"
    assert dev.paths.reload_args == ("--vty_socket", "/run/frr/r1")
    assert dev.paths.lldpcli == "lldpcli -u /run/lldpd-r1.socket"


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (NetmikoAuthenticationException("denied"), ConnectAuthError),
        (NetmikoTimeoutException("timed out"), ConnectionException),
        (ConnectionRefusedError("refused"), ConnectionException),
    ],
)
def test_open_maps_errors(
    monkeypatch: pytest.MonkeyPatch, raised: Exception, expected: type
) -> None:
    def fail(**kwargs: Any) -> None:
        assert kwargs["device_type"] == "linux"
        raise raised

    monkeypatch.setattr(frr, "ConnectHandler", fail)
    with pytest.raises(expected):
        FRRDriver("r1", "root", "").open()


class Shell:
    """Netmiko's connection as open() leaves it: the prompt it found (``base_prompt``)."""

    base_prompt = "root@leaf1:~"

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_command(self, command: str, **kwargs: Any) -> str:
        self.sent.append((command, kwargs))
        return "FRRouting 10.1 (leaf1) on Linux(6.1)."

    def disconnect(self) -> None:
        pass


def test_commands_read_up_to_the_prompt_found_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command waits for the prompt Netmiko found at open, given as expect_string:
    Netmiko would otherwise send a RETURN and look for the prompt again before each one
    (send_command's auto_find_prompt, ~60 ms a command on the lab)."""
    monkeypatch.setattr(frr, "ConnectHandler", Shell)
    dev = FRRDriver("r1", "root", "")
    dev.open()
    dev.cli(["show version"])
    shell = dev.device
    assert [command for command, _ in shell.sent] == [frr.SESSION_SETUP, "vtysh -c 'show version'"]
    assert {kw.get("expect_string") for _, kw in shell.sent} == {r"root@leaf1:\~[#$]"}
    dev.close()
    assert dev._prompt is None


def test_commands_before_open_raise() -> None:
    dev = FRRDriver("r1", "root", "")
    assert dev.is_alive() == {"is_alive": False}
    with pytest.raises(ConnectionClosedException):
        dev.get_facts()


class Canned:
    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.sent: list[str] = []

    def send_command(self, command: str, **kwargs: Any) -> str:
        self.sent.append(command)
        return self.answers[command]


def test_cli_text_and_json() -> None:
    dev = FRRDriver("r1", "root", "")
    dev.device = Canned(
        {
            "vtysh -c 'show ip route summary'": "\nRoute Source  Routes\n",
            "vtysh -c 'show bgp summary json'": '\n{"ipv4Unicast": {"as": 65001}}',
        }
    )
    assert dev.cli(["show ip route summary"]) == {"show ip route summary": "Route Source  Routes"}
    assert dev.cli(["show bgp summary json"], encoding="json") == {
        "show bgp summary json": {"ipv4Unicast": {"as": 65001}}
    }
    with pytest.raises(TypeError):
        dev.cli("show version")  # type: ignore[arg-type]


def test_sudo_wraps_getters() -> None:
    dev = FRRDriver("r1", "admin", "", optional_args={"sudo": True})
    dev.device = Canned({"sudo -n sh -c 'vtysh -c '\"'\"'show version'\"'\"''": "FRRouting 9.1"})
    assert dev.cli(["show version"]) == {"show version": "FRRouting 9.1"}


class Broken:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def send_command(self, command: str, **kwargs: Any) -> str:
        raise self.error


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ReadTimeout("no prompt"), CommandTimeoutException),
        (OSError("Socket is closed"), ConnectionClosedException),
        (EOFError(), ConnectionClosedException),
    ],
)
def test_command_errors_become_napalm_errors(raised: Exception, expected: type) -> None:
    dev = FRRDriver("r1", "root", "")
    dev.device = Broken(raised)
    with pytest.raises(expected):
        dev.get_bgp_neighbors()


def test_close_survives_a_dead_session() -> None:
    dev = FRRDriver("r1", "root", "")

    class Dead(Broken):
        disconnected = False

        def disconnect(self) -> None:
            self.disconnected = True

    dead = Dead(OSError("Socket is closed"))
    dev.device = dead
    dev._config.candidate = object()  # type: ignore[assignment]
    dev.close()
    assert dead.disconnected and dev.device is None


def test_error_messages_mask_secrets() -> None:
    from napalm_frr.config import _fail

    exc = _fail(
        CommitConfirmException, "line 2: % Unknown command: neighbor 1.1.1.1 password hunter2"
    )
    assert "hunter2" not in str(exc)


def test_sudo_hostname_warning_is_dropped() -> None:
    dev = FRRDriver("r1", "netops", "", optional_args={"sudo": True})
    warning = "sudo: unable to resolve host r1: Temporary failure in name resolution\n"
    command = "sudo -n sh -c 'vtysh -c '\"'\"'show version'\"'\"''"
    dev.device = Canned({command: warning + "FRRouting 9.1"})
    assert dev.cli(["show version"]) == {"show version": "FRRouting 9.1"}


def test_open_keeps_commands_out_of_shell_history(monkeypatch: pytest.MonkeyPatch) -> None:
    shell = Canned({frr.SESSION_SETUP: ""})
    monkeypatch.setattr(frr, "ConnectHandler", lambda **kwargs: shell)
    FRRDriver("r1", "root", "").open()
    assert shell.sent == ["set +o history; unset HISTFILE"]


def test_sanitized_config_hides_bgp_and_enable_passwords() -> None:
    running = (
        "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\n"
        "hostname r1\npassword zebra-login\nenable password zebra-enable\n"
        "router bgp 65001\n neighbor 198.18.1.1 remote-as 65101\n"
        " neighbor 198.18.1.1 password bgp-s3cret\nexit\n!\nend\n"
    )
    dev = FRRDriver("r1", "root", "")
    dev.device = Canned(
        {"vtysh -c 'show running-config'": running, "cat /etc/frr/frr.conf": running}
    )
    config = dev.get_config(sanitized=True)
    for secret in ("zebra-login", "zebra-enable", "bgp-s3cret"):
        assert secret not in repr(config)
    assert " neighbor 198.18.1.1 password <removed>" in config["running"]
    assert "enable password <removed>" in config["startup"]
    assert dev.get_bgp_config()["_"]["neighbors"]["198.18.1.1"]["authentication_key"] == (
        "<removed>"
    )


def test_discard_removes_the_candidate_files_and_an_empty_state_dir() -> None:
    dev = FRRDriver("r1", "root", "")
    sent: list[str] = []

    class Shell:
        def send_command(self, command: str, **kwargs: Any) -> str:
            sent.append(command)
            return "__NAPALM_BEGIN__\n__NAPALM_RC=0\n"

    dev.device = Shell()
    dev.discard_config()
    session = dev._config.session
    assert f"rm -f /etc/frr/napalm/candidate-{session}.conf" in sent[-1]
    assert f"/etc/frr/napalm/merge-{session}.conf.tmp" in sent[-1]
    assert "rmdir /etc/frr/napalm" in sent[-1]
