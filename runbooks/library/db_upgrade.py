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
4. Prepare the new cluster while writers still write: initdb as the old one, its pg_hba,
   pg_ident and settings carried over. Then stop writers: a CHECKPOINT (so the shutdown has
   little to write), and the old cluster stops. Downtime starts.
5. pg_upgrade in the chosen mode (copy by default: the old cluster stays as it was).
6. Open the service on 18 (downtime ends): it starts on its endpoint behind a gate (only the
   runbook's role, read-only transactions), one snapshot per database is taken, the gate is
   lifted (``postgres_open``). Post-checks after the downtime: every table read in those
   snapshots must equal the old cluster at the stop (started on a private socket, read,
   stopped); version and extensions; analyze; check the service and record the downtime.
7. With ``server`` (the server from NetBox): its PostgreSQL service's ``postgresql_version``
   becomes the new version, so the next plan naming the server finds the new cluster.
8. Witness the run in the server's NetBox journal: an entry with the record's head hash.

Inside the downtime there is only the stop, pg_upgrade and the start: measured with
``bench/db_upgrade.py``.

Rollback: any failure after writers stop stops 18, proves every table of the old cluster
on its private socket (when they were read), then serves it again. Writes made to 18 after
the opening are not carried back. In link and swap mode, once pg_upgrade has begun, the old
cluster is restored instead: the base backup taken before the stop, with the WAL archived up
to the stop replayed (no write committed before the stop is lost).
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
from runbooks.gateways.netbox_services import service_host
from runbooks.gateways.postgres import Cluster
from runbooks.gateways.postgres_upgrade import now_iso
from runbooks.library.db_upgrade_parts import (
    FAST,
    SERVICE,
    VERSION_FIELD,
    DbUpgradeBase,
    DbUpgradeParams,
    downtime_s,
    embedded_bin_dir,
)
from runbooks.library.witness import journal_step

__all__ = ["DbUpgrade", "DbUpgradeParams", "embedded_bin_dir"]

log = logging.getLogger(__name__)

TARGET = "{host}"  # the database server

CONSEQUENCES = {
    "copy": "pg_upgrade --copy: the old cluster stays startable as it was; the downtime grows "
    "with the data (every file is copied)",
    "clone": "pg_upgrade --clone: as copy, but needs a reflink file system (XFS, Btrfs)",
    "link": "pg_upgrade --link: seconds whatever the size, but once the new cluster has "
    "started the old one is unusable; the way back is then the base backup plus the WAL "
    "archived until the writers stopped",
    "swap": "pg_upgrade --swap (18): seconds whatever the size, the old cluster is destroyed; "
    "the way back is the base backup plus the WAL archived until the writers stopped",
}


def fast_mode_blockers(survey: dict[str, Any], data_bytes: int, free: int, need: int) -> list[str]:
    """What stops link or swap: an archive of the DBA's own (the runbook's archiving would
    divert it), and room for the base backup and its rehearsal restore."""
    problems = []
    settings = survey.get("settings") or {}
    if settings.get("archive_mode", "off") != "off":
        problems.append(
            f"archive_mode is {settings['archive_mode']} already: link/swap archive WAL into "
            "the run's directory and would divert that archive; use copy"
        )
    if free < need + 2 * data_bytes:
        problems.append(
            f"link/swap need room for a base backup and its rehearsal restore: "
            f"{need + 2 * data_bytes} bytes, {free} free"
        )
    return problems


def mode_consequence(mode: str) -> str:
    """What choosing ``mode`` means for the downtime and the way back, said in the plan."""
    return CONSEQUENCES[mode]


class DbUpgrade(DbUpgradeBase):
    """Upgrade a PostgreSQL cluster one major version, with a verified backup and rollback."""

    name = "db-upgrade"
    title = "Database system upgrade (PostgreSQL major version)"
    instruction = "14 數據庫系統升級 database system upgrade"
    expected_duration = timedelta(minutes=15)
    Params = DbUpgradeParams

    def state(self, ctx: RunContext) -> dict[str, Any]:
        """The run's state file, read from the server once per run and process: every
        change goes through ``save_state`` (a resumed run is a new process and reads it)."""
        cache: dict[str, dict[str, Any]] = self.__dict__.setdefault("_state_cache", {})
        key = self.run_dir(ctx)
        if key not in cache:
            cache[key] = super().state(ctx)
        return dict(cache[key])

    def save_state(self, ctx: RunContext, **values: Any) -> None:
        super().save_state(ctx, **values)
        self.__dict__.setdefault("_state_cache", {})[self.run_dir(ctx)] = {
            **self.state(ctx),
            **values,
        }

    @property
    def fast(self) -> bool:
        """link or swap: the old cluster is not kept, the way back is base backup + WAL."""
        return self.p.mode in FAST

    def wal_dir(self, ctx: RunContext) -> str:
        return f"{self.run_dir(ctx)}/wal"

    def base_dir(self, ctx: RunContext) -> str:
        return f"{self.run_dir(ctx)}/base"

    def _bring_back_old(self, ctx: RunContext) -> dict[str, Any]:
        """Stop the new cluster; prove the old one's tables on its private socket (when they
        were read at the stop or after); serve it again. After link or swap had begun: the
        base backup restored in its place, the archived WAL replayed to the stop."""
        state = self.state(ctx)
        if self.fast and state.get("upgrade_started"):
            self._stop_new(ctx)
            opened = state.get("opened")
            evidence = self.pg(ctx).restore_old_from_base(
                self.old,
                self.private(self.old),
                base_dir=self.base_dir(ctx),
                wal_dir=self.wal_dir(ctx),
                aside=f"{self.run_dir(ctx)}/old-data-after-{self.p.mode}",
                log_file=self.log_file(f"pg{self.p.from_version}"),
                expected=facts.fingerprints_from_json(opened) if opened else self.before(ctx),
                from_version=self.p.from_version,
            )
            log.info("old cluster restored on %s: %s", self.old.endpoint, evidence)
            return evidence
        return super()._bring_back_old(ctx)

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
        need = facts.space_needed(data_bytes, db_bytes, "copy" if p.mode == "copy" else "link")
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
            "mode": mode_consequence(p.mode),
        }
        problems = facts.upgrade_blockers(
            survey,
            versions=(version, p.from_version),
            new_binaries=(new_bin_version, p.to_version, p.new_bin),
            space=(min(free, free_new), need),
            new_cluster_exists=pg.exists(f"{p.new_data}/PG_VERSION") and p.new_data,
        )
        if self.fast:
            problems += fast_mode_blockers(survey, data_bytes, min(free, free_new), need)
        offered = pg.upgrade_modes(p.new_bin)
        if p.mode not in offered:
            problems.append(
                f"pg_upgrade {new_bin_version} in {p.new_bin} has no --{p.mode} "
                f"(it offers {', '.join(offered)})"
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

    # ------------------------------------------------------------------ 3b. link/swap only
    @change("link/swap: archive WAL from now until the stop (old restarts once)", targets=TARGET)
    def plan_archive_wal(self, ctx: RunContext) -> Diff | None:
        if not self.fast or (not ctx.planning and self.state(ctx).get("archiving")):
            return None
        return Diff.of_fields(
            f"{self.p.host}:{self.p.old_data}",
            {"wal_archiving": "as configured (off)"},
            {"wal_archiving": f"on, into {self.p.work_dir}/<run>/wal until the stop"},
            "the old cluster restarts once (about a second of interruption, before the "
            "downtime); the archived WAL is the way back after the new cluster starts",
        )

    @plan_archive_wal.apply
    def archive_wal(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        pg, log_file = self.pg(ctx), self.log_file(f"pg{self.p.from_version}")
        with self.undone_on_failure(
            lambda: pg.stop_archiving(self.old, log_file), "plan_archive_wal"
        ):
            evidence = pg.start_archiving(self.old, self.wal_dir(ctx), log_file)
            self.save_state(ctx, archiving=True)
        return evidence

    @plan_archive_wal.undo
    def stop_archiving(self, ctx: RunContext, diffs: list[Diff]) -> None:
        if self.state(ctx).get("writers_stopped_at"):
            return  # the old cluster was brought back (or restored) without archiving
        self.pg(ctx).stop_archiving(self.old, self.log_file(f"pg{self.p.from_version}"))

    @change("link/swap: base backup (pg_basebackup), checked by pg_verifybackup", targets=TARGET)
    def plan_base_backup(self, ctx: RunContext) -> Diff | None:
        if not self.fast or (not ctx.planning and self.state(ctx).get("base_backup")):
            return None
        return Diff.of_fields(
            f"{self.p.host}:base-backup",
            {"base_backup": None},
            {"base_backup": f"{self.p.work_dir}/<run>/base (pg_basebackup -Fp -X stream)"},
            "restored with the archived WAL, it is the way back once the new cluster runs",
        )

    @plan_base_backup.apply
    def base_backup(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        evidence = self.pg(ctx).take_base_backup(self.old, self.base_dir(ctx))
        self.save_state(ctx, base_backup=evidence)
        self.after_work("plan_base_backup")
        return evidence

    @plan_base_backup.undo
    def keep_base_backup(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("the base backup in %s is kept", self.base_dir(ctx))

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
        settings = facts.carried_settings(survey["settings"] or {})
        with self.undone_on_failure(lambda: self._discard_new(ctx), "plan_prepare_new"):
            pg.initdb(
                self.new,
                checksums=bool(survey["data_checksums"]),
                superuser=str(survey["bootstrap_superuser"]),
                locale=locale,
            )
            self._carry_configuration(ctx, survey, settings)
            shim = None
            if strip:  # pg_upgrade --check does not see these: its schema restore would fail
                shim = pg.make_bin_shim(self.p.new_bin, f"{self.run_dir(ctx)}/bin", strip)
            self.save_state(ctx, survey=survey, locale=locale, upgrade_bin=shim)
        return {
            "initdb": facts.initdb_checksum_flag(bool(survey["data_checksums"])),
            "locale": locale,
            "column_options_stripped": strip,
            "carried_settings": settings,
        }

    def _carry_configuration(
        self, ctx: RunContext, survey: dict[str, Any], settings: dict[str, str]
    ) -> None:
        """pg_hba, pg_ident and the configuration-file settings of the old cluster, written
        into the new one before writers stop (pg_upgrade leaves them alone)."""
        pg = self.pg(ctx)
        for key, name in (("hba_file", "pg_hba.conf"), ("ident_file", "pg_ident.conf")):
            text = pg.read_text(str(survey[key]))
            if text is not None:
                pg.write_text(f"{self.p.new_data}/{name}", text)
        block = facts.config_block(settings, self.p.from_version)
        pg.write_text(f"{self.p.new_data}/postgresql.conf", block, append=True)

    @plan_prepare_new.undo
    def discard_prepared_cluster(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self._discard_new(ctx)

    @change("Stop writers: checkpoint, then stop the old cluster (downtime starts)", targets=TARGET)
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
            proof = pg.stop_writers(self.old, backup_dir=self.backup_dir(ctx), run_id=ctx.run_id)
            self.save_state(
                ctx,
                writers_stopped_at=proof["writers_stopped_at"],
                system_identifier=pg.system_identifier(self.old),
                backup_stamps=proof.pop("backup_stamps"),  # pg_upgrade's guard hashes less
            )
            if self.fast:  # the archive now holds every write up to the stop
                proof["wal"] = pg.save_final_wal(self.old, self.wal_dir(ctx), self.base_dir(ctx))
        return proof

    @plan_stop_writers.undo
    def bring_back_old_cluster(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self._bring_back_old(ctx)

    # ------------------------------------------------------------------ 5. pg_upgrade
    @change("pg_upgrade to the new version, in the chosen mode", targets=TARGET)
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
            mode_consequence(p.mode),
        )

    @plan_upgrade.apply
    def upgrade(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        pg, state = self.pg(ctx), self.state(ctx)
        survey = state["survey"]
        with self.undone_on_failure(lambda: self._discard_new(ctx), "plan_upgrade"):
            if pg.exists(f"{self.p.new_data}/pg_upgrade_output.d"):  # an interrupted attempt
                pg.remove_cluster_dir(self.new, self.p.to_version)
                pg.initdb(
                    self.new,
                    checksums=bool(survey["data_checksums"]),
                    superuser=str(survey["bootstrap_superuser"]),
                    locale=state["locale"],
                )
                settings = facts.carried_settings(survey["settings"] or {})
                self._carry_configuration(ctx, survey, settings)
            if self.fast:  # from here the old data directory may be changed: restore
                self.save_state(ctx, upgrade_started=True)
            evidence = pg.pg_upgrade(
                self.old,
                self.new,
                mode=self.p.mode,
                work_dir=self.p.work_dir,
                superuser=str(survey["bootstrap_superuser"]),
                backup_dir=self.backup_dir(ctx),
                run_id=ctx.run_id,
                upgrade_bin=state.get("upgrade_bin"),
                backup_stamps=state.get("backup_stamps"),
            )
        self.save_state(ctx, pg_upgrade_s=evidence["pg_upgrade_s"])
        return evidence

    @plan_upgrade.undo
    def discard_new_cluster(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self._discard_new(ctx)

    # ------------------------------------------------------------------ 6. open, then check
    @change("Open the service on the new cluster, one snapshot per database first", targets=TARGET)
    def plan_switch(self, ctx: RunContext) -> Diff | None:
        if not ctx.planning and self.state(ctx).get("service_open_at"):
            return None
        return Diff.of_fields(
            f"{self.p.host}:{self.p.socket_dir}:{self.p.port}",
            {"served_by": None},
            {"served_by": f"PostgreSQL {self.p.to_version} ({self.p.new_data})"},
            "downtime ends; every table is read in the snapshot taken just before, for the "
            "post-checks",
        )

    @plan_switch.apply
    def switch_service(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        pg, state = self.pg(ctx), self.state(ctx)
        survey = state["survey"]
        with self.undone_on_failure(lambda: self._stop_new(ctx), "plan_switch"):
            opened, opened_at = pg.open_with_snapshots(
                self.new,
                self.log_file(f"pg{self.p.to_version}"),
                role=str(survey["bootstrap_superuser"]),
                databases=[str(d["name"]) for d in survey["databases"]],
                out_dir=f"{self.run_dir(ctx)}/opening",
                backup_dir=self.backup_dir(ctx),
                run_id=ctx.run_id,
                system_identifier=str(state["system_identifier"]),
                backup_stamps=state.get("backup_stamps"),
            )
            self.save_state(
                ctx, service_open_at=opened_at, opened=facts.fingerprints_to_json(opened)
            )
        state = self.state(ctx)
        return {
            "downtime_s": downtime_s(state),
            "endpoint": self.new.endpoint,
            "tables_read_at_opening": facts.fingerprint_summary(opened),
        }

    @plan_switch.undo
    def close_new_service(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self._stop_new(ctx)

    @check("Post-checks: version, every table's rows and checksum, extensions", targets=TARGET)
    def post_checks(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.planning:
            old_side = (
                "the base backup restored with the WAL archived to the stop (the way back, "
                "rehearsed)"
                if self.fast
                else "the old cluster at the stop"
            )
            return {
                "compares": "every table of every database, new at its opening against "
                f"{old_side}, read after the downtime"
            }
        pg, state = self.pg(ctx), self.state(ctx)
        version = facts.major_version(pg.version_num(self.new))
        if version != self.p.to_version:
            raise VerificationError(f"the new cluster answers as {version}")
        opened = facts.fingerprints_from_json(state["opened"])
        before = self.before(ctx)
        if before is None and self.fast:  # the way back, rehearsed: base backup + WAL
            scratch = Cluster(
                f"{self.run_dir(ctx)}/rehearsal",
                self.p.old_bin,
                self.p.private_port + 1,
                self.p.work_dir,
            )
            before = pg.rehearse_restore(
                scratch, self.base_dir(ctx), self.wal_dir(ctx), f"{scratch.data_dir}.log"
            )
        elif before is None:
            before = pg.fingerprint_stopped(
                self.private(self.old), self.log_file(f"pg{self.p.from_version}")
            )
        self.save_state(ctx, before=facts.fingerprints_to_json(before))
        problems = facts.compare_fingerprints(before, opened)
        old_ext = state["survey"]["extensions"]
        new_ext = pg.extensions(self.new, sorted(old_ext))
        problems += facts.missing_extensions(old_ext, new_ext)
        if problems:
            raise VerificationError("post-check failed: " + "; ".join(problems[:5]))
        self.after_work("post_checks")
        return {
            "version": version,
            "tables_equal": facts.fingerprint_summary(before),
            "extensions": new_ext,
        }

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
            "old_cluster_kept": None if self.fast else self.p.old_data,
            "way_back": f"base backup {self.base_dir(ctx)} + WAL {self.wal_dir(ctx)}"
            if self.fast
            else f"the old cluster in {self.p.old_data}",
        }

    # ------------------------------------------------------------------ 7. NetBox's version
    @change("NetBox: the server's PostgreSQL service says the new version", targets=TARGET)
    def plan_netbox_version(self, ctx: RunContext) -> list[Diff]:
        """With ``server``: the service's `VERSION_FIELD` becomes to_version, so that the next
        plan naming the server finds the new cluster's paths (an ETag-checked write; the undo
        puts the old value back). A server given by host has no NetBox service to update."""
        if not self.p.server:
            return []
        nb = self.netbox(ctx)
        found = service_host(nb, self.p.server, SERVICE)
        if found.custom_fields.get(VERSION_FIELD) == self.p.to_version:
            return []
        return [
            nb.plan_update(
                "ipam.service",
                found.service_id,
                {"custom_fields": {**found.custom_fields, VERSION_FIELD: self.p.to_version}},
                f"{found.name}'s {SERVICE} service: {VERSION_FIELD} "
                f"{found.custom_fields.get(VERSION_FIELD)} -> {self.p.to_version}",
            )
        ]

    @plan_netbox_version.apply
    def write_netbox_version(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.netbox(ctx).apply(diffs).evidence()

    @plan_netbox_version.undo
    def restore_netbox_version(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.netbox(ctx).undo(diffs)

    # ------------------------------------------------------------------ 8. witness
    plan_journal_entry = journal_step(
        "Witness the run in the NetBox journal of the server", targets=TARGET
    )
