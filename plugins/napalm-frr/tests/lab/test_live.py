"""Live tests against real FRR devices (see conftest.py for how they are found).

Run: ``pytest -m lab tests/lab -v --durations=0``. Every change is reverted; the
configuration touched is a description on ``lo``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from frr_lab import make_driver  # on sys.path via conftest.py
from napalm.base import models
from napalm.base.exceptions import (
    CommitConfirmException,
    CommitError,
    MergeConfigException,
    ReplaceConfigException,
)
from napalm.base.test import helpers

from napalm_frr import FRRDriver

pytestmark = pytest.mark.lab


def _marker() -> str:
    return f"napalm-frr-test-{uuid.uuid4().hex[:8]}"


def _merge_lo_description(text: str) -> str:
    return f"interface lo\n description {text}\nexit\n"


def _wait_until(condition: Any, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.2)
    return True


def _running(dev: FRRDriver) -> str:
    return str(dev.get_config(retrieve="running")["running"])


def test_getters_return_napalm_models(any_device: dict[str, Any] | None) -> None:
    if any_device is None:
        pytest.skip("no FRR devices (see frr_lab.py), or live tests deselected")
    driver = make_driver(any_device)
    timings: dict[str, float] = {}

    def timed(name: str) -> Any:
        start = time.perf_counter()
        result = getattr(driver, name)()
        timings[name] = round(time.perf_counter() - start, 3)
        return result

    timed("open")
    try:
        facts = timed("get_facts")
        assert helpers.test_model(models.FactsDict, facts)
        for data in timed("get_interfaces").values():
            assert helpers.test_model(models.InterfaceDict, data)
        for data in timed("get_interfaces_ip").values():
            for family in data.values():
                for entry in family.values():
                    assert helpers.test_model(models.InterfacesIPDictEntry, entry)
        for neighbours in timed("get_lldp_neighbors").values():
            for n in neighbours:
                assert helpers.test_model(models.LLDPNeighborDict, n)
        for neighbours in timed("get_lldp_neighbors_detail").values():
            for n in neighbours:
                assert helpers.test_model(models.LLDPNeighborDetailDict, n)
        for vrf in timed("get_bgp_neighbors").values():
            for peer in vrf["peers"].values():
                assert helpers.test_model(models.PeerDict, peer)
        assert helpers.test_model(models.ConfigDict, timed("get_config"))
    finally:
        driver.close()
    print(facts["hostname"], json.dumps(timings))


def test_open_fails_cleanly_on_wrong_port(device_params: dict[str, Any]) -> None:
    from napalm.base.exceptions import ConnectionException

    params = {**device_params, "port": 1, "optional_args": {"conn_timeout": 2}}
    dev = make_driver(params)
    with pytest.raises(ConnectionException):
        dev.open()


def test_merge_compare_commit_rollback(driver: FRRDriver) -> None:
    marker = _marker()
    before = _running(driver)
    driver.load_merge_candidate(config=_merge_lo_description(marker))
    diff = driver.compare_config()
    assert "Lines To Add" in diff and marker in diff
    driver.commit_config(message="live test: merge")
    assert marker in _running(driver)
    assert driver.compare_config() == ""  # candidate cleared by the commit
    driver.rollback()
    assert marker not in _running(driver)
    assert _running(driver) == before


def test_replace_with_running_is_empty_diff_and_discard(driver: FRRDriver) -> None:
    driver.load_replace_candidate(config=_running(driver))
    assert driver.compare_config() == ""
    driver.discard_config()
    assert driver.compare_config() == ""
    assert driver.get_config(retrieve="candidate")["candidate"] == ""


def test_rejected_config_raises(driver: FRRDriver) -> None:
    with pytest.raises(MergeConfigException, match="Unknown command"):
        driver.load_merge_candidate(config="router bgp 64512\n neighbour 10.0.0.1 remote-as 1\n")
    with pytest.raises(ReplaceConfigException):
        driver.load_replace_candidate(config="interface lo\n ip adress 1.2.3.4/32\n")


def test_commit_confirm_and_confirm(driver: FRRDriver) -> None:
    marker = _marker()
    driver.load_merge_candidate(config=_merge_lo_description(marker))
    driver.commit_config(message="live test: confirm", revert_in=60)
    try:
        assert driver.has_pending_commit()
        startup = driver.get_config(retrieve="startup")["startup"]
        assert marker not in startup  # startup stays old until confirmed
        with pytest.raises(CommitError):
            driver.commit_config()
        timer = driver._sh(f"sed -n 's/^pid=//p' {driver.paths.pending}").split()[-1]
        alive = f"tr -d '\\0' < /proc/{timer}/cmdline 2>/dev/null | grep -c napalm-frr-revert"
        assert driver._sh(alive).split()[-1] == "1"
        driver.confirm_commit()
        assert not driver.has_pending_commit()
        assert _wait_until(lambda: driver._sh(alive).split()[-1] == "0", 3), "timer still runs"
        assert marker in driver.get_config(retrieve="startup")["startup"]
        with pytest.raises(CommitConfirmException):
            driver.confirm_commit()
    finally:
        driver.rollback()
    assert marker not in _running(driver)


COMMIT_AND_HANG = """
import json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
from frr_lab import make_driver  # on sys.path via conftest.py
dev = make_driver(json.loads(sys.argv[2]))
dev.open()
dev.load_merge_candidate(config=sys.argv[3])
dev.commit_config(message="live test: revert after kill", revert_in=int(sys.argv[4]))
print("COMMITTED", flush=True)
time.sleep(3600)
"""


def test_revert_in_fires_after_our_process_was_killed(device_params: dict[str, Any]) -> None:
    """The issue's acceptance test: kill -9 after commit, the device reverts on its own."""
    revert_in = 8
    marker = _marker()
    here = os.path.dirname(__file__)
    probe = make_driver(device_params)
    probe.open()
    before = probe.get_config(retrieve="all")
    probe.close()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            COMMIT_AND_HANG,
            json.dumps([here, *sys.path]),
            json.dumps(device_params),
            _merge_lo_description(marker),
            str(revert_in),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        committed_at = time.monotonic()
        assert line.strip() == "COMMITTED"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    dev = make_driver(device_params)
    dev.open()
    try:
        assert marker in _running(dev)
        assert dev.has_pending_commit()
        deadline = committed_at + revert_in + 20
        while time.monotonic() < deadline and marker in _running(dev):
            time.sleep(0.5)
        reverted_after = time.monotonic() - committed_at
        print(f"reverted {reverted_after:.1f}s after the commit (revert_in={revert_in})")
        assert marker not in _running(dev), "the device did not revert"
        assert reverted_after >= revert_in - 1
        assert _wait_until(lambda: not dev.has_pending_commit(), 5)
        after = dev.get_config(retrieve="all")
        assert after["running"] == before["running"], "running is not the old configuration"
        assert after["startup"] == before["startup"], "frr.conf is not the old configuration"
    finally:
        if dev.has_pending_commit():
            dev.rollback()
        dev.close()
