"""``@change(..., undo_on_failure=True)``: a step whose apply fails part-way is undone too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbooks.core.engine import Engine
from runbooks.core.errors import RejectedError
from runbooks.core.results import Diff, RunStatus
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import change
from runbooks.core.store import RecordStore


class TwoFilesParams(Params):
    workdir: Path


class TwoFiles(Runbook):
    """Writes a.txt then b.txt in one step; the knob fails it between the two writes."""

    name = "test-two-files"
    title = "Two files in one step (test)"
    instruction = "test"
    Params = TwoFilesParams

    def path(self, name: str) -> Path:
        assert isinstance(self.params, TwoFilesParams)
        return self.params.workdir / name

    def log_undo(self, what: str) -> None:
        with self.path("undo.log").open("a") as fh:
            fh.write(what + "\n")

    @change("Marker file before the two", targets="x")
    def plan_marker(self, ctx: Any) -> Diff:
        now = self.path("marker").read_text() if self.path("marker").exists() else ""
        return Diff.of_text("x:marker", now, "marker\n")

    @plan_marker.apply
    def write_marker(self, ctx: Any, diffs: list[Diff]) -> None:
        self.path("marker").write_text("marker\n")

    @plan_marker.undo
    def remove_marker(self, ctx: Any, diffs: list[Diff]) -> None:
        self.path("marker").unlink(missing_ok=True)
        self.log_undo("marker")

    def two(self) -> list[Diff]:
        return [Diff.of_text(f"x:{n}", "", f"{n}\n") for n in ("a.txt", "b.txt")]  # never there

    def write_two(self) -> None:
        self.path("a.txt").write_text("a.txt\n")
        raise RejectedError("b.txt could not be written")

    def remove_two(self) -> None:
        for name in ("a.txt", "b.txt"):  # safe on a half-applied step
            self.path(name).unlink(missing_ok=True)
        self.log_undo("files")

    @change("Both files", targets="x", undo_on_failure=True)
    def plan_files(self, ctx: Any) -> list[Diff]:
        return self.two()

    @plan_files.apply
    def write_files(self, ctx: Any, diffs: list[Diff]) -> None:
        self.write_two()

    @plan_files.undo
    def remove_files(self, ctx: Any, diffs: list[Diff]) -> None:
        self.remove_two()


class TwoFilesNoPartial(TwoFiles):
    """The same without ``undo_on_failure``."""

    name = "test-two-files-no-partial"

    @change("Both files", targets="x")
    def plan_files(self, ctx: Any) -> list[Diff]:
        return self.two()

    @plan_files.apply
    def write_files(self, ctx: Any, diffs: list[Diff]) -> None:
        self.write_two()

    @plan_files.undo
    def remove_files(self, ctx: Any, diffs: list[Diff]) -> None:
        self.remove_two()


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    return RecordStore(tmp_path / "records.sqlite3")


def test_a_subclass_step_replaces_the_base_step_of_its_name() -> None:
    steps = TwoFilesNoPartial.steps()
    assert [s.name for s in steps] == ["plan_marker", "plan_files"]
    assert steps[1] is TwoFilesNoPartial.plan_files and not steps[1].undo_on_failure


def test_the_failing_step_is_undone_first(store: RecordStore, tmp_path: Path) -> None:
    result = Engine(store, "olivia").run(TwoFiles(TwoFiles.parse_params({"workdir": tmp_path})))
    assert result.status is RunStatus.ROLLED_BACK
    assert not (tmp_path / "a.txt").exists() and not (tmp_path / "marker").exists()
    assert (tmp_path / "undo.log").read_text() == "files\nmarker\n"  # newest first
    kinds = [(e.kind, e.step, e.payload.get("partial_undo")) for e in store.entries(result.run_id)]
    assert ("step.failed", "plan_files", True) in kinds
    assert ("undo.finished", "plan_files", None) in kinds


def test_without_the_flag_partial_work_stays(store: RecordStore, tmp_path: Path) -> None:
    runbook = TwoFilesNoPartial(TwoFilesNoPartial.parse_params({"workdir": tmp_path}))
    result = Engine(store, "olivia").run(runbook)
    assert result.status is RunStatus.ROLLED_BACK
    assert (tmp_path / "a.txt").exists()  # the step's own half stays: its undo was not asked
    assert (tmp_path / "undo.log").read_text() == "marker\n"


def test_an_interrupted_rollback_resumes_with_the_partial_step(
    store: RecordStore, tmp_path: Path
) -> None:
    """Killed after recording the failure, before any undo: resume finishes the rollback."""
    runbook = TwoFiles(TwoFiles.parse_params({"workdir": tmp_path}))
    (tmp_path / "marker").write_text("marker\n")
    (tmp_path / "a.txt").write_text("a.txt\n")
    run = "RUN-KILLED"
    marker = {"diffs": [Diff.of_text("x:marker", "", "marker\n").to_dict()]}
    files = {"diffs": [d.to_dict() for d in runbook.two()]}
    store.append(run, "run.started", {"runbook": runbook.name, "params": {}}, actor="olivia")
    store.append(run, "step.started", marker, step="plan_marker", actor="olivia")
    finished = {"status": "changed", "changed": True, "undo_diffs": marker["diffs"]}
    store.append(run, "step.finished", finished, step="plan_marker", actor="olivia")
    store.append(run, "step.started", files, step="plan_files", actor="olivia")
    failed = {"error": "RejectedError: b.txt", "partial_undo": True}
    store.append(run, "step.failed", failed, step="plan_files", actor="olivia")
    result = Engine(store, "olivia").resume(run, lambda _started: runbook)
    assert result.status is RunStatus.ROLLED_BACK
    assert not (tmp_path / "a.txt").exists() and not (tmp_path / "marker").exists()
    assert (tmp_path / "undo.log").read_text() == "files\nmarker\n"
