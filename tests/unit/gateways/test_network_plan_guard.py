"""A plan cannot write at the wire: a write command sent through every read path of the
network gateway in plan mode is refused before the device sees it, and the device (a
recording driver, and NAPALM's mock driver with recorded IOS answers) sees reads only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbooks.core.errors import DryRunViolation, InputError, ReadOnlyViolation, RejectedError
from runbooks.core.gateway import Mode
from runbooks.gateways import network_guard
from runbooks.gateways.network import DeviceTarget, NetworkGateway
from tests.unit.gateways.network_fake import (
    COMPARE,
    CREDS,
    READS,
    RecordingDriver,
    fake_drivers,
    fake_gateway,
)

__all__ = ["fake_drivers"]  # the fixture, imported for pytest

WRITES = [
    "clear bgp *",
    "clear ip bgp * soft",
    "configure terminal",
    "conf t",
    "write memory",
    "copy running-config startup-config",
    "reload",
    "request system reboot",
    "show version\nconfigure terminal",
    "show version\r\nclear bgp *",
    "show running-config | redirect flash:run.txt",
    "show running-config | tee flash:run.txt",
    "show running-config | append flash:run.txt",
    "show configuration | save /var/tmp/x",
    "show running-config > flash:run.txt",
    "show ip route; reload",
    "show ip route && reboot",
    "show ip route `reboot`",
    "show ip route $(reboot)",
    "  clear bgp *",
]


def assert_reads_only(seen: list[tuple[str, Any]]) -> None:
    """The driver saw getters, show commands, and loads each followed by a compare and a
    discard (the gateway's compare)."""
    names = [name for name, _ in seen if name not in ("open", "close")]
    assert set(names) <= READS | set(COMPARE) | {"cli"}, names
    for i, name in enumerate(names):
        if name.startswith("load_"):
            assert names[i + 1 : i + 3] == ["compare_config", "discard_config"], names[i:]
    for name, commands in seen:
        if name == "cli":
            network_guard.check_commands("r1", "ios", commands)


@pytest.mark.parametrize("command", WRITES)
def test_a_write_command_through_cli_is_refused_in_a_plan(
    fake_drivers: type[RecordingDriver], command: str
) -> None:
    gw = fake_gateway(Mode.PLAN)
    with pytest.raises(ReadOnlyViolation, match=r"^r1: refused '") as refused:
        gw.cli(["show version", command])
    assert "\n" not in str(refused.value)  # one line naming the device and the command
    assert isinstance(refused.value, DryRunViolation)
    assert fake_drivers.seen == []  # refused before any connection


@pytest.mark.parametrize("command", WRITES[:6])
def test_cli_only_reads_in_a_run_too(fake_drivers: type[RecordingDriver], command: str) -> None:
    with pytest.raises(ReadOnlyViolation):
        fake_gateway(Mode.RUN).cli([command])
    assert fake_drivers.seen == []


def test_every_read_path_in_a_plan_reaches_the_device_as_reads_only(
    fake_drivers: type[RecordingDriver],
) -> None:
    gw = fake_gateway(Mode.PLAN)
    write = "clear bgp *"
    # the getters: none takes a command; each must reach the device as its getter alone
    gw.facts()
    gw.interfaces()
    gw.interfaces_ip()
    gw.lldp_neighbors()
    gw.lldp_neighbors_detail()
    gw.bgp_neighbors()
    gw.has_pending_commit()
    assert gw.supports("get_route_to")
    gw.config()
    gw.config_with_secrets()
    # the ones taking text: a write in it is refused, or stays a candidate that is discarded
    with pytest.raises(InputError):
        gw.route_to(f"10.0.0.0/8\n{write}")
    gw.route_to("10.0.0.0/8")
    with pytest.raises(ReadOnlyViolation):
        gw.cli([write])
    assert gw.cli(["show version"]) == {"show version": "ok"}
    diff = gw.compare(f"hostname r1\n{write}\n")
    assert diff == f"+{write}"
    gw.compare("hostname r1-new\n", replace=False)
    # and whatever a caller does with the driver itself, the wire refuses writes
    for attempt in (
        lambda d: d.commit_config(),
        lambda d: d.confirm_commit(),
        lambda d: d.rollback(),
        lambda d: d.load_replace_candidate(config=write),
        lambda d: d.load_merge_candidate(config=write),
        lambda d: d.compare_config(),
        lambda d: d.discard_config(),
        lambda d: d.cli([write]),
        lambda d: d.device,  # the transport beneath (Netmiko's send_config_set)
    ):
        with pytest.raises(ReadOnlyViolation):
            gw._call("trying a write", attempt)
    for write_method in (lambda: gw.commit(write), gw.confirm, gw.rollback):
        with pytest.raises(DryRunViolation):
            write_method()
    seen = [n for n, _ in fake_drivers.seen if n not in ("open", "close")]
    assert seen == [
        "get_facts",
        "get_interfaces",
        "get_interfaces_ip",
        "get_lldp_neighbors",
        "get_lldp_neighbors_detail",
        "get_bgp_neighbors",
        "has_pending_commit",
        "get_config",
        "get_config",
        "get_route_to",
        "cli",
        "load_replace_candidate",
        "compare_config",
        "discard_config",
        "load_merge_candidate",
        "compare_config",
        "discard_config",
    ]
    assert [a for n, a in fake_drivers.seen if n == "cli"] == [["show version"]]
    assert_reads_only(fake_drivers.seen)


def test_a_failed_compare_still_discards(fake_drivers: type[RecordingDriver]) -> None:
    fake_drivers.fail_load = True
    with pytest.raises(RejectedError, match="r1: configuration rejected while comparing"):
        fake_gateway(Mode.PLAN).compare("interface Gi9\n")
    assert [n for n, _ in fake_drivers.seen if n != "open"] == [
        "load_replace_candidate",
        "discard_config",
    ]


def test_a_run_commits_through_the_same_gateway(fake_drivers: type[RecordingDriver]) -> None:
    gw = fake_gateway(Mode.RUN)
    assert gw.commit("hostname r1\nhostname r9\n", revert_in=60) == "+hostname r9"
    gw.confirm()
    assert [n for n, _ in fake_drivers.seen if n != "open"] == [
        "load_replace_candidate",
        "compare_config",
        "commit_config",
        "confirm_commit",
    ]


MOCK = Path(__file__).parent / "napalm_mock"


def test_napalm_mock_driver_in_a_plan_sees_reads_only() -> None:
    """The same on NAPALM's own mock driver with recorded IOS answers: its call counts are
    what the device saw."""
    gw = NetworkGateway(
        Mode.PLAN,
        DeviceTarget("r1", "198.18.0.250", "cisco_ios"),
        CREDS,
        "t",
        driver="mock",
        optional_args={"path": str(MOCK / "ios")},
    )
    assert gw.facts()["hostname"] == "r1"
    assert "+hostname r1-new" in gw.compare("hostname r1-new\n")
    for command in WRITES:
        with pytest.raises(ReadOnlyViolation):
            gw.cli([command])
    with pytest.raises(ReadOnlyViolation):
        gw._call("trying a commit", lambda d: d.commit_config())
    with pytest.raises(DryRunViolation):
        gw.commit("hostname r1-new\n")
    assert gw._device.calls == {
        "get_facts": 1,
        "load_replace_candidate": 1,
        "compare_config": 1,
        "discard_config": 1,
    }


@pytest.mark.parametrize(
    ("driver", "command"),
    [
        ("ios", "show ip bgp summary | include Estab"),
        ("ios", "show running-config | section router bgp"),
        ("eos", "show ip bgp summary | json"),
        ("nxos", "show ip route | json"),
        ("junos", "show route 10.0.0.0/8 | display json"),
        ("junos", "show configuration | display set | match bgp"),
        ("frr", "show ip route 10.0.0.1/32 json"),
        ("frr", "show bgp summary json"),
        ("bird2", "show protocols all"),
        ("bird2", 'show route for 10.0.0.1 table "master4"'),
    ],
)
def test_read_commands_pass(driver: str, command: str) -> None:
    network_guard.check_read_only("r1", driver, command)


@pytest.mark.parametrize(
    ("driver", "command"),
    [
        ("frr", "show ip route | include 10.0"),  # vtysh runs a pipe in a shell
        ("bird2", "show route | grep x"),
        ("junos", "show configuration | save /var/tmp/x"),
        ("junos", "show configuration | request system reboot"),
        ("eos", "show running-config | redirect flash:x"),
        ("nxos", "show running-config | tee bootflash:x"),
        ("ios", "sh run"),
        ("ios", "showx"),
    ],
)
def test_write_pipes_and_other_verbs_are_refused(driver: str, command: str) -> None:
    with pytest.raises(ReadOnlyViolation):
        network_guard.check_read_only("r1", driver, command)


def test_cli_takes_a_list() -> None:
    with pytest.raises(ReadOnlyViolation, match="a list of commands"):
        network_guard.check_commands("r1", "ios", "show version")  # a str: a Sequence[str] to mypy


@pytest.mark.parametrize("driver", ["ios", "eos", "junos", "frr", "bird2"])
@pytest.mark.parametrize(
    "command",
    [
        "show version\u2028configure terminal",  # Unicode line separator
        "show version\u2029clear bgp *",  # paragraph separator
        "show version\x85reload",  # NEL
        "show\u00a0version",  # no-break space
        "show version\u200b",  # zero-width space
        "show ip route \uff1b reload",  # fullwidth semicolon
        "show version\u202e",  # right-to-left override
        "show vérsion",
    ],
)
def test_only_printable_ascii_passes(driver: str, command: str) -> None:
    with pytest.raises(ReadOnlyViolation, match="only printable ASCII characters"):
        network_guard.check_read_only("r1", driver, command)
