"""Canary batches (`runbooks.core.batches`): the canary first, then batches of the configured
size, post-checks after each; at the first regression only that batch is undone and the run
stops, earlier batches stay done, later ones are recorded as not run; a run killed mid-batch
resumes from its record; the review document shows the batches."""

from __future__ import annotations

import doctest
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runbooks.cli import main
from runbooks.core import batches
from runbooks.core.changes import ChangeBook
from runbooks.core.context import confirm_all
from runbooks.core.engine import Engine
from runbooks.core.policy import HANDLE, Identity
from runbooks.core.results import RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.core.window import Window
from runbooks.report import review, sheet
from tests.support import batch_runbook
from tests.support.batch_runbook import Crash, FleetRunbook, lines, read, write

DEVICES = ("d1", "d2", "d3", "d4", "d5")


def make(workdir: Path, **params: Any) -> FleetRunbook:
    return FleetRunbook(FleetRunbook.parse_params({"workdir": workdir, **params}))


def engine(store: RecordStore) -> Engine:
    return Engine(store, "olivia", confirmer=confirm_all())


def entries(store: RecordStore, run_id: str) -> list[tuple[str, str | None]]:
    return [(e.kind, e.step) for e in store.entries(run_id)]


def cycle(*names: str) -> list[str]:
    """What one batch writes to the ledger: its baseline, apply, post-check, confirmation."""
    shown = " ".join(names)
    checked = f"check {shown} against {list(names)}"
    return [f"baseline {shown}", f"apply {shown}", checked, f"confirm {shown}"]


def versions(workdir: Path) -> dict[str, str]:
    return {name: read(workdir, name) for name in DEVICES}


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    return RecordStore(tmp_path / "records.sqlite3")


def test_layout_and_labels_doctests() -> None:
    assert doctest.testmod(batches).failed == 0


def test_canary_first_then_batches_each_post_checked_then_confirmed(
    tmp_path: Path, store: RecordStore
) -> None:
    result = engine(store).run(make(tmp_path, batch_size=2))

    assert result.status is RunStatus.SUCCEEDED
    assert versions(tmp_path) == {n: f"hostname {n}\nversion 2\n" for n in DEVICES}
    assert lines(tmp_path) == cycle("d1") + cycle("d2", "d3") + cycle("d4", "d5")
    batch_rows = [
        (e.kind, e.step, e.payload.get("targets"))
        for e in store.entries(result.run_id)
        if e.step and "#" in e.step
    ]
    assert batch_rows == [
        ("step.started", "plan_devices#1", ["d1"]),
        ("step.finished", "plan_devices#1", ["d1"]),
        ("step.started", "plan_devices#2", ["d2", "d3"]),
        ("step.finished", "plan_devices#2", ["d2", "d3"]),
        ("step.started", "plan_devices#3", ["d4", "d5"]),
        ("step.finished", "plan_devices#3", ["d4", "d5"]),
    ]
    by_step = {r.step: r for r in result.steps}
    assert by_step["plan_devices#2"].evidence["baseline"] == {"healthy": ["d2", "d3"]}
    assert by_step["plan_devices"].evidence["batches"] == [
        "batch 1 of 3 (canary): d1",
        "batch 2 of 3: d2, d3",
        "batch 3 of 3: d4, d5",
    ]
    # a second run finds nothing to do: no batch at all
    again = engine(store).run(make(tmp_path, batch_size=2))
    assert again.ok
    assert {r.step: r.status for r in again.steps}["plan_devices"] is Status.NO_CHANGE


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, [["d1"], ["d2"], ["d3"], ["d4"], ["d5"]]),
        (3, [["d1"], ["d2", "d3", "d4"], ["d5"]]),
        (10, [["d1"], ["d2", "d3", "d4", "d5"]]),
    ],
)
def test_batch_sizes(tmp_path: Path, store: RecordStore, size: int, expected: list[Any]) -> None:
    result = engine(store).run(make(tmp_path, batch_size=size))
    started = [
        e.payload["targets"]
        for e in store.entries(result.run_id)
        if e.kind == "step.started" and e.step and "#" in e.step
    ]
    assert result.ok
    assert started == expected


