"""db-upgrade against real throwaway clusters: Debian's PostgreSQL 15 upgraded to 18 for real.

Each test gets a copy of one template 15 cluster (unix socket only, under /tmp, run as
postgres) and removes it. Marked slow: ~10 s a test.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from runbooks.core.context import confirm_all
from runbooks.core.engine import Engine
from runbooks.core.errors import InputError
from runbooks.core.gateway import Mode
from runbooks.core.results import RunResult, RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.gateways.postgres import Cluster
from runbooks.gateways.postgres_backup import UnverifiedBackupError
from runbooks.gateways.postgres_shell import CommandError, LocalShell
from runbooks.gateways.postgres_upgrade import UpgradeGateway
from runbooks.library.db_upgrade import DbUpgrade
from tests.support import pg_clusters as pc
from tests.support.db_upgrade_faults import FailAt, FaultyDbUpgrade

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(pc.can_run() is not None, reason=str(pc.can_run())),
]

DATA_SQL = "SELECT count(*) || ':' || sum(amount) FROM orders"


@pytest.fixture(scope="session")
def template() -> Iterator[Path]:
    data = pc.make_template()
    yield data
    shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def cluster(template: Path) -> Iterator[pc.LocalCluster]:
    c = pc.copy_template(template)
    yield c
    c.remove()


def run(cluster: pc.LocalCluster, tmp_path: Path, **params: Any) -> RunResult:
    rb = FaultyDbUpgrade(FaultyDbUpgrade.parse_params({**cluster.params, **params}))
    engine = Engine(RecordStore(tmp_path / "records.sqlite3"), "olivia", confirmer=confirm_all())
    return engine.run(rb)


def assert_old_cluster_serves(cluster: pc.LocalCluster, before: str) -> None:
    assert cluster.psql("SHOW server_version_num").startswith("15")
    assert cluster.psql(DATA_SQL) == before
    assert cluster.psql("SELECT count(*) FROM items", db="shop") == "300"


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``root`` (itself included) with its size and mtime."""
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in [root, *root.rglob("*")]}


def test_plan_changes_nothing_and_shows_the_procedure(
    cluster: pc.LocalCluster, tmp_path: Path
) -> None:
    pid = cluster.postmaster_pid()
    for db in ("postgres", "shop", "template1"):  # the server's own relcache files, written
        cluster.psql("SELECT 1", db=db)  # at a database's first connection: not the plan's
    before = tree(cluster.root)  # the clusters' data, sockets and work directory
    scratch_before = set(Path("/tmp").glob("runbook-check.*"))
    rb = DbUpgrade(DbUpgrade.parse_params(cluster.params))
    plan = Engine(RecordStore(tmp_path / "r.sqlite3"), "olivia").plan(rb)
    assert plan.refusal is None
    assert tree(cluster.root) == before
    assert set(Path("/tmp").glob("runbook-check.*")) == scratch_before  # the check's, removed
    steps = {s.step: s for s in plan.steps}
    survey = steps["survey_cluster"].evidence
    assert survey["data_checksums"] is False
    assert survey["new_cluster_initdb"] == "--no-data-checksums"
    assert survey["extensions"]["shop"]["hstore"]
    assert survey["expected_downtime_s"] > 0
    assert "Checking cluster versions" in steps["pg_upgrade_check"].evidence["report"]
    after = steps["plan_upgrade"].diffs[0].after
    assert after["version"] == 18
    assert after["data_directory"] == str(cluster.root / "18")
    assert "--no-data-checksums" in steps["plan_prepare_new"].diffs[0].after["command"]
    assert cluster.postmaster_pid() == pid  # never restarted
    assert not (cluster.root / "18").exists()
    assert "scratch cluster in /tmp/runbook-check." in steps["pg_upgrade_check"].evidence["scratch"]
    assert not steps["plan_archive_wal"].diffs and not steps["plan_base_backup"].diffs  # copy

    # a read cannot write, whatever its SQL: the server refuses it in the read-only session
    gw = UpgradeGateway(Mode.PLAN, LocalShell())
    old = Cluster(
        str(cluster.root / "15"), str(pc.PG15), pc.SERVICE_PORT, str(cluster.root / "sock")
    )
    # (SQL that is one SELECT, so the gateway sends it)
    for sql in (
        "WITH d AS (INSERT INTO orders (amount) VALUES (1) RETURNING id) SELECT to_json(1)",
        "SELECT to_json(nextval('orders_id_seq'))",
        "WITH d AS (DELETE FROM orders RETURNING 1) SELECT to_json(count(*)) FROM d",
    ):
        with pytest.raises(CommandError, match="read-only transaction"):
            gw.query_json(old, sql)
    # and what is not one SELECT is not even sent
    for sql in ("INSERT INTO orders (amount) VALUES (1)", "SELECT 1; DELETE FROM orders"):
        with pytest.raises(InputError, match="could leave its read-only transaction"):
            gw.query_json(old, sql)
    assert gw.query_json(old, "SELECT to_json(count(*)) FROM orders") == 2000


