"""db-maintenance without a server: the judgements (headroom, replication, long transactions,
amcheck, the bloat verdict) as data tables, and the runbook planned and its VACUUM applied
against a scripted server that answers each query by what it asks."""

from __future__ import annotations

import doctest
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.gateway import Mode
from runbooks.core.results import Diff
from runbooks.core.store import RecordStore
from runbooks.gateways import postgres_maintenance_facts as mf
from runbooks.gateways.postgres_maintenance import MaintenanceGateway
from runbooks.gateways.postgres_shell import CommandError
from runbooks.library import db_maintenance
from runbooks.library.db_maintenance import DbMaintenance
from runbooks.library.db_upgrade import DbUpgrade

# NetBox's part (server=, the journal) is tested in test_db_maintenance_server.py
SERVER = {"host": "pg-main.example.org", "long_transaction_s": 60, "journal": False}
T = mf.TableFigures


def test_the_doctests_hold() -> None:
    assert doctest.testmod(mf).failed == 0
    assert doctest.testmod(db_maintenance).failed == 0


# ---------------------------------------------------------------------------- judgements
FS = {"size_bytes": 1000, "free_bytes": 300, "mount": "/var/lib/postgresql"}
OTHER_FS = {"size_bytes": 1000, "free_bytes": 100, "mount": "/backup"}


@pytest.mark.parametrize(
    ("data_fs", "work_fs", "backup", "threshold", "expected"),
    [
        (FS, FS, 100, 10.0, []),  # 200 of 1000 left: 20%
        (FS, FS, 250, 10.0, ["keep 5.0% free after the backup"]),
        (FS, OTHER_FS, 250, 10.0, ["the backup needs 250 bytes on /backup, which has 100"]),
        (FS, OTHER_FS, 50, 40.0, ["keep 30.0% free (300 of 1000 bytes), under the 40.0%"]),
    ],
)
def test_headroom(
    data_fs: dict[str, Any], work_fs: dict[str, Any], backup: int, threshold: float,
    expected: list[str],
) -> None:  # fmt: skip
    problems = mf.headroom_problems(data_fs, work_fs, backup, threshold)
    assert len(problems) == len(expected)
    for problem, part in zip(problems, expected, strict=True):
        assert part in problem


def test_replication_findings_name_lag_a_stopped_replica_and_an_idle_slot() -> None:
    data = {
        "replicas": [
            {"name": "r1", "state": "streaming", "replay_lag_s": 1.5, "lag_bytes": 10},
            {"name": "r2", "state": "streaming", "replay_lag_s": 90, "lag_bytes": 4096},
            {"name": "", "client": "203.0.113.9", "state": "catchup", "replay_lag_s": None},
        ],
        "slots": [
            {"slot": "s1", "active": True, "retained_bytes": 0},
            {"slot": "s2", "active": False, "retained_bytes": 7340032},
        ],
    }
    assert mf.replication_findings(data, 60) == [
        "replica r2 (streaming) replays 90.0 s behind (4096 bytes), over the 60 s threshold",
        "replica 203.0.113.9 is catchup",
        "replication slot s2 is inactive and retains 7340032 bytes of WAL",
    ]


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        ("ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD '…'"),
        ("SELECT 'it''s' , x FROM t", "SELECT '…' , x FROM t"),
        ("DO $body$ BEGIN PERFORM 'x'; END $body$", "DO '…'"),
        ("CREATE USER u PASSWORD $$s3cret$$", "CREATE USER u PASSWORD '…'"),
        ("SELECT E'a\\'b', 'c'", "SELECT '…', '…'"),
        ("SELECT $q$unterminated", "SELECT '…'"),
        ("SELECT $$a$$, b FROM t WHERE id = $1", "SELECT '…', b FROM t WHERE id = $1"),
        ("SELECT 'unterminated secret", "SELECT '…'"),
        # found by review: an apostrophe before the literal, in a comment or an identifier
        ("/* don't log */ ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD '…'"),
        ("-- it's\nALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD '…'"),
        ("ALTER ROLE \"o'brien\" PASSWORD 'hunter2'", "ALTER ROLE \"o'brien\" PASSWORD '…'"),
        ("/* a /* it's */ b's */ SELECT 'hunter2'", "SELECT '…'"),  # comments nest
        ("SELECT 1 /* hunter2 in a comment", "SELECT 1"),
        ("SELECT 'a' -- hunter2", "SELECT '…'"),
        ("SELECT xe'it', E'\\\\', 'hunter2'", "SELECT xe'…', '…', '…'"),
        ("SELECT a$b$c, $b$it's$b$, 'hunter2'", "SELECT a$b$c, '…', '…'"),
        (
            "SELECT '--', 'hunter2', '/*', \"x\"\"'\", 'hunter2'",
            "SELECT '…', '…', '…', \"x\"\"'\", '…'",
        ),
        (None, ""),
        ("SELECT " + "x, " * 100, None),
    ],
)
def test_a_query_reaches_the_record_without_its_literals(query: str | None, redacted: str) -> None:
    out = mf.redact_query(query)
    if redacted is None:
        assert len(out) == 200 and out.endswith("…")
    else:
        assert out == redacted
    for secret in ("hunter2", "s3cret", "unterminated"):
        assert secret not in out


