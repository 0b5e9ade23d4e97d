"""14 數據庫系統升級 database system upgrade: PostgreSQL 15 -> 18, verified backup first.

The procedure, in order:

1. Survey the cluster (version, size, free disk, extensions, connections, replication,
   data checksums) and run ``pg_upgrade --check`` against a throwaway new cluster made with
   the old cluster's checksum setting (initdb 18 turns checksums on; pg_upgrade refuses a
   mismatch), in a scratch directory it removes: a plan writes nothing of the server's.
2. Announce the maintenance and its expected downtime (a person confirms).
3. Take a full backup and verify it by restoring it into a scratch instance: every table's
   row count and checksum must equal the source's. **No later step runs without this**: each
   destructive gateway call re-proves the backup (``postgres_backup.require_verified``).
4. Prepare the new cluster (initdb as the old one) while writers still write; then stop
   writers: the service endpoint closes (the old cluster restarts on a private socket) and
   every table's fingerprint is taken on the quiet cluster.
5. pg_upgrade in copy (or clone) mode: the old cluster stays as it was.
6. Start 18 privately with the old configuration carried over; post-checks (version, every
   table's rows and checksum equal to step 4, extensions).
7. Switch the service over: the endpoint is served by 18 (downtime ends); analyze; check the
   service and record the downtime.
8. Witness the run in the server's NetBox journal: an entry with the record's head hash.

Rollback: any failure after writers stop stops 18, starts the old cluster on its endpoint and
verifies every table against step 4. Writes made to 18 after the switch are not carried back.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from runbooks.core.context import RunContext
from runbooks.core.errors import VerificationError
from runbooks.core.results import Diff
from runbooks.core.steps import change, check, manual
from runbooks.gateways import postgres_facts as facts
from runbooks.gateways.postgres import Cluster
from runbooks.gateways.postgres_upgrade import now_iso
from runbooks.library.db_upgrade_parts import (
    DbUpgradeBase,
    DbUpgradeParams,
    downtime_s,
    embedded_bin_dir,
)

__all__ = ["DbUpgrade", "DbUpgradeParams", "embedded_bin_dir"]

log = logging.getLogger(__name__)

TARGET = "{host}"  # the database server


class DbUpgrade(DbUpgradeBase):
    """Upgrade a PostgreSQL cluster one major version, with a verified backup and rollback."""

    name = "db-upgrade"
    title = "Database system upgrade (PostgreSQL major version)"
    instruction = "14 數據庫系統升級 database system upgrade"
    expected_duration = timedelta(minutes=15)
    Params = DbUpgradeParams

    # ------------------------------------------------------------------ 1. survey
    @check("Survey: version, size, disk, extensions, connections, replication", targets=TARGET)
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
        problems = facts.upgrade_blockers(
            survey,
            versions=(version, p.from_version),
            new_binaries=(new_bin_version, p.to_version, p.new_bin),
            space=(min(free, free_new), need),
            new_cluster_exists=pg.exists(f"{p.new_data}/PG_VERSION") and p.new_data,
        )
        if problems:
            raise VerificationError("; ".join(problems), evidence=evidence)
        return evidence

    @check("pg_upgrade --check on a throwaway new cluster, checksums matched", targets=TARGET)
    def pg_upgrade_check(self, ctx: RunContext) -> dict[str, Any]:
        pg = self.pg(ctx)
        survey = pg.survey(self.old)
        checksums = bool(survey["data_checksums"])
        check = pg.upgrade_check(
            self.old,
            self.p.new_bin,
            checksums=checksums,
            superuser=str(survey["bootstrap_superuser"]),
        )
        return {
            "initdb": facts.initdb_checksum_flag(checksums),
            "scratch": f"pg_upgrade --check ran against a scratch cluster in {check.scratch}, "
            "removed; nothing else on the server was written",
            "report": check.report[-2000:],
        }

    # ------------------------------------------------------------------ 2. announce
    @manual("Announce the maintenance and its expected downtime to the users", targets=TARGET)
    def announce(self, ctx: RunContext) -> str:
        data_bytes = self.pg(ctx).dir_bytes(self.p.old_data)
        downtime = facts.estimate_downtime_s(data_bytes, self.p.mode)
        return (
            f"Users of {self.p.host} ({self.p.socket_dir} port {self.p.port}) are told: "
            f"PostgreSQL {self.p.from_version} -> {self.p.to_version}; the database is "
            f"unavailable for about {downtime:.0f} s once writers are stopped."
        )

    # ------------------------------------------------------------------ 3. backup
    @change("Take a full backup: globals and every database, each in one snapshot", targets=TARGET)
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
        self.after_work("plan_backup")
        return manifest.evidence()

    @plan_backup.undo
    def keep_backup(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("the backup in %s is kept", self.backup_dir(ctx))

    @change("Verify the backup: restore it in a scratch instance, compare tables", targets=TARGET)
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
        self.after_work("plan_verify_backup")
        return manifest.evidence()

    @plan_verify_backup.undo
    def nothing_to_undo(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("verifying a backup changed nothing on the cluster")

    # ------------------------------------------------------------------ 4. prepare, stop writers
    @change("Prepare the new cluster: initdb with the old checksums and locale", targets=TARGET)
    def plan_prepare_new(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning and self.pg(ctx).exists(f"{self.p.new_data}/PG_VERSION"):
            return None
        pg = self.pg(ctx)
        survey, locale = pg.survey(self.old), pg.locale(self.old)
        initdb = (
            f"initdb -D {self.p.new_data} -U {survey['bootstrap_superuser']} "
            f"{facts.initdb_checksum_flag(bool(survey['data_checksums']))} "
            f"--encoding={locale['encoding']} --lc-collate={locale['collate']} "
            f"--lc-ctype={locale['ctype']} --locale-provider=libc"
        )
        return Diff.of_fields(
            f"{self.p.host}:{self.p.new_data}",
            {"cluster": None, "command": None},
            {"cluster": f"PostgreSQL {self.p.to_version}, empty", "command": initdb},
            "done before writers stop: it does not touch the old cluster",
        )

    @plan_prepare_new.apply
    def prepare_new(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        pg = self.pg(ctx)
        survey = pg.survey(self.old)  # the configuration to carry over, read while it serves
        locale = pg.locale(self.old)
        strip = sorted(facts.unknown_column_options(pg.column_options(self.old)))
        with self.undone_on_failure(lambda: self._discard_new(ctx), "plan_prepare_new"):
            pg.initdb(
                self.new,
                checksums=bool(survey["data_checksums"]),
                superuser=str(survey["bootstrap_superuser"]),
                locale=locale,
            )
            shim = None
            if strip:  # pg_upgrade --check does not see these: its schema restore would fail
                shim = pg.make_bin_shim(self.p.new_bin, f"{self.run_dir(ctx)}/bin", strip)
            self.save_state(ctx, survey=survey, locale=locale, upgrade_bin=shim)
        return {
            "initdb": facts.initdb_checksum_flag(bool(survey["data_checksums"])),
            "locale": locale,
            "column_options_stripped": strip,
        }

    @plan_prepare_new.undo
    def discard_prepared_cluster(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self._discard_new(ctx)

    @change("Stop writers: close the service endpoint (old restarts privately)", targets=TARGET)
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
        with self.undone_on_failure(lambda: self._bring_back_old(ctx), "plan_stop_writers"):
            proof = pg.close_service(
                self.old,
                self.private(self.old),
                self.log_file(f"pg{self.p.from_version}"),
                backup_dir=self.backup_dir(ctx),
                run_id=ctx.run_id,
            )
            stopped_at = now_iso()
            before = pg.fingerprints(self.private(self.old), quiet_jobs=self.p.fingerprint_jobs)
            self.save_state(
                ctx, writers_stopped_at=stopped_at, before=facts.fingerprints_to_json(before)
            )
        return {
            "writers_stopped_at": stopped_at,
            "tables": facts.fingerprint_summary(before),
            **proof,
        }

    @plan_stop_writers.undo
    def bring_back_old_cluster(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self._bring_back_old(ctx)

    # ------------------------------------------------------------------ 5. pg_upgrade
    @change("pg_upgrade --copy/--clone to the new version; the old is kept", targets=TARGET)
    def plan_upgrade(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning and self.state(ctx).get("pg_upgrade_s") is not None:
            return None
        p = self.p
        command = (
            f"pg_upgrade --{p.mode} -b {p.old_bin} -B {p.new_bin} -d {p.old_data} -D {p.new_data}"
        )
        return Diff.of_fields(
            f"{p.host}:cluster",
            {"version": p.from_version, "data_directory": p.old_data, "command": None},
            {"version": p.to_version, "data_directory": p.new_data, "command": command},
            f"pg_upgrade --{p.mode} (the old cluster stays startable)",
        )

    @plan_upgrade.apply
    def upgrade(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        pg, state = self.pg(ctx), self.state(ctx)
        survey = state["survey"]
        with self.undone_on_failure(lambda: self._discard_new(ctx), "plan_upgrade"):
            pg.stop(self.private(self.old))
            if pg.exists(f"{self.p.new_data}/pg_upgrade_output.d"):  # an interrupted attempt
                pg.remove_cluster_dir(self.new, self.p.to_version)
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
                upgrade_bin=state.get("upgrade_bin"),
            )
        self.save_state(ctx, pg_upgrade_s=evidence["pg_upgrade_s"])
        return evidence

    @plan_upgrade.undo
    def discard_new_cluster(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self._discard_new(ctx)

    # ------------------------------------------------------------------ 6. start and check 18
    @change("Start the new cluster privately, the old configuration carried over", targets=TARGET)
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

    @check("Post-checks: version, every table's rows and checksum, extensions", targets=TARGET)
    def post_checks(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.planning:
            return {"compares": "every table of every database against the quiet old cluster"}
        pg, new = self.pg(ctx), self.private(self.new)
        version = facts.major_version(pg.version_num(new))
        if version != self.p.to_version:
            raise VerificationError(f"the new cluster answers as {version}")
        expected = self.before(ctx) or {}
        actual = pg.fingerprints(new, quiet_jobs=self.p.fingerprint_jobs)
        problems = facts.compare_fingerprints(expected, actual)
        old_ext = self.state(ctx)["survey"]["extensions"]
        new_ext = pg.extensions(new, sorted(old_ext))
        problems += facts.missing_extensions(old_ext, new_ext)
        if problems:
            raise VerificationError("post-check failed: " + "; ".join(problems[:5]))
        self.after_work("post_checks")
        return {
            "version": version,
            "tables_equal": facts.fingerprint_summary(expected),
            "extensions": new_ext,
        }

    # ------------------------------------------------------------------ 7. switch over
    @change("Switch the service over: the endpoint is served by the new cluster", targets=TARGET)
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
            proof = self.pg(ctx).open_service(
                self.new,
                self.log_file(f"pg{self.p.to_version}"),
                old=self.old,
                backup_dir=self.backup_dir(ctx),
                run_id=ctx.run_id,
            )
            self.save_state(ctx, service_open_at=now_iso())
        state = self.state(ctx)
        return {"downtime_s": downtime_s(state), "endpoint": self.new.endpoint, **proof}

    @plan_switch.undo
    def close_new_service(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self._stop_new(ctx)

    @change("Analyze the new cluster (vacuumdb --analyze-only) once it serves", targets=TARGET)
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
        self.pg(ctx).analyze(self.new)
        self.save_state(ctx, analyzed_at=now_iso())
        self.after_work("plan_analyze")

    @plan_analyze.undo
    def statistics_need_no_undo(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("statistics of the discarded new cluster need no undo")

    @check("The service answers as the new version; the downtime is recorded", targets=TARGET)
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
        self.after_work("service_check")
        return {
            "version": survey["version"],
            "data_directory": survey["data_directory"],
            "downtime_s": downtime_s(state),
            "pg_upgrade_s": state.get("pg_upgrade_s"),
            "old_cluster_kept": self.p.old_data,
        }

    # ------------------------------------------------------------------ 8. witness
    @change("Witness the run in the NetBox journal of the server", targets=TARGET)
    def plan_journal_entry(self, ctx: RunContext) -> list[Diff]:
        return self.journal_diffs(ctx)

    @plan_journal_entry.apply
    def write_journal_entry(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.write_journal(ctx, diffs)

    @plan_journal_entry.verify
    def journal_entry_written(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.journal_written(ctx, diffs)

    @plan_journal_entry.undo
    def remove_journal_entry(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.remove_journal(ctx, diffs)  # an undone run is not witnessed as done
