"""db-maintenance against the lab's database server db1, reached over SSH like a real server.

One flow: the test makes bloat on db1 (a table, autovacuum off, most of its rows deleted), an
invalid index (a failed CREATE INDEX CONCURRENTLY), a NOT VALID constraint and amcheck in one
database, then holds a transaction open whose query holds a literal no record may show. A run
whose backup verification fails (injected) rolls back before any VACUUM; then a change is
planned by olivia, reviewed by rachel, approved by arthur and run by olivia; a second change,
the same way, finds no bloat left to note. db1 is left as it was: the table, the extension
and the runbook's work directory go.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cli_support import Machine

from runbooks.config import netbox_settings
from runbooks.core import policy
from runbooks.core.changes import ChangeBook, run_change
from runbooks.core.context import confirm_all
from runbooks.core.engine import Engine
from runbooks.core.errors import VerificationError
from runbooks.core.gateway import Mode
from runbooks.core.plan import Plan
from runbooks.core.results import RunResult, RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.lab import hosts
from runbooks.lab import lab as lab_ops
from runbooks.lab import netbox as lab_netbox
from runbooks.library.db_maintenance import DbMaintenance
from runbooks.report import review

OLIVIA = policy.Identity("olivia", frozenset({policy.HANDLE}))
RACHEL = policy.Identity("rachel", frozenset({policy.REVIEW}))
ARTHUR = policy.Identity("arthur", frozenset({policy.APPROVE}))
WORK = "/var/lib/postgresql/maintenance-test"
TABLE = "public.maintenance_bloat"
LONG_TXN_APP = "maintenance-test-long-transaction"
LITERAL = "literal-no-record-holds-42"

SETUP_SQL = f"""
CREATE TABLE {TABLE} (id int PRIMARY KEY, pad text NOT NULL)
  WITH (autovacuum_enabled = false);
INSERT INTO {TABLE} SELECT i, repeat('x', 100) FROM generate_series(1, 20000) i;
DELETE FROM {TABLE} WHERE id > 2000;
ALTER TABLE {TABLE} ADD CONSTRAINT pad_not_empty CHECK (pad <> '') NOT VALID;
CREATE EXTENSION IF NOT EXISTS amcheck;
"""
TEARDOWN_SQL = f"DROP TABLE IF EXISTS {TABLE}; DROP EXTENSION IF EXISTS amcheck;"


def netbox_settings_or_fail() -> Any:
    settings = netbox_settings()
    assert settings is not None, "the lab's NetBox is in the environment"
    return settings


def connect(db: dict[str, Any], **kwargs: Any) -> psycopg.Connection[Any]:
    """A session over TCP on db1's address (inside the lab's namespace)."""
    return psycopg.connect(
        host=db["host"], port=db["port"], user=db["user"], password=db["password"],
        dbname=db["dbname"], connect_timeout=5, **kwargs,
    )  # fmt: skip


def as_postgres(argv: list[str]) -> None:
    hosts.run_on_host("db1", ["runuser", "-u", "postgres", "--", *argv], check=True)


@pytest.fixture
def lab_runbooks_env(lab: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The settings `runbook lab env` prints (the hosts' key, the lab's known_hosts) and the
    operator's NetBox, in the environment."""
    url, token = lab_netbox.credentials("operator")
    env = {**lab_ops.runbooks_env(), "RUNBOOKS_NETBOX_URL": url, "RUNBOOKS_NETBOX_TOKEN": token}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def db1_bloated(lab_runbooks_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """db1 held against resets, with bloat, an invalid index, a NOT VALID constraint and
    amcheck in its sample database; everything removed afterwards."""
    with lab_ops.held(reset_first=False):
        db = hosts.db_params("db1")
        with connect(db, autocommit=True) as c:
            c.execute(TEARDOWN_SQL)
            c.execute(SETUP_SQL)
            with pytest.raises(psycopg.errors.UniqueViolation):  # leaves the index invalid
                c.execute(f"CREATE UNIQUE INDEX CONCURRENTLY pad_unique ON {TABLE} (pad)")
        try:
            yield db
        finally:
            with connect(db, autocommit=True) as c:
                c.execute(TEARDOWN_SQL)
            as_postgres(["rm", "-rf", WORK])


class BackupFailsVerification(DbMaintenance):
    """The restore test's verdict is a failure, as a corrupt backup's would be."""

    def after_work(self, step: str) -> None:
        if step == "plan_verify_backup":
            raise VerificationError("injected: the restored backup differs")


def runbook(db: dict[str, Any], kind: type[DbMaintenance] = DbMaintenance) -> DbMaintenance:
    """db1 named as NetBox holds it: address, port, version and paths come from there."""
    rb = kind(kind.parse_params({"server": "db1", "work_dir": WORK, "long_transaction_s": 1}))
    p = rb.p
    assert (p.host, p.port, p.bin_dir, p.data_dir) == (
        db["host"], db["port"], db["bin_dir"], db["data_dir"],
    )  # fmt: skip
    return rb


def approved_run(store: RecordStore, db: dict[str, Any]) -> tuple[Plan, str, RunResult]:
    """Planned by olivia, reviewed by rachel, approved by arthur, run by olivia; the plan,
    its review document, the run."""
    engine = Engine(store, "olivia", confirmer=confirm_all())
    plan = engine.plan(runbook(db))
    assert plan.refusal is None, plan.refusal
    book = ChangeBook(store)
    change = book.create(plan, OLIVIA, None)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    change = book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash)
    page = review.markdown(book.get(change.id))
    return plan, page, run_change(engine, book, change, OLIVIA, runbook(db))