def test_regression_undoes_only_that_batch_and_stops(tmp_path: Path, store: RecordStore) -> None:
    """Batch 2 fails: the run ends stopped (part of the change is in place), not rolled back."""
    result = engine(store).run(make(tmp_path, batch_size=2, regress_on="d3"))

    assert result.status is RunStatus.STOPPED
    assert not result.ok
    now = versions(tmp_path)
    assert now["d1"] == "hostname d1\nversion 2\n"  # the canary stays done
    assert now["d2"] == now["d3"] == ""  # batch 2 undone: as before the run
    assert now["d4"] == now["d5"] == ""  # batch 3 never touched
    assert read(tmp_path, "marker") == "maintenance\n"  # what batch 1 stands on stays too
    log = lines(tmp_path)
    assert "undo d2 d3" in log
    assert not any(line.startswith(("undo d1", "apply d4", "undo marker")) for line in log)
    assert "confirm d2 d3" not in log
    kinds = entries(store, result.run_id)
    assert ("step.failed", "plan_devices#2") in kinds
    assert ("undo.finished", "plan_devices#2") in kinds
    assert ("undo.started", "plan_devices#1") not in kinds
    assert ("step.failed", "plan_devices") in kinds
    skipped = [e for e in store.entries(result.run_id) if e.step == "plan_devices#3"]
    assert [(e.kind, e.payload["status"]) for e in skipped] == [("step.finished", "skipped")]
    assert "not run" in skipped[0].payload["evidence"]["not_run"]
    finished = store.entries(result.run_id)[-1]
    assert finished.payload["status"] == "stopped"
    assert finished.payload["batches"] == {
        "kept": ["batch 1 of 3 (canary): d1"],
        "failed": ["batch 2 of 3: d2, d3"],
        "not_run": ["batch 3 of 3: d4, d5"],
    }
    assert "d3 lost a neighbour" in (result.error or "")
    statuses = {r.step: r.status for r in result.steps}
    assert statuses["plan_devices#1"] is Status.CHANGED
    assert statuses["plan_devices#3"] is Status.SKIPPED
    batch2 = [r.status for r in result.steps if r.step == "plan_devices#2"]
    assert batch2 == [Status.FAILED, Status.UNDONE]
    # the record sheet: a row per batch, the one not run titled too
    entries_ = store.entries(result.run_id)
    page = sheet.markdown(entries_, entries_[-1].hash, True)
    assert "| Configure the devices — batch 2 of 3: d2, d3 | change | undone |" in page
    assert "| Configure the devices — batch 3 of 3: d4, d5 | change | skipped |" in page
    assert "| Outcome | **stopped** — BatchStopped: batch 2 of 3 (d2, d3) failed, undone" in page
    assert (
        "| Batches | stopped part-way: the batches kept stay in place, what failed was rolled "
        "back, what came after it was not run — kept: batch 1 of 3 (canary): d1; "
        "failed: batch 2 of 3: d2, d3; not run: batch 3 of 3: d4, d5 |"
    ) in page
    assert "stopped part-way" in sheet.html(entries_, entries_[-1].hash, True)


