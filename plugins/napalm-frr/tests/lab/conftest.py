"""Fixtures of the live tests; see frr_lab.py for where the devices come from."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# frr_lab is shared with the subprocess of the kill test; make it importable whatever
# pytest's import mode (the runbooks project uses importlib, which adds no paths).
sys.path.insert(0, str(Path(__file__).parent))
from frr_lab import ENV, frr_device_names, lab_devices, make_driver


@pytest.fixture(autouse=True)
def lab_held(request: pytest.FixtureRequest) -> Iterator[None]:
    """The runbooks lab held for each live test, as the project's lab tests hold it: no other
    session's reset or `lab up` in the middle (they wait); no reset of ours either."""
    if os.environ.get(ENV) or not _lab_selected(request.config):
        yield
        return
    try:
        from runbooks.lab import lab as lab_ops
    except ImportError:  # the driver tested outside the runbooks project
        yield
        return
    with lab_ops.held(reset_first=False):
        yield


def _lab_selected(config: pytest.Config) -> bool:
    """Live tests run unless deselected (``-m "not lab"``, this package's default)."""
    expr = str(config.getoption("-m") or "")
    return "not lab" not in expr


@pytest.fixture(scope="session")
def devices(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    if not _lab_selected(request.config):
        pytest.skip("live test deselected: run with -m lab")
    found = lab_devices()
    if not found:
        pytest.skip(f"no FRR devices: set {ENV} or bring the runbooks lab up")
    return found


@pytest.fixture(scope="session")
def device_params(devices: list[dict[str, Any]]) -> dict[str, Any]:
    """The device the configuration tests change (and restore): NAPALM_FRR_TEST_CONFIG_HOST,
    else the last one, away from the first devices other suites tend to use."""
    wanted = os.environ.get("NAPALM_FRR_TEST_CONFIG_HOST")
    for params in devices:
        if params["host"] == wanted:
            return params
    return devices[-1]


def _device_ids() -> list[str]:
    """Every device the live tests will find, known at collection (a cold CI machine brings
    the lab up only later in the session): the hosts given, or the lab's active devices."""
    if os.environ.get(ENV):
        return [str(d["host"]) for d in lab_devices()]
    try:
        from runbooks.lab import topology
    except ImportError:
        return []
    try:
        return frr_device_names(topology.load())
    except Exception:  # no lab topology here
        return []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``any_device``: every device, one test each (read-only tests)."""
    if "any_device_id" in metafunc.fixturenames:
        ids = _device_ids() if _lab_selected(metafunc.config) else []
        metafunc.parametrize("any_device_id", ids or [None], ids=ids or ["none"])


@pytest.fixture
def any_device(any_device_id: str | None) -> dict[str, Any] | None:
    """The device of this test's parameter, found now (None: skip)."""
    if any_device_id is None:
        return None
    if os.environ.get(ENV):
        return next((d for d in lab_devices() if d["host"] == any_device_id), None)
    from runbooks.lab import frr

    params = frr.device_ssh_params(any_device_id)
    return params if os.path.exists(params["key_file"]) else None


@pytest.fixture
def driver(device_params: dict[str, Any]) -> Any:
    dev = make_driver(device_params)
    dev.open()
    yield dev
    if dev.has_pending_commit():
        dev.rollback()
    dev.close()
