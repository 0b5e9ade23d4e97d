"""A read-only runbook defined for the tests, as backup and compliance are: its plan writes
nothing, so one approval covers every window of a recurring schedule.

Each run appends a line to ``runs.log`` in the work directory through a check (a test counts
runs there; what a check reads is evidence, outside the plan's hash). While a file named
``drift`` is in the work directory, the compliance check fails: the plan of that moment is not
the approved one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runbooks.core.context import RunContext
from runbooks.core.errors import VerificationError
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import check


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