def test_upgrade_keeps_every_row_and_switches_the_service(
    cluster: pc.LocalCluster, tmp_path: Path
) -> None:
    before = cluster.psql(DATA_SQL)
    result = run(cluster, tmp_path)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert cluster.psql("SHOW server_version_num").startswith("18")
    assert cluster.psql(DATA_SQL) == before
    assert cluster.psql("SELECT count(*) FROM items", db="shop") == "300"
    assert (
        cluster.psql("SELECT 'Customer7@EXAMPLE.com'::citext = email FROM customers WHERE id = 7")
        == "t"
    )
    steps = {s.step: s for s in result.steps}
    assert steps["service_check"].evidence["downtime_s"] > 0
    assert (cluster.root / "15" / "PG_VERSION").read_text().strip() == "15"  # kept


def test_no_acknowledged_write_is_lost_while_an_application_writes(
    cluster: pc.LocalCluster, tmp_path: Path
) -> None:
    """Writes go on during the backup, stop with the writers, resume on 18: all are in 18,
    and the gap the application saw is the downtime the record states."""
    writer = pc.Writer(cluster)
    writer.start()
    time.sleep(0.3)
    try:
        result = run(cluster, tmp_path)
        time.sleep(0.3)
    finally:
        writer.stop.set()
        writer.join()
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert writer.failed, "the writer never saw the service closed"
    assert int(cluster.psql("SELECT count(*) FROM writes")) == len(writer.ok)
    downtime = {s.step: s.evidence for s in result.steps}["service_check"]["downtime_s"]
    assert writer.longest_gap() == pytest.approx(downtime, abs=1.5)


