"""12 數據庫維護 database maintenance: checks, a verified backup, VACUUM (ANALYZE), every figure
recorded.

The procedure, in order, on one PostgreSQL server (reached as db-upgrade reaches it: on this
machine, or over SSH with ``transport=ssh``; client programs run on the server, over its unix
socket). ``server=pg1`` names it as NetBox holds it: a device or virtual machine whose primary
IP is reached over SSH with the hosts' key, and whose ``postgresql`` service gives the port and
the version (its ``postgresql_version`` field; the binaries and data directory of that version
as Debian lays them out); a parameter given as well overrides (`PgServerParams`).

0. The server in NetBox: what NetBox says (device or VM, address, service, version) beside
   what the run uses.
1. Survey the cluster: version, data directory (it must be ``data_dir``), databases and sizes.
   A standby is refused: VACUUM runs on the primary.
2. Disk headroom: free space on the data directory's filesystem, after the backup when the
   backup lands there too, against ``min_free_percent``. Too little refuses the maintenance.
3. Replication: every replica's lag (pg_stat_replication) and every slot's retained WAL; no
   replica is a fact, recorded as such; a lag over ``max_replication_lag_s`` is named.
4. Long-running transactions: every session whose transaction began more than
   ``long_transaction_s`` ago, named (pid, user, database, application, client, age, whether
   it holds back what VACUUM may remove, its query with every literal redacted).
5. Index and constraint checks per database: invalid indexes (pg_index.indisvalid), NOT VALID
   constraints, and amcheck's ``bt_index_check`` (heapallindexed) on every B-tree index where
   the extension is installed; where it is not, the record says the check could not run. A
   corrupt index refuses the maintenance (REINDEX it first, as a change of its own).
6. A full backup (globals and every database), then verified by restoring it into a scratch
   instance and comparing every table's rows and checksum: db-upgrade's own two steps.
7. VACUUM (ANALYZE) of the planned tables of each database, with each table's dead and live
   tuples, dead share and table and index sizes before and after, and the verdict: which
   tables lost a notable number of dead tuples, which still hold them.
8. The server's NetBox journal witnesses the run: the backup, its restore test and each
   database's VACUUM, with the record's head hash (``journal=false`` for a server NetBox does
   not hold).

Nothing here changes data; VACUUM and ANALYZE have nothing to undo, and the backup is kept.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, field_validator

from runbooks.core.context import RunContext
from runbooks.core.errors import VerificationError
from runbooks.core.results import Diff, FieldChange
from runbooks.core.steps import change, check
from runbooks.gateways import postgres_maintenance_facts as mf
from runbooks.gateways.postgres import Cluster
from runbooks.gateways.postgres_maintenance import MaintenanceGateway
from runbooks.library.db_upgrade import DbUpgrade
from runbooks.library.db_upgrade_parts import PgClusterParams, PgServerRunbook

__all__ = ["DbMaintenance", "DbMaintenanceParams"]

log = logging.getLogger(__name__)

TARGET = "{host}"  # the database server


class DbMaintenanceParams(PgClusterParams):
    work_dir: str = Field(
        default="/var/lib/postgresql/maintenance",
        description="the backups (<work_dir>/<run>/backup, kept) and the restore test's "
        "scratch instance",
    )
    private_port: int = Field(
        default=54399,
        description="the restore test's scratch instance listens on private_port + 1, its "
        "socket in work_dir (no TCP), as in db-upgrade",
    )
    databases: list[str] = Field(
        default_factory=list,
        description="the databases to VACUUM (ANALYZE), comma-separated; default every "
        "database that accepts connections",
    )
    tables: list[str] = Field(
        default_factory=list,
        description="only these tables (schema.table or table, comma-separated); default "
        "every table; one found in no database refuses the plan",
    )
    min_free_percent: float = Field(
        default=10.0,
        ge=0,
        le=100,
        description="the share of the data directory's filesystem that must stay free (after "
        "the backup, when it lands there too); less refuses the maintenance",
    )
    long_transaction_s: float = Field(
        default=300.0, ge=0, description="a transaction open longer than this is named"
    )
    max_replication_lag_s: float = Field(
        default=60.0, ge=0, description="a replica replaying further behind is named"
    )
    notable_dead_tuples: int = Field(
        default=1000, ge=1, description="a change in dead tuples worth noting in the verdict"
    )

    @field_validator("databases", "tables", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """``databases=inventory,sales`` on the command line."""
        return mf.split_names(value) if isinstance(value, str) else value

    @property
    def old_bin(self) -> str:
        """The binaries the backup's restore test uses: db-upgrade's steps, shared, name them
        so (the version being upgraded from); here the server's own."""
        return self.bin_dir


