"""pytest fixtures for the lab's NetBox; imported by tests/lab/conftest.py.

- `netbox_lab` (session): NetBox up and seeded from inventory/lab.yml. Yields the URL.
  The first run on a machine migrates once (~6 min); later sessions take seconds.
- `netbox_reset` (function): the seeded state restored before the test (about a second).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runbooks.lab import netbox


@pytest.fixture(scope="session")
def netbox_lab() -> Iterator[str]:
    netbox.up()
    yield netbox.url()


@pytest.fixture
def netbox_reset(netbox_lab: str) -> str:
    netbox.reset()
    return netbox_lab