def test_a_confirmation_failing_part_way_is_not_kept(tmp_path: Path, store: RecordStore) -> None:
    """d2 confirmed, d3's confirmation fails: batch 2 is recorded failed and undone (both
    devices), never kept; the run ends stopped with batch 1 alone kept."""
    result = engine(store).run(make(tmp_path, batch_size=2, confirm_fails_on="d3"))

    assert result.status is RunStatus.STOPPED
    assert "confirm d2" in lines(tmp_path)
    assert lines(tmp_path)[-1] == "undo d2 d3"
    assert versions(tmp_path)["d2"] == ""
    kinds = entries(store, result.run_id)
    assert ("step.failed", "plan_devices#2") in kinds
    assert ("step.finished", "plan_devices#2") not in kinds
    finished = store.entries(result.run_id)[-1].payload
    assert finished["batches"]["kept"] == ["batch 1 of 3 (canary): d1"]
    assert finished["batches"]["failed"] == ["batch 2 of 3: d2, d3"]
    assert "d3: the confirmation timed out" in finished["error"]


def test_a_failing_canary_rolls_back_the_whole_run(tmp_path: Path, store: RecordStore) -> None:
    """Nothing kept: the ordinary rollback undoes the steps before the batches too, and the
    run is truly rolled back."""
    result = engine(store).run(make(tmp_path, batch_size=2, regress_on="d1"))

    assert result.status is RunStatus.ROLLED_BACK
    assert versions(tmp_path) == dict.fromkeys(DEVICES, "")
    assert read(tmp_path, "marker") == ""
    assert lines(tmp_path)[-2:] == ["undo d1", "undo marker"]
    finished = store.entries(result.run_id)[-1].payload
    assert finished["status"] == "rolled-back"
    assert finished["batches"] == {
        "kept": [],
        "failed": ["batch 1 of 3 (canary): d1"],
        "not_run": ["batch 2 of 3: d2, d3", "batch 3 of 3: d4, d5"],
    }


def test_a_step_after_the_batches_failing_does_not_undo_them(
    tmp_path: Path, store: RecordStore
) -> None:
    """Batches kept are a barrier: the rollback after a later step's failure stops there, and
    the run ends stopped, naming the batches it kept."""
    result = engine(store).run(make(tmp_path, batch_size=2, fail_after=True))

    assert result.status is RunStatus.STOPPED
    assert store.entries(result.run_id)[-1].payload["batches"] == {
        "kept": ["batch 1 of 3 (canary): d1", "batch 2 of 3: d2, d3", "batch 3 of 3: d4, d5"]
    }
    assert versions(tmp_path) == {n: f"hostname {n}\nversion 2\n" for n in DEVICES}
    assert read(tmp_path, "marker") == "maintenance\n"
    assert not any(line.startswith("undo") for line in lines(tmp_path))


def crash(store: RecordStore, workdir: Path, **knobs: Any) -> str:
    with pytest.raises(Crash):
        engine(store).run(make(workdir, batch_size=2, **knobs))
    (run,) = store.runs()
    return str(run["run_id"])


def test_resume_mid_batch_applies_again_only_what_is_missing(
    tmp_path: Path, store: RecordStore
) -> None:
    """Killed inside batch 2's apply (d2 written, d3 not): the resumed run keeps batch 1,
    finds batch 2 not in place, applies it again with the baseline it recorded, then batch 3."""
    run_id = crash(store, tmp_path, crash_on="d3")
    assert read(tmp_path, "d2") and not read(tmp_path, "d3")
    before = lines(tmp_path)

    result = engine(store).resume(run_id, lambda p: make(tmp_path, batch_size=2))

    assert result.ok, result.error
    assert versions(tmp_path) == {n: f"hostname {n}\nversion 2\n" for n in DEVICES}
    after = lines(tmp_path)[len(before) :]
    # batch 1 not again; batch 2's baseline not taken again (the recorded one is used)
    assert after == ["apply d3", *cycle("d2", "d3")[2:], *cycle("d4", "d5")]
    retried = [
        e for e in store.entries(run_id) if e.step == "plan_devices#2" and e.kind == "step.finished"
    ]
    assert retried[0].payload["resumed"].startswith("not in place")
    # the undo record of batch 2 is what it recorded first (both devices as before)
    assert [d["target"] for d in retried[0].payload["undo_diffs"]] == ["d2", "d3"]


