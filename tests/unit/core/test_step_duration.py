"""A step's expected duration may come from the runbook's parameters (a burn-in of
``burn_in`` seconds): the plan shows it, and the window check refuses to start such a step
when it cannot end inside the window, however short the step's fixed default is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.results import RunStatus
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import check
from runbooks.core.store import RecordStore
from runbooks.core.window import Window


class SoakParams(Params):
    soak_s: float = 0.0


class Soak(Runbook):
    """A check that lasts as long as its parameter says (it only says so here)."""

    name = "test-soak"
    title = "Soak (test runbook)"
    instruction = "test"
    Params = SoakParams

    @check("Ready")
    def ready(self, ctx: RunContext) -> dict[str, Any]:
        return {}

    @check("Soak", duration=lambda rb: timedelta(seconds=rb.params.soak_s))
    def soak(self, ctx: RunContext) -> dict[str, Any]:
        return {"soaked": True}


def test_the_plan_shows_the_duration_its_parameters_give(tmp_path: Path) -> None:
    engine = Engine(RecordStore(tmp_path / "r.sqlite3"), "olivia")
    plan = engine.plan(Soak(SoakParams(soak_s=7200)))
    steps = {s.step: s for s in plan.steps}
    assert steps["soak"].duration_s == 7200
    assert steps["ready"].duration_s == 30  # the fixed default


def test_the_window_refuses_a_step_its_parameters_make_too_long(tmp_path: Path) -> None:
    start = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    window = Window(start, start + timedelta(hours=1))
    store = RecordStore(tmp_path / "r.sqlite3")
    engine = Engine(store, "olivia", clock=lambda: start + timedelta(minutes=10))
    refused = engine.run(Soak(SoakParams(soak_s=7200)), window=window)
    assert refused.status is RunStatus.ROLLED_BACK
    assert "not starting 'Soak': it is expected to take 2:00:00" in str(refused.error)
    assert [(s.step, str(s.status)) for s in refused.steps] == [
        ("ready", "ok"),
        ("soak", "refused"),
    ]
    fits = engine.run(Soak(SoakParams(soak_s=600)), window=window)
    assert fits.status is RunStatus.SUCCEEDED, fits.error
