"""A NAPALM getter a driver answers under another name, said by platform data (the device's
NetBox config context ``napalm.getters``), not by code: napalm-bird2 has no get_config but
``get_bird_running_config`` (a text); the gateway calls it and answers in NAPALM's shape."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from runbooks.core import secrets
from runbooks.core.errors import InventoryError, UnsupportedError
from runbooks.core.gateway import Mode
from runbooks.gateways.network import DeviceTarget, NetworkGateway, napalm_getters
from tests.unit.gateways.network_fake import (
    BIRD_RUNNING,
    CREDS,
    RecordingDriver,
    fake_drivers,
    fake_gateway,
)

__all__ = ["fake_drivers"]

BIRD2 = {"get_config": "get_bird_running_config"}
BIRD2_CONTEXT = {"napalm": {"driver": "bird2", "getters": BIRD2}}


def test_the_target_carries_the_config_contexts_getters() -> None:
    target = DeviceTarget.from_netbox("border1", "198.18.0.31", "bird2", BIRD2_CONTEXT)
    assert dict(target.getters) == BIRD2 and target.driver_name == "bird2"
    assert dict(DeviceTarget.from_netbox("leaf1", "h", "frr", {}).getters) == {}
    assert hash(target) == hash(DeviceTarget("border1", "198.18.0.31", "bird2", "bird2"))


@pytest.mark.parametrize(
    ("getters", "why"),
    [
        ("get_bird_running_config", "is not a mapping"),
        ({"get_config": "rollback"}, "maps get_config to 'rollback', which is no getter"),
        ({"get_config": "commit_config"}, "which is no getter"),
        ({"get_config": "get_x; reboot"}, "which is no getter"),
        ({"get_config": 3}, "which is no getter"),
        ({"config": "get_bird_running_config"}, "names 'config', which is no NAPALM getter"),
        ({"rollback": "get_bird_running_config"}, "which is no NAPALM getter"),
    ],
)
def test_a_mapping_onto_anything_but_a_getter_is_refused(getters: Any, why: str) -> None:
    """The mapped method is called wherever the gateway reads, plans included."""
    with pytest.raises(InventoryError, match=why):
        napalm_getters("r1", {"napalm": {"getters": getters}})
    with pytest.raises(InventoryError, match=why):
        DeviceTarget.from_netbox("r1", "h", "bird2", {"napalm": {"getters": getters}})


def test_napalm_bird2_supports_get_config_through_the_mapping_only() -> None:
    """The real napalm-bird2 class: asks no device."""
    plain = NetworkGateway(Mode.PLAN, DeviceTarget("border1", "h", "bird2"), CREDS)
    assert not plain.supports("get_config") and not plain.supports("config")
    mapped = NetworkGateway(
        Mode.PLAN, DeviceTarget.from_netbox("border1", "h", "bird2", BIRD2_CONTEXT), CREDS
    )
    assert mapped.supports("get_config") and mapped.supports("config")
    assert mapped.supports("get_bgp_neighbors") and not mapped.supports("get_route_to")


@pytest.mark.parametrize("mode", [Mode.PLAN, Mode.RUN])
def test_config_comes_from_the_mapped_method_in_napalms_shape(
    fake_drivers: type[RecordingDriver], mode: Mode
) -> None:
    gw = fake_gateway(mode, driver="birdlike", platform="bird2", getters=BIRD2)
    assert gw.config_with_secrets() == BIRD_RUNNING
    assert gw.config_with_secrets("candidate") == ""
    clean = gw.config()
    assert "Fake-Bird-Pw-1" not in clean and '\tpassword "<removed>";' in clean.splitlines()
    assert secrets.mask_text("Fake-Bird-Pw-1") == secrets.MASK
    assert [n for n, _ in fake_drivers.seen if n.startswith("get_")] == [
        "get_bird_running_config"
    ] * 3


@pytest.mark.parametrize("mode", [Mode.PLAN, Mode.RUN])
def test_placeholders_are_filled_from_the_mapped_running_configuration(
    fake_drivers: type[RecordingDriver], mode: Mode
) -> None:
    """A plan's compare and a run's commit of a sanitised candidate on napalm-bird2."""
    gw = fake_gateway(mode, driver="birdlike", platform="bird2", getters=BIRD2)
    planned = gw.config() + "protocol device { }\n"
    assert gw.compare(planned) == "+protocol device { }"
    loaded = [a for n, a in fake_drivers.seen if n == "load_replace_candidate"]
    assert loaded == [BIRD_RUNNING + "protocol device { }\n"]
    if mode is Mode.RUN:
        assert gw.commit(planned) == "+protocol device { }"
        assert ("commit_config", None) in fake_drivers.seen


def test_without_the_mapping_the_getter_is_unsupported(
    fake_drivers: type[RecordingDriver],
) -> None:
    gw = fake_gateway(driver="birdlike", platform="bird2")
    assert not gw.supports("get_config")
    with pytest.raises(UnsupportedError, match=r"the birdlike driver has no get_config$"):
        gw.config()
    assert not any(n == "get_bird_running_config" for n, _ in fake_drivers.seen)


def test_a_mapping_to_a_method_the_driver_lacks_is_unsupported(
    fake_drivers: type[RecordingDriver],
) -> None:
    gw = fake_gateway(driver="birdlike", getters={"get_config": "get_frr_running_config"})
    assert not gw.supports("get_config")
    with pytest.raises(UnsupportedError, match="no get_config \\(nor get_frr_running_config"):
        gw.config()


def test_a_mapped_method_answering_napalms_shape_passes_through(
    fake_drivers: type[RecordingDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    def get_neighbours_by_peer(self: RecordingDriver) -> dict[str, Any]:
        return {"global": {"router_id": "9.9.9.9", "peers": {}}}

    monkeypatch.setattr(fake_drivers, "get_neighbours_by_peer", get_neighbours_by_peer, False)
    gw = fake_gateway(getters={"get_bgp_neighbors": "get_neighbours_by_peer"})
    assert gw.bgp_neighbors()["global"]["router_id"] == "9.9.9.9"
    assert gw.config_with_secrets().startswith("hostname r1")  # unmapped: the driver's own


def test_what_a_driver_prints_on_open_goes_to_stderr(
    fake_drivers: type[RecordingDriver],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """napalm-bird2 prints "[napalm-bird2] Version …" on its first open: stdout is the
    command's (`runbook plan --json`). Several threads opening at once leave stdout as it was."""
    real_stdout = sys.stdout
    started = threading.Barrier(4)

    def noisy_open(self: RecordingDriver) -> None:
        started.wait(timeout=5)
        print("[napalm-bird2] Version 0.0.5", flush=True)

    monkeypatch.setattr(fake_drivers, "open", noisy_open)
    gateways = [fake_gateway() for _ in range(4)]
    threads = [threading.Thread(target=gw.facts) for gw in gateways]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert all(gw.calls == 1 for gw in gateways)
    assert sys.stdout is real_stdout
    out, err = capsys.readouterr()
    assert out == "" and err.count("[napalm-bird2] Version 0.0.5") == 4
