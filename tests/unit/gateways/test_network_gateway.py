"""The network gateway: platform → driver as data, dry-run, one connection, clear errors.

Other vendors (ios, eos, junos) through NAPALM's own `mock` driver replaying recorded
answers (tests/unit/gateways/napalm_mock/<vendor>/<method>.<n>); FRR is tested live in
tests/lab.
"""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.context import RunContext
from runbooks.core.errors import (
    AuthenticationError,
    ConnectError,
    DryRunViolation,
    GatewayTimeout,
    InventoryError,
    RejectedError,
)
from runbooks.core.gateway import Mode
from runbooks.gateways.network import (
    Credentials,
    DeviceTarget,
    NetworkGateway,
    napalm_driver_for,
)
from tests.support.ledger_runbook import LedgerRunbook

MOCK = Path(__file__).parent / "napalm_mock"
CREDS = Credentials("netops", "pw-not-real")


@pytest.mark.parametrize(
    ("platform", "driver"),
    [
        ("frr", "frr"),
        ("cisco_ios", "ios"),
        ("arista_eos", "eos"),
        ("juniper_junos", "junos"),
        ("ios", "ios"),
        ("eos", "eos"),
        ("junos", "junos"),
        ("cisco_nxos", "nxos"),
        (" Cisco_IOS ", "ios"),
    ],
)
def test_the_driver_comes_from_the_netbox_platform(platform: str, driver: str) -> None:
    assert napalm_driver_for(platform) == driver


def test_an_unknown_platform_is_an_inventory_error() -> None:
    """NetBox's platform slug names the driver package (napalm_<slug>): one not installed
    is refused when the device is first used, before any connection."""
    assert napalm_driver_for("toaster") == "toaster"
    gw = NetworkGateway(Mode.PLAN, DeviceTarget("dev1", "198.18.0.250", "toaster"), CREDS)
    with pytest.raises(InventoryError, match="dev1: no NAPALM driver 'toaster'"):
        gw.facts()
    assert gw._device is None


@pytest.mark.parametrize(
    ("platform", "context", "driver", "options"),
    [
        ("frr", {}, "frr", {}),
        ("bird", {"napalm": {"driver": "bird2"}}, "bird2", {}),
        (
            "cisco_ios",
            {"napalm": {"optional_args": {"transport": "ssh"}}},
            "ios",
            {"transport": "ssh"},
        ),
        ("arista_eos", {"other": 1}, "eos", {}),
    ],
)
def test_driver_and_options_come_from_netbox_data(
    platform: str, context: dict[str, Any], driver: str, options: dict[str, Any]
) -> None:
    target = DeviceTarget.from_netbox("dev1", "198.18.0.250", platform, context)
    assert (target.driver, dict(target.optional_args)) == (driver, options)
    assert napalm_driver_for(platform, context) == driver
    assert NetworkGateway(Mode.PLAN, target, CREDS).driver_name == driver


def test_the_old_positional_target_still_works() -> None:
    target = DeviceTarget("dev1", "198.18.0.250", "cisco_ios")
    assert (target.driver, target.driver_name, dict(target.optional_args)) == (None, "ios", {})
    assert hash(target) == hash(DeviceTarget("dev1", "198.18.0.250", "cisco_ios"))


def test_a_config_context_that_is_no_mapping_is_an_inventory_error() -> None:
    with pytest.raises(InventoryError, match=r"napalm\.optional_args is not a mapping"):
        DeviceTarget.from_netbox("dev1", "h", "frr", {"napalm": {"optional_args": "sudo"}})


def gateway(vendor: str, platform: str, mode: Mode = Mode.RUN, **args: object) -> NetworkGateway:
    return NetworkGateway(
        mode,
        DeviceTarget("dev1", "198.18.0.250", platform),
        CREDS,
        "run-1",
        driver="mock",
        optional_args={"path": str(MOCK / vendor), **args},
    )