def test_resume_with_the_batch_in_place_is_not_applied_again(
    tmp_path: Path, store: RecordStore
) -> None:
    run_id = crash(store, tmp_path, crash_on="d3", crash_after_apply=True)
    before = lines(tmp_path)

    result = engine(store).resume(run_id, lambda p: make(tmp_path, batch_size=2))

    assert result.ok, result.error
    after = lines(tmp_path)[len(before) :]
    assert after[:2] == ["check d2 d3 against ['d2', 'd3']", "confirm d2 d3"]
    assert not any(line.startswith("apply d2") for line in after)
    finished = [
        e for e in store.entries(run_id) if e.step == "plan_devices#2" and e.kind == "step.finished"
    ]
    assert finished[0].payload["resumed"].startswith("verified in place")


def test_resume_whose_in_place_check_fails_undoes_the_batch(
    tmp_path: Path, store: RecordStore
) -> None:
    """Killed in batch 2's apply (d2 written), then on resume the devices cannot be read
    (the re-plan behind the in-place check fails): batch 2 is recorded failed and undone,
    batch 1 kept; the record says so, and only what happened."""
    run_id = crash(store, tmp_path, crash_on="d3")
    assert read(tmp_path, "d2")

    result = engine(store).resume(run_id, lambda p: make(tmp_path, unreachable=True))

    assert result.status is RunStatus.STOPPED
    now = versions(tmp_path)
    assert now["d1"] == "hostname d1\nversion 2\n"
    assert now["d2"] == now["d3"] == ""  # batch 2 undone: d2 as before the run
    assert lines(tmp_path)[-1] == "undo d2 d3"
    kinds = entries(store, run_id)
    assert ("step.failed", "plan_devices#2") in kinds
    assert ("undo.finished", "plan_devices#2") in kinds
    failed = [e for e in store.entries(run_id) if e.kind == "step.failed"]
    assert "the devices cannot be reached" in failed[0].payload["error"]
    finished = store.entries(run_id)[-1].payload
    assert finished["status"] == "stopped"
    assert finished["batches"] == {
        "kept": ["batch 1 of 3 (canary): d1"],
        "failed": ["batch 2 of 3: d2, d3"],
        "not_run": ["batch 3 of 3: d4, d5"],
    }
    assert "batch 2 of 3 (d2, d3) failed, undone" in finished["error"]


def test_a_failed_batch_whose_undo_fails_ends_rollback_failed_naming_it(
    tmp_path: Path, store: RecordStore
) -> None:
    """The same, and the undo fails too: the run ends rollback-failed, naming the batch as
    not undone; nothing in the record claims it was."""
    run_id = crash(store, tmp_path, crash_on="d3")

    result = engine(store).resume(
        run_id, lambda p: make(tmp_path, unreachable=True, undo_fails=True)
    )

    assert result.status is RunStatus.ROLLBACK_FAILED
    assert read(tmp_path, "d2")  # still changed: the undo could not run
    kinds = entries(store, run_id)
    assert ("undo.failed", "plan_devices#2") in kinds
    assert ("undo.finished", "plan_devices#2") not in kinds
    finished = store.entries(run_id)[-1].payload
    assert finished["status"] == "rollback-failed"
    assert finished["batches"]["failed"] == ["batch 2 of 3: d2, d3"]
    assert "batch 2 of 3 (d2, d3) failed, not undone" in finished["error"]
    assert not any(", undone" in str(e.payload.get("error")) for e in store.entries(run_id))


def test_a_regressing_batch_whose_undo_fails_is_not_said_undone(
    tmp_path: Path, store: RecordStore
) -> None:
    result = engine(store).run(make(tmp_path, batch_size=2, regress_on="d3", undo_fails=True))

    assert result.status is RunStatus.ROLLBACK_FAILED
    assert "batch 2 of 3 (d2, d3) failed, not undone" in (result.error or "")
    assert not any(", undone" in str(e.payload.get("error")) for e in store.entries(result.run_id))


