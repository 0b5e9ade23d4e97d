"""Fixtures of the live tests; see frr_lab.py for where the devices come from."""

from __future__ import annotations

from typing import Any

import pytest
from frr_lab import ENV, lab_devices, make_driver


@pytest.fixture(scope="session")
def devices() -> list[dict[str, Any]]:
    found = lab_devices()
    if not found:
        pytest.skip(f"no FRR devices: set {ENV} or bring the runbooks lab up")
    return found


@pytest.fixture(scope="session")
def device_params(devices: list[dict[str, Any]]) -> dict[str, Any]:
    return devices[0]


@pytest.fixture
def driver(device_params: dict[str, Any]) -> Any:
    dev = make_driver(device_params)
    dev.open()
    yield dev
    if dev.has_pending_commit():
        dev.rollback()
    dev.close()