# Well-formed SQL tokens around a planted literal: their text never holds "Ω", the literal's
# always does; no comment, identifier or other literal may make the redaction pair the wrong
# quotes.
_TEXT = st.text(st.sampled_from("ab'\"\\$-*/ \nE_1;"), max_size=12)


def _dollar(body: str, tag: str) -> str:
    return f"${tag}${body}${tag}$" if f"${tag}$" not in f"{body}$" else "$$ $$"


_TOKENS = st.one_of(
    st.sampled_from(
        ["SELECT", "x", "E", "e", "xe", "a$b$c", "$1", "1e5", ",", "(", ")", " ", "\n"]
    ),
    _TEXT.map(lambda t: "-- " + t.replace("\n", " ") + "\n"),
    _TEXT.map(lambda t: "/* " + t.replace("*/", "").replace("/*", "") + " */"),
    _TEXT.map(lambda t: ' "' + t.replace('"', '""') + '" '),
    _TEXT.map(lambda t: " '" + t.replace("'", "''") + "' "),
    _TEXT.map(lambda t: " E'" + t.replace("\\", "\\\\").replace("'", "\\'") + "' "),
    st.builds(_dollar, _TEXT, st.sampled_from(["", "q", "body"])),
)


def _planted(kind: str, text: str) -> str:
    secret = f"{text}Ω{text}"
    return {
        "string": " '" + secret.replace("'", "''") + "' ",
        "escape": " e'" + secret.replace("\\", "\\\\").replace("'", "''") + "' ",
        "dollar": " " + _dollar(secret, "s") + " ",
        "line": "--" + secret.replace("\n", " ") + "\n",
        "block": "/*" + secret.replace("*/", "").replace("/*", "") + "*/",
    }[kind]


@given(
    st.lists(_TOKENS, max_size=8),
    st.sampled_from(["string", "escape", "dollar", "line", "block"]),
    _TEXT,
    st.lists(_TOKENS, max_size=8),
)
def test_a_planted_literal_or_comment_never_survives(
    before: list[str], kind: str, text: str, after: list[str]
) -> None:
    query = " ".join([*before, _planted(kind, text), *after])  # words apart, as SQL has them
    assert "Ω" not in mf.redact_query(query, limit=10**6)


def test_long_transactions_are_named_over_the_threshold_only() -> None:
    sessions = [
        {"pid": 11, "user": "app", "database": "sales", "application": "billing",
         "client": "203.0.113.5", "backend_type": "client backend",
         "state": "idle in transaction", "xact_start": "2026-12-07T10:00:00+00:00",
         "age_s": 3600.2, "holds_xmin": True, "wait_event": "ClientRead",
         "query": "UPDATE accounts SET pin = '1234' WHERE id = 7"},
        {"pid": 12, "age_s": 59.9, "query": "SELECT 1"},
    ]  # fmt: skip
    (named,) = mf.long_transactions(sessions, 60)
    assert named["pid"] == 11 and named["holds_xmin"] is True and named["age_s"] == 3600.2
    assert named["query"] == "UPDATE accounts SET pin = '…' WHERE id = 7"


def test_amcheck_verdicts_never_pass_silently() -> None:
    missing = mf.amcheck_verdict("sales", {"amcheck_available": False}, None, 0)
    assert missing["ran"] is False
    assert missing["result"].startswith("could not run: the amcheck extension is not installed")
    assert "nor is it available" in missing["result"]
    failed = mf.amcheck_verdict("sales", {"amcheck_schema": "public"}, {"i1": "bad"}, 5)
    assert failed["result"] == "FAILED: 1 of 5 B-tree indexes fail bt_index_check"
    assert failed["corrupt"] == {"i1": "bad"}