class DbMaintenance(PgServerRunbook[DbMaintenanceParams]):
    """Check a PostgreSQL server, back it up verified, VACUUM (ANALYZE) it, record every figure."""

    name = "db-maintenance"
    title = "Database maintenance (PostgreSQL): checks, verified backup, VACUUM ANALYZE"
    instruction = "12 數據庫維護 database maintenance"
    expected_duration = timedelta(minutes=30)
    Params = DbMaintenanceParams
    journaled = ("plan_backup", "plan_verify_backup", "plan_vacuum")

    # ------------------------------------------------------------------ what the steps share
    def pg(self, ctx: RunContext) -> MaintenanceGateway:
        return self.server_gateway(ctx, MaintenanceGateway)

    @property
    def old(self) -> Cluster:
        """The cluster being maintained (named as db-upgrade's backup steps name it)."""
        return Cluster(self.p.data_dir, self.p.bin_dir, self.p.port, self.p.socket_dir)

    def run_dir(self, ctx: RunContext) -> str:
        return f"{self.p.work_dir}/{ctx.run_id}"

    def backup_dir(self, ctx: RunContext) -> str:
        return f"{self.run_dir(ctx)}/backup"

    def after_work(self, step: str) -> None:
        """Called by the shared backup steps once their work is done; a test hook there."""

    def new_state(self) -> dict[str, Any]:
        return {}

    def survey(self, ctx: RunContext) -> dict[str, Any]:
        """The cluster's survey, read once per plan or run."""
        state: dict[str, Any] = ctx.state
        if "survey" not in state:
            state["survey"] = self.pg(ctx).survey(self.old)
        return dict(state["survey"])

    def databases(self, ctx: RunContext) -> list[str]:
        present = [str(d["name"]) for d in self.survey(ctx)["databases"]]
        missing = sorted(set(self.p.databases) - set(present))
        if missing:
            raise VerificationError(
                f"{self.p.host} has no database {', '.join(missing)} (it has {', '.join(present)})"
            )
        return [d for d in present if not self.p.databases or d in self.p.databases]

    def vacuum_tables(self, ctx: RunContext, db: str) -> dict[str, set[str]]:
        """The tables of ``db`` VACUUM (ANALYZE) takes, as the server quotes them, each with
        the names ``tables`` may give it (`_names`). Partitioned tables are not among them
        (nothing records a vacuum of one): their partitions are, and naming a partitioned
        table takes its partitions."""
        tables = {str(r["table"]): _names(r) for r in self.pg(ctx).table_figures(self.old, db)}
        if not self.p.tables:
            return tables
        return {t: names for t, names in tables.items() if names & set(self.p.tables)}

    # ------------------------------------------------------------------ 1. survey
    @check("Survey: version, data directory, databases and their sizes", targets=TARGET)
    def survey_cluster(self, ctx: RunContext) -> dict[str, Any]:
        survey = self.survey(ctx)
        evidence = {
            "version": survey["version"],
            "data_directory": survey["data_directory"],
            "in_recovery": survey["in_recovery"],
            "databases": survey["databases"],
            "connections": survey["connections"],
            "to_maintain": self.databases(ctx),
        }
        if survey["in_recovery"]:
            raise VerificationError(
                f"{self.p.host} is a standby (in recovery): maintain its primary", **evidence
            )
        if survey["data_directory"] != self.p.data_dir:
            raise VerificationError(
                f"the cluster on {self.old.endpoint} serves {survey['data_directory']}, "
                f"not data_dir {self.p.data_dir}",
                **evidence,
            )
        return evidence

    # ------------------------------------------------------------------ 2. disk headroom
    @check("Disk headroom: free space on the data directory's filesystem", targets=TARGET)
    def disk_headroom(self, ctx: RunContext) -> dict[str, Any]:
        pg = self.pg(ctx)
        data_fs, work_fs = pg.filesystem(self.p.data_dir), pg.filesystem(self.p.work_dir)
        db_bytes = sum(int(d["bytes"]) for d in self.survey(ctx)["databases"])
        need = mf.backup_space_needed(db_bytes)
        evidence = {
            "data_directory_filesystem": data_fs,
            "backup_filesystem": work_fs,
            "database_bytes": db_bytes,
            "backup_needs_bytes": need,
            "min_free_percent": self.p.min_free_percent,
        }
        problems = mf.headroom_problems(data_fs, work_fs, need, self.p.min_free_percent)
        if problems:
            raise VerificationError("; ".join(problems), **evidence)
        return evidence

    # ------------------------------------------------------------------ 3. replication
    @check("Replication: each replica's lag and each slot's retained WAL", targets=TARGET)
    def replication_lag(self, ctx: RunContext) -> dict[str, Any]:
        data = self.pg(ctx).replication(self.old)
        return {
            **data,
            "max_replication_lag_s": self.p.max_replication_lag_s,
            "findings": mf.replication_findings(data, self.p.max_replication_lag_s),
        }

    # ------------------------------------------------------------------ 4. long transactions
    @check("Long-running transactions, named", targets=TARGET)
    def long_transactions(self, ctx: RunContext) -> dict[str, Any]:
        sessions = self.pg(ctx).open_transactions(self.old)
        named = mf.long_transactions(sessions, self.p.long_transaction_s)
        return {
            "older_than_s": self.p.long_transaction_s,
            "count": len(named),
            "transactions": named,
        }

    # ------------------------------------------------------------------ 5. index checks
    @check("Index and constraint checks: invalid, NOT VALID, amcheck", targets=TARGET)
    def index_and_constraint_checks(self, ctx: RunContext) -> dict[str, Any]:
        pg, out = self.pg(ctx), {}
        for db in self.databases(ctx):
            facts = pg.index_facts(self.old, db)
            checked, corrupt = 0, None
            if facts.get("amcheck_schema"):
                checked, corrupt = pg.amcheck(self.old, db, str(facts["amcheck_schema"]))
            out[db] = {
                "invalid_indexes": facts["invalid_indexes"],
                "not_valid_constraints": facts["not_valid_constraints"],
                "amcheck": mf.amcheck_verdict(db, facts, corrupt, checked),
            }
        corrupt_all = {
            f"{db}: {index}": error
            for db, found in out.items()
            for index, error in found["amcheck"].get("corrupt", {}).items()
        }
        if corrupt_all:
            raise VerificationError(
                "bt_index_check fails on "
                + "; ".join(f"{k} ({v})" for k, v in corrupt_all.items())
                + ": REINDEX them first (a change of its own)",
                databases=out,
            )
        return {"databases": out}

    # ------------------------------------------------------------------ 6. verified backup
    # db-upgrade's own steps: the same backup, restored into a scratch instance and compared
    plan_backup = DbUpgrade.plan_backup
    plan_verify_backup = DbUpgrade.plan_verify_backup

    # ------------------------------------------------------------------ 7. VACUUM (ANALYZE)
    @change("VACUUM (ANALYZE) the planned tables of each database", targets=TARGET)
    def plan_vacuum(self, ctx: RunContext) -> list[Diff]:
        diffs, named = [], set()
        for db in self.databases(ctx):
            found = self.vacuum_tables(ctx, db)
            named |= {n for names in found.values() for n in names}
            tables = list(found)
            if not tables:
                continue
            diffs.append(
                Diff(
                    target=f"{self.p.host}:{db}",
                    summary=f"VACUUM (ANALYZE) of {len(tables)} tables: dead tuples made "
                    "reusable, statistics refreshed; readers and writers go on",
                    fields=(FieldChange("vacuum_analyze", None, tables),),
                    before={"database": db},
                    after={"database": db, "vacuum_analyze": tables},
                )
            )
        unknown = [t for t in self.p.tables if t not in named]
        if unknown:
            raise VerificationError(
                f"no table {', '.join(unknown)} in {', '.join(self.databases(ctx))} "
                "(tables are named schema.table or table, as the server quotes them)"
            )
        return diffs

    @plan_vacuum.apply
    def vacuum_analyze(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        pg, out = self.pg(ctx), {}
        ctx.state["vacuum_started"] = pg.server_now(self.old)
        for diff in diffs:
            db, tables = str(diff.after["database"]), list(diff.after["vacuum_analyze"])
            before = self._figures(ctx, db, tables)
            pg.vacuum_analyze(self.old, db, tables)
            after = self._figures(ctx, db, tables)
            out[db] = mf.vacuum_report(before, after, self.p.notable_dead_tuples)
        verdicts = [f"{db}: {report['verdict']}" for db, report in out.items()]
        return {"started": ctx.state["vacuum_started"], "databases": out, "verdict": verdicts}

    @plan_vacuum.verify
    def every_table_vacuumed_and_analyzed(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        """The server's statistics say each planned table was vacuumed and analyzed since the
        step began (a resumed run, which does not know when, vacuums again)."""
        started = ctx.state.get("vacuum_started")
        if not started:
            return False
        for diff in diffs:
            db, tables = str(diff.after["database"]), set(diff.after["vacuum_analyze"])
            rows = self.pg(ctx).table_figures(self.old, db)
            done = {
                str(r["table"])
                for r in rows
                if _since(r.get("last_vacuum"), started) and _since(r.get("last_analyze"), started)
            }
            if tables - done:
                log.warning("%s: not vacuumed and analyzed: %s", db, sorted(tables - done))
                return False
        return True

    @plan_vacuum.undo
    def nothing_to_undo(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("VACUUM and ANALYZE changed no data: nothing to undo")

    # ------------------------------------------------------------------ 8. the witness
    # db-upgrade's own step: an entry in the server's NetBox journal naming the backup, its
    # restore test and each database's VACUUM (ANALYZE), with the record's head hash
    plan_journal_entry = DbUpgrade.plan_journal_entry

    def _figures(self, ctx: RunContext, db: str, tables: list[str]) -> dict[str, mf.TableFigures]:
        rows = [r for r in self.pg(ctx).table_figures(self.old, db) if r["table"] in tables]
        return mf.parse_table_figures(rows)


def _names(row: dict[str, Any]) -> set[str]:
    """The names a ``tables`` parameter may give a table: schema.table or table, of the table
    itself or of the partitioned table at the top of its tree.

    >>> sorted(_names({"table": "public.m_2026", "partition_of": "public.m"}))
    ['m', 'm_2026', 'public.m', 'public.m_2026']
    """
    full = [str(row["table"])] + ([str(row["partition_of"])] if row.get("partition_of") else [])
    return {n for name in full for n in (name, name.split(".", 1)[-1])}


def _since(stamp: Any, started: str) -> bool:
    """Is the server's timestamp ``stamp`` at or after ``started`` (both from its clock)?"""
    if not stamp:
        return False
    return datetime.fromisoformat(str(stamp)) >= datetime.fromisoformat(started)
