"""Recurring schedules (`runbook schedule --rule`, `runbook windows`, `runbook unschedule`)
and the job of one window, called as the worker calls it, with the machine's Redis."""

from __future__ import annotations

import json
import secrets as random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import redis
from rq import Queue

from runbooks import scheduling
from runbooks.cli import main
from runbooks.core.changes import ChangeBook
from runbooks.core.store import RecordStore
from runbooks.core.window import Window
from runbooks.recurrence import Recurrence
from runbooks.recurring import (
    ScheduleBook,
    occurrence_job,
    plan_writes,
    recurring_steps,
    requeue_open,
)
from tests.conftest import LEDGER
from tests.support.ledger_runbook import LedgerRunbook
from tests.support.recurring_support import (
    OLIVIA,
    READONLY,
    approved,
    drop_jobs,
    readonly,
    recording,
)

REDIS_URL = "redis://127.0.0.1:6379/13"  # the recurring schedules' tests' own database
TAIPEI = ZoneInfo("Asia/Taipei")


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A queue of the test's own on the tests' Redis database, emptied afterwards."""
    monkeypatch.setenv("RUNBOOKS_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("RUNBOOKS_MODULES", f"{LEDGER},{READONLY}")
    monkeypatch.setenv("RUNBOOKS_TIME_ZONE", "Asia/Taipei")
    monkeypatch.setenv("RUNBOOKS_ACTOR", "oscar")
    try:
        conn = scheduling.connect()
    except Exception as exc:  # the machine's Redis is part of the test setup (scripts/setup)
        pytest.fail(f"Redis is needed for the scheduling tests: {exc}")
    name = f"test-{random.token_hex(4)}"
    yield name
    drop_jobs(conn, name)


@pytest.fixture
def change(store_path: Path, workdir: Path) -> str:
    """An approved change of the read-only test runbook."""
    with RecordStore(store_path) as store:
        return approved(store, readonly(workdir))


def local(moment: datetime) -> str:
    return moment.astimezone(TAIPEI).strftime("%Y-%m-%dT%H:%M:%S")


def cli(store_path: Path, *args: str) -> int:
    return main(["--store", str(store_path), *args])


def counts(store_path: Path) -> int:
    with RecordStore(store_path) as store:
        return len(store.entries())


def test_bad_rules_are_one_line_exit_2_and_change_nothing(
    queue: str, change: str, store_path: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RecordStore(store_path) as store:
        windowed = approved(
            store, readonly(workdir, "leaf6"), Window.parse("now", "+1h")
        )  # planned for one window of its own
    before = counts(store_path)
    capsys.readouterr()
    cases = [
        (change, ["--rule", "FREQ=NEVERLY", "--length", "1h"], "bad rule"),
        (change, ["--rule", "FREQ=DAILY;BYHOUR=2", "--length", "2"], "bad window length"),
        (change, ["--rule", "FREQ=DAILY;BYHOUR=2"], "needs --length"),
        (change, ["--length", "1h"], "--length and --from go with --rule"),
        (
            change,
            ["--rule", "FREQ=DAILY;COUNT=2", "--length", "1h", "--from", "2020-01-01T00:00"],
            "no window still to come",
        ),
        (windowed, ["--rule", "FREQ=DAILY;BYHOUR=2", "--length", "1h"], "planned for one window"),
    ]
    for target, args, message in cases:
        assert cli(store_path, "schedule", target, "--queue", queue, *args) == 2, args
        captured = capsys.readouterr()
        assert message in captured.err and captured.err.count("\n") == 1, (args, captured.err)
        assert captured.out == ""
    assert counts(store_path) == before  # nothing recorded
    q = Queue(queue, connection=scheduling.connect())
    assert q.count == 0 and q.scheduled_job_registry.count == 0  # nothing queued


def test_windows_lists_and_exports_the_coming_windows_and_unschedule_stops_them(
    queue: str, change: str, store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a daily hour 12 h from now in Taipei: never the window open now (at 02:40 Taipei, a
    # daily 02:00 window of 1 h is open, and its job is queued at once, not scheduled)
    hour = (datetime.now(ZoneInfo("Asia/Taipei")) + timedelta(hours=12)).hour
    rule = f"FREQ=DAILY;BYHOUR={hour};BYMINUTE=0"
    assert (
        cli(store_path, "schedule", change, "--queue", queue, "--rule", rule, "--length", "1h") == 0
    )
    said = capsys.readouterr().out
    assert f"scheduled {change} as SCH-" in said and "(Asia/Taipei)" in said
    schedule_id = said.split(" as ")[1].split(":")[0]
    q = Queue(queue, connection=scheduling.connect())
    assert q.scheduled_job_registry.count == 1  # the next window's job, and only it

    ics = store_path.parent / "windows.ics"
    assert cli(store_path, "windows", "--days", "3", "--json", "--ics", str(ics)) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and {r["schedule"] for r in rows} == {schedule_id}
    for row in rows:
        assert row["runbook"] == "test-readonly" and row["change"] == change
        assert row["rule"] == rule and row["time_zone"] == "Asia/Taipei"
        start, end = datetime.fromisoformat(row["start"]), datetime.fromisoformat(row["end"])
        assert row["start"].endswith(f"T{hour:02d}:00:00+08:00")
        assert end - start == timedelta(hours=1)
    cal = icalendar.Calendar.from_ical(ics.read_bytes())
    (event,) = cal.walk("VEVENT")
    assert event["UID"] == f"{schedule_id}@runbooks"
    assert event["RRULE"]["FREQ"] == ["DAILY"] and event["RRULE"]["BYHOUR"] == [hour]
    assert event.DTSTART.tzinfo is not None and str(event.DTSTART.tzinfo) == "Asia/Taipei"
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Asia/Taipei"]

    assert cli(store_path, "windows") == 0
    text = capsys.readouterr().out
    assert text.count(f"{hour:02d}:00:00+0800 to") >= 14 and "(Asia/Taipei)" in text

    assert cli(store_path, "unschedule", schedule_id[:12], "--reason", "new plan") == 0
    assert "stopped" in capsys.readouterr().out
    assert cli(store_path, "windows", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    # the window's job, when its time comes, runs nothing for a stopped schedule
    job = q.scheduled_job_registry.get_job_ids()[0]
    args = Queue(queue, connection=scheduling.connect()).fetch_job(job)
    assert args is not None
    before = counts(store_path)
    assert occurrence_job(*args.args)["ended"] == "new plan"
    assert counts(store_path) == before
    assert cli(store_path, "unschedule", schedule_id) == 2  # already stopped


def schedule_entries(store_path: Path, schedule_id: str) -> list[tuple[str, dict[str, Any]]]:
    with RecordStore(store_path) as store:
        return [(e.kind, e.payload) for e in store.entries(schedule_id)]


def test_a_writing_change_is_applied_once_in_its_window_then_the_schedule_ends(
    queue: str,
    store_path: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = LedgerRunbook(LedgerRunbook.parse_params({"workdir": workdir, "hostname": "leaf5"}))
    with RecordStore(store_path) as store:
        change = approved(store, ledger)
    start = datetime.now(UTC) - timedelta(minutes=1)  # the first window is open now
    args = ["--rule", "FREQ=HOURLY", "--length", "50m", "--from", local(start), "--yes"]
    monkeypatch.setenv("RUNBOOKS_ACTOR", "olivia")  # she schedules it, confirming in advance
    assert cli(store_path, "schedule", change, "--queue", queue, *args) == 0
    schedule_id = capsys.readouterr().out.split(" as ")[1].split(":")[0]
    q = Queue(queue, connection=scheduling.connect())
    assert q.count == 1  # the open window is due now
    (job,) = q.jobs
    monkeypatch.setenv("RUNBOOKS_ACTOR", "oscar")  # the worker's identity
    outcome = occurrence_job(*job.args)  # as the worker calls it

    assert outcome["status"] == "succeeded"
    kinds = [k for k, _ in schedule_entries(store_path, schedule_id)]
    assert kinds == ["schedule.created", "schedule.ran", "schedule.finished"]
    finished = schedule_entries(store_path, schedule_id)[-1][1]
    assert "an approval covers one application" in finished["reason"]
    assert q.scheduled_job_registry.count == 0  # no later window is queued
    with RecordStore(store_path) as store:
        first = store.entries(outcome["run_id"])[0]
        assert first.kind == "run.started" and first.actor == "oscar"
        assert first.payload["schedule"] == schedule_id and first.payload["change"] == change
        assert first.payload["occurrence"] == outcome["window"]["start"]
        assert first.payload["window"] == outcome["window"]  # the rule gave the run its window
        answered = [e for e in store.entries(outcome["run_id"]) if e.kind == "manual.answered"]
        assert answered[0].actor == "olivia"  # confirmed in advance when scheduled
    assert (workdir / "config.txt").read_text() == "hostname leaf5\nversion 2\n"


def test_a_missed_window_is_recorded_and_the_next_one_queued(
    queue: str, change: str, store_path: Path, workdir: Path
) -> None:
    with RecordStore(store_path) as store:
        book = ScheduleBook(store)
        now = datetime.now(UTC)
        rec = Recurrence.parse(
            "FREQ=MINUTELY;INTERVAL=10",
            timedelta(minutes=1),
            TAIPEI,
            now,
            start=now - timedelta(minutes=25),
        )
        schedule = book.create(ChangeBook(store).get(change), OLIVIA, rec, queue, None)
    outcome = occurrence_job(schedule.id, rec.first.isoformat(), str(store_path))
    assert outcome["reason"].startswith("missed: no worker took it up")
    kinds = [k for k, _ in schedule_entries(store_path, schedule.id)]
    assert kinds == ["schedule.created", "schedule.skipped"]
    q = Queue(queue, connection=scheduling.connect())
    (job_id,) = q.scheduled_job_registry.get_job_ids()
    nxt = rec.next_window(datetime.now(UTC))
    assert nxt is not None and nxt.start > datetime.now(UTC)
    assert job_id == f"runbooks-{schedule.id}-{nxt.start.astimezone(UTC):%Y%m%dT%H%M%S}"
    # the same window again (a job delivered twice) records nothing more
    occurrence_job(schedule.id, rec.first.isoformat(), str(store_path))
    assert len(schedule_entries(store_path, schedule.id)) == 2
    assert not (workdir / "runs.log").exists()


def test_a_window_that_fails_is_on_record_and_the_next_one_still_comes(
    queue: str, change: str, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordStore(store_path) as store:
        now = datetime.now(UTC)
        rec = Recurrence.parse("FREQ=HOURLY", timedelta(minutes=30), TAIPEI, now, start=now)
        schedule = ScheduleBook(store).create(
            ChangeBook(store).get(change), OLIVIA, rec, queue, None
        )

    def broken(*args: object, **kwargs: object) -> dict[str, Any]:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(scheduling, "run_in_worker", broken)
    with pytest.raises(RuntimeError, match="a bug of ours"):
        occurrence_job(schedule.id, rec.first.isoformat(), str(store_path))
    (kind, skipped) = schedule_entries(store_path, schedule.id)[-1]
    assert kind == "schedule.skipped" and skipped["reason"] == "failed: RuntimeError: a bug of ours"
    q = Queue(queue, connection=scheduling.connect())
    (job_id,) = q.scheduled_job_registry.get_job_ids()  # the rule goes on
    nxt = rec.window_at(rec.first + timedelta(hours=1))
    assert job_id.endswith(f"{nxt.start.astimezone(UTC):%Y%m%dT%H%M%S}")


def test_a_change_in_netboxs_change_control_gets_no_recurring_schedule(
    queue: str,
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runbooks.cli.settings import Settings

    monkeypatch.setattr(Settings, "plugin", lambda self: object())  # NetBox runs the plugin
    args = ["--rule", "FREQ=DAILY;BYHOUR=2", "--length", "1h", "--queue", queue]
    assert cli(store_path, "schedule", "CHG-20261207-abcdef", *args) == 2
    assert "NetBox's change control (netbox-runbooks) runs a change once" in capsys.readouterr().err
    assert not store_path.exists() or counts(store_path) == 0


def test_the_worker_imports_the_runbooks_before_it_forks_its_jobs(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbooks.core import registry

    order: list[str] = []
    monkeypatch.setattr(registry, "discover", lambda: order.append("discover") or {})

    class Worker:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def work(self, burst: bool, with_scheduler: bool) -> None:
            order.append("work")

    monkeypatch.setattr(scheduling, "Worker", Worker)
    scheduling.work(queue, burst=True)
    assert order == ["discover", "work"]


def open_schedule(
    store_path: Path, change: str, queue: str, confirmed_by: str | None = None
) -> tuple[str, Recurrence]:
    """A schedule of ``change`` whose first window is open now (hourly, 50 minutes long),
    nothing queued."""
    with RecordStore(store_path) as store:
        now = datetime.now(UTC)
        start = (now - timedelta(minutes=1)).replace(microsecond=0)
        rec = Recurrence.parse("FREQ=HOURLY", timedelta(minutes=50), TAIPEI, now, start=start)
        created = ScheduleBook(store).create(
            ChangeBook(store).get(change), OLIVIA, rec, queue, confirmed_by
        )
    return created.id, rec


def test_network_maintenances_history_commit_recurs_and_its_plan_runs_every_window() -> None:
    """The README's example of a plan that runs in every window: its one change, the commit of
    the backups to the configuration history, is a record of the run (it recurs)."""
    from runbooks.core import registry
    from runbooks.core.steps import ChangeStep

    runbook_cls = registry.get("network-maintenance")
    runbook = runbook_cls(runbook_cls.parse_params({}))
    steps = {step.name: step for step in runbook_cls.steps()}
    history = steps["plan_history_commit"]
    assert isinstance(history, ChangeStep) and history.recurs
    diffs = [d.to_dict() for d in history.plan(runbook, None)]  # type: ignore[arg-type]
    plan = {
        "runbook": "network-maintenance",
        "steps": [
            {"step": name, "diffs": diffs if name == "plan_history_commit" else []}
            for name in steps
        ],
    }
    assert diffs and recurring_steps(plan) == ["plan_history_commit"]
    assert not plan_writes(plan)
    # a step that writes and does not recur still makes the plan write, in the same runbook
    # (a step of that name undeclared) or another (remediation's device writes)
    other = {"step": "plan_netbox_write", "diffs": diffs}
    assert plan_writes({**plan, "steps": [*plan["steps"], other]})
    remediation = {
        "runbook": "network-remediation",
        "steps": [{**other, "step": "plan_remediation"}],
    }
    assert plan_writes(remediation)
    assert plan_writes({"runbook": "no-such-runbook", "steps": [other]})


def test_a_plan_whose_only_change_recurs_runs_in_every_window_while_it_is_the_approved_one(
    queue: str, store_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordStore(store_path) as store:
        change = approved(store, recording(workdir))
    first, rec = open_schedule(store_path, change, queue)
    with RecordStore(store_path) as store:
        assert ScheduleBook(store).get(first).writes is False
        head = store.entries(first)[0].payload
        assert head["recurring_steps"] == ["plan_record"]
    ran = occurrence_job(first, rec.first.isoformat(), str(store_path))
    assert ran["status"] == "succeeded"
    assert [k for k, _ in schedule_entries(store_path, first)] == [
        "schedule.created",
        "schedule.ran",
    ]  # it goes on: no schedule.finished
    q = Queue(queue, connection=scheduling.connect())
    assert len(q.scheduled_job_registry.get_job_ids()) == 1  # the next window, queued
    assert (workdir / "history.log").read_text().count("run ") == 1
    # a second schedule of the same approval: the recurring step's diff must still be the
    # approved one; where it is not, the window is skipped with the drift
    (workdir / "elsewhere").write_text("", encoding="utf-8")
    second, rec = open_schedule(store_path, change, queue)
    skipped = occurrence_job(second, rec.first.isoformat(), str(store_path))
    assert skipped["reason"].startswith("the plan changed since it was approved"), skipped
    assert not (workdir / "history-elsewhere.log").exists()
    assert (workdir / "history.log").read_text().count("run ") == 1


def test_a_failure_after_the_run_keeps_the_run_on_record_and_ends_a_writing_schedule(
    queue: str, store_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Releasing the locks fails after the run (not a RunbookError): the window is on record as
    ran, with its run id, and a writing plan's schedule is finished: the next window does not
    apply the change again."""
    ledger = LedgerRunbook(LedgerRunbook.parse_params({"workdir": workdir, "hostname": "leaf15"}))
    with RecordStore(store_path) as store:
        change = approved(store, ledger)
    schedule_id, rec = open_schedule(store_path, change, queue, confirmed_by="olivia")
    real_hold = scheduling.TargetLocks.hold

    @contextmanager
    def hold(self: scheduling.TargetLocks, *args: Any, **kwargs: Any) -> Iterator[None]:
        with real_hold(self, *args, **kwargs):
            yield
        raise redis.ConnectionError("Redis went away as the locks were released")

    monkeypatch.setattr(scheduling.TargetLocks, "hold", hold)
    with pytest.raises(redis.ConnectionError, match="as the locks were released"):
        occurrence_job(schedule_id, rec.first.isoformat(), str(store_path))
    found = schedule_entries(store_path, schedule_id)
    assert [k for k, _ in found] == ["schedule.created", "schedule.ran", "schedule.finished"]
    assert found[1][1]["status"] == "succeeded"
    with RecordStore(store_path) as store:
        began = store.entries(found[1][1]["run_id"])[0]
        assert began.kind == "run.started" and began.payload["schedule"] == schedule_id
    assert "an approval covers one application" in found[2][1]["reason"]
    q = Queue(queue, connection=scheduling.connect())
    assert q.scheduled_job_registry.count == 0  # the next window's job is gone with it


