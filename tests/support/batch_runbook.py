"""A runbook defined for the tests of canary batches (`runbooks.core.batches`): it configures
pretend devices, one file each in a work directory, in batches.

Every call of apply, post-check, confirm and undo appends a line to ``ledger.log``
(``apply d2 d3``), so a test sees what ran, in which order and how often. Knobs: a device
whose post-check regresses (``regress_on``), a device whose apply crashes the process
mid-batch (``crash_on``: the files before it in the batch are written, then `Crash`,
which the engine does not catch, as a SIGKILL would not let it), a step before the batch
that changes a file of its own, devices that cannot be read (``unreachable``: the plan and
so a resumed batch's in-place check fail), an undo that fails (``undo_fails``), a
confirmation failing part-way (``confirm_fails_on``: the devices before it confirmed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runbooks.core.batches import batched
from runbooks.core.context import RunContext
from runbooks.core.errors import RejectedError, VerificationError
from runbooks.core.results import Diff
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import change


class Crash(BaseException):
    """The process dies here (a BaseException: the engine's handlers let it through)."""


class FleetParams(Params):
    workdir: Path
    devices: tuple[str, ...] = ("d1", "d2", "d3", "d4", "d5")
    batch_size: int = 2
    version: int = 2
    regress_on: str | None = None
    crash_on: str | None = None
    crash_after_apply: bool = False  # crash in confirm instead: the batch is in place
    fail_after: bool = False  # the step after the batches fails
    unreachable: bool = False  # reading the devices fails (the plan, the in-place check)
    undo_fails: bool = False  # the batches' undo fails
    confirm_fails_on: str | None = None  # confirming this device fails, those before it done


def ledger(workdir: Path, line: str) -> None:
    with (workdir / "ledger.log").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def lines(workdir: Path) -> list[str]:
    path = workdir / "ledger.log"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def read(workdir: Path, name: str) -> str:
    path = workdir / f"{name}.conf"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def write(workdir: Path, name: str, text: str) -> None:
    tmp = workdir / f"{name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, workdir / f"{name}.conf")


class FleetRunbook(Runbook):
    """Test instruction: bring every pretend device to the wanted version, in batches."""

    name = "test-fleet"
    title = "Configure pretend devices in canary batches (test runbook)"
    instruction = "test: a runbook defined for the tests"
    Params = FleetParams

    @property
    def p(self) -> FleetParams:
        assert isinstance(self.params, FleetParams)
        return self.params

    def wanted(self, name: str) -> str:
        return f"hostname {name}\nversion {self.p.version}\n"

    @change("Mark the fleet as in maintenance")
    def plan_marker(self, ctx: RunContext) -> list[Diff]:
        return [Diff.of_text("marker", read(self.p.workdir, "marker"), "maintenance\n")]

    @plan_marker.apply
    def write_marker(self, ctx: RunContext, diffs: list[Diff]) -> None:
        write(self.p.workdir, "marker", str(diffs[0].after))

    @plan_marker.undo
    def restore_marker(self, ctx: RunContext, diffs: list[Diff]) -> None:
        ledger(self.p.workdir, "undo marker")
        write(self.p.workdir, "marker", str(diffs[0].before))

    @batched("Configure the devices", batch_size="batch_size", targets=lambda rb: rb.p.devices)
    def plan_devices(self, ctx: RunContext) -> list[Diff]:
        if self.p.unreachable:
            raise ConnectionError("the devices cannot be reached")
        out = []
        for name in self.p.devices:
            now = read(self.p.workdir, name)
            if now != self.wanted(name):
                out.append(Diff.of_text(name, now, self.wanted(name), "version"))
        return out

    @plan_devices.baseline
    def observe(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        names = [d.target for d in diffs]
        ledger(self.p.workdir, f"baseline {' '.join(names)}")
        return {"healthy": names}

    @plan_devices.apply
    def configure(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        ledger(self.p.workdir, f"apply {' '.join(d.target for d in diffs)}")
        for diff in diffs:
            if diff.target == self.p.crash_on and not self.p.crash_after_apply:
                raise Crash(diff.target)
            write(self.p.workdir, diff.target, str(diff.after))
        return {"configured": [d.target for d in diffs]}

    @plan_devices.post_check
    def no_worse(self, ctx: RunContext, diffs: list[Diff], baseline: dict[str, Any]) -> Any:
        names = [d.target for d in diffs]
        ledger(self.p.workdir, f"check {' '.join(names)} against {baseline['healthy']}")
        if self.p.regress_on in names:
            raise VerificationError(f"{self.p.regress_on} lost a neighbour")
        return {"healthy": names}

    @plan_devices.confirm
    def confirm(self, ctx: RunContext, diffs: list[Diff]) -> None:
        names = [d.target for d in diffs]
        if self.p.crash_after_apply and self.p.crash_on in names:
            raise Crash(self.p.crash_on)
        if self.p.confirm_fails_on in names:
            done = names[: names.index(self.p.confirm_fails_on)]
            ledger(self.p.workdir, f"confirm {' '.join(done)}")
            raise VerificationError(f"{self.p.confirm_fails_on}: the confirmation timed out")
        ledger(self.p.workdir, f"confirm {' '.join(names)}")

    @plan_devices.undo
    def restore(self, ctx: RunContext, diffs: list[Diff]) -> None:
        ledger(self.p.workdir, f"undo {' '.join(d.target for d in diffs)}")
        if self.p.undo_fails:
            raise RejectedError("the devices refused the undo")
        for diff in diffs:
            write(self.p.workdir, diff.target, str(diff.before))

    @change("Record the maintenance as finished")
    def plan_finished(self, ctx: RunContext) -> list[Diff]:
        return [Diff.of_text("finished", read(self.p.workdir, "finished"), "finished\n")]

    @plan_finished.apply
    def write_finished(self, ctx: RunContext, diffs: list[Diff]) -> None:
        if self.p.fail_after:
            raise RejectedError("the maintenance record refused the write")
        write(self.p.workdir, "finished", str(diffs[0].after))

    @plan_finished.undo
    def restore_finished(self, ctx: RunContext, diffs: list[Diff]) -> None:
        write(self.p.workdir, "finished", str(diffs[0].before))
