"""The engine: plans change nothing, runs record every step, failures roll back."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import ANY

import pytest

from runbooks.core.context import RunContext, confirm_all
from runbooks.core.engine import Engine
from runbooks.core.errors import DryRunViolation, InputError
from runbooks.core.gateway import Gateway, reads
from runbooks.core.results import RunStatus, Status
from runbooks.core.steps import check
from runbooks.core.store import RecordStore
from tests.support.ledger_runbook import LedgerRunbook


def make(workdir: Path, **params: object) -> LedgerRunbook:
    return LedgerRunbook(LedgerRunbook.parse_params({"workdir": workdir, **params}))


@pytest.fixture
def store(store_path: Path) -> RecordStore:
    return RecordStore(store_path)


def engine(store: RecordStore) -> Engine:
    return Engine(store, "olivia", confirmer=confirm_all())


def test_plan_shows_diffs_and_changes_nothing(store: RecordStore, workdir: Path) -> None:
    plan = engine(store).plan(make(workdir))
    assert plan.refusal is None
    by_step = {s.step: s for s in plan.steps}
    assert by_step["plan_config"].status is Status.PLANNED
    assert "+hostname leaf9" in by_step["plan_config"].diffs[0].text
    assert by_step["plan_inventory"].diffs[0].fields[0].after == {"status": "active", "version": 2}
    assert by_step["confirm_mounted"].evidence["instruction"].startswith("leaf9 is mounted")
    assert sorted(p.name for p in workdir.iterdir()) == []
    assert store.entries() == []  # planning records nothing


def test_plan_hash_is_stable_and_bound_to_params(store: RecordStore, workdir: Path) -> None:
    e = engine(store)
    assert e.plan(make(workdir)).content_hash == e.plan(make(workdir)).content_hash
    assert e.plan(make(workdir)).content_hash != e.plan(make(workdir, version=3)).content_hash


def test_a_write_during_a_plan_raises_and_writes_nothing(store: RecordStore, workdir: Path) -> None:
    with pytest.raises(DryRunViolation, match=r"FilesGateway\.write tried to write during a plan"):
        engine(store).plan(make(workdir, write_in_plan=True))
    assert not (workdir / "written-in-plan").exists()


def test_gateway_methods_must_declare_read_or_write() -> None:
    with pytest.raises(TypeError, match="must be declared @reads or @writes"):

        class Sloppy(Gateway):
            def set_status(self) -> None: ...

    class Fine(Gateway):
        @reads
        def get_status(self) -> str:
            return "ok"


def test_refused_check_refuses_the_plan(store: RecordStore, tmp_path: Path) -> None:
    plan = engine(store).plan(make(tmp_path / "missing"))
    assert plan.refusal is not None and "is not a directory" in plan.refusal
    assert [s.status for s in plan.steps][1:] == [Status.SKIPPED] * (len(plan.steps) - 1)


def test_run_applies_records_and_a_second_run_changes_nothing(
    store: RecordStore, workdir: Path
) -> None:
    result = engine(store).run(make(workdir))
    assert result.status is RunStatus.SUCCEEDED
    assert (workdir / "config.txt").read_text() == "hostname leaf9\nversion 2\n"
    assert json.loads((workdir / "inventory.json").read_text())["leaf9"]["status"] == "active"
    kinds = [e.kind for e in store.entries(result.run_id)]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    assert kinds.count("step.finished") == 5
    assert "manual.answered" in kinds
    again = engine(store).plan(make(workdir))
    assert again.changes == 0
    assert {s.status for s in again.steps if s.kind == "change"} == {Status.NO_CHANGE}


@pytest.mark.parametrize("fail_at", ["plan_config", "plan_inventory", "post_check"])
def test_failure_undoes_completed_changes_in_reverse(
    store: RecordStore, workdir: Path, fail_at: str
) -> None:
    (workdir / "config.txt").write_text("hostname old\n")
    (workdir / "inventory.json").write_text(json.dumps({"other": {"status": "active"}}))
    before = {p.name: p.read_text() for p in workdir.iterdir()}
    result = engine(store).run(make(workdir, fail_at=fail_at))
    assert result.status is RunStatus.ROLLED_BACK
    assert f"injected failure at {fail_at}" in (result.error or "")
    after = {p.name: p.read_text() for p in workdir.iterdir() if p.name != "ledger.log"}
    assert after == before
    entries = store.entries(result.run_id)
    undone = [e.step for e in entries if e.kind == "undo.finished"]
    applied = [e.step for e in entries if e.kind == "step.finished" and e.payload["changed"]]
    assert undone == list(reversed(applied))
    assert entries[-1].payload["status"] == "rolled-back"


def test_unconfirmed_manual_step_stops_and_rolls_back(store: RecordStore, workdir: Path) -> None:
    result = Engine(store, "olivia").run(make(workdir))  # nobody confirms
    assert result.status is RunStatus.ROLLED_BACK
    assert "not confirmed" in (result.error or "")
    assert not (workdir / "config.txt").exists()


def test_invalid_parameter_is_one_clear_input_error(workdir: Path) -> None:
    with pytest.raises(InputError, match=r"test-ledger: version: Input should be a valid integer"):
        LedgerRunbook.parse_params({"workdir": workdir, "version": "two"})
    with pytest.raises(InputError, match=r"colour: unknown parameter \(known: workdir"):
        LedgerRunbook.parse_params({"workdir": workdir, "colour": "red"})


def test_post_checks_are_not_run_in_a_plan_with_changes(store: RecordStore, workdir: Path) -> None:
    plan = engine(store).plan(make(workdir, fail_at="post_check"))
    post = {s.step: s for s in plan.steps}["post_check"]
    assert plan.refusal is None
    assert post.status is Status.PLANNED and "post-check" in post.evidence["runs"]
    engine(store).run(make(workdir))
    settled = engine(store).plan(make(workdir, fail_at="post_check"))  # nothing to change
    assert settled.refusal is not None and "injected failure at post_check" in settled.refusal


def test_a_step_can_read_the_record_head_for_a_witness(store: RecordStore, workdir: Path) -> None:
    seen: list[str] = []

    class Witnessed(LedgerRunbook):
        name = "test-witnessed"

        @check("Witness the record so far")
        def witness(self, ctx: RunContext) -> dict[str, str]:
            seen.append(ctx.record_head())
            return {"head": seen[-1]}

    runbook = Witnessed(Witnessed.parse_params({"workdir": workdir}))
    assert engine(store).plan(runbook).steps[-1].evidence == {"runs": ANY}
    result = engine(store).run(runbook)
    entries = store.entries(result.run_id)
    started = next(e for e in entries if e.kind == "step.started" and e.step == "witness")
    assert seen == [started.hash]  # the head when the step ran: its own step.started entry
