"""Scheduling on RQ (the Redis every NetBox deployment already has) and per-target locks.

`runbook schedule <change>` enqueues an approved change for its window's start;
`runbook worker` runs due changes. Before a change runs, its worker takes a lock on each of
the change's targets (in sorted order, so two workers cannot deadlock); a target held by
another run makes the worker wait, up to a limit, then refuse.
"""

from __future__ import annotations

import logging
import os
import secrets as _random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from rq import Queue, Worker

from runbooks.core.errors import ConnectError, LockedError

log = logging.getLogger(__name__)

QUEUE = "runbooks"
LOCK_PREFIX = "runbooks:lock:"
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def redis_url() -> str:
    return os.environ.get("RUNBOOKS_REDIS_URL", "redis://127.0.0.1:6379/0")


def connect(url: str | None = None) -> redis.Redis:
    conn = redis.Redis.from_url(url or redis_url())
    try:
        conn.ping()
    except redis.RedisError as exc:
        raise ConnectError(f"Redis at {url or redis_url()} does not answer: {exc}") from exc
    return conn


class TargetLocks:
    """Per-target locks in Redis: SET NX with a lease that expires if the holder dies."""

    def __init__(self, conn: redis.Redis, lease_s: float = 4 * 3600) -> None:
        self.conn = conn
        self.lease_ms = int(lease_s * 1000)

    def holder(self, target: str) -> str | None:
        value = self.conn.get(LOCK_PREFIX + target)
        return value.decode() if isinstance(value, bytes) else None

    @contextmanager
    def hold(
        self, targets: list[str], owner: str, wait_s: float = 600.0, poll_s: float = 0.2
    ) -> Iterator[None]:
        """Hold every target for the block; wait while another run holds one."""
        token = f"{owner}:{_random.token_hex(4)}"
        wanted = sorted(set(targets))
        deadline = time.monotonic() + wait_s
        taken: list[str] = []
        try:
            for target in wanted:
                while not self.conn.set(LOCK_PREFIX + target, token, nx=True, px=self.lease_ms):
                    if time.monotonic() >= deadline:
                        raise LockedError(
                            f"{target} is held by {self.holder(target) or 'another run'}; "
                            f"gave up after {wait_s:g} s",
                            target=target,
                        )
                    time.sleep(poll_s)
                taken.append(target)
            log.info("%s holds %s", owner, ", ".join(wanted))
            yield
        finally:
            for target in reversed(taken):
                self.conn.eval(_RELEASE, 1, LOCK_PREFIX + target, token)


def change_targets(plan: dict[str, Any]) -> list[str]:
    return sorted({t for step in plan.get("steps", []) for t in step.get("targets", [])})


def run_change_job(
    change_id: str, store_path: str, confirmed_by: str | None = None
) -> dict[str, Any]:
    """The RQ job: run one approved change as the worker's identity, holding its targets.

    Nobody watches a worker: manual steps are confirmed only when the person who scheduled
    the change confirmed them in advance (``confirmed_by``), and the record says so."""
    from runbooks.cli.common import identity, rebuild_runbook
    from runbooks.cli.output import Progress
    from runbooks.cli.settings import setup_logging
    from runbooks.core.changes import ChangeBook, run_change
    from runbooks.core.context import Confirmation, Confirmer, refuse_all
    from runbooks.core.engine import Engine
    from runbooks.core.store import RecordStore

    with RecordStore(Path(store_path)) as store:
        setup_logging(Path(store_path).parent / "runbook.log", verbose=False)
        book = ChangeBook(store)
        change = book.get(change_id)
        who = identity()
        runbook = rebuild_runbook(change.runbook, change.params, {})
        locks = TargetLocks(connect())
        with locks.hold(change_targets(change.plan), owner=f"{who.username}:{change.id}"):
            confirmer: Confirmer = refuse_all
            if confirmed_by:

                def confirmer(step_title: str, instruction: str, actor: str) -> Confirmation:
                    return Confirmation(
                        True,
                        confirmed_by,
                        datetime.now(UTC),
                        "confirmed in advance when the change was scheduled",
                    )

            engine = Engine(store, who.username, confirmer=confirmer, listener=Progress(quiet=True))
            result = run_change(engine, book, change, who, runbook)
        return {"run_id": result.run_id, "status": str(result.status), "error": result.error}


def schedule(
    change_id: str,
    start: datetime | None,
    store_path: Path,
    queue: str = QUEUE,
    confirmed_by: str | None = None,
) -> str:
    """Enqueue a change for its window's start (now if the window is open or absent)."""
    q = Queue(queue, connection=connect())
    job_timeout = 6 * 3600
    args = (change_id, str(store_path.resolve()), confirmed_by)
    if start is not None and start > datetime.now(UTC):
        job = q.enqueue_at(
            start, run_change_job, *args, job_timeout=job_timeout, job_id=f"runbooks-{change_id}"
        )
    else:
        job = q.enqueue(
            run_change_job, *args, job_timeout=job_timeout, job_id=f"runbooks-{change_id}"
        )
    return str(job.id)


def work(queue: str = QUEUE, burst: bool = False) -> None:
    """Run a worker: due changes, one at a time, with the scheduler for timed ones."""
    conn = connect()
    Worker([Queue(queue, connection=conn)], connection=conn).work(burst=burst, with_scheduler=True)
