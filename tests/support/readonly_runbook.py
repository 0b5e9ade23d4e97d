"""A read-only runbook defined for the tests, as backup and compliance are: its plan writes
nothing, so one approval covers every window of a recurring schedule.

Each run appends a line to ``runs.log`` in the work directory through a check (a test counts
runs there; what a check reads is evidence, outside the plan's hash). While a file named
``drift`` is in the work directory, the compliance check fails: the plan of that moment is not
the approved one.

`RecordingRunbook` does the same, then records each run in a history file of the work
directory: a change every run makes anew (``recurs=True``), as network-maintenance commits its
backups to the configuration history. While a file named ``elsewhere`` is in the work
directory, the history moves there: the recurring step's diff is not the approved one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runbooks.core.context import RunContext
from runbooks.core.errors import VerificationError
from runbooks.core.results import Diff
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import change, check


class ReadOnlyParams(Params):
    workdir: Path
    hostname: str = "leaf9"


class ReadOnlyRunbook(Runbook):
    """Test instruction: back up and check a pretend device, changing nothing."""

    name = "test-readonly"
    title = "Back up and check a pretend device (test runbook)"
    instruction = "test: a read-only runbook defined for the tests"
    expected_duration = timedelta(seconds=2)
    Params = ReadOnlyParams

    @property
    def p(self) -> ReadOnlyParams:
        assert isinstance(self.params, ReadOnlyParams)
        return self.params

    @check("Back up the configuration", targets="{hostname}", duration=timedelta(seconds=1))
    def backup(self, ctx: RunContext) -> dict[str, Any]:
        if not ctx.planning:  # a run leaves its mark; a plan reads only
            with (self.p.workdir / "runs.log").open("a", encoding="utf-8") as fh:
                fh.write(datetime.now(UTC).isoformat() + "\n")
        return {"at": datetime.now(UTC).isoformat()}

    @check("The configuration complies", targets="{hostname}", duration=timedelta(seconds=1))
    def compliance(self, ctx: RunContext) -> dict[str, Any]:
        if (self.p.workdir / "drift").exists():
            raise VerificationError(f"{self.p.hostname} drifted from its intended configuration")
        return {"compliant": True}


class RecordingRunbook(ReadOnlyRunbook):
    """Test instruction: back up and check a pretend device, and record the run."""

    name = "test-recording"
    title = "Back up and check a pretend device, recording the run (test runbook)"
    instruction = "test: a runbook whose only change recurs, defined for the tests"

    @change("Record the run in the history", recurs=True, duration=timedelta(seconds=1))
    def plan_record(self, ctx: RunContext) -> Diff:
        where = (
            "history-elsewhere.log" if (self.p.workdir / "elsewhere").exists() else "history.log"
        )
        return Diff(
            target=f"history {where}", kind="create", summary="a line naming the run", after=where
        )

    @plan_record.apply
    def record(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        with (self.p.workdir / str(diffs[0].after)).open("a", encoding="utf-8") as fh:
            fh.write(f"run {ctx.run_id}\n")
        return {"recorded": ctx.run_id}

    @plan_record.verify
    def recorded(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        history = self.p.workdir / str(diffs[0].after)
        return f"run {ctx.run_id}" in history.read_text(encoding="utf-8")