def test_a_run_killed_inside_pg_upgrade_resumes_from_its_record(
    cluster: pc.LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies while pg_upgrade has half-written the new cluster; `resume` starts
    that step again on a clean new cluster and finishes, with every row."""
    before = cluster.psql(DATA_SQL)
    real = UpgradeGateway.pg_upgrade

    def killed(self: UpgradeGateway, old: Cluster, new: Cluster, **kwargs: Any) -> Any:
        self.make_dir(f"{new.data_dir}/pg_upgrade_output.d")  # what a killed pg_upgrade leaves
        raise KeyboardInterrupt  # not an Exception: no rollback, the run stays open

    monkeypatch.setattr(UpgradeGateway, "pg_upgrade", killed)
    store = RecordStore(tmp_path / "records.sqlite3")
    engine = Engine(store, "olivia", confirmer=confirm_all())
    rb = DbUpgrade(DbUpgrade.parse_params(cluster.params))
    with pytest.raises(KeyboardInterrupt):
        engine.run(rb, run_id="killed-run")
    monkeypatch.setattr(UpgradeGateway, "pg_upgrade", real)
    result = engine.resume(
        "killed-run", lambda payload: DbUpgrade(DbUpgrade.parse_params(payload["params"]))
    )
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert cluster.psql("SHOW server_version_num").startswith("18")
    assert cluster.psql(DATA_SQL) == before


def test_parallel_fingerprints_of_a_quiet_cluster_equal_one_snapshot(
    cluster: pc.LocalCluster,
) -> None:
    cluster.psql(
        "CREATE TABLE big AS SELECT i, repeat('x', 60) AS pad FROM generate_series(1, 200000) i"
    )
    gw = UpgradeGateway(Mode.RUN, LocalShell())
    old = Cluster(
        str(cluster.root / "15"), str(pc.PG15), pc.SERVICE_PORT, str(cluster.root / "sock")
    )
    one = gw.fingerprints(old)
    assert one["postgres"]["public.big"].rows == 200000
    assert gw.fingerprints(old, quiet_jobs=3) == one


STEPS = list(get_args(FailAt))  # the steps a failure can be injected after, in order
AFTER_WRITERS_STOP = STEPS[STEPS.index("plan_stop_writers") :]


@pytest.mark.parametrize("step", AFTER_WRITERS_STOP)
def test_failure_after_writers_stop_brings_the_old_cluster_back(
    cluster: pc.LocalCluster, tmp_path: Path, step: str
) -> None:
    before = cluster.psql(DATA_SQL)
    result = run(cluster, tmp_path, fail_at=step)
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert f"injected failure at {step}" in (result.error or "")
    assert_old_cluster_serves(cluster, before)
    assert not (cluster.root / "18").exists()  # the new cluster is discarded
    undone = [s.step for s in result.steps if s.status is Status.UNDONE]
    assert "plan_stop_writers" in undone or step == "plan_stop_writers"


@pytest.mark.parametrize("step", ["plan_backup", "plan_verify_backup", "plan_prepare_new"])
def test_failure_in_the_backup_never_stops_writers(
    cluster: pc.LocalCluster, tmp_path: Path, step: str
) -> None:
    pid = cluster.postmaster_pid()
    result = run(cluster, tmp_path, fail_at=step)
    assert result.status is RunStatus.ROLLED_BACK
    assert cluster.postmaster_pid() == pid  # the service was never interrupted
    assert not (cluster.root / "18").exists()


def test_no_destructive_step_without_a_verified_backup(
    cluster: pc.LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verification that restores nothing is caught by the step's own check, and the
    gateway's destructive calls refuse on their own, whatever a runbook does."""

    def skip_restore(self: UpgradeGateway, directory: str, *args: Any) -> Any:
        return self.read_manifest(directory)  # claims success without restoring

    monkeypatch.setattr(UpgradeGateway, "verify_backup", skip_restore)
    pid = cluster.postmaster_pid()
    result = run(cluster, tmp_path)
    assert result.status is RunStatus.ROLLED_BACK
    failed = next(s for s in result.steps if s.status is Status.FAILED)
    assert failed.step == "plan_verify_backup"
    assert cluster.postmaster_pid() == pid
    assert not (cluster.root / "18").exists()

    gw = UpgradeGateway(Mode.RUN, LocalShell())
    old = Cluster(
        str(cluster.root / "15"), str(pc.PG15), pc.SERVICE_PORT, str(cluster.root / "sock")
    )
    backup = str(cluster.root / "work" / "unverified")
    gw.take_backup(old, backup, "run-1")
    with pytest.raises(UnverifiedBackupError, match="never restored"):
        gw.stop_writers(old, backup_dir=backup, run_id="run-1")
    with pytest.raises(UnverifiedBackupError, match="no backup manifest"):
        gw.pg_upgrade(
            old,
            old,
            mode="copy",
            work_dir=str(cluster.root / "work"),
            superuser="postgres",
            backup_dir=str(tmp_path),
            run_id="run-1",
        )
    assert cluster.postmaster_pid() == pid


def test_backup_is_consistent_while_writers_write_and_tampering_is_refused(
    cluster: pc.LocalCluster, tmp_path: Path
) -> None:
    """A write after the dump is in neither side; an edited manifest or file is refused."""
    gw = UpgradeGateway(Mode.RUN, LocalShell())
    old = Cluster(
        str(cluster.root / "15"), str(pc.PG15), pc.SERVICE_PORT, str(cluster.root / "sock")
    )
    backup = str(cluster.root / "work" / "b")
    manifest = gw.take_backup(old, backup, "run-1")
    cluster.psql("DELETE FROM orders WHERE id = 1")  # after the dump: not in the backup
    gw.verify_backup(
        backup,
        old,
        Cluster(
            str(cluster.root / "work" / "scratch"),
            str(pc.PG15),
            pc.PRIVATE_PORT,
            str(cluster.root / "work"),
        ),
        "postgres",
    )
    gw.require_verified_backup(backup, old, "run-1")  # the backup itself is consistent
    with pytest.raises(UnverifiedBackupError, match="not to this run"):
        gw.require_verified_backup(backup, old, "run-2")
    assert manifest.restored is None
    verified = gw.read_manifest(backup)
    assert verified is not None and verified.restored == verified.source
    text = verified.to_json().replace('"rows": 2000', '"rows": 1999', 1)  # the restored side
    gw.write_text(f"{backup}/manifest.json", text)
    with pytest.raises(UnverifiedBackupError, match="orders has 1999 rows, expected 2000"):
        gw.require_verified_backup(backup, old, "run-1")
    gw.write_text(f"{backup}/globals.sql", "-- replaced\n")
    with pytest.raises(UnverifiedBackupError):
        gw.require_verified_backup(backup, old, "run-1")


def test_link_mode_rollback_after_the_new_cluster_served_loses_no_committed_write(
    cluster: pc.LocalCluster, tmp_path: Path
) -> None:
    """pg_upgrade --link while an application writes up to the stop; a failure once 18 has
    served (and taken writes) rolls back by restoring the base backup on 15 and replaying the
    WAL archived to the stop: every write 15 acknowledged is there, and nothing else."""
    writer = pc.Writer(cluster)
    writer.start()
    time.sleep(0.3)
    try:
        result = run(cluster, tmp_path, mode="link", fail_at="plan_analyze")
    finally:
        writer.stop.set()
        writer.join()
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert "injected failure at plan_analyze" in (result.error or "")
    done = {s.step: s.evidence for s in reversed(result.steps)}  # each step's own evidence
    assert done["post_checks"]["tables_equal"]  # the rehearsed way back equalled 18's opening
    wal = done["plan_stop_writers"]["wal"]
    assert wal["saved_from_pg_wal"] and wal["wal_to"] in wal["saved_from_pg_wal"]
    undone = [s.step for s in result.steps if s.status is Status.UNDONE]
    assert {"plan_stop_writers", "plan_archive_wal", "plan_upgrade"} <= set(undone)
    versions = [v for _, v in writer.acked]
    assert 18 in versions  # 18 served, and took writes, before the failure
    first_18, last_18 = versions.index(18), len(versions) - versions[::-1].index(18)
    up_to_stop = {i for i, _ in writer.acked[:first_18]}  # acknowledged by 15 before the stop
    after_rollback = [i for i, _ in writer.acked[last_18:]]  # by the restored 15
    assert up_to_stop and all(v == 15 for v in versions[last_18:])
    assert cluster.psql("SHOW server_version_num").startswith("15")
    ids = [int(i) for i in cluster.psql("SELECT id FROM writes ORDER BY id").split()]
    assert up_to_stop <= set(ids)  # every write committed up to the stop
    # and nothing else but the restored 15's own writes (and at most the insert cut off by
    # the stop: committed, its acknowledgement lost): 18's writes are not carried back
    assert len(ids) - len(up_to_stop) - len(after_rollback) in (0, 1)
    assert not (cluster.root / "18").exists()
    assert (cluster.root / "15" / "PG_VERSION").read_text().strip() == "15"


def test_a_fast_mode_plan_says_its_way_back_and_a_mode_pg_upgrade_lacks_is_refused(
    cluster: pc.LocalCluster, tmp_path: Path
) -> None:
    engine = Engine(RecordStore(tmp_path / "r.sqlite3"), "olivia")
    plan = engine.plan(DbUpgrade(DbUpgrade.parse_params({**cluster.params, "mode": "link"})))
    assert plan.refusal is None, plan.refusal
    steps = {s.step: s for s in plan.steps}
    summary = steps["plan_upgrade"].diffs[0].summary
    assert "--link" in summary and "the way back is then the base backup plus the WAL" in summary
    assert "restarts once" in steps["plan_archive_wal"].diffs[0].summary
    assert steps["plan_base_backup"].diffs
    assert steps["survey_cluster"].evidence["mode"] == summary
    assert [p.name for p in (cluster.root / "work").iterdir()] == ["start.log"]  # no archive

    lacking = {**cluster.params, "mode": "swap", "new_bin": str(pc.PG15)}  # 15 has no --copy either
    plan = engine.plan(DbUpgrade(DbUpgrade.parse_params(lacking)))
    assert plan.refusal is not None
    assert f"pg_upgrade 15 in {pc.PG15} has no --swap (it offers clone, link)" in (plan.refusal)


def test_the_bench_writer_writes_on_one_connection_and_retries_at_most_ten_a_second(
    cluster: pc.LocalCluster,
) -> None:
    """bench/db_upgrade.py's writer (both sides of its comparison): rows every ~20 ms on one
    connection while the cluster serves; while it is down, one connection attempt per 0.1 s
    (psql through runuser, 50 a second, took the CPU the measured pg_upgrade needed)."""
    cluster.psql(pc.WRITER_ROLE_SQL)
    writer = pc.ConnWriter(cluster)
    writer.start()
    try:
        time.sleep(1.0)
        up = len(writer.ok)
        assert up >= 10 and not writer.failed  # one connection: no failed insert
        pc.pg_ctl(pc.PG15, cluster.root / "15", "stop", "-m", "fast", "-w").check_returncode()
        down_at = time.monotonic()
        time.sleep(2.0)
        attempts = [t for t in writer.failed if t >= down_at]
        assert 5 <= len(attempts) <= 22  # ~10 a second, never 50
        log = str(cluster.root / "work" / "restart.log")
        pc.pg_ctl(pc.PG15, cluster.root / "15", "start", "-w", "-l", log).check_returncode()
        time.sleep(1.0)
    finally:
        writer.stop.set()
        writer.join()
    assert len(writer.ok) > up  # it came back on its own
    rows = int(cluster.psql("SELECT count(*) FROM writes"))
    assert rows == len(writer.ok) and {v for _, v in writer.acked} == {15}