def test_the_amcheck_schema_is_an_identifier_or_refused() -> None:
    assert "public.bt_index_check(42::oid" in mf.bt_index_check_one_sql("public", 42)
    assert '"My Schema".bt_index_check' in mf.bt_index_check_all_sql('"My Schema"')
    for bad in ("public; DROP TABLE t", "x.y", "", 'a"b'):
        with pytest.raises(ValueError, match="not a quoted identifier"):
            mf.bt_index_check_all_sql(bad)


def test_vacuum_report_figures_totals_and_what_could_not_be_removed() -> None:
    before = {"public.a": T(100, 5000, 819200, 16384), "public.b": T(10, 3000, 81920, 8192)}
    after = {"public.a": T(100, 0, 40960, 16384), "public.b": T(10, 2500, 81920, 8192)}
    report = mf.vacuum_report(before, after, 1000)
    assert report["tables"]["public.a"] == {
        "dead": [5000, 0], "live": [100, 100], "dead_percent": [98.04, 0.0],
        "table_bytes": [819200, 40960], "index_bytes": [16384, 16384],
    }  # fmt: skip
    assert report["totals"]["dead"] == [8000, 2500]
    assert report["totals"]["table_bytes"] == [901120, 122880]
    assert report["notable"] == ["public.a 5000 -> 0"]
    assert report["not_removable"] == ["public.b 2500"]
    assert report["verdict"] == (
        "dead tuples removed: public.a 5000 -> 0; dead tuples VACUUM could not remove "
        "(an older transaction still sees them): public.b 2500"
    )
    assert T(0, 0, 0, 0).dead_percent == 0.0


# ---------------------------------------------------------------------------- the runbook
class ScriptedServer:
    """A PostgreSQL server answering the gateway's commands: each query by what it asks for.
    ``corrupt`` indexes fail bt_index_check; VACUUM empties the dead tuples of what it names."""

    where = "fake"

    def __init__(self, **overrides: Any) -> None:
        self.in_recovery = overrides.get("in_recovery", False)
        self.data_directory = overrides.get("data_directory", "/var/lib/postgresql/15/main")
        self.free = overrides.get("free", 50 * 2**30)
        self.amcheck = overrides.get("amcheck", {"sales": '"public"'})
        self.corrupt: set[int] = set(overrides.get("corrupt", ()))
        self.tables = {
            "sales": {"public.orders": [1000, 40000], "public.customers": [50, 0]},
            "postgres": {},
        }
        # partitioned tables (relkind 'p') of sales and their partitions: PostgreSQL records
        # no vacuum of a partitioned table; VACUUM of one vacuums its partitions
        self.partitions: dict[str, list[str]] = overrides.get("partitions", {})
        for parent, leaves in self.partitions.items():
            self.tables["sales"][parent] = [0, 0]
            self.tables["sales"].update({leaf: [10, 2000] for leaf in leaves})
        self.vacuumed: dict[str, str] = {}
        self.scripts: list[str] = []

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        argv = list(argv)
        rc, out = self.answer(argv, input or "")
        if check and rc != 0:
            raise CommandError("failed", stderr="ERROR:  index is corrupt")
        return subprocess.CompletedProcess(argv, rc, out, "")

    def answer(self, argv: list[str], script: str) -> tuple[int, str]:
        if argv[0] == "sh" and "df -B1" in argv[2]:
            mount = "/backup" if "maintenance" in argv[-1] else "/var/lib/postgresql"
            return 0, f"{100 * 2**30} {self.free} {mount}\n"
        # the database as libpq reads psql's -d (a dbname= connection string)
        db = str(
            conninfo_to_dict(argv[argv.index("-d") + 1])["dbname"] if "-d" in argv else "postgres"
        )
        if "-f" in argv:  # VACUUM
            self.scripts.append(script)
            for line in script.splitlines():
                table = line.split()[-1].rstrip(";")
                for t in self.partitions.get(table, [table]):
                    self.tables[db][t][1] = 0
                    self.vacuumed[t] = "2026-12-07T10:00:05+00:00"
            return 0, ""
        return self.query(argv[argv.index("-c") + 1], db)

    def query(self, sql: str, db: str) -> tuple[int, str]:
        if "bt_index_check(" in sql:
            failing = self.corrupt and ("c.oid, true" in sql or any(
                f"({oid}::oid" in sql for oid in self.corrupt))  # fmt: skip
            return (1, "") if failing else (0, "1")
        answers = {
            "'version_num'": {
                "version_num": 150010,
                "version": "PostgreSQL 15.10",
                "in_recovery": self.in_recovery,
                "data_directory": self.data_directory,
                "connections": 3,
                "databases": [
                    {"name": "postgres", "bytes": 7 * 2**20},
                    {"name": "sales", "bytes": 2**30},
                ],
            },
            "json_object_agg(extname": {},
            "'replicas'": {"in_recovery": False, "replicas": [], "slots": []},
            "pg_stat_activity WHERE xact_start": [{"pid": 4242, "age_s": 75.0}],
            "'invalid_indexes'": {
                "invalid_indexes": [],
                "not_valid_constraints": [],
                "amcheck_schema": self.amcheck.get(db),
                "amcheck_available": True,
            },
            "'oid', c.oid::int": [
                {"oid": 1, "index": "orders_pkey"},
                {"oid": 2, "index": "customers_pkey"},
            ],
            "to_json(now())": "2026-12-07T10:00:00+00:00",
            "pg_stat_user_tables": [
                {
                    "table": t,
                    "live": live,
                    "dead": dead,
                    "table_bytes": 8192 * (live + dead),
                    "index_bytes": 16384,
                    "last_vacuum": None if t in self.partitions else self.vacuumed.get(t),
                    "last_analyze": self.vacuumed.get(t),
                    "partition_of": next(
                        (p for p, leaves in self.partitions.items() if t in leaves), None
                    ),
                }
                for t, (live, dead) in self.tables[db].items()
                if t not in self.partitions or "c.relkind <> 'p'" not in sql
            ],
        }
        for key, value in answers.items():
            if key in sql:
                return 0, json.dumps(value)
        raise AssertionError(f"unexpected query {sql[:80]}")

    def close(self) -> None:
        pass


