"""A NAPALM driver that records every call it receives and answers from a small state, for
the network gateway's unit tests (which calls reach a device, and with what)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from napalm.base import NetworkDriver

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
            raise network.napalm_errors.ReplaceConfigException("% Invalid input")
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


DRIVERS = {"recording": RecordingDriver, "bare": BareDriver}
CREDS = Credentials("netops", "pw-not-real")


@pytest.fixture
def fake_drivers(monkeypatch: pytest.MonkeyPatch) -> type[RecordingDriver]:
    """``get_network_driver`` answering our fakes by name (and NAPALM's real ones else)."""
    real = network.get_network_driver
    monkeypatch.setattr(network, "get_network_driver", lambda name: DRIVERS.get(name) or real(name))
    RecordingDriver.seen = []
    RecordingDriver.running = RUNNING
    RecordingDriver.fail_load = False
    return RecordingDriver


def fake_gateway(
    mode: Mode = Mode.PLAN,
    driver: str = "recording",
    platform: str = "cisco_ios",
    creds: Credentials = CREDS,
) -> NetworkGateway:
    return NetworkGateway(mode, DeviceTarget("r1", "198.18.0.250", platform, driver), creds, "t")
