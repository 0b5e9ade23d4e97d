"""network-maintenance run as a change: the run re-plans just before it runs, and goes on on
the sessions its re-plan opened (`Engine.replan`, `NetworkGateway.reopen`): one login per
device for the whole run, read-only still, the run's own evidence recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.core.context import RunContext
from runbooks.core.gateway import Gateway
from runbooks.core.results import RunStatus
from runbooks.gateways import network
from runbooks.gateways.network import DeviceTarget, NetworkGateway
from runbooks.gateways.network_guard import ReadOnlyDriver
from runbooks.library import network_survey
from tests.unit.gateways.network_fake import CREDS, RecordingDriver
from tests.unit.library.rack_data import IDS
from tests.unit.library.test_network_maintenance import (
    FLEET,
    engine,
    evidence,
    factories,
    fleet_in_memory,
    maintenance,
)

__all__ = ["fleet_in_memory"]  # the autouse fixture: NetBox's working sets in memory


def test_a_change_run_surveys_on_its_replans_sessions(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network, "get_network_driver", lambda name: RecordingDriver)
    RecordingDriver.seen = []
    wires: list[tuple[str, type]] = []

    def device(ctx: RunContext, key: str) -> Gateway:
        target = DeviceTarget(key, f"198.18.0.{IDS[key]}", "cisco_ios", "ios", {}, {})
        return NetworkGateway(ctx.mode, target, CREDS, ctx.run_id)

    def counters(gw: NetworkGateway) -> dict[str, int]:
        wires.append((gw.target.name, type(gw._open())))
        return {}

    monkeypatch.setattr(network_survey, "interface_counters", counters)
    net = factories()
    net[NetworkGateway] = device
    eng = engine(store_path)
    eng.gateway_factories = net
    runbook = maintenance()
    run_id = eng.begin(runbook, awaiting_grant=True)
    with eng.holding(run_id):
        planned = eng.replan(runbook, run_id)
        assert "close" not in [name for name, _ in RecordingDriver.seen]  # kept for the run
        result = eng.granted(
            runbook, run_id, plan_hash=planned.content_hash, emergency=False, window=None
        )
    assert result.status is RunStatus.SUCCEEDED
    calls = [name for name, _ in RecordingDriver.seen]
    assert calls.count("open") == len(FLEET) and calls.count("close") == len(FLEET)
    # the run read every device again, on the re-plan's session, behind the read-only guard
    assert sorted(wires) == sorted((name, ReadOnlyDriver) for name in FLEET for _ in "pr")
    surveyed = evidence(result.steps, "survey_devices")["devices"]
    assert {name: s["logins"] for name, s in surveyed.items()} == dict.fromkeys(FLEET, 0)
    assert all(s["replan_session"] for s in surveyed.values())
    assert all("config" in s for s in surveyed.values())  # the run's backup, as before
    assert planned.steps[1].evidence["devices"]["leaf1"]["logins"] == 1
