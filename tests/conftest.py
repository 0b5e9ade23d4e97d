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
    """Everything under tests/lab needs the real lab: mark it so `-m "not lab"` leaves it out."""
    lab_dir = Path(__file__).parent / "lab"
    for item in items:
        if lab_dir in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.lab)


# Unit tests act as the local user: identity from NetBox is for the lab suite.
for _name in ("RUNBOOKS_NETBOX_URL", "RUNBOOKS_NETBOX_TOKEN", "NETBOX_URL", "NETBOX_TOKEN"):
    os.environ.pop(_name, None)
