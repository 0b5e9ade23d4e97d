"""Resume: a run killed with SIGKILL continues from its record, applying nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbooks.core.store import RecordStore

RUNBOOK = [sys.executable, "-m", "runbooks.cli"]


def start_and_kill(
    store: Path, workdir: Path, knob: str, sig: signal.Signals = signal.SIGKILL
) -> str:
    """Start a run, wait until it pauses where the knob says, kill it (SIGKILL unless told);
    return the run id."""
    proc = subprocess.Popen(
        [
            *RUNBOOK,
            "--store",
            str(store),
            "run",
            "test-ledger",
            f"workdir={workdir}",
            knob,
            "--yes",
            "--no-change-control",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not (workdir / "paused").exists():
        assert proc.poll() is None, "the run ended before reaching its pause point"
        assert time.monotonic() < deadline, "the run never paused"
        time.sleep(0.02)
    os.kill(proc.pid, sig)
    if sig == signal.SIGKILL:
        assert proc.wait(10) == -signal.SIGKILL
    else:  # SIGTERM: one line saying so, exit 143, the run left open for resume
        assert proc.wait(10) == 143
        assert proc.stderr is not None
        assert "terminated (SIGTERM)" in proc.stderr.read()
    (workdir / "paused").unlink()
    with RecordStore(store) as records:
        (run,) = records.runs()
    assert run["status"] == "interrupted"
    return str(run["run_id"])


def resume(store: Path, run_id: str, *params: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUNBOOK, "--store", str(store), "resume", run_id, *params, "--yes", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )


def ledger(workdir: Path) -> list[str]:
    return (workdir / "ledger.log").read_text().split()


@pytest.mark.parametrize(
    ("knob", "override", "in_flight", "resumed_note"),
    [
        # killed at a step boundary: plan_config finished and recorded, nothing in flight
        ("pause_after=plan_config", (), None, None),
        # killed in the middle of a step, after its write: verified in place, not re-applied
        ("pause_in=plan_inventory:after", (), "plan_inventory", "verified in place"),
        # killed in the middle of a step, before its write: verified missing, applied once
        ("pause_in=plan_inventory:before", ("pause_in=",), "plan_inventory", "applied again"),
    ],
)
def test_resume_after_sigkill(
    store_path: Path,
    workdir: Path,
    knob: str,
    override: tuple[str, ...],
    in_flight: str | None,
    resumed_note: str | None,
) -> None:
    run_id = start_and_kill(store_path, workdir, knob)
    done = resume(store_path, run_id, *override)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    assert ledger(workdir) == ["plan_config", "plan_inventory"]  # each applied exactly once
    assert json.loads((workdir / "inventory.json").read_text())["leaf9"]["status"] == "active"
    with RecordStore(store_path) as records:
        entries = records.entries(run_id)
        assert records.verify().ok
    (resumed,) = [e for e in entries if e.kind == "run.resumed"]
    assert resumed.payload["in_flight"] == in_flight
    finished = [e for e in entries if e.kind == "step.finished"]
    assert [e.step for e in finished].count("plan_config") == 1
    if resumed_note:
        (inv,) = [e for e in finished if e.step == "plan_inventory"]
        assert resumed_note in inv.payload["resumed"]
    assert resume(store_path, run_id).returncode == 2  # a finished run is not resumed again


def test_sigterm_leaves_a_resumable_run(store_path: Path, workdir: Path) -> None:
    run_id = start_and_kill(store_path, workdir, "pause_after=plan_config", signal.SIGTERM)
    done = resume(store_path, run_id)
    assert done.returncode == 0, done.stderr
    assert ledger(workdir) == ["plan_config", "plan_inventory"]


def test_rollback_after_resume_uses_the_recorded_before_state(
    store_path: Path, workdir: Path
) -> None:
    (workdir / "config.txt").write_text("hostname old\n")
    run_id = start_and_kill(store_path, workdir, "pause_after=plan_config")
    done = resume(store_path, run_id, "fail_at=post_check")
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "rolled-back"
    assert (workdir / "config.txt").read_text() == "hostname old\n"
    assert "leaf9" not in json.loads((workdir / "inventory.json").read_text())


def test_an_interrupted_run_is_abandoned_with_one_command(store_path: Path, workdir: Path) -> None:
    (workdir / "config.txt").write_text("hostname old\n")
    run_id = start_and_kill(store_path, workdir, "pause_after=plan_config")
    done = subprocess.run(
        [*RUNBOOK, "--store", str(store_path), "abandon", run_id, "--reason", "no longer wanted"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (workdir / "config.txt").read_text() == "hostname old\n"  # undone from the record
    with RecordStore(store_path) as records:
        (run,) = records.runs()
        assert run["status"] == "rolled-back"
        assert records.verify().ok
        kinds = [e.kind for e in records.entries(run_id)]
    assert "run.abandoned" in kinds and kinds[-1] == "run.finished"
    assert resume(store_path, run_id).returncode == 2  # nothing left to resume


def test_abandoning_a_run_killed_inside_a_step_undoes_that_step_too(
    store_path: Path, workdir: Path
) -> None:
    """Killed after the inventory write, before its record: the step's own recorded
    before-state is restored as well as the steps completed before it."""
    run_id = start_and_kill(store_path, workdir, "pause_in=plan_inventory:after")
    assert "leaf9" in json.loads((workdir / "inventory.json").read_text())
    abandon = [*RUNBOOK, "--store", str(store_path), "abandon", run_id, "--json"]
    done = subprocess.run(abandon, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "rolled-back"
    assert "leaf9" not in json.loads((workdir / "inventory.json").read_text())
    assert not (workdir / "config.txt").exists()


def test_a_run_is_resumed_by_one_process_at_a_time(store_path: Path, workdir: Path) -> None:
    run_id = start_and_kill(store_path, workdir, "pause_after=plan_config")
    first = subprocess.Popen(
        [
            *RUNBOOK,
            "--store",
            str(store_path),
            "resume",
            run_id,
            "pause_in=plan_inventory:before",
            "--yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (workdir / "paused").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with RecordStore(store_path) as records:
            assert records.runs()[0]["status"] == "running"  # a process holds it
            before = len(records.entries(run_id))
        second = resume(store_path, run_id)
        assert second.returncode == 2 and "is running now" in second.stderr
        with RecordStore(store_path) as records:
            assert len(records.entries(run_id)) == before  # the refused resume wrote nothing
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
