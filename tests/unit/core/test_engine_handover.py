"""A run of a change re-plans just before it runs (`Engine.replan`): the re-plan's gateways
go on to the run (`Gateway.reopen`), so what the re-plan logged in to is not logged in to
again; one that cannot be handed over is closed and the run opens its own; a run refused,
or never granted, closes what its re-plan kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.errors import DriftError
from runbooks.core.gateway import Gateway, Mode, reads, writes
from runbooks.core.results import Diff, RunStatus
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import change, check
from runbooks.core.store import RecordStore


class Session(Gateway):
    """A pretend connection: each ``open`` is a login, counted; it hands itself over."""

    logins: ClassVar[list[int]] = []  # the connection number of each login
    closed: ClassVar[list[int]] = []

    def __init__(self, mode: Mode, connection: int, run_id: str) -> None:
        super().__init__(mode)
        self.connection: int | None = connection
        self.run_id = run_id

    @classmethod
    def open(cls, ctx: RunContext, key: str) -> Session:
        cls.logins.append(len(cls.logins) + 1)
        return cls(ctx.mode, cls.logins[-1], ctx.run_id)

    def reopen(self, ctx: RunContext) -> Gateway | None:
        connection, self.connection = self.connection, None
        return None if connection is None else type(self)(ctx.mode, connection, ctx.run_id)

    def close(self) -> None:
        if self.connection is not None:
            Session.closed.append(self.connection)
            self.connection = None

    @reads
    def read(self) -> dict[str, Any]:
        return {"connection": self.connection, "run_id": self.run_id, "mode": str(self.mode)}

    @writes
    def write(self) -> None:
        pass


class Stateless(Session):
    """The same, without a hand-over (`Gateway.reopen`'s default)."""

    def reopen(self, ctx: RunContext) -> Gateway | None:
        return Gateway.reopen(self, ctx)


class SessionParams(Params):
    kind: str = "session"


class UsesSessions(Runbook):
    """Reads through its gateway in a check, writes through it in a change."""

    name = "test-sessions"
    title = "Sessions (test)"
    instruction = "test"
    Params = SessionParams

    def gateway(self, ctx: RunContext) -> Session:
        assert isinstance(self.params, SessionParams)
        return ctx.gateway(Stateless if self.params.kind == "stateless" else Session, "d1")

    @check("Read the device", targets="d1")
    def read(self, ctx: RunContext) -> dict[str, Any]:
        return self.gateway(ctx).read()

    @change("Write the device", targets="d1")
    def plan_write(self, ctx: RunContext) -> Diff:
        return Diff.of_text("d1", "", "x\n")

    @plan_write.apply
    def write(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.gateway(ctx).write()

    @plan_write.verify
    def written(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return True


@pytest.fixture(autouse=True)
def counted() -> None:
    Session.logins, Session.closed = [], []


def begun(store_path: Path, kind: str = "session") -> tuple[Engine, UsesSessions, str]:
    engine = Engine(RecordStore(store_path), "olivia")
    runbook = UsesSessions(UsesSessions.parse_params({"kind": kind}))
    return engine, runbook, engine.begin(runbook, awaiting_grant=True)


def test_the_run_goes_on_on_its_replans_connection(store_path: Path) -> None:
    engine, runbook, run_id = begun(store_path)
    with engine.holding(run_id):
        planned = engine.replan(runbook, run_id)
        assert Session.closed == []  # kept for the run
        result = engine.granted(
            runbook, run_id, plan_hash=planned.content_hash, emergency=False, window=None
        )
    assert result.status is RunStatus.SUCCEEDED
    read = next(s for s in result.steps if s.step == "read").evidence
    assert read == {"connection": 1, "run_id": run_id, "mode": "run"}  # writes allowed
    assert Session.logins == [1] and Session.closed == [1]  # one login, closed at the end


def test_a_gateway_that_cannot_be_handed_over_is_closed_and_opened_anew(
    store_path: Path,
) -> None:
    engine, runbook, run_id = begun(store_path, "stateless")
    with engine.holding(run_id):
        planned = engine.replan(runbook, run_id)
        result = engine.granted(
            runbook, run_id, plan_hash=planned.content_hash, emergency=False, window=None
        )
    assert result.status is RunStatus.SUCCEEDED
    assert Session.logins == [1, 2] and Session.closed == [1, 2]


def test_a_refused_run_or_one_never_granted_closes_what_its_replan_kept(
    store_path: Path,
) -> None:
    engine, runbook, run_id = begun(store_path)
    with engine.holding(run_id):
        engine.replan(runbook, run_id)
        engine.refuse(run_id, DriftError("the plan drifted"))
        assert Session.closed == [1]
    assert engine.store.entries(run_id)[-1].payload["status"] == str(RunStatus.REFUSED)

    engine, runbook, run_id = begun(store_path)
    with engine.holding(run_id):
        engine.replan(runbook, run_id)
        with engine.holding(run_id):  # a nested hold lets go of nothing
            pass
        assert Session.closed == [1]
    assert Session.closed == [1, 2]  # this process let go of the run: closed
