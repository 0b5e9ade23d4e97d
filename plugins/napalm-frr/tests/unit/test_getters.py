"""NAPALM's own getter conformance suite, run on recorded FRR output."""

import pytest
from napalm.base.test.getters import BaseTestGetters


@pytest.mark.usefixtures("set_device_parameters")
class TestGetter(BaseTestGetters):  # type: ignore[misc]
    """Every getter test of napalm.base.test.getters; unimplemented getters are skipped."""