def test_db1_checked_backed_up_and_vacuumed_then_nothing_left(
    db1_bloated: dict[str, Any], tmp_path: Path
) -> None:
    store = RecordStore(tmp_path / "records.sqlite3")
    started = time.monotonic()
    long_query = f"SELECT count(*) FROM orders WHERE quantity > 0 OR '{LITERAL}' = ''"
    with connect(db1_bloated, application_name=LONG_TXN_APP) as long_txn:
        long_txn.execute(long_query)  # the transaction stays open
        pid = long_txn.info.backend_pid
        failed = Engine(store, "olivia", confirmer=confirm_all()).run(
            runbook(db1_bloated, BackupFailsVerification)
        )
        time.sleep(max(0.0, 1.2 - (time.monotonic() - started)))  # older than 1 s
        plan, page, result = approved_run(store, db1_bloated)
    first_s = time.monotonic() - started
    assert result.status is RunStatus.SUCCEEDED, result.error

    # the injected failure: rolled back before any VACUUM, its record complete
    assert failed.status is RunStatus.ROLLED_BACK, failed.error
    assert "injected: the restored backup differs" in str(failed.error)
    assert [s.step for s in failed.steps if s.status is Status.CHANGED] == ["plan_backup"]
    assert "plan_vacuum" not in {s.step for s in failed.steps}
    kinds = [e.kind for e in store.entries(failed.run_id)]
    assert kinds[-1] == "run.finished" and "step.failed" in kinds

    # the plan: what will be done, for review; db1 as NetBox holds it first
    planned = {s.step: s for s in plan.steps}
    netbox_says = planned["server_in_netbox"].evidence
    assert netbox_says["netbox"]["primary_ip"] == db1_bloated["host"]
    assert netbox_says["netbox"]["service"].endswith(f"postgresql tcp/{db1_bloated['port']}")
    assert netbox_says["postgresql_version"] == db1_bloated["version"]
    assert netbox_says["overridden"] == {}
    (witness,) = planned["plan_journal_entry"].diffs
    assert witness.target == "NetBox journal of db1"
    (vacuum,) = [d for d in planned["plan_vacuum"].diffs if d.target.endswith(":inventory")]
    assert TABLE in vacuum.after["vacuum_analyze"]
    assert "public.orders" in vacuum.after["vacuum_analyze"]
    (backup,) = planned["plan_backup"].diffs
    assert f"{WORK}/<run>/backup" in str(backup.after["backup"])
    assert TABLE in page and f"{WORK}/<run>/backup" in page  # what the reviewer reads

    # the record: every figure
    done = {s.step: s.evidence for s in result.steps}
    figures = done["plan_vacuum"]["databases"]["inventory"]["tables"][TABLE]
    assert figures["dead"][0] >= 18000 > figures["dead"][1]  # the failed run vacuumed nothing
    assert figures["dead_percent"][0] > figures["dead_percent"][1]
    assert f"{TABLE} " in done["plan_vacuum"]["databases"]["inventory"]["verdict"]
    verified = done["plan_verify_backup"]
    assert verified["verified_at"] and verified["problems"] == []
    assert "inventory" in verified["databases"] and verified["rows"] >= 2000 + 500
    named = {t["pid"]: t for t in done["long_transactions"]["transactions"]}
    assert named[pid]["application"] == LONG_TXN_APP
    assert named[pid]["database"] == "inventory" and named[pid]["age_s"] >= 1
    assert named[pid]["query"] == "SELECT count(*) FROM orders WHERE quantity > 0 OR '…' = '…'"
    checks = done["index_and_constraint_checks"]["databases"]
    assert checks["inventory"]["amcheck"]["result"].startswith("passed")
    assert checks["inventory"]["amcheck"]["checked"] >= 4
    assert checks["postgres"]["amcheck"]["result"].startswith("could not run")
    assert [i["index"] for i in checks["inventory"]["invalid_indexes"]] == ["pad_unique"]
    assert [c["constraint"] for c in checks["inventory"]["not_valid_constraints"]] == [
        "pad_not_empty"
    ]
    assert done["replication_lag"]["findings"] == [
        "no replica is connected (pg_stat_replication is empty)"
    ]
    assert done["disk_headroom"]["data_directory_filesystem"]["free_bytes"] > 0
    assert [s.status for s in result.steps if s.step == "plan_vacuum"] == [Status.CHANGED]

    # a second change: the bloat is gone, nothing worth noting
    started = time.monotonic()
    _, _, again = approved_run(store, db1_bloated)
    second_s = time.monotonic() - started
    assert again.status is RunStatus.SUCCEEDED, again.error
    report = {s.step: s.evidence for s in again.steps}["plan_vacuum"]["databases"]["inventory"]
    assert report["verdict"].startswith("no bloat change worth noting")
    assert report["tables"][TABLE]["dead"] == [0, 0]
    assert store.verify().ok

    # each successful run is witnessed once in db1's NetBox journal with its record's head;
    # the rolled-back run is not
    nb = NetBoxGateway(netbox_settings_or_fail(), Mode.RUN, run_id="test", runbook="test")
    (device,) = nb.find("dcim.device", name="db1")
    journal = nb.find(
        "extras.journalentry", assigned_object_type="dcim.device", assigned_object_id=device["id"]
    )
    for run in (result, again, failed):
        mine = [e for e in journal if f"run `{run.run_id}`" in str(e["comments"])]
        assert len(mine) == (0 if run is failed else 1), run.run_id
        for entry in mine:
            started_entry = next(
                e
                for e in store.entries(run.run_id)
                if e.kind == "step.started" and e.step == "plan_journal_entry"
            )
            assert f"`{started_entry.prev_hash}`" in entry["comments"]
            assert f"{db1_bloated['host']}:inventory: VACUUM (ANALYZE)" in entry["comments"]
            nb.apply([nb.plan_delete("extras.journalentry", entry["id"])])  # as it was
    nb.close()
    store.close()
    assert LITERAL.encode() not in (tmp_path / "records.sqlite3").read_bytes()
    logging.getLogger(__name__).warning("first run %.1f s, second %.1f s", first_s, second_s)


