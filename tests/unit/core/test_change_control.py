"""Change control: separation of duties, approvals bound to the plan hash, drift, windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runbooks.core import policy
from runbooks.core.changes import Change, ChangeBook, run_change
from runbooks.core.context import confirm_all
from runbooks.core.engine import Engine
from runbooks.core.errors import ApprovalError, DriftError, InputError, WindowError
from runbooks.core.policy import Identity
from runbooks.core.results import RunStatus
from runbooks.core.store import RecordStore
from runbooks.core.window import Window
from tests.support.ledger_runbook import LedgerRunbook

OLIVIA = Identity("olivia", frozenset({policy.HANDLE}))
OSCAR = Identity("oscar", frozenset({policy.HANDLE}))
RACHEL = Identity("rachel", frozenset({policy.REVIEW}))
ARTHUR = Identity("arthur", frozenset({policy.APPROVE}))
BEATRICE = Identity("beatrice", frozenset({policy.APPROVE}))
ALL_IN_ONE = Identity("max", frozenset({policy.HANDLE, policy.REVIEW, policy.APPROVE}))


@pytest.fixture
def store(store_path: Path) -> RecordStore:
    return RecordStore(store_path)


def runbook(workdir: Path, **params: object) -> LedgerRunbook:
    return LedgerRunbook(LedgerRunbook.parse_params({"workdir": workdir, **params}))


def engine(store: RecordStore, who: Identity) -> Engine:
    return Engine(store, who.username, confirmer=confirm_all())


def prepare(
    store: RecordStore,
    workdir: Path,
    window: Window | None = None,
    preparer: Identity = OLIVIA,
    **params: object,
) -> Change:
    plan = engine(store, preparer).plan(runbook(workdir, **params))
    return ChangeBook(store).create(plan, preparer, window)


def approved(store: RecordStore, change: Change) -> Change:
    book = ChangeBook(store)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    return book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash[:12])


def refusals(store: RecordStore, change: Change) -> list[dict[str, str]]:
    return [
        dict(e.payload, actor=e.actor)
        for e in store.entries(change.id)
        if e.kind == "change.refused"
    ]


def test_the_preparer_cannot_review_or_approve_their_own_change(
    store: RecordStore, workdir: Path
) -> None:
    change = prepare(store, workdir, preparer=ALL_IN_ONE)
    book = ChangeBook(store)
    with pytest.raises(ApprovalError, match="max prepared this change and cannot review it"):
        book.sign(change, ALL_IN_ONE, policy.REVIEW, change.plan_hash)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    with pytest.raises(ApprovalError, match="max prepared this change and cannot approve it"):
        book.sign(change, ALL_IN_ONE, policy.APPROVE, change.plan_hash)
    assert [(r["action"], r["actor"]) for r in refusals(store, change)] == [
        ("review", "max"),
        ("approve", "max"),
    ]
    assert store.verify().ok


def test_reviewer_and_approver_are_different_people(store: RecordStore, workdir: Path) -> None:
    both = Identity("rita", frozenset({policy.REVIEW, policy.APPROVE}))
    change = prepare(store, workdir)
    book = ChangeBook(store)
    with pytest.raises(ApprovalError, match="must be reviewed before it is approved"):
        book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash)
    change = book.sign(change, both, policy.REVIEW, change.plan_hash)
    with pytest.raises(ApprovalError, match="rita reviewed this change; another person"):
        book.sign(change, both, policy.APPROVE, change.plan_hash)


def test_authorities_come_from_groups_and_an_approval_names_the_hash(
    store: RecordStore, workdir: Path
) -> None:
    change = prepare(store, workdir)
    book = ChangeBook(store)
    with pytest.raises(ApprovalError, match="needs the 審核 review authority"):
        book.sign(change, OSCAR, policy.REVIEW, change.plan_hash)
    with pytest.raises(ApprovalError, match="must name the plan's hash"):
        book.sign(change, RACHEL, policy.REVIEW, "deadbeefdeadbeef")
    reviewer = Identity.from_groups("rachel", ["runbook-reviewers", "staff"])
    assert reviewer.authorities == {policy.REVIEW}
    assert book.sign(change, reviewer, policy.REVIEW, change.plan_hash).status == "reviewed"


def test_an_unapproved_change_does_not_run(store: RecordStore, workdir: Path) -> None:
    change = prepare(store, workdir)
    with pytest.raises(ApprovalError, match="not approved"):
        run_change(engine(store, OSCAR), ChangeBook(store), change, OSCAR, runbook(workdir))
    assert not (workdir / "config.txt").exists()


def test_an_approver_does_not_run_what_they_approved(store: RecordStore, workdir: Path) -> None:
    op_approver = Identity("arthur", frozenset({policy.HANDLE, policy.APPROVE}))
    change = approved(store, prepare(store, workdir))
    with pytest.raises(ApprovalError, match="arthur reviewed or approved this change"):
        run_change(
            engine(store, op_approver), ChangeBook(store), change, op_approver, runbook(workdir)
        )


def test_approved_change_runs_and_the_record_names_each_authority(
    store: RecordStore, workdir: Path
) -> None:
    change = approved(store, prepare(store, workdir))
    result = run_change(engine(store, OSCAR), ChangeBook(store), change, OSCAR, runbook(workdir))
    assert result.status is RunStatus.SUCCEEDED
    entries = store.entries(result.run_id)
    started = entries[0].payload
    # the record began before the re-plan; the grant followed it
    assert [e.kind for e in entries[:3]] == ["run.started", "run.replanning", "run.granted"]
    granted = entries[2].payload
    assert started["change"] == change.id and granted["emergency"] is False
    assert started["authorities"] == {
        "handle": ["olivia", "oscar"],
        "review": ["rachel"],
        "approve": ["arthur"],
        "emergency": [],
    }
    assert ChangeBook(store).get(change.id).status == "ran"


def test_drift_after_approval_refuses_the_run_and_says_what_changed(
    store: RecordStore, workdir: Path
) -> None:
    change = approved(store, prepare(store, workdir))
    (workdir / "inventory.json").write_text(json.dumps({"leaf9": {"status": "planned"}}))
    with pytest.raises(DriftError) as refused:
        run_change(engine(store, OSCAR), ChangeBook(store), change, OSCAR, runbook(workdir))
    # one short line: each drifted value (then → now), and the way on
    message = str(refused.value)
    assert "inventory:leaf9 entry: None → {'status': 'planned'}" in message
    assert message.endswith(f"plan again: runbook plan test-ledger workdir={workdir}")
    assert "\n" not in message and len(message) < 400
    assert not (workdir / "config.txt").exists()  # nothing was applied
    assert "no longer matches the world" in refusals(store, change)[-1]["reason"]
    # the attempt is on record, begun before its re-plan, and ended refused
    (run,) = store.runs()
    assert run["status"] == "refused"

    # the drift undone, a fresh plan with its approvals runs
    (workdir / "inventory.json").unlink()
    again = approved(store, prepare(store, workdir))
    done = run_change(engine(store, OSCAR), ChangeBook(store), again, OSCAR, runbook(workdir))
    assert done.status is RunStatus.SUCCEEDED


def test_an_approval_is_refused_after_drift(store: RecordStore, workdir: Path) -> None:
    change = prepare(store, workdir)
    book = ChangeBook(store)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    (workdir / "config.txt").write_text("hostname someone-else\n")
    now = engine(store, ARTHUR).plan(runbook(workdir))
    with pytest.raises(
        DriftError,
        match=r"leaf9:config.txt: the configuration planned against changed \(1 lines\)\); "
        r"plan again: runbook plan test-ledger",
    ):
        book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash, current=now)
    assert book.get(change.id).status == "reviewed"
    assert refusals(store, change)[-1]["action"] == "approve"


def test_a_run_outside_its_window_is_refused(store: RecordStore, workdir: Path) -> None:
    now = datetime.now(UTC)
    window = Window(now + timedelta(hours=1), now + timedelta(hours=3))
    change = approved(store, prepare(store, workdir, window))
    with pytest.raises(ApprovalError, match="outside the change's maintenance window"):
        run_change(engine(store, OSCAR), ChangeBook(store), change, OSCAR, runbook(workdir))
    assert not (workdir / "config.txt").exists()
    with pytest.raises(WindowError, match="outside the window"):
        engine(store, OSCAR).run(runbook(workdir), window=window)


def test_a_window_closing_mid_run_stops_cleanly_and_rolls_back(
    store: RecordStore, workdir: Path
) -> None:
    now = datetime.now(UTC)
    # enough for the check (30 s) and the config write (5 s), not for the manual step (10 min)
    window = Window(now - timedelta(minutes=1), now + timedelta(seconds=60))
    change = approved(store, prepare(store, workdir, window))
    result = run_change(engine(store, OSCAR), ChangeBook(store), change, OSCAR, runbook(workdir))
    assert result.status is RunStatus.ROLLED_BACK
    assert "not starting 'Confirm the device is mounted and cabled'" in (result.error or "")
    kinds = [(e.kind, e.step) for e in store.entries(result.run_id)]
    assert ("step.finished", "plan_config") in kinds
    assert ("step.refused", "confirm_mounted") in kinds
    assert ("undo.finished", "plan_config") in kinds
    assert not (workdir / "config.txt").exists()


def test_the_emergency_path(store: RecordStore, workdir: Path) -> None:
    now = datetime.now(UTC)
    window = Window(now + timedelta(days=1), now + timedelta(days=1, hours=2))
    change = approved(store, prepare(store, workdir, window))
    book = ChangeBook(store)
    with pytest.raises(ApprovalError, match="already approved; the emergency approval needs"):
        book.sign(change, ARTHUR, policy.EMERGENCY, change.plan_hash)
    change = book.sign(change, BEATRICE, policy.EMERGENCY, change.plan_hash, note="outage")
    result = run_change(engine(store, OSCAR), book, change, OSCAR, runbook(workdir))
    assert result.status is RunStatus.SUCCEEDED
    started, _, granted = (e.payload for e in store.entries(result.run_id)[:3])
    assert granted["emergency"] is True and granted["window"] is None
    assert started["authorities"]["emergency"] == ["beatrice"]
    assert [e.payload["emergency"] for e in store.entries(change.id) if e.kind == "change.ran"] == [
        True
    ]


def test_a_run_killed_during_its_re_plan_is_on_record_and_resumes(
    store: RecordStore, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record starts before the re-plan: a run stopped there is interrupted, not absent;
    continued, it re-plans, is granted under the same id and runs."""
    change = approved(store, prepare(store, workdir))
    book = ChangeBook(store)

    def killed(self: Engine, runbook: object) -> None:
        raise KeyboardInterrupt  # what a kill looks like from the record's side

    with monkeypatch.context() as patched:
        patched.setattr(Engine, "plan", killed)
        with pytest.raises(KeyboardInterrupt):
            run_change(engine(store, OSCAR), book, change, OSCAR, runbook(workdir))
    (run,) = store.runs()
    assert (run["status"], run["change"]) == ("interrupted", change.id)
    assert not (workdir / "config.txt").exists()
    eng = engine(store, OSCAR)
    assert eng.awaiting_grant(run["run_id"])
    with pytest.raises(InputError, match="never granted"):
        eng.resume(run["run_id"], lambda _: runbook(workdir))

    done = run_change(eng, book, book.get(change.id), OSCAR, runbook(workdir), run_id=run["run_id"])
    assert (done.status, done.run_id) == (RunStatus.SUCCEEDED, run["run_id"])
    kinds = [e.kind for e in store.entries(done.run_id)]
    assert kinds[:5] == [
        "run.started",
        "run.replanning",
        "run.resumed",
        "run.replanning",
        "run.granted",
    ]
    assert store.verify().ok


