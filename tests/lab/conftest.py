"""Lab fixtures: the whole lab once per session, a fast NetBox reset per test.

Every test under tests/lab carries the `lab` marker (tests/conftest.py adds it), so
`pytest -m "not lab"` runs the unit suite without them.
"""

from collections.abc import Iterator

import pytest
from lab_fixtures import db1, device_ssh, host_ssh, lab, lab_reset  # noqa: F401
from netbox_fixtures import netbox_lab, netbox_reset  # noqa: F401
from rack_support import following, rack_lab  # noqa: F401  (rack_lab: a fixture pytest finds by name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """The next test, for `rack_lab`'s teardown to see (it skips its reset when that test
    resets first); wraps the teardown so the fixture finalizers run with it set."""
    following["item"] = nextitem
    yield
    following["item"] = None
