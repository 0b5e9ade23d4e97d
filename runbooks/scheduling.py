"""Scheduling on RQ (the Redis every NetBox deployment already has) and per-target locks.

`runbook schedule <change>` enqueues an approved change for its window's start;
`runbook worker` runs due changes, and the windows of recurring schedules
(`runbooks.recurring`: each a run of the change in that window, through `run_in_worker` as
here). Before a change runs, its worker takes a lock on each of the change's targets (in
sorted order, so two workers cannot deadlock); a target held by another run makes the worker
wait, up to a limit, then refuse.
"""

from __future__ import annotations

import logging
import os
import secrets as _random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from rq import Queue, Worker

from runbooks.core.context import Confirmation, Confirmer, refuse_all
from runbooks.core.errors import ConnectError, LockedError
from runbooks.core.window import Window

if TYPE_CHECKING:
    from runbooks.cli.settings import Settings

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
    change_id: str,
    store_path: str | None = None,
    confirmed_by: str | None = None,
    netbox_url: str | None = None,
) -> dict[str, Any]:
    """The RQ job: run one approved change as the worker's identity, holding its targets.

    With NetBox's change control (``netbox_url``) the job names only the change: the worker
    acts with its own token, keeps its own local record (mirrored to NetBox), and takes who
    scheduled the change and what they confirmed from NetBox. Without it, the job names the
    store of the machine that scheduled it. Nobody watches a worker: manual steps are
    confirmed only when the person who scheduled the change confirmed them in advance, and the
    record says so."""
    from runbooks.cli.settings import Settings, default_store, setup_logging

    s = Settings(Path(store_path) if store_path else default_store())
    try:
        setup_logging(s.store_path.parent / "runbook.log", verbose=False)
        return run_in_worker(s, change_id, confirmed_by, netbox_url)
    finally:
        s.close()


def run_in_worker(
    s: Settings,
    change_id: str,
    confirmed_by: str | None,
    netbox_url: str | None,
    window: Window | None = None,
    extra: dict[str, Any] | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run a change in a worker (`run_change_job`); ``window`` (a recurring schedule's
    occurrence) replaces the change's own, ``extra`` goes into the run's first entry.
    ``on_run`` is given the outcome as soon as the run returns, before anything after it (the
    locks released, the record mirrored) can fail."""
    from runbooks.cli.common import book_of, identity_of, rebuild_runbook
    from runbooks.cli.output import Progress
    from runbooks.core.changes import ChangeBook, run_change
    from runbooks.core.engine import Engine
    from runbooks.core.errors import InputError

    changes, who = book_of(s), identity_of(s)
    api = s.plugin()
    if netbox_url and (api is None or api.settings.url != netbox_url.rstrip("/")):
        raise InputError(
            f"{change_id} was scheduled in the change control of {netbox_url}; this worker "
            f"works with {api.settings.url if api else 'no NetBox'}"
        )
    change = changes.get(change_id)
    if not isinstance(changes, ChangeBook):
        confirmed_by = change.scheduled_by if change.confirm_manual else None
    if window is not None:
        change = replace(change, window=window)
    runbook = rebuild_runbook(change.runbook, change.params, {})
    worker = f"{who.username}@{socket.gethostname()}:{os.getpid()}"
    locks = TargetLocks(connect())
    with locks.hold(change_targets(change.plan), owner=f"{who.username}:{change.id}"):
        engine = Engine(
            s.store(),
            who.username,
            confirmer=_confirmed_in_advance(confirmed_by),
            listener=Progress(quiet=True),
        )
        result = run_change(
            engine, changes, change, who, runbook, scheduled=True, worker=worker, extra=extra
        )
        outcome = {
            "run_id": result.run_id,
            "status": str(result.status),
            "error": result.error,
            "worker": worker,
        }
        if on_run is not None:
            on_run(outcome)
    mirror = s.mirror()
    if mirror is not None and mirror.tracks(result.run_id):
        mirror.flush(result.run_id)
    return outcome


def _confirmed_in_advance(by: str | None) -> Confirmer:
    """A worker's answer to a manual step: yes in the name of who scheduled the change, when
    they confirmed its manual steps in advance; no otherwise (nobody watches a worker)."""
    if not by:
        return refuse_all

    def confirmer(step_title: str, instruction: str, actor: str) -> Confirmation:
        note = "confirmed in advance when the change was scheduled"
        return Confirmation(True, by, datetime.now(UTC), note)

    return confirmer


def schedule(
    change_id: str,
    start: datetime | None,
    store_path: Path | None,
    queue: str = QUEUE,
    confirmed_by: str | None = None,
    netbox_url: str | None = None,
) -> str:
    """Enqueue a change for its window's start (now if the window is open or absent)."""
    q = Queue(queue, connection=connect())
    job_timeout = 6 * 3600
    args = (change_id, str(store_path.resolve()) if store_path else None, confirmed_by, netbox_url)
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
    """Run a worker: due changes, one at a time, with the scheduler for timed ones.

    The runbooks and the jobs' modules are imported here, once: each job runs in a process
    forked from this one, which then starts its window's steps at once instead of importing
    them first (a second or more of a short window). Before it takes a job, the worker queues
    the next window of every open recurring schedule of its store that has none queued (a
    worker killed mid-window, a Redis that lost its data)."""
    from runbooks import recurring  # (the recurring windows' job)
    from runbooks.cli.settings import default_store
    from runbooks.core import registry

    registry.discover()
    conn = connect()
    recurring.requeue_open(default_store(), queue)
    Worker([Queue(queue, connection=conn)], connection=conn).work(burst=burst, with_scheduler=True)
