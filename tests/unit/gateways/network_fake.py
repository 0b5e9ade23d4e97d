"""A NAPALM driver that records every call it receives and answers from a small state, for
the network gateway's unit tests (which calls reach a device, and with what)."""

from __future__ import annotations

import difflib
from typing import Any, ClassVar

import pytest
from napalm import get_network_driver
from napalm.base import NetworkDriver
from napalm.base import exceptions as napalm_errors
from napalm.base.netmiko_helpers import netmiko_args
from pyeapi.eapilib import EapiConnection  # type: ignore[import-untyped]

from runbooks.core.gateway import Mode
from runbooks.gateways import network
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway

RUNNING = """\
hostname r1
enable secret 5 $1$Fake$EnableSecretHash
router bgp 65001
 neighbor 10.0.0.2 remote-as 65002
 neighbor 10.0.0.2 password Fake-Bgp-Pw-1
"""
BIRD_RUNNING = """\
router id 198.18.255.31;
protocol bgp '198.18.2.0' {
\tlocal 198.18.2.1 as 65301;
\tneighbor 198.18.2.0 as 65001;
\tpassword "Fake-Bird-Pw-1";
}
"""
READS = frozenset(
    {
        "get_facts",
        "get_interfaces",
        "get_interfaces_ip",
        "get_lldp_neighbors",
        "get_lldp_neighbors_detail",
        "get_bgp_neighbors",
        "get_route_to",
        "get_config",
        "has_pending_commit",
        "is_alive",
    }
)
COMPARE = ("load_replace_candidate", "load_merge_candidate", "compare_config", "discard_config")


KEY_CHECKS: list[tuple[str, int]] = []  # (host, port) of each host key the gateway checked


class RecordingDriver(NetworkDriver):  # type: ignore[misc]
    """Every call lands in ``seen`` (class-wide: the gateway builds the instance)."""

    seen: ClassVar[list[tuple[str, Any]]] = []
    given: ClassVar[dict[str, Any]] = {}
    running: ClassVar[str] = RUNNING
    fail_load: ClassVar[bool] = False

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        RecordingDriver.given = {
            "username": username,
            "password": password,
            "optional_args": dict(optional_args or {}),
        }
        # shaped like a Netmiko-based driver (NAPALM's IOS): the options Netmiko would get,
        # so the gateway leaves the host key to Netmiko's ssh_strict
        self.netmiko_optional_args = netmiko_args(dict(optional_args or {}))
        self.candidate: str | None = None

    def __del__(self) -> None:
        """Nothing: NAPALM's NetworkDriver.__del__ calls is_alive and close when an instance
        is collected, which would land in a later test's record."""

    def _saw(self, name: str, arg: Any = None) -> None:
        RecordingDriver.seen.append((name, arg))

    def open(self) -> None:
        self._saw("open")

    def close(self) -> None:
        self._saw("close")

    def is_alive(self) -> dict[str, bool]:
        self._saw("is_alive")
        return {"is_alive": True}

    def get_facts(self) -> dict[str, Any]:
        self._saw("get_facts")
        return {"hostname": "r1"}

    def get_interfaces(self) -> dict[str, Any]:
        self._saw("get_interfaces")
        return {"Gi0/1": {"is_up": True}}

    def get_interfaces_ip(self) -> dict[str, Any]:
        self._saw("get_interfaces_ip")
        return {}

    def get_lldp_neighbors(self) -> dict[str, Any]:
        self._saw("get_lldp_neighbors")
        return {"Gi0/1": [{"hostname": "r2", "port": "Gi0/1"}]}

    def get_lldp_neighbors_detail(self, interface: str = "") -> dict[str, Any]:
        self._saw("get_lldp_neighbors_detail", interface)
        return {}

    def get_bgp_neighbors(self) -> dict[str, Any]:
        self._saw("get_bgp_neighbors")
        return {"global": {"router_id": "1.1.1.1", "peers": {}}}

    def get_route_to(
        self, destination: str = "", protocol: str = "", longer: bool = False
    ) -> dict[str, Any]:
        self._saw("get_route_to", destination)
        return {destination: [{"current_active": True, "protocol": "bgp"}]}

    def get_config(
        self,
        retrieve: str = "all",
        full: bool = False,
        sanitized: bool = False,
        format: str = "text",
    ) -> dict[str, str]:
        self._saw("get_config", retrieve)
        return {"running": self.running, "startup": self.running, "candidate": ""}

    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, Any]:
        self._saw("cli", list(commands))
        return {c: "ok" for c in commands}

    def load_replace_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None:
        self._saw("load_replace_candidate", config)
        if self.fail_load:
            raise napalm_errors.ReplaceConfigException("% Invalid input")
        self.candidate = config

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self._saw("load_merge_candidate", config)
        self.candidate = config

    def compare_config(self) -> str:
        self._saw("compare_config")
        added = [
            f"+{line}"
            for line in (self.candidate or "").splitlines()
            if line not in self.running.splitlines()
        ]
        return "\n".join(added)

    def discard_config(self) -> None:
        self._saw("discard_config")
        self.candidate = None

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        self._saw("commit_config", self.candidate)

    def confirm_commit(self) -> None:
        self._saw("confirm_commit")

    def rollback(self) -> None:
        self._saw("rollback")

    def has_pending_commit(self) -> bool:
        self._saw("has_pending_commit")
        return False