def factories(shell: ScriptedServer) -> dict[Any, Any]:
    return {MaintenanceGateway: lambda ctx, key: MaintenanceGateway(ctx.mode, shell)}


def plan(tmp_path: Path, shell: ScriptedServer, **params: Any) -> Any:
    rb = DbMaintenance(DbMaintenance.parse_params({**SERVER, **params}))
    engine = Engine(
        RecordStore(tmp_path / "r.sqlite3"), "olivia", gateway_factories=factories(shell)
    )
    return engine.plan(rb)


def test_the_plan_shows_what_is_checked_backed_up_and_vacuumed(tmp_path: Path) -> None:
    shell = ScriptedServer()
    done = plan(tmp_path, shell)
    assert done.refusal is None
    steps = {s.step: s for s in done.steps}
    assert DbMaintenance.plan_backup is DbUpgrade.plan_backup  # the upgrade's own backup
    assert DbMaintenance.plan_verify_backup is DbUpgrade.plan_verify_backup
    assert list(steps) == [
        "server_in_netbox", "survey_cluster", "disk_headroom", "replication_lag",
        "long_transactions", "index_and_constraint_checks", "plan_backup",
        "plan_verify_backup", "plan_vacuum", "plan_journal_entry",
    ]  # fmt: skip
    assert steps["server_in_netbox"].evidence["server"] is None  # NetBox was not asked
    (backup,) = steps["plan_backup"].diffs
    assert backup.after["backup"].startswith("/var/lib/postgresql/maintenance/<run>/backup")
    (vacuum,) = steps["plan_vacuum"].diffs  # the postgres database has no table
    assert vacuum.target == "pg-main.example.org:sales"
    assert vacuum.after["vacuum_analyze"] == ["public.orders", "public.customers"]
    assert steps["long_transactions"].evidence["transactions"][0]["pid"] == 4242
    checks = steps["index_and_constraint_checks"].evidence["databases"]
    assert checks["sales"]["amcheck"]["result"].startswith("passed")
    assert checks["postgres"]["amcheck"]["result"].startswith("could not run")
    assert steps["replication_lag"].evidence["findings"] == [
        "no replica is connected (pg_stat_replication is empty)"
    ]
    assert shell.scripts == []  # a plan vacuums nothing
    only = plan(tmp_path, ScriptedServer(), databases="sales", tables="orders")
    (vacuum,) = {s.step: s for s in only.steps}["plan_vacuum"].diffs
    assert vacuum.after["vacuum_analyze"] == ["public.orders"]
    assert only.content_hash != done.content_hash