def test_an_interrupted_run_is_abandoned_with_its_completed_steps_undone(
    store: RecordStore, workdir: Path
) -> None:
    change = approved(store, prepare(store, workdir))
    eng = engine(store, OSCAR)
    run_id = eng.begin(runbook(workdir), plan_hash=change.plan_hash, extra={"change": change.id})
    with pytest.raises(KeyboardInterrupt), pytest.MonkeyPatch.context() as patched:
        # killed right after the configuration was written and recorded
        original = Engine._notify_finished

        def stop_after_config(self: Engine, rb: object, ctx: object, result: Any) -> None:
            original(self, rb, ctx, result)  # type: ignore[arg-type]
            if result.step == "plan_config":
                raise KeyboardInterrupt

        patched.setattr(Engine, "_notify_finished", stop_after_config)
        eng.granted(
            runbook(workdir), run_id, plan_hash=change.plan_hash, emergency=False, window=None
        )
    assert (workdir / "config.txt").exists()
    done = engine(store, OSCAR).abandon(run_id, lambda _: runbook(workdir), "no longer wanted")
    assert done.status is RunStatus.ROLLED_BACK and "abandoned: no longer wanted" in str(done.error)
    assert not (workdir / "config.txt").exists()
    assert store.runs()[0]["status"] == "rolled-back"
