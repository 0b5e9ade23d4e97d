"""In a plan, a compare on a driver whose own compare writes on the device loads nothing:
NAPALM's real IOS driver, its Netmiko connection faked and recorded, sees no configuration
command and no file copy; the gateway diffs locally and says so. In a run the device
compares (its copy to flash and ``file prompt quiet`` are a run's to make)."""

from __future__ import annotations

from typing import Any

import pytest
from napalm.ios.ios import IOSDriver

from runbooks.core.errors import ReadOnlyViolation
from runbooks.core.gateway import Mode
from runbooks.gateways import network, network_guard
from runbooks.gateways.network import DeviceTarget, NetworkGateway
from tests.unit.gateways.network_fake import CREDS

RUNNING = """Building configuration...

Current configuration : 120 bytes
hostname r1
username ops secret 9 $9$abcdefgh$ijklmnop
ip route 0.0.0.0 0.0.0.0 198.18.0.1
end"""
CANDIDATE = "hostname r1\nusername ops secret 9 <removed>\nip route 0.0.0.0 0.0.0.0 198.18.0.2\nend"
DEVICE_DIFF = "+ip route 0.0.0.0 0.0.0.0 198.18.0.2\n-ip route 0.0.0.0 0.0.0.0 198.18.0.1"


class FakeNetmiko:
    """Netmiko's connection as NAPALM's IOS driver uses it: every call recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def send_command(self, command: str, *args: Any, **kwargs: Any) -> str:
        self.sent.append(("send_command", command))
        if command == "show running-config":
            return RUNNING
        if command.startswith("show archive config differences"):
            return DEVICE_DIFF
        if "ip scp server enable" in command:
            return "ip scp server enable"
        return ""

    def send_config_set(self, commands: Any, *args: Any, **kwargs: Any) -> str:
        self.sent.append(("send_config_set", list(commands)))
        return ""

    def disconnect(self) -> None:
        self.sent.append(("disconnect", None))


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> FakeNetmiko:
    conn = FakeNetmiko()

    def netmiko_open(self: IOSDriver, device_type: str, **kwargs: Any) -> FakeNetmiko:
        self._netmiko_device = conn
        return conn

    def xfer(self: IOSDriver, **kwargs: Any) -> tuple[bool, str]:
        conn.sent.append(("file_copy", kwargs.get("dest_file")))
        return True, "copied"

    monkeypatch.setattr(IOSDriver, "_netmiko_open", netmiko_open)
    monkeypatch.setattr(IOSDriver, "_xfer_file", xfer)
    monkeypatch.setattr(network, "key_refusal", lambda *a: "")
    return conn


def gateway(mode: Mode) -> NetworkGateway:
    target = DeviceTarget(
        "r1", "198.18.0.250", "cisco_ios", "ios", {"dest_file_system": "flash:"}, {}
    )
    return NetworkGateway(mode, target, CREDS, "t")


def test_plan_compare_on_ios_sends_no_configuration_and_copies_no_file(wire: FakeNetmiko) -> None:
    gw = gateway(Mode.PLAN)
    diff = gw.compare(CANDIDATE)
    gw.close()
    assert [kind for kind, _ in wire.sent] == ["send_command", "disconnect"], wire.sent
    assert wire.sent[0] == ("send_command", "show running-config")
    assert gw.compared_locally() == network_guard.COMPARE_WRITES["ios"]
    lines = diff.splitlines()
    assert lines[0] == "--- running (read from the device)"
    assert lines[1].startswith("+++ candidate (diffed locally, not on the device: NAPALM's ios")
    assert "-ip route 0.0.0.0 0.0.0.0 198.18.0.1" in lines
    assert "+ip route 0.0.0.0 0.0.0.0 198.18.0.2" in lines
    assert " username ops secret 9 <removed>" in lines  # the same line both sides: unchanged
    assert "$9$abcdefgh" not in diff


def test_plan_compare_of_what_runs_is_empty(wire: FakeNetmiko) -> None:
    gw = gateway(Mode.PLAN)
    same = RUNNING.split("\n", 3)[3].replace("$9$abcdefgh$ijklmnop", "<removed>")
    assert gw.compare(same) == ""
    assert all(kind == "send_command" for kind, _ in wire.sent), wire.sent


def test_plan_guard_refuses_a_load_on_ios_even_inside_a_compare(wire: FakeNetmiko) -> None:
    gw = gateway(Mode.PLAN)
    guarded = gw._open()
    with guarded.comparing(), pytest.raises(ReadOnlyViolation, match="copies the candidate"):
        guarded.load_replace_candidate(config=CANDIDATE)
    assert not [s for s in wire.sent if s[0] in ("send_config_set", "file_copy")]


@pytest.mark.parametrize("driver", sorted(network_guard.COMPARE_WRITES))
def test_every_driver_whose_compare_writes_is_compared_locally_in_plans_only(driver: str) -> None:
    target = DeviceTarget("r1", "198.18.0.250", "cisco_nxos", driver, {}, {})
    assert NetworkGateway(Mode.PLAN, target, CREDS).compared_locally()
    assert not NetworkGateway(Mode.RUN, target, CREDS).compared_locally()


def test_run_compare_on_ios_is_the_devices_own(wire: FakeNetmiko) -> None:
    gw = gateway(Mode.RUN)
    diff = gw.compare(CANDIDATE)
    gw.close()
    assert diff == DEVICE_DIFF
    assert gw.compared_locally() == ""
    assert ("file_copy", "candidate_config.txt") in wire.sent
    assert any(c.startswith("show archive config differences") for _, c in wire.sent if c)
    assert ("send_config_set", ["file prompt quiet"]) in wire.sent  # NAPALM's discard