class BareDriver(NetworkDriver):  # type: ignore[misc]
    """A driver implementing facts only (like a third-party one lacking getters)."""

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_facts(self) -> dict[str, Any]:
        return {"hostname": "b1"}

    def get_bgp_neighbors(self) -> dict[str, Any]:
        raise NotImplementedError("not on this box")


class BirdLikeDriver(NetworkDriver):  # type: ignore[misc]
    """Shaped like napalm-bird2: the running configuration from a method of its own name
    taking no arguments (a text, not NAPALM's dict), no get_config, a commit whose
    ``revert_in`` is a timer of its own, a rollback, and neither has_pending_commit nor
    confirm_commit. Calls land in `RecordingDriver.seen`."""

    running: ClassVar[str] = BIRD_RUNNING

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        self.candidate: str | None = None

    def __del__(self) -> None:
        """Nothing (see RecordingDriver.__del__)."""

    def _saw(self, name: str, arg: Any = None) -> None:
        RecordingDriver.seen.append((name, arg))

    def open(self) -> None:
        self._saw("open")

    def close(self) -> None:
        self._saw("close")

    def get_facts(self) -> dict[str, Any]:
        return {"hostname": "198.18.0.31"}

    def get_bird_running_config(self) -> str:
        self._saw("get_bird_running_config")
        return self.running

    def load_replace_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None:
        self._saw("load_replace_candidate", config)
        self.candidate = config

    def compare_config(self) -> str:
        self._saw("compare_config")
        return "\n".join(
            f"+{line}"
            for line in (self.candidate or "").splitlines()
            if line not in self.running.splitlines()
        )

    def discard_config(self) -> None:
        self._saw("discard_config")
        self.candidate = None

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        self._saw("commit_config", revert_in)

    def rollback(self) -> None:
        self._saw("rollback")


class NoConfirmDriver(RecordingDriver):
    """Declares the commit-confirm methods but says no when called (NotImplementedError), as
    a driver does for what its platform cannot do."""

    def has_pending_commit(self) -> bool:
        self._saw("has_pending_commit")
        raise NotImplementedError("no pending commits on this platform")

    def confirm_commit(self) -> None:
        self._saw("confirm_commit")
        raise NotImplementedError("no commit confirm on this platform")

    def rollback(self) -> None:
        self._saw("rollback")
        raise NotImplementedError("no rollback on this platform")

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        self._saw("commit_config", revert_in)
        if revert_in is not None:
            raise NotImplementedError("Commit confirm has not been implemented on this platform.")


DRIVERS = {
    "recording": RecordingDriver,
    "bare": BareDriver,
    "birdlike": BirdLikeDriver,
    "noconfirm": NoConfirmDriver,
}
CREDS = Credentials("netops", "pw-not-real")


@pytest.fixture
def fake_drivers(monkeypatch: pytest.MonkeyPatch) -> type[RecordingDriver]:
    """``get_network_driver`` answering our fakes by name (and NAPALM's real ones else)."""
    real = get_network_driver
    monkeypatch.setattr(network, "get_network_driver", lambda name: DRIVERS.get(name) or real(name))
    RecordingDriver.seen = []
    KEY_CHECKS.clear()

    def key_checked(host: str, port: int, known_hosts: Any, timeout: float) -> str:
        """The fakes shaped like napalm-bird2 get the gateway's own host key check: here
        the known key, recorded (the check itself: tests/unit/gateways/test_host_keys.py)."""
        KEY_CHECKS.append((host, port))
        return ""

    monkeypatch.setattr(network, "key_refusal", key_checked)
    RecordingDriver.running = RUNNING
    RecordingDriver.fail_load = False
    BirdLikeDriver.running = BIRD_RUNNING
    return RecordingDriver


