"""A recurring schedule through real `runbook worker` processes and the machine's Redis
(issue 18's done-when: a recurring schedule runs two occurrences through the worker).

Time is compressed by the rule, not by a clock: windows eight seconds apart
(``FREQ=SECONDLY;INTERVAL=8``, 7 s long) take the same path as ``FREQ=DAILY;BYHOUR=2`` — the
schedule command queues the first window with RQ's ``enqueue_at``, the worker's scheduler
releases it at its start, the window's job runs the change and queues the next window."""

from __future__ import annotations

import os
import secrets as random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rq import Queue

from runbooks import scheduling
from runbooks.cli import main
from runbooks.core.store import RecordStore
from tests.conftest import LEDGER
from tests.support.recurring_support import READONLY, approved, drop_jobs, readonly

REDIS_URL = "redis://127.0.0.1:6379/13"
BERLIN = ZoneInfo("Europe/Berlin")


def entries(store_path: Path, chain: str) -> list[tuple[str, dict[str, Any]]]:
    with RecordStore(store_path) as store:
        return [(e.kind, e.payload) for e in store.entries(chain)]


def wait_for(store_path: Path, chain: str, kinds: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if [k for k, _ in entries(store_path, chain)][1:] == kinds:
            return
        time.sleep(0.2)
    raise AssertionError(f"{chain}: wanted {kinds}, have {entries(store_path, chain)}")


@pytest.mark.timeout(60)
def test_a_recurring_schedule_runs_two_windows_and_skips_a_changed_plan(
    tmp_path: Path, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "RUNBOOKS_REDIS_URL": REDIS_URL,
        "RUNBOOKS_MODULES": f"{LEDGER},{READONLY}",
        "RUNBOOKS_TIME_ZONE": "Europe/Berlin",
        "RUNBOOKS_STORE": str(store_path),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RUNBOOKS_ACTOR", "olivia")
    conn = scheduling.connect()
    queue = f"test-{random.token_hex(4)}"
    steady, drifting = tmp_path / "steady", tmp_path / "drifting"
    steady.mkdir()
    drifting.mkdir()
    with RecordStore(store_path) as store:
        changes = [approved(store, readonly(steady, "leaf3")), approved(store, readonly(drifting))]
    (drifting / "drift").write_text("", encoding="utf-8")  # the world moved after approval

    start = (datetime.now(UTC) + timedelta(seconds=6)).astimezone(BERLIN)
    rule = ["--rule", "FREQ=SECONDLY;INTERVAL=8", "--length", "7s"]
    when = ["--from", start.strftime("%Y-%m-%dT%H:%M:%S")]
    ids = []
    for change in changes:
        base = ["--store", str(store_path), "schedule", change, "--queue", queue]
        assert main([*base, *rule, *when]) == 0
    with RecordStore(store_path) as store:
        ids = [e.run_id for e in store.entries() if e.kind == "schedule.created"]
    steady_id, drifting_id = ids
    logs = [(tmp_path / f"worker{i}.log").open("wb") for i in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "runbooks.cli", "worker", "--queue", queue],
            env={**os.environ, **env, "RUNBOOKS_ACTOR": "oscar"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for log in logs  # two: the two schedules' windows fall together
    ]
    try:
        wait_for(store_path, drifting_id, ["schedule.skipped"], timeout_s=20)
        (drifting / "drift").unlink()  # the world is as approved again: the next window runs
        wait_for(store_path, drifting_id, ["schedule.skipped", "schedule.ran"], timeout_s=15)
        wait_for(store_path, steady_id, ["schedule.ran", "schedule.ran"], timeout_s=5)
        assert main(["--store", str(store_path), "unschedule", steady_id]) == 0
        assert main(["--store", str(store_path), "unschedule", drifting_id]) == 0
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=5)
            except subprocess.TimeoutExpired:
                # now and then RQ 3.0's warm shutdown hangs after "unsubscribing from channel"
                # (closing redis-py's pubsub under its thread), when no job runs any more
                worker.kill()
                worker.wait(timeout=5)
        drop_jobs(conn, queue)
        Queue(queue, connection=conn).empty()

    # the read-only change ran in both windows under its one approval, each run its own record
    ran = [p for k, p in entries(store_path, steady_id) if k == "schedule.ran"]
    worker_logs = [p.read_text() for p in tmp_path.glob("worker*.log")]
    assert [p["status"] for p in ran] == ["succeeded", "succeeded"], (ran, worker_logs)
    assert len({p["run_id"] for p in ran}) == 2
    assert len((steady / "runs.log").read_text().splitlines()) == 2
    with RecordStore(store_path) as store:
        for occurrence in ran:
            started = store.entries(occurrence["run_id"])[0]
            assert started.actor == "oscar" and started.payload["schedule"] == steady_id
            assert started.payload["window"] == occurrence["window"]
            window_start = datetime.fromisoformat(occurrence["window"]["start"])
            window_end = datetime.fromisoformat(occurrence["window"]["end"])
            assert window_end - window_start == timedelta(seconds=7)
            assert occurrence["window"]["start"].endswith("+01:00")  # Berlin's wall clock
        starts = [datetime.fromisoformat(p["window"]["start"]) for p in ran]
        assert starts[1] - starts[0] == timedelta(seconds=8)
        assert len({store.entries(p["run_id"])[0].payload["window"]["start"] for p in ran}) == 2
        assert store.verify().ok

    # the drifted window was not run unreviewed: skipped, its reason and run on record
    (_, skipped), (_, later) = entries(store_path, drifting_id)[1:3]
    assert skipped["reason"].startswith(
        "the plan changed since it was approved (The configuration complies: ok → refused); "
        "it needs a new approval: plan it again (runbook plan test-readonly"
    ), skipped
    assert "runbook plan test-readonly hostname=leaf7" in skipped["reason"]
    assert "--window-start" not in skipped["reason"]  # the rule gives the windows
    with RecordStore(store_path) as store:
        refused = store.entries(skipped["run_id"])
        assert refused[0].payload["schedule"] == drifting_id
        assert refused[-1].kind == "run.finished" and refused[-1].payload["status"] == "refused"
    assert later["status"] == "succeeded"
    assert len((drifting / "runs.log").read_text().splitlines()) == 1  # the second window only
