"""NAPALM's conformance machinery (napalm.base.test) wired to recorded FRR output.

As in napalm's own drivers: a patched driver whose ``device`` is a test double replaying
``mocked_data/<test>/<case>/<command>.txt``; ``NAPALM_TEST_MOCK=0`` plus NAPALM_HOSTNAME,
NAPALM_USERNAME, NAPALM_PASSWORD, NAPALM_OPTIONAL_ARGS runs the same tests on a device.
"""

from __future__ import annotations

from typing import Any

import pytest
from napalm.base.test import conftest as parent_conftest
from napalm.base.test.double import BaseTestDouble

from napalm_frr import FRRDriver


@pytest.fixture(scope="class")
def set_device_parameters(request: pytest.FixtureRequest) -> None:
    """Set up the class."""

    def fin() -> None:
        request.cls.device.close()

    request.addfinalizer(fin)
    request.cls.driver = FRRDriver
    request.cls.patched_driver = PatchedFRRDriver
    request.cls.vendor = "frr"
    parent_conftest.set_device_parameters(request)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Generate test cases dynamically."""
    parent_conftest.pytest_generate_tests(metafunc, __file__)


class PatchedFRRDriver(FRRDriver):
    """FRRDriver whose connection is a FakeFRRDevice."""

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(hostname, username, password, timeout, optional_args)
        self.patched_attrs = ["device"]
        self.device = FakeFRRDevice()

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeFRRDevice(BaseTestDouble):  # type: ignore[misc]
    """Replays a recorded Netmiko session: one file per command."""

    def send_command(self, command: str, **kwargs: Any) -> str:
        filename = f"{self.sanitize_text(command)}.txt"
        return str(self.read_txt_file(self.find_file(filename)))

    def is_alive(self) -> bool:
        return True

    def disconnect(self) -> None:
        pass