def fake_gateway(
    mode: Mode = Mode.PLAN,
    driver: str = "recording",
    platform: str = "cisco_ios",
    creds: Credentials = CREDS,
    getters: dict[str, str] | None = None,
) -> NetworkGateway:
    target = DeviceTarget("r1", "198.18.0.250", platform, driver, {}, getters or {})
    return NetworkGateway(mode, target, creds, "t")


class EosBox:
    """What an Arista EOS box keeps across connections, as NAPALM's EOS driver sees it over
    eAPI (napalm/eos/eos.py): the running configuration (stripped lines) and its
    configuration sessions (``configure session``, ``rollback clean-config``, ``commit timer``
    makes one ``pendingCommitTimer`` until ``commit`` confirms or ``abort`` puts the box
    back, ``show session-config named … diffs``, ``show configuration sessions [detail]``)."""

    def __init__(self, running: str) -> None:
        self.running = _eos_lines(running)
        self.before: list[str] | None = None  # the running configuration a timer reverts to
        self.sessions: dict[str, dict[str, Any]] = {}  # name → {"state", "lines", "commitBy"}
        self.uptime = 1000.0
        self.sent: list[str] = []

    def run(self, command: str, current: list[str | None]) -> dict[str, Any]:
        """One command; ``current``: the session the connection is in ([None] outside)."""
        self.sent.append(command)
        words = command.split()
        if command in ("enable", "write memory", "copy startup-config flash:rollback-0"):
            return {}
        if command == "show version":
            return {"version": "4.30.0F", "uptime": self.uptime}
        if command.startswith("show configuration sessions"):
            return {"sessions": {n: dict(s, lines=None) for n, s in self.sessions.items()}}
        if command.startswith("show session-config named "):
            lines = self.sessions[words[3]]["lines"]
            diff = difflib.unified_diff(self.running, lines, "running", "session", lineterm="")
            return {"output": "\n".join(diff)}  # its two header lines: the driver drops them
        if command == "end":
            current[0] = None
            return {}
        if words[:2] == ["configure", "session"] and len(words) == 3:
            self.sessions.setdefault(
                words[2], {"state": "pending", "lines": list(self.running), "commitBy": -1}
            )
            current[0] = words[2]
            return {}
        if words[:2] == ["configure", "session"]:
            return self._session_command(words[2], words[3:])
        if current[0] is None:
            raise ValueError(f"the fake EOS box has no command {command!r}")
        if command == "rollback clean-config":
            self.sessions[current[0]]["lines"] = []
        else:
            self.sessions[current[0]]["lines"].append(command)
        return {}

    def _session_command(self, name: str, words: list[str]) -> dict[str, Any]:
        session = self.sessions[name]
        if words[:2] == ["commit", "timer"]:
            h, m, s = (int(part) for part in words[2].split(":"))
            self.before, self.running = self.running, list(session["lines"])
            session.update(state="pendingCommitTimer", commitBy=self.uptime + h * 3600 + m * 60 + s)
        elif words == ["commit"]:
            if session["state"] != "pendingCommitTimer":
                self.running = list(session["lines"])
            session.update(state="completed", commitBy=-1)
        elif words == ["abort"]:
            if session["state"] == "pendingCommitTimer" and self.before is not None:
                self.running, self.before = self.before, None
            del self.sessions[name]
        else:
            raise ValueError(f"the fake EOS box has no session command {words!r}")
        return {"output": ""}

    def pending(self) -> list[str]:
        return [n for n, s in self.sessions.items() if s["state"] == "pendingCommitTimer"]


def _eos_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class FakeEapi(EapiConnection):  # type: ignore[misc]
    """pyeapi's transport to `FakeEapi.box` instead of a device: NAPALM's EOS driver takes
    it as ``optional_args={"transport": "tests.unit.gateways.network_fake.FakeEapi"}`` (a
    module path it imports), so all of EOSDriver and pyeapi's Node run as they are."""

    box: ClassVar[EosBox]
    opened: ClassVar[int] = 0

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: int = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        FakeEapi.opened += 1
        self._current: list[str | None] = [None]

    def execute(self, commands: list[Any], encoding: str = "json", **kwargs: Any) -> dict[str, Any]:
        texts = [c["cmd"] if isinstance(c, dict) else str(c) for c in commands]
        return {"result": [self.box.run(text, self._current) for text in texts]}