def test_abandon_mid_batch_undoes_that_batch_only(tmp_path: Path, store: RecordStore) -> None:
    run_id = crash(store, tmp_path, crash_on="d3")

    result = engine(store).abandon(run_id, lambda p: make(tmp_path, batch_size=2), "test")

    assert result.status is RunStatus.STOPPED  # batch 1 stays: named from the record
    finished = store.entries(run_id)[-1].payload
    assert finished["batches"] == {"kept": ["batch 1 of 3 (canary): d1"]}
    now = versions(tmp_path)
    assert now["d1"] == "hostname d1\nversion 2\n"
    assert now["d2"] == now["d3"] == ""
    assert read(tmp_path, "marker") == "maintenance\n"
    assert lines(tmp_path)[-1] == "undo d2 d3"


def test_the_cli_says_a_run_stopped_part_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runbook abandon` of a run killed in batch 2: it stopped (exit 0, what was asked), and
    says what that means; `records show` names the batch kept."""
    modules = f"{os.environ.get('RUNBOOKS_MODULES', '')},{batch_runbook.__file__}"
    monkeypatch.setenv("RUNBOOKS_MODULES", modules)
    path = tmp_path / "cli.sqlite3"
    run_id = crash(RecordStore(path), tmp_path, crash_on="d3")

    assert main(["--store", str(path), "abandon", run_id, "--reason", "test"]) == 0
    said = capsys.readouterr().out
    assert f"run {run_id} of test-fleet: stopped" in said
    assert "stopped part-way: the batches kept stay in place" in said
    assert "plan a new change for the rest" in said
    assert main(["--store", str(path), "records", "show", run_id, "--local"]) == 0
    assert "stopped — kept: batch 1 of 3 (canary): d1" in capsys.readouterr().out


def test_killed_during_the_batch_rollback_resumes_it_without_crossing_kept(
    tmp_path: Path, store: RecordStore
) -> None:
    """The record alone decides what a resumed rollback undoes: the failed batch, not the
    batch kept before it nor the step it stands on; and what the run's end says of its
    batches: kept, failed, and not run (batch 3: killed before it was recorded so)."""
    result = engine(store).run(make(tmp_path, batch_size=2, regress_on="d3"))
    entries_ = store.entries(result.run_id)
    # replay the record up to the failed batch's entry, as if killed right after it
    cut = next(
        i for i, e in enumerate(entries_) if e.kind == "step.failed" and e.step == "plan_devices#2"
    )
    runbook = make(tmp_path, batch_size=2)
    state = engine(store)._replay(runbook, entries_[: cut + 1])
    assert state.failed
    assert [step.name for step, _ in state.completed] == ["plan_devices#2"]
    # resumed from that record (copied into a store of its own), the rollback ends stopped
    # with the kept batch named from the record
    cut_store = RecordStore(tmp_path / "cut.sqlite3")
    cut_store.import_chain(entries_[: cut + 1])
    resumed = engine(cut_store).resume(result.run_id, lambda p: make(tmp_path, batch_size=2))
    assert resumed.status is RunStatus.STOPPED
    finished = cut_store.entries(result.run_id)[-1].payload
    assert finished["batches"] == {
        "kept": ["batch 1 of 3 (canary): d1"],
        "failed": ["batch 2 of 3: d2, d3"],
        "not_run": ["batch 3 of 3: d4, d5"],
    }


def test_review_document_shows_the_batches(tmp_path: Path, store: RecordStore) -> None:
    write(tmp_path, "d4", "hostname d4\nversion 2\n")  # compliant: in no batch
    plan = engine(store).plan(make(tmp_path, batch_size=2))
    (step,) = [s for s in plan.steps if s.step == "plan_devices"]
    assert [(d.target, d.summary) for d in step.diffs] == [
        ("d1", "batch 1 of 3 (canary): version"),
        ("d2", "batch 2 of 3: version"),
        ("d3", "batch 2 of 3: version"),
        ("d5", "batch 3 of 3: version"),
    ]
    assert step.duration_s == 3 * 120  # three batches of the step's 2 minutes each
    change = ChangeBook(store).create(plan, Identity("olivia", frozenset({HANDLE})), None)
    text = review.markdown(change)
    assert "### d1 — batch 1 of 3 (canary): version" in text
    assert "### d5 — batch 3 of 3: version" in text
    # the batch size is a parameter: the hash an approval signs covers the layout
    other = engine(store).plan(make(tmp_path, batch_size=3))
    assert other.content_hash != plan.content_hash


def test_a_batch_that_would_cross_the_window_end_is_not_started(
    tmp_path: Path, store: RecordStore
) -> None:
    """Each batch is checked against the window (its expected duration is the step's): the
    one that cannot finish in it is not started; the batches before stay done."""
    start = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    ticks = iter(start + timedelta(minutes=4 * i) for i in range(20))
    # the clock moves 4 min at each look: the run's start, the marker, the batched step,
    # batch 1 (12 min), batch 2 (16 min), batch 3 (20 min: 2 more would cross the end)
    runner = Engine(store, "olivia", confirmer=confirm_all(), clock=lambda: next(ticks))
    window = Window(start, start + timedelta(minutes=20))

    result = runner.run(make(tmp_path, batch_size=2), window=window)

    assert result.status is RunStatus.STOPPED
    now = versions(tmp_path)
    assert now["d1"] and now["d2"] and now["d3"]  # batches 1 and 2 kept
    assert now["d4"] == now["d5"] == ""
    assert not any(line.startswith("undo") for line in lines(tmp_path))
    finished = store.entries(result.run_id)[-1].payload
    assert finished["batches"] == {
        "kept": ["batch 1 of 3 (canary): d1", "batch 2 of 3: d2, d3"],
        "failed": [],
        "not_run": ["batch 3 of 3: d4, d5"],
    }
    assert "not started: WindowError" in finished["error"]
    assert ("step.started", "plan_devices#3") not in entries(store, result.run_id)


def test_killed_after_a_batch_was_recorded_not_run_it_is_not_taken_as_kept(
    tmp_path: Path, store: RecordStore
) -> None:
    """Batch 3 refused by the window and recorded not run, then the run killed before its
    batched step was recorded failed: resumed, the batch recorded not run is not taken as
    done (d4, d5 never configured, the run succeeding): the run ends stopped, naming it."""
    start = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    ticks = iter(start + timedelta(minutes=4 * i) for i in range(20))
    runner = Engine(store, "olivia", confirmer=confirm_all(), clock=lambda: next(ticks))
    result = runner.run(
        make(tmp_path, batch_size=2), window=Window(start, start + timedelta(minutes=20))
    )
    entries_ = store.entries(result.run_id)
    cut = next(
        i
        for i, e in enumerate(entries_)
        if e.kind == "step.finished" and e.step == "plan_devices#3"
    )
    cut_store = RecordStore(tmp_path / "cut.sqlite3")
    cut_store.import_chain(entries_[: cut + 1])

    resumed = engine(cut_store).resume(result.run_id, lambda p: make(tmp_path, batch_size=2))

    assert resumed.status is RunStatus.STOPPED
    assert versions(tmp_path)["d4"] == ""
    finished = cut_store.entries(result.run_id)[-1].payload
    assert finished["status"] == "stopped"
    assert finished["batches"] == {
        "kept": ["batch 1 of 3 (canary): d1", "batch 2 of 3: d2, d3"],
        "failed": [],
        "not_run": ["batch 3 of 3: d4, d5"],
    }
    assert ("step.started", "plan_finished") not in entries(cut_store, result.run_id)