@pytest.mark.parametrize(
    ("vendor", "platform", "hostname"),
    [("ios", "cisco_ios", "r1"), ("eos", "arista_eos", "sw1"), ("junos", "juniper_junos", "mx1")],
)
def test_getters_for_other_vendors(vendor: str, platform: str, hostname: str) -> None:
    gw = gateway(vendor, platform, Mode.PLAN)
    assert gw.facts()["hostname"] == hostname
    assert napalm_driver_for(platform) == vendor


def test_bgp_and_lldp_shapes() -> None:
    peers = gateway("eos", "eos").bgp_neighbors()["global"]["peers"]
    assert peers["10.0.0.2"]["is_up"] is True
    assert gateway("junos", "junos").lldp_neighbors()["xe-0/0/0"][0]["hostname"] == "mx2"


def test_a_plan_may_compare_but_not_commit() -> None:
    gw = gateway("ios", "cisco_ios", Mode.PLAN)
    assert "+hostname r1-new" in gw.compare("hostname r1-new\n")
    with pytest.raises(DryRunViolation, match=r"NetworkGateway\.commit tried to write"):
        gw.commit("hostname r1-new\n", revert_in=300)
    with pytest.raises(DryRunViolation):
        gw.confirm()
    with pytest.raises(DryRunViolation):
        gw.rollback()


def test_commit_confirm_in_a_run() -> None:
    gw = gateway("ios", "cisco_ios")
    gw.compare("hostname r1-new\n")
    assert "+hostname r1-new" in gw.commit("hostname r1-new\n", revert_in=120)
    assert gw.has_pending_commit() is True
    gw.confirm()
    assert gw.has_pending_commit() is False


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda g: g.bgp_neighbors(), ConnectError, "dev1: unreachable while reading BGP"),
        (lambda g: g.facts(), AuthenticationError, "dev1: credentials refused while reading"),
        (lambda g: g.interfaces(), GatewayTimeout, "dev1: timed out while reading interfaces"),
        (
            lambda g: g.commit("interface Gi9\n"),
            RejectedError,
            "dev1: configuration rejected while committing the configuration: % Invalid input",
        ),
    ],
)
def test_failures_are_one_clear_error(call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call(gateway("errors", "cisco_ios"))  # type: ignore[operator]


def test_unreachable_on_connect() -> None:
    with pytest.raises(ConnectError, match=r"dev1: unreachable while connecting to 198\.18"):
        gateway("ios", "cisco_ios", fail_on_open=True).facts()


def test_one_connection_per_device_per_run(tmp_path: Path) -> None:
    runbook = LedgerRunbook(LedgerRunbook.parse_params({"workdir": tmp_path}))
    ctx = RunContext(Mode.RUN, "run-1", "olivia", runbook)
    ctx.gateway_factories[NetworkGateway] = lambda c, key: gateway("ios", "cisco_ios")
    target = DeviceTarget("dev1", "198.18.0.250", "cisco_ios")
    first = NetworkGateway.for_device(ctx, target, CREDS)
    assert NetworkGateway.for_device(ctx, target, CREDS) is first
    first.facts()
    device = first._device
    first.compare("hostname r1-new\n")
    assert first._device is device and first.calls == 2
    ctx.close()
    assert first._device is None


def test_credentials_come_from_the_environment() -> None:
    with pytest.raises(InventoryError, match="set RUNBOOKS_DEVICE_USERNAME"):
        Credentials.from_env({})
    creds = Credentials.from_env(
        {
            "RUNBOOKS_DEVICE_USERNAME": "netops",
            "RUNBOOKS_DEVICE_KEY_FILE": "/k",
            "RUNBOOKS_DEVICE_PORT": "2222",
        }
    )
    assert (creds.username, creds.key_file, creds.port) == ("netops", "/k", 2222)
    assert "pw-not-real" not in repr(CREDS)


def test_the_doctests() -> None:
    from runbooks.gateways import network, network_guard, network_target

    for module in (network, network_guard, network_target):
        assert doctest.testmod(module).failed == 0, module.__name__
