"""What the recurring schedules' tests share: approved changes of the test runbooks, and a
queue's jobs dropped from the tests' Redis database."""

from __future__ import annotations

from pathlib import Path

import redis
from rq import Queue

from runbooks.core import policy
from runbooks.core.changes import ChangeBook
from runbooks.core.engine import Engine
from runbooks.core.policy import Identity
from runbooks.core.runbook import Runbook
from runbooks.core.store import RecordStore
from runbooks.core.window import Window
from tests.support.readonly_runbook import ReadOnlyRunbook, RecordingRunbook

READONLY = str(Path(__file__).parent / "readonly_runbook.py")
OLIVIA = Identity("olivia", frozenset({policy.HANDLE}))
RACHEL = Identity("rachel", frozenset({policy.REVIEW}))
ARTHUR = Identity("arthur", frozenset({policy.APPROVE}))


def approved(store: RecordStore, runbook: Runbook, window: Window | None = None) -> str:
    """A change of ``runbook`` prepared by olivia, reviewed by rachel, approved by arthur."""
    plan = Engine(store, "olivia").plan(runbook)
    book = ChangeBook(store)
    change = book.create(plan, OLIVIA, window)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    return book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash).id


def readonly(workdir: Path, hostname: str = "leaf7") -> ReadOnlyRunbook:
    return ReadOnlyRunbook(ReadOnlyRunbook.parse_params({"workdir": workdir, "hostname": hostname}))


def recording(workdir: Path, hostname: str = "leaf8") -> RecordingRunbook:
    params = {"workdir": workdir, "hostname": hostname}
    return RecordingRunbook(RecordingRunbook.parse_params(params))


def drop_jobs(conn: redis.Redis, queue: str) -> None:
    """The queue's jobs (due, scheduled) and its keys, gone."""
    q = Queue(queue, connection=conn)
    registries = (q.scheduled_job_registry, q.finished_job_registry, q.failed_job_registry)
    for job_id in [i for r in registries for i in r.get_job_ids()] + q.job_ids:
        conn.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
    for key in conn.scan_iter(match=f"rq:*{queue}*"):
        conn.delete(key)
    conn.srem("rq:queues", f"rq:queue:{queue}")
