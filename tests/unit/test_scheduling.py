"""Scheduling on RQ with real Redis and real worker processes; per-target locks."""

from __future__ import annotations

import os
import secrets as random
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import redis

from runbooks import scheduling
from runbooks.core import policy
from runbooks.core.changes import ChangeBook
from runbooks.core.engine import Engine
from runbooks.core.errors import LockedError
from runbooks.core.policy import Identity
from runbooks.core.store import RecordStore
from tests.support.ledger_runbook import LedgerRunbook

REDIS_URL = "redis://127.0.0.1:6379/15"
OLIVIA = Identity("olivia", frozenset({policy.HANDLE}))
RACHEL = Identity("rachel", frozenset({policy.REVIEW}))
ARTHUR = Identity("arthur", frozenset({policy.APPROVE}))


@pytest.fixture
def redis_conn(monkeypatch: pytest.MonkeyPatch) -> redis.Redis:
    monkeypatch.setenv("RUNBOOKS_REDIS_URL", REDIS_URL)
    try:
        return scheduling.connect()
    except Exception as exc:  # the machine's Redis is part of the test setup (scripts/setup)
        pytest.fail(f"Redis is needed for the scheduling tests: {exc}")


def approved_change(store: RecordStore, workdir: Path, **params: object) -> str:
    runbook = LedgerRunbook(LedgerRunbook.parse_params({"workdir": workdir, **params}))
    plan = Engine(store, "olivia").plan(runbook)
    book = ChangeBook(store)
    change = book.create(plan, OLIVIA, None)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    return book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash).id


def test_locks_exclude_and_release(redis_conn: redis.Redis) -> None:
    locks = scheduling.TargetLocks(redis_conn)
    target = f"leaf-{random.token_hex(3)}"
    with locks.hold([target, "spine1-" + target], owner="run-a"):
        assert (locks.holder(target) or "").startswith("run-a:")
        with (
            pytest.raises(LockedError, match=f"{target} is held by run-a"),
            locks.hold([target], owner="run-b", wait_s=0.3),
        ):
            pass
    assert locks.holder(target) is None
    with locks.hold([target], owner="run-b", wait_s=0.3):
        assert (locks.holder(target) or "").startswith("run-b:")


def test_two_workers_contending_for_one_device(
    redis_conn: redis.Redis, store_path: Path, tmp_path: Path
) -> None:
    queue = f"test-{random.token_hex(4)}"
    hostname = f"leaf-{random.token_hex(3)}"  # both changes touch this one device
    with RecordStore(store_path) as store:
        changes = []
        for name in ("a", "b"):
            workdir = tmp_path / name
            workdir.mkdir()
            changes.append(approved_change(store, workdir, hostname=hostname, delay_s=1.5))
    for change in changes:
        scheduling.schedule(change, None, store_path, queue, confirmed_by="olivia")
    env = {
        **os.environ,
        "RUNBOOKS_REDIS_URL": REDIS_URL,
        "RUNBOOKS_ACTOR": "oscar",
        "RUNBOOKS_STORE": str(store_path),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "runbooks.cli", "worker", "--burst", "--queue", queue],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=90)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    with RecordStore(store_path) as store:
        runs = [r for r in store.runs() if r["runbook"] == "test-ledger"]
        assert len(runs) == 2 and {r["status"] for r in runs} == {"succeeded"}, runs
        spans = []
        for run in runs:
            entries = store.entries(run["run_id"])
            spans.append(
                (datetime.fromisoformat(entries[0].ts), datetime.fromisoformat(entries[-1].ts))
            )
            manual = [e for e in entries if e.kind == "manual.answered"]
            assert manual[0].actor == "olivia"  # confirmed in advance, by whom it says
            assert entries[0].actor == "oscar"  # run as the worker's identity
        assert store.verify().ok
    (first, second) = sorted(spans)
    assert first[1] <= second[0], f"the two runs overlapped on {hostname}: {spans}"
    assert all("Job OK" in out or "Successfully completed" in out for out in outputs), outputs