def test_a_failure_in_a_run_it_began_names_the_run(
    queue: str, change: str, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbooks.core.engine import Engine

    schedule_id, rec = open_schedule(store_path, change, queue)

    def broken(self: Engine, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the engine broke")

    monkeypatch.setattr(Engine, "granted", broken)  # after the run began
    with pytest.raises(RuntimeError, match="the engine broke"):
        occurrence_job(schedule_id, rec.first.isoformat(), str(store_path))
    kind, skipped = schedule_entries(store_path, schedule_id)[-1]
    assert kind == "schedule.skipped" and skipped["reason"].startswith("failed: RuntimeError")
    with RecordStore(store_path) as store:
        began = store.entries(skipped["run_id"])[0]
        assert began.kind == "run.started" and began.payload["schedule"] == schedule_id


def test_the_next_window_is_queued_before_this_one_runs(
    queue: str, change: str, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule_id, rec = open_schedule(store_path, change, queue)
    q = Queue(queue, connection=scheduling.connect())
    seen: list[list[str]] = []

    def killed(*args: object, **kwargs: object) -> dict[str, Any]:
        seen.append(q.scheduled_job_registry.get_job_ids())
        raise SystemExit("the worker was killed")  # nothing after this runs in a dead worker

    monkeypatch.setattr(scheduling, "run_in_worker", killed)
    with pytest.raises(SystemExit):
        occurrence_job(schedule_id, rec.first.isoformat(), str(store_path))
    nxt = rec.window_at(rec.first + timedelta(hours=1))
    assert seen == [[f"runbooks-{schedule_id}-{nxt.start.astimezone(UTC):%Y%m%dT%H%M%S}"]]


def test_a_worker_starting_queues_the_next_window_of_an_open_schedule_with_none_queued(
    queue: str, change: str, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis lost its data (or a worker died before queuing): `runbook worker` queues the next
    window of every open schedule of its store that has none, once."""
    from runbooks.core import registry

    schedule_id, rec = open_schedule(store_path, change, queue)  # nothing queued
    ended, _ = open_schedule(store_path, change, queue)
    with RecordStore(store_path) as store:
        book = ScheduleBook(store)
        book.cancel(book.get(ended), OLIVIA, "stopped")
    monkeypatch.setenv("RUNBOOKS_STORE", str(store_path))
    monkeypatch.setattr(registry, "discover", lambda: {})

    class Worker:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def work(self, burst: bool, with_scheduler: bool) -> None:
            pass

    monkeypatch.setattr(scheduling, "Worker", Worker)
    scheduling.work(queue, burst=True)
    q = Queue(queue, connection=scheduling.connect())
    job_id = f"runbooks-{schedule_id}-{rec.first.astimezone(UTC):%Y%m%dT%H%M%S}"
    assert q.job_ids == [job_id]  # the open window, due now; nothing for the stopped one
    assert requeue_open(store_path, queue) == []  # queued already: not again
    # its window handled, the next is queued
    (job,) = q.jobs
    job.delete()
    monkeypatch.setattr(scheduling, "run_in_worker", lambda *a, **k: {})  # not reached
    with RecordStore(store_path) as store:
        book = ScheduleBook(store)
        window = {"window": rec.window_at(rec.first).to_dict(), "reason": "test"}
        book.note(book.get(schedule_id), "schedule.skipped", window, "oscar")
    nxt = rec.window_at(rec.first + timedelta(hours=1))
    assert requeue_open(store_path, queue) == [
        f"runbooks-{schedule_id}-{nxt.start.astimezone(UTC):%Y%m%dT%H%M%S}"
    ]


def test_a_window_is_claimed_once_a_second_delivery_does_nothing(
    queue: str, change: str, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same window's job delivered again while the first still runs (or on a second
    worker): the window is the first's; no second run, no second entry."""
    schedule_id, rec = open_schedule(store_path, change, queue)
    args = (schedule_id, rec.first.isoformat(), str(store_path))
    again: list[dict[str, Any]] = []
    runs: list[str] = []

    def run(*a: Any, **k: Any) -> dict[str, Any]:
        again.append(occurrence_job(*args))  # delivered again meanwhile
        runs.append("run")
        result = {"run_id": "r-claimed", "status": "succeeded", "error": None}
        a[6](result)  # on_run
        return result

    monkeypatch.setattr(scheduling, "run_in_worker", run)
    outcome = occurrence_job(*args)
    assert outcome["run_id"] == "r-claimed" and runs == ["run"]
    assert again[0]["claimed"] == "by another job"
    kinds = [k for k, _ in schedule_entries(store_path, schedule_id)]
    assert kinds == ["schedule.created", "schedule.ran"]
