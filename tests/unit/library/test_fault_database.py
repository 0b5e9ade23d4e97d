"""fault-database without a lab: the diagnosis on recorded evidence (db1's lock graph with
one session blocking another), and a run through the engine over a scripted server: every
command a read-only psql session (or df), every query one the read-only guard accepts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.engine import Engine
from runbooks.core.errors import InputError
from runbooks.core.gateway import Gateway, Mode
from runbooks.core.results import RunStatus
from runbooks.core.store import RecordStore
from runbooks.gateways import db_triage
from runbooks.gateways import postgres_maintenance_facts as mf
from runbooks.gateways.db_triage import TriageGateway
from runbooks.gateways.postgres import READ_ONLY_SESSION
from runbooks.library.fault_database import (
    FaultDatabase,
    FaultDatabaseParams,
    database_findings,
    lock_findings,
)
from tests.support.fault_recorded import LOCKS

HEALTHY: dict[str, dict[str, Any]] = {
    "server_answers": {"reachable": True, "version": "PostgreSQL 15.20", "databases": []},
    "connections": {"max_connections": 100, "total": 3, "by_state": {"active": 1, "idle": 2}},
    "locks": {"databases": {}},
    "long_transactions": {"older_than_s": 300.0, "transactions": []},
    "replication": {"replicas": [], "slots": [],
                    "findings": ["no replica is connected (pg_stat_replication is empty)"]},
    "disk": {"size_bytes": 2147483648, "free_bytes": 2104709120, "mount": "/var/lib/postgresql",
             "free_percent": 98.0},
}  # fmt: skip


def params(**given: Any) -> FaultDatabaseParams:
    return FaultDatabaseParams(host="db1", **given)


def test_a_healthy_server_is_named_healthy() -> None:
    """A standalone server (no replica) is healthy: that fact is evidence, not a finding."""
    assert database_findings(HEALTHY, params()) == []


def test_who_blocks_whom_is_named() -> None:
    assert lock_findings(LOCKS, 1.0) == [
        "pid 4241 (runbook, fault-test-holder) holds ACCESS EXCLUSIVE on public.orders "
        "blocking 1 session(s) for 2.4 s (inventory; its transaction open 3.1 s)"
    ]
    assert lock_findings(LOCKS, 5.0) == []  # a short wait is no fault


def test_the_strongest_lock_on_the_wanted_table_is_named() -> None:
    locks = json.loads(json.dumps(LOCKS))
    blocker = locks["inventory"]["blocking"][0]
    blocker["holds"] = [
        {"mode": "RowExclusiveLock", "relation": "public.customers"},
        {"mode": "RowExclusiveLock", "relation": "public.orders"},
        {"mode": "ShareRowExclusiveLock", "relation": "public.orders"},
    ]
    locks["inventory"]["waiting"].append({**locks["inventory"]["waiting"][0], "pid": 4243})
    (finding,) = lock_findings(locks, 1.0)
    assert "holds SHARE ROW EXCLUSIVE on public.orders blocking 2 session(s)" in finding


@pytest.mark.parametrize(
    ("step", "change", "finding"),
    [
        ("server_answers", {"reachable": False, "why": "connection refused"},
         "db1: PostgreSQL does not answer: connection refused"),
        ("connections", {"max_connections": 100, "total": 95},
         "95 of 100 connections in use (95%, over 90%)"),
        ("locks", {"databases": LOCKS},
         "pid 4241 (runbook, fault-test-holder) holds ACCESS EXCLUSIVE on public.orders "
         "blocking 1 session(s) for 2.4 s (inventory; its transaction open 3.1 s)"),
        ("long_transactions", {"transactions": [{"pid": 77, "user": "app", "application": "etl",
          "database": "sales", "state": "idle in transaction", "age_s": 912.5,
          "query": "UPDATE t SET x = '…'"}]},
         "pid 77 (app, etl) has a transaction open 912.5 s in sales (idle in transaction): "
         "UPDATE t SET x = '…'"),
        ("replication", {"findings": ["replica r1 (catchup) replays 75.5 s behind (4096 bytes)"]},
         "replica r1 (catchup) replays 75.5 s behind (4096 bytes)"),
        ("disk", {"free_percent": 4.2, "mount": "/var/lib/postgresql"},
         "the data directory's filesystem (/var/lib/postgresql) has 4.2% free (min 10%)"),
    ],
)  # fmt: skip
def test_each_difference_from_a_healthy_server_is_named(
    step: str, change: dict[str, Any], finding: str
) -> None:
    evidence = {**HEALTHY, step: {**HEALTHY[step], **change}}
    assert database_findings(evidence, params(lock_wait_s=1)) == [finding]


def test_bad_parameters_are_one_line() -> None:
    with pytest.raises(InputError, match="lock_wait_s: Input should be greater than or equal"):
        FaultDatabase.parse_params({"host": "db1", "lock_wait_s": -1})
    with pytest.raises(InputError, match="incident: String should have at most 100"):
        FaultDatabase.parse_params({"host": "db1", "incident": "x" * 101})


# ---- through the engine, the server scripted


class ScriptedServer:
    """A shell whose psql answers each triage query with recorded JSON; keeps each command."""

    where = "fake"

    def __init__(self, locks: dict[str, Any]) -> None:
        self.locks = locks
        self.commands: list[list[str]] = []

    def answer(self, argv: list[str]) -> str:
        if argv[0] == "sh":  # the filesystem's df line
            return "2147483648 2104709120 /var/lib/postgresql\n"
        assert argv[:2] == ["env", READ_ONLY_SESSION], argv  # every query: a read-only session
        sql, db = argv[-1], argv[argv.index("-d") + 1]
        if sql == db_triage.LOCKS_SQL:
            return json.dumps(self.locks.get(db.split("'")[1], {"waiting": [], "blocking": []}))
        if sql == db_triage.CONNECTIONS_SQL:
            return json.dumps(HEALTHY["connections"])
        if sql == mf.OPEN_TRANSACTIONS_SQL:
            return "[]"
        if sql == mf.REPLICATION_SQL:
            return json.dumps({"in_recovery": False, "replicas": [], "slots": []})
        if "pg_extension" in sql:
            return "{}"
        assert "json_build_object" in sql and "'databases'" in sql, sql  # the survey
        databases = [{"name": "inventory", "bytes": 8027495}, {"name": "postgres", "bytes": 1}]
        return json.dumps({"version": "PostgreSQL 15.20", "in_recovery": False,
                           "databases": databases, "connections": 1})  # fmt: skip

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        self.commands.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, self.answer(list(argv)), "")

    def close(self) -> None:
        pass


def test_a_run_reads_only_and_names_the_blocking_session(tmp_path: Path) -> None:
    server = ScriptedServer(LOCKS)

    def factory(ctx: Any, key: str) -> Gateway:
        return TriageGateway(ctx.mode, server)

    store = RecordStore(tmp_path / "records.sqlite3")
    engine = Engine(store, "olivia", gateway_factories={TriageGateway: factory})
    runbook = FaultDatabase(
        FaultDatabase.parse_params({"host": "db1", "lock_wait_s": 1, "incident": "INC-3"})
    )
    result = engine.run(runbook)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert not any(s.changed for s in result.steps)
    steps = {s.step: s.evidence for s in result.steps}
    assert steps["diagnosis"]["findings"] == lock_findings(LOCKS, 1)
    assert steps["diagnosis"]["incident"] == "INC-3"
    # the queries' text is recorded redacted (the literal-free ones read the same)
    blocking = steps["locks"]["databases"]["inventory"]["blocking"][0]
    assert blocking["query"] == "LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE"
    assert list(steps["locks"]["databases"]) == ["inventory"]  # postgres: nobody waits
    reads = [c for c in server.commands if c[0] == "env"]
    assert len(reads) == len(server.commands) - 1  # all but df: read-only psql sessions
    store.close()


def test_the_triage_queries_pass_the_read_only_guard() -> None:
    """query_json refuses a statement that could leave its read-only transaction: the
    triage's own queries are plain SELECTs it accepts."""
    server = ScriptedServer({})
    gw = TriageGateway(Mode.PLAN, server)
    cluster = FaultDatabase(params()).cluster
    assert gw.locks(cluster, "inventory") == {"waiting": [], "blocking": []}
    assert gw.connections(cluster)["max_connections"] == 100
