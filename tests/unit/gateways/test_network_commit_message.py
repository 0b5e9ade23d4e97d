"""The run's id in the device's commit log where the driver takes a commit message, a commit
without one where it does not: NAPALM's IOS and EOS drivers refuse ``message`` (their
``commit_config`` raises NotImplementedError("Commit message not implemented for this
platform") first thing). Tested on the real driver classes, their transport faked: what
runs of ``commit_config`` is NAPALM's own code."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest
from napalm.eos.eos import EOSDriver
from napalm.ios.ios import IOSDriver

from runbooks.core.gateway import Mode
from runbooks.gateways import network
from runbooks.gateways.network import NetworkGateway
from tests.unit.gateways.network_fake import CREDS, RecordingDriver, fake_drivers, fake_gateway

__all__ = ["fake_drivers"]  # the fixture, used by name

RUNNING = "hostname r1\n"
CANDIDATE = "hostname r1\ninterface Loopback0\n"


class _Candidate:
    """load/compare/discard in memory (the real drivers copy files to the device)."""

    sent: ClassVar[list[str]] = []
    candidate: str | None = None

    def load_replace_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None:
        self.candidate = config

    def compare_config(self) -> str:
        new = (self.candidate or "").splitlines()
        return "\n".join(f"+{line}" for line in new if line not in RUNNING.splitlines())

    def discard_config(self) -> None:
        self.candidate = None

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __del__(self) -> None:
        """Nothing: NAPALM's __del__ would close a device never opened."""


class _Netmiko:
    """What IOSDriver's commit sends through its Netmiko connection."""

    def save_config(self) -> str:
        _Candidate.sent.append("write memory")
        return ""


class FakedIOS(_Candidate, IOSDriver):  # type: ignore[misc]
    """NAPALM's IOS driver; the helpers that talk to the box record instead."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        IOSDriver.__init__(self, *args, **kwargs)
        self.device = _Netmiko()
        self._dest_file_system = "flash:"  # found through Netmiko on open
        self.config_replace = True

    def has_pending_commit(self) -> bool:
        return False

    def _gen_rollback_cfg(self) -> None:
        _Candidate.sent.append("copy running-config rollback_config.txt")

    def _check_file_exists(self, cfg_file: str) -> bool:
        return True

    def _commit_handler(self, cmd: str) -> str:
        _Candidate.sent.append(cmd)
        return ""


class FakedEOS(_Candidate, EOSDriver):  # type: ignore[misc]
    """NAPALM's EOS driver (eAPI); its commands are recorded instead of sent."""

    def load_replace_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None:
        self.candidate = config
        self.config_session = "napalm_1"  # as EOSDriver._load_config opens its session

    def _run_commands(self, commands: list[str], **kwargs: Any) -> list[dict[str, str]]:
        _Candidate.sent.extend(commands)
        return [{"output": ""} for _ in commands]


@pytest.fixture
def real_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    drivers = {"ios": FakedIOS, "eos": FakedEOS}
    monkeypatch.setattr(network, "get_network_driver", lambda name: drivers[name])
    _Candidate.sent = []


def _gateway(driver: str) -> NetworkGateway:
    target = network.DeviceTarget("r1", "198.18.0.250", driver, driver)
    return NetworkGateway(Mode.RUN, target, CREDS, "run-7")


@pytest.mark.parametrize(
    ("driver", "committed"),
    [
        ("ios", "configure replace flash:/candidate_config.txt force revert trigger error"),
        ("eos", "configure session napalm_1 commit"),
    ],
)
def test_ios_and_eos_commit_without_a_message_and_say_so(
    real_drivers: None, caplog: pytest.LogCaptureFixture, driver: str, committed: str
) -> None:
    gw = _gateway(driver)
    with caplog.at_level(logging.WARNING, logger=network.__name__):
        assert gw.commit(CANDIDATE) == "+interface Loopback0"
    assert committed in _Candidate.sent
    assert gw.commit_message_kept is False
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        f"r1: committed without 'runbooks run run-7' in the device's commit log: the {driver} "
        "driver takes no commit message"
    ]
    _Candidate.sent = []
    gw.commit(CANDIDATE + "interface Loopback1\n")  # the second commit goes without at once
    assert committed in _Candidate.sent


def test_a_driver_taking_messages_gets_the_run_id(fake_drivers: type[RecordingDriver]) -> None:
    messages: list[str] = []

    def commit_config(self: Any, message: str = "", revert_in: int | None = None) -> None:
        messages.append(message)

    gw = fake_gateway(Mode.RUN)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RecordingDriver, "commit_config", commit_config)
        gw.commit("hostname r1\nhostname r2\n")
    assert messages == ["runbooks run t"]
    assert gw.commit_message_kept is True


def test_a_driver_whose_commit_takes_no_message_parameter_gets_none(
    fake_drivers: type[RecordingDriver],
) -> None:
    reverts: list[int | None] = []

    def commit_config(self: Any, revert_in: int | None = None) -> None:
        reverts.append(revert_in)

    gw = fake_gateway(Mode.RUN)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RecordingDriver, "commit_config", commit_config)
        gw.commit("hostname r1\nhostname r2\n")
    assert reverts == [None]
    assert gw.commit_message_kept is False


def test_another_not_implemented_is_not_taken_for_a_message_refusal(
    fake_drivers: type[RecordingDriver],
) -> None:
    calls: list[str] = []

    def commit_config(self: Any, message: str = "", revert_in: int | None = None) -> None:
        calls.append(message)
        raise NotImplementedError("Commit not implemented for this platform")

    gw = fake_gateway(Mode.RUN)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RecordingDriver, "commit_config", commit_config)
        with pytest.raises(NotImplementedError):
            gw.commit("hostname r1\nhostname r2\n")
    assert calls == ["runbooks run t"]  # asked once, not again without the message
    assert gw.commit_message_kept is None