def test_cli_plans_db1_named_as_netbox_holds_it(
    lab_runbooks_env: dict[str, str], db1: dict[str, Any], tmp_path: Path
) -> None:
    """`runbook plan db-maintenance server=db1` and `runbook plan db-upgrade server=db1`
    with the settings `runbook lab env` prints and nothing else; a server NetBox does not
    hold is one line and exit 2."""
    env = {  # Machine gives the person's NetBox and the lab's known_hosts itself
        k: v
        for k, v in lab_runbooks_env.items()
        if not k.startswith("RUNBOOKS_NETBOX_") and k != "RUNBOOKS_SSH_KNOWN_HOSTS"
    }
    machine = Machine(tmp_path / "home", **env)
    with lab_ops.held(reset_first=False):
        for name in ("db-maintenance", "db-upgrade"):
            done = machine("operator", "plan", name, "server=db1", "--json", "--no-save")
            planned = json.loads(done.stdout)
            first = planned["steps"][0]
            assert first["step"] == "server_in_netbox", first
            assert first["evidence"]["uses"]["host"] == db1["host"]
            assert first["evidence"]["uses"]["port"] == db1["port"]
            assert first["evidence"]["postgresql_version"] == db1["version"]
            assert planned["params"]["host"] == db1["host"], planned["params"]
            assert planned["params"]["transport"] == "ssh"
            assert planned["params"]["ssh_key"] is None  # the hosts' key: a setting
            assert planned["refusal"] is None, planned["refusal"]
        wrong = machine("operator", "plan", "db-maintenance", "server=db9", ok=False)
    assert wrong.returncode == 2
    (line,) = wrong.stderr.strip().splitlines()
    assert "NetBox has no device or virtual machine named 'db9'" in line
