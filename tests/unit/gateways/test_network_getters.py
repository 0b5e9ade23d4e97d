"""The gateway's getters: what a driver lacks is named (UnsupportedError), configuration text
leaves sanitised, and a sanitised candidate is committed with its secrets put back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbooks.core import secrets
from runbooks.core.errors import InputError, SecretUnavailable, UnsupportedError
from runbooks.core.gateway import Mode
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from tests.unit.gateways.network_fake import (
    RUNNING,
    RecordingDriver,
    fake_drivers,
    fake_gateway,
)

__all__ = ["fake_drivers"]

MOCK = Path(__file__).parent / "napalm_mock"


def mock_gateway(vendor: str) -> NetworkGateway:
    return NetworkGateway(
        Mode.PLAN,
        DeviceTarget("dev1", "198.18.0.250", vendor),
        Credentials("netops"),
        driver="mock",
        optional_args={"path": str(MOCK / vendor)},
    )


@pytest.mark.usefixtures("fake_drivers")
def test_a_getter_the_driver_does_not_override_is_unsupported() -> None:
    gw = fake_gateway(driver="bare")
    assert gw.supports("get_facts") and gw.facts() == {"hostname": "b1"}
    assert not gw.supports("get_route_to") and not gw.supports("lldp_neighbors")
    with pytest.raises(UnsupportedError, match=r"^r1: the bare driver has no get_route_to$"):
        gw.route_to("10.0.0.0/8")
    with pytest.raises(UnsupportedError, match="the bare driver has no get_lldp_neighbors"):
        gw.lldp_neighbors()
    with pytest.raises(UnsupportedError, match="the bare driver has no get_config"):
        gw.config()
    with pytest.raises(UnsupportedError, match="the bare driver has no cli"):
        gw.cli(["show version"])


@pytest.mark.usefixtures("fake_drivers")
def test_a_getter_raising_not_implemented_is_unsupported() -> None:
    gw = fake_gateway(driver="bare")
    assert gw.supports("get_bgp_neighbors")  # overridden, but it says no at run time
    with pytest.raises(UnsupportedError, match="the bare driver has no get_bgp_neighbors") as e:
        gw.bgp_neighbors()
    assert e.value.context == {
        "device": "r1",
        "driver": "bare",
        "method": "get_bgp_neighbors",
        "getter": "get_bgp_neighbors",
    }


def test_napalm_mock_supports_what_it_has_recordings_for() -> None:
    gw = mock_gateway("junos")
    assert gw.supports("get_facts") and not gw.supports("get_bgp_neighbors")
    with pytest.raises(UnsupportedError, match="the mock driver has no get_bgp_neighbors"):
        gw.bgp_neighbors()
    assert gw.facts()["hostname"] == "mx1"


@pytest.mark.usefixtures("fake_drivers")
def test_route_to(fake_drivers: type[RecordingDriver]) -> None:
    gw = fake_gateway()
    assert gw.route_to("198.18.255.3/32")["198.18.255.3/32"][0]["current_active"] is True
    for bad in ("10.0.0.0/8 longer", "any", "10.0.0.1\nclear bgp *"):
        with pytest.raises(InputError, match="is no prefix"):
            gw.route_to(bad)
    with pytest.raises(InputError, match="is no routing protocol"):
        gw.route_to("10.0.0.0/8", protocol="bgp; reload")
    assert [a for n, a in fake_drivers.seen if n == "get_route_to"] == ["198.18.255.3/32"]


@pytest.mark.usefixtures("fake_drivers")
def test_config_is_sanitised_and_config_with_secrets_is_not() -> None:
    gw = fake_gateway()
    clean = gw.config()
    assert "Fake-Bgp-Pw-1" not in clean and "$1$Fake$EnableSecretHash" not in clean
    assert " neighbor 10.0.0.2 password <removed>" in clean.splitlines()
    assert gw.config_with_secrets() == RUNNING
    assert secrets.mask_text("Fake-Bgp-Pw-1") == secrets.MASK


@pytest.mark.usefixtures("fake_drivers")
def test_cli_answers_are_sanitised(
    fake_drivers: type[RecordingDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    def show_running(self: RecordingDriver, commands: list[str], encoding: str = "text") -> Any:
        return {c: RUNNING for c in commands}

    monkeypatch.setattr(fake_drivers, "cli", show_running)
    shown = fake_gateway().cli(["show running-config"])["show running-config"]
    assert "Fake-Bgp-Pw-1" not in shown
    assert " neighbor 10.0.0.2 password <removed>" in shown.splitlines()


def test_compare_and_commit_fill_placeholders_from_the_running_configuration(
    fake_drivers: type[RecordingDriver],
) -> None:
    planned = fake_gateway(Mode.PLAN).config() + "interface lo\n"
    gw = fake_gateway(Mode.RUN)
    diff = gw.compare(planned)
    assert diff == "+interface lo"
    gw.commit(planned)
    loaded = [a for n, a in fake_drivers.seen if n == "load_replace_candidate"]
    assert loaded == [RUNNING + "interface lo\n"] * 2  # the real secrets reached the device
    committed = [a for n, a in fake_drivers.seen if n == "commit_config"]
    assert committed == [RUNNING + "interface lo\n"]


def test_a_diff_with_secrets_comes_back_sanitised(fake_drivers: type[RecordingDriver]) -> None:
    candidate = RUNNING + " neighbor 10.0.0.9 password New-Peer-Pw-9\n"
    diff = fake_gateway(Mode.RUN).commit(candidate, revert_in=60)
    assert diff == "+ neighbor 10.0.0.9 password <removed>"
    assert secrets.mask_text("New-Peer-Pw-9") == secrets.MASK


def test_secret_sources_fill_what_the_running_configuration_lost(
    fake_drivers: type[RecordingDriver],
) -> None:
    """Rack-out's undo: the bare device no longer holds the BGP password; NetBox's fresh
    rendering does."""
    before = fake_gateway().config()  # what the plan recorded
    fake_drivers.running = "hostname r1\nenable secret 5 $1$Fake$EnableSecretHash\n"
    gw = fake_gateway(Mode.RUN)
    with pytest.raises(
        SecretUnavailable, match=r"line 5 'neighbor 10\.0\.0\.2 password <removed>'"
    ):
        gw.commit(before)
    assert gw.commit(before, secret_sources=[RUNNING]).endswith("password <removed>")
    committed = [a for n, a in fake_drivers.seen if n == "commit_config"]
    assert committed == [RUNNING]


def test_credentials_options_reach_the_driver(fake_drivers: type[RecordingDriver]) -> None:
    creds = Credentials("admin", "pw-x", optional_args={"secret": "Enable-Secret-1"})
    target = DeviceTarget("r1", "198.18.0.250", "cisco_ios", "recording", {"transport": "ssh"})
    NetworkGateway(Mode.PLAN, target, creds).facts()
    given = fake_drivers.given["optional_args"]
    assert given["secret"] == "Enable-Secret-1" and given["transport"] == "ssh"
    assert given["ssh_strict"] is True
    assert "Enable-Secret-1" not in repr(creds)


def test_a_mock_driver_subclass_supports_what_it_defines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like the library's recorded fabric: getters of its own count, and the mock's replayed
    ones when it has files for them (unknown until it opens: then the call decides)."""
    from napalm.base.mock import MockDriver

    from runbooks.gateways import network

    class Recorded(MockDriver):  # type: ignore[misc]
        def get_route_to(self, destination: str = "", protocol: str = "", longer: bool = False):  # type: ignore[no-untyped-def]
            return {}

    monkeypatch.setattr(network, "get_network_driver", lambda name: Recorded)
    gw = NetworkGateway(Mode.PLAN, DeviceTarget("dev1", "h", "eos"), Credentials("x"))
    assert gw.supports("get_route_to") and gw.supports("get_facts")
    gw = NetworkGateway(
        Mode.PLAN,
        DeviceTarget("dev1", "h", "eos", None, {"path": str(MOCK / "eos")}),
        Credentials("x"),
    )
    assert gw.supports("get_route_to") and gw.supports("get_facts")
    assert not gw.supports("get_lldp_neighbors")


def test_a_json_answer_of_cli_comes_back_sanitised(
    fake_drivers: type[RecordingDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cli(..., encoding="json")`` answers dicts: a secret in them is masked value by value
    (the reviewer's find: only text answers were sanitised)."""
    answer = {"neighbors": {"198.18.1.4": {"password": "jS0nBgpS3cret", "remoteAs": 65001}}}

    def cli(self: RecordingDriver, commands: list[str], encoding: str = "text") -> Any:
        return {c: answer for c in commands}

    monkeypatch.setattr(fake_drivers, "cli", cli)
    got = fake_gateway(Mode.RUN).cli(["show bgp neighbors json"], encoding="json")
    peer = got["show bgp neighbors json"]["neighbors"]["198.18.1.4"]
    assert peer["remoteAs"] == 65001 and peer["password"] != "jS0nBgpS3cret"
    assert "jS0nBgpS3cret" not in secrets.mask_text("the answer said jS0nBgpS3cret")
