"""Commit-confirm as a capability the library can ask for: ``supports`` takes NAPALM's
non-getter method names as they are, `NetworkGateway.commit_confirm_supported` says whether a
commit can revert on the device by itself, and what a driver lacks is an `UnsupportedError`
naming device, driver and method, never a commit that silently has no timer."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.core.errors import UnsupportedError
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
METHODS = ("confirm_commit", "has_pending_commit", "rollback")


@pytest.mark.usefixtures("fake_drivers")
def test_supports_takes_napalms_other_methods_as_named() -> None:
    full = fake_gateway()
    assert all(full.supports(name) for name in METHODS)
    assert full.supports("cli") and full.supports("route_to") and full.supports("get_route_to")
    bare = fake_gateway(driver="bare")
    assert not any(bare.supports(name) for name in METHODS)
    bird = fake_gateway(driver="birdlike")
    assert bird.supports("rollback")
    assert not bird.supports("confirm_commit") and not bird.supports("has_pending_commit")


@pytest.mark.parametrize(
    ("driver", "supported"),
    [("junos", True), ("eos", True), ("ios", True), ("nxos_ssh", False), ("bird2", False)],
)
def test_commit_confirm_supported_by_real_drivers(driver: str, supported: bool) -> None:
    """NAPALM's own drivers and napalm-bird2, by their classes: no device is asked."""
    gw = NetworkGateway(Mode.PLAN, DeviceTarget("r1", "h", driver), Credentials("x"))
    assert gw.commit_confirm_supported() is supported


@pytest.mark.usefixtures("fake_drivers")
def test_commit_confirm_supported_by_fakes_and_napalms_mock() -> None:
    assert fake_gateway().commit_confirm_supported()
    assert fake_gateway(driver="noconfirm").commit_confirm_supported()  # declared: calls decide
    assert not fake_gateway(driver="bare").commit_confirm_supported()
    assert not fake_gateway(driver="birdlike").commit_confirm_supported()
    mock = NetworkGateway(
        Mode.PLAN,
        DeviceTarget("dev1", "h", "junos", "mock", {"path": str(MOCK / "junos")}),
        Credentials("x"),
    )
    assert mock.commit_confirm_supported() and mock.supports("rollback")


@pytest.mark.usefixtures("fake_drivers")
def test_a_method_the_driver_lacks_is_unsupported() -> None:
    gw = fake_gateway(Mode.RUN, driver="birdlike")
    with pytest.raises(UnsupportedError, match=r"^r1: the birdlike driver has no has_pending_c"):
        gw.has_pending_commit()
    with pytest.raises(UnsupportedError, match="has no confirm_commit") as e:
        gw.confirm()
    assert e.value.context == {"device": "r1", "driver": "birdlike", "method": "confirm_commit"}
    gw.rollback()  # napalm-bird2 has one
    bare = fake_gateway(Mode.RUN, driver="bare")
    with pytest.raises(UnsupportedError, match="the bare driver has no rollback"):
        bare.rollback()


def test_not_implemented_at_call_time_is_unsupported(fake_drivers: type[RecordingDriver]) -> None:
    gw = fake_gateway(Mode.RUN, driver="noconfirm")
    for call, method in [
        (gw.has_pending_commit, "has_pending_commit"),
        (gw.confirm, "confirm_commit"),
        (gw.rollback, "rollback"),
    ]:
        with pytest.raises(UnsupportedError, match=f"the noconfirm driver has no {method}") as e:
            call()
        assert e.value.context == {"device": "r1", "driver": "noconfirm", "method": method}
    assert [n for n, _ in fake_drivers.seen if n != "open"] == list(
        ("has_pending_commit", "confirm_commit", "rollback")
    )


def test_has_pending_commit_is_unsupported_in_a_plan_too(
    fake_drivers: type[RecordingDriver],
) -> None:
    with pytest.raises(UnsupportedError, match="has no has_pending_commit"):
        fake_gateway(Mode.PLAN, driver="birdlike").has_pending_commit()
    assert fake_gateway(Mode.PLAN).has_pending_commit() is False


def test_revert_in_without_commit_confirm_is_refused_before_anything_is_loaded(
    fake_drivers: type[RecordingDriver],
) -> None:
    """napalm-bird2 would take revert_in (a timer in our own process, in minutes): refused."""
    gw = fake_gateway(Mode.RUN, driver="birdlike")
    with pytest.raises(UnsupportedError, match="no commit-confirm, so no commit with revert_in"):
        gw.commit("router id 198.18.255.31;\n", revert_in=120)
    assert fake_drivers.seen == []  # not even connected
    assert gw.commit("router id 198.18.255.32;\n") == "+router id 198.18.255.32;"
    assert ("commit_config", None) in fake_drivers.seen


def test_revert_in_the_driver_says_no_to_is_unsupported_and_discarded(
    fake_drivers: type[RecordingDriver],
) -> None:
    gw = fake_gateway(Mode.RUN, driver="noconfirm")
    with pytest.raises(UnsupportedError, match="has no commit_config with revert_in") as e:
        gw.commit(RUNNING + "interface lo\n", revert_in=60)
    assert e.value.context["method"] == "commit_config"
    calls = [n for n, _ in fake_drivers.seen]
    assert calls[-2:] == ["commit_config", "discard_config"]
    gw.commit(RUNNING + "interface lo\n")  # without revert_in it commits
    assert [a for n, a in fake_drivers.seen if n == "commit_config"] == [60, None]


def test_a_driver_with_commit_confirm_gets_revert_in(
    fake_drivers: type[RecordingDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    committed: list[int | None] = []

    def commit_config(
        self: RecordingDriver, message: str = "", revert_in: int | None = None
    ) -> None:
        committed.append(revert_in)

    monkeypatch.setattr(fake_drivers, "commit_config", commit_config)
    fake_gateway(Mode.RUN).commit(RUNNING + "interface lo\n", revert_in=300)
    assert committed == [300]


@pytest.mark.usefixtures("fake_drivers")
def test_a_configuration_the_box_refuses_at_commit_is_a_rejection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """napalm-bird2 raises NAPALM's CommandErrorException when ``birdc configure`` refuses
    the file it wrote (after putting the old one back): a rejected configuration, like the
    other drivers' CommitError, not an unknown failure."""
    from napalm.base import exceptions as napalm_errors

    from runbooks.core.errors import RejectedError
    from tests.unit.gateways.network_fake import BirdLikeDriver

    def refuse(self: BirdLikeDriver, message: str = "", revert_in: int | None = None) -> None:
        raise napalm_errors.CommandErrorException("bird.conf:12:3 syntax error, unexpected '}'")

    monkeypatch.setattr(BirdLikeDriver, "commit_config", refuse)
    gw = fake_gateway(
        Mode.RUN, driver="birdlike", getters={"get_config": "get_bird_running_config"}
    )
    with pytest.raises(RejectedError, match=r"r1: configuration rejected while committing.*syntax"):
        gw.commit("router id 198.18.255.21;\n")
