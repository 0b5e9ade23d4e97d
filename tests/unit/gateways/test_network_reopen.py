"""A device's connection handed from a re-plan to its run (`NetworkGateway.reopen`): the same
driver object, no second login, the mode's guard of the context it goes to."""

from __future__ import annotations

from typing import Any

import pytest

from runbooks.core.context import RunContext
from runbooks.core.errors import DryRunViolation
from runbooks.core.gateway import Mode
from runbooks.gateways.network_guard import ReadOnlyDriver
from tests.unit.gateways.network_fake import RecordingDriver, fake_drivers, fake_gateway

__all__ = ["fake_drivers"]  # the fixture, used by name


def context(mode: Mode, run_id: str) -> RunContext:
    return RunContext(mode, run_id, "olivia", runbook=None)  # type: ignore[arg-type]


def opened(drivers: type[RecordingDriver]) -> int:
    return [name for name, _ in drivers.seen].count("open")


def test_a_plans_connection_goes_on_to_the_run_without_a_second_login(
    fake_drivers: type[RecordingDriver],
) -> None:
    planned = fake_gateway(Mode.PLAN)
    assert planned.facts() == {"hostname": "r1"}
    with pytest.raises(DryRunViolation):
        planned.commit("hostname r9\n")
    driver = planned._device

    run = planned.reopen(context(Mode.RUN, "r-42"))
    assert run is not None and run.mode is Mode.RUN and run.run_id == "r-42"
    assert run._device is driver and not isinstance(run._wire, ReadOnlyDriver)
    assert run.logins == 0 and planned._device is None  # the plan's holds nothing now
    planned.close()  # closes nothing: the connection is the run's
    assert "close" not in [name for name, _ in fake_drivers.seen]
    assert run.commit("hostname r1\nhostname r9\n") == "+hostname r9"
    assert opened(fake_drivers) == 1

    # and back to a read-only use: the guard again, on the same driver object
    reading = run.reopen(context(Mode.PLAN, "r-42"))
    assert reading is not None and isinstance(reading._wire, ReadOnlyDriver)
    with pytest.raises(DryRunViolation):
        reading.commit("hostname r9\n")
    assert reading.config().startswith("hostname r1") and opened(fake_drivers) == 1
    reading.close()
    assert [name for name, _ in fake_drivers.seen][-1] == "close"


def test_nothing_to_hand_over_is_none(
    fake_drivers: type[RecordingDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = context(Mode.RUN, "r-1")
    assert fake_gateway(Mode.PLAN).reopen(run) is None  # never opened
    dead = fake_gateway(Mode.PLAN)
    dead.facts()
    monkeypatch.setattr(RecordingDriver, "is_alive", lambda self: {"is_alive": False})
    assert dead.reopen(run) is None and dead._device is not None  # still its own to close

    def raising(self: Any) -> dict[str, bool]:
        raise OSError("socket closed")

    monkeypatch.setattr(RecordingDriver, "is_alive", raising)
    assert dead.reopen(run) is None


def test_a_connection_holding_a_pending_commit_stays_with_its_run(
    fake_drivers: type[RecordingDriver],
) -> None:
    gw = fake_gateway(Mode.RUN)
    gw.commit("hostname r1\nhostname r9\n", revert_in=60)
    assert gw.reopen(context(Mode.RUN, "r-2")) is None and gw._device is not None