@pytest.mark.parametrize(
    ("server", "params", "refusal"),
    [
        ({"in_recovery": True}, {}, "is a standby (in recovery)"),
        ({"data_directory": "/srv/pg"}, {}, "serves /srv/pg, not data_dir"),
        ({"free": 3 * 2**30}, {}, "would keep 3.0% free (3221225472 of"),
        ({"corrupt": {2}}, {}, "bt_index_check fails on sales: customers_pkey"),
        ({}, {"databases": "sales,hr"}, "has no database hr"),
        ({}, {"tables": "orders,public.payroll"}, "no table public.payroll in postgres, sales"),
    ],
)
def test_the_plan_is_refused(
    tmp_path: Path, server: dict[str, Any], params: dict[str, Any], refusal: str
) -> None:
    done = plan(tmp_path, ScriptedServer(**server), **params)
    assert done.refusal is not None and refusal in done.refusal


def test_vacuum_records_figures_before_and_after_and_the_server_confirms_it() -> None:
    shell = ScriptedServer()
    rb = DbMaintenance(DbMaintenance.parse_params(SERVER))
    ctx = RunContext(Mode.RUN, "run-1", "olivia", rb, gateway_factories=factories(shell))
    ctx.state = rb.new_state()
    step = DbMaintenance.plan_vacuum
    diffs: list[Diff] = step.plan(rb, ctx)
    assert step.verify_func is not None and not step.verify_func(rb, ctx, diffs)  # not yet
    assert step.apply_func is not None
    evidence = step.apply_func(rb, ctx, diffs)
    assert shell.scripts == [
        "VACUUM (ANALYZE) public.orders;\nVACUUM (ANALYZE) public.customers;\n"
    ]
    sales = evidence["databases"]["sales"]
    assert sales["tables"]["public.orders"]["dead"] == [40000, 0]
    assert sales["verdict"] == "dead tuples removed: public.orders 40000 -> 0"
    assert step.verify_func(rb, ctx, diffs)


def test_partitioned_tables_are_left_out_and_their_partitions_vacuumed_and_confirmed() -> None:
    """Found by review: a partitioned table (relkind 'p') was planned, and PostgreSQL records
    no vacuum of one, so the confirmation failed on every database with partitions. Its
    partitions are planned instead; naming it takes them."""
    leaves = ["public.events_2025", "public.events_2026"]
    for params, planned in [
        ({}, ["public.customers", *leaves, "public.orders"]),
        ({"tables": "events"}, leaves),
        ({"tables": "public.events,public.events_2026"}, leaves),
        ({"tables": "events_2025"}, leaves[:1]),
    ]:
        shell = ScriptedServer(partitions={"public.events": leaves})
        rb = DbMaintenance(DbMaintenance.parse_params({**SERVER, **params}))
        ctx = RunContext(Mode.RUN, "run-1", "olivia", rb, gateway_factories=factories(shell))
        ctx.state = rb.new_state()
        step = DbMaintenance.plan_vacuum
        (diff,) = step.plan(rb, ctx)
        assert sorted(diff.after["vacuum_analyze"]) == planned
        assert step.apply_func is not None and step.verify_func is not None
        evidence = step.apply_func(rb, ctx, [diff])
        assert "public.events" not in evidence["databases"]["sales"]["tables"]
        assert step.verify_func(rb, ctx, [diff])
    assert "c.relkind <> 'p'" in mf.TABLE_FIGURES_SQL  # as the server is asked


def test_a_fresh_run_that_does_not_know_when_vacuum_began_vacuums_again() -> None:
    shell = ScriptedServer()
    shell.vacuumed = dict.fromkeys(
        ["public.orders", "public.customers"], "2026-12-07T09:00:00+00:00"
    )
    rb = DbMaintenance(DbMaintenance.parse_params(SERVER))
    ctx = RunContext(Mode.RUN, "run-1", "olivia", rb, gateway_factories=factories(shell))
    ctx.state = rb.new_state()
    step = DbMaintenance.plan_vacuum
    assert step.verify_func is not None
    assert not step.verify_func(rb, ctx, step.plan(rb, ctx))
    ctx.state["vacuum_started"] = "2026-12-07T09:30:00+00:00"  # vacuumed before it began
    assert not step.verify_func(rb, ctx, step.plan(rb, ctx))
