"""Shared test setup: the test runbook is registered through RUNBOOKS_MODULES."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SUPPORT = Path(__file__).parent / "support"
LEDGER = str(SUPPORT / "ledger_runbook.py")
os.environ["RUNBOOKS_MODULES"] = LEDGER


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "records.sqlite3"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/lab needs the real lab, everything under tests/integration real
    servers of its own (PostgreSQL clusters): mark them so the unit suite runs alone with
    `-m "not lab and not slow"`."""
    lab_dir = Path(__file__).parent / "lab"
    integration_dir = Path(__file__).parent / "integration"
    for item in items:
        parents = Path(str(item.fspath)).parents
        if lab_dir in parents:
            item.add_marker(pytest.mark.lab)
        if integration_dir in parents:
            item.add_marker(pytest.mark.slow)


# Unit tests act as the local user: identity from NetBox is for the lab suite.
for _name in ("RUNBOOKS_NETBOX_URL", "RUNBOOKS_NETBOX_TOKEN", "NETBOX_URL", "NETBOX_TOKEN"):
    os.environ.pop(_name, None)
