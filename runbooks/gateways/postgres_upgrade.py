"""The upgrade's own operations on top of the PostgreSQL gateway: ``pg_upgrade --check`` and
pg_upgrade itself, a backup taken and verified by restoring it, closing and opening the service
endpoint, and bringing the old cluster back.

"Writers stopped" means the service endpoint (the socket and addresses applications use) is
closed: the cluster is restarted listening only on a private socket in the work directory, so
every application session ends and no new one can start, while the runbook can still read it.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runbooks.core.errors import InputError, RollbackError, VerificationError
from runbooks.core.gateway import Mode, reads, writes
from runbooks.gateways import postgres_facts as facts
from runbooks.gateways import postgres_open as gate
from runbooks.gateways import postgres_wal as wal
from runbooks.gateways.postgres import (
    Cluster,
    PostgresGateway,
    conninfo_dbname,
    initdb_argv,
    tail,
)
from runbooks.gateways.postgres_backup import (
    MANIFEST,
    BackupManifest,
    UnverifiedBackupError,
)
from runbooks.gateways.postgres_shell import CommandError, Shell

log = logging.getLogger(__name__)

PG_UPGRADE_OLD_PORT = 50432  # pg_upgrade's private servers: sockets in the work dir, no TCP
PG_UPGRADE_NEW_PORT = 50433
SCRATCH_PREFIX = "runbook-check."  # pg_upgrade --check's throwaway directory (mktemp -d -t)
UPGRADE_MODES = ("copy", "clone", "link", "swap")  # pg_upgrade --<mode>


@dataclass(frozen=True)
class UpgradeCheck:
    """pg_upgrade --check's report, and the throwaway directory it ran in (removed)."""

    report: str
    scratch: str


def dump_file(db: str) -> str:
    """A file name for a database's dump that survives any database name.

    >>> dump_file("inventory")
    'db-696e76656e746f7279.dump'
    """
    return f"db-{db.encode().hex()}.dump"


def db_of_dump(name: str) -> str:
    return bytes.fromhex(name.removeprefix("db-").removesuffix(".dump")).decode()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class UpgradeGateway(PostgresGateway):
    """PostgresGateway plus the backup, service switch and rollback of an upgrade."""

    def __init__(self, mode: Mode, shell: Shell) -> None:
        super().__init__(mode, shell)
        self._hashed: dict[str, tuple[str, str]] = {}  # path -> (inode/size/mtime, sha256)

    @reads
    def file_hashes(self, directory: str) -> dict[str, str]:
        """sha256 of every file in ``directory`` except the manifest. A file with the inode,
        size and modification time (to the nanosecond) it had when this gateway hashed it
        keeps that hash: the backup's proofs inside the downtime are a ``stat``, not a read
        of the whole backup, while a file replaced or written since is read again."""
        script = (
            'cd "$1" && for f in *; do [ -f "$f" ] && stat -c "%i/%s/%y/%n" -- "$f"; done; true'
        )
        out = self.shell.run(["sh", "-c", script, "sh", directory], check=False).stdout
        stats: dict[str, str] = {}
        for line in out.splitlines():
            key, _, name = line.rpartition("/")
            if name and name != MANIFEST:
                stats[name] = key
        stale = [n for n in stats if self._hashed.get(f"{directory}/{n}", ("", ""))[0] != stats[n]]
        if stale:
            hashed = self.shell.run(
                ["sh", "-c", 'cd "$1" && shift && sha256sum -- "$@"', "sh", directory, *stale]
            ).stdout
            for line in hashed.splitlines():
                digest, _, name = line.partition("  ")
                if name in stats:
                    self._hashed[f"{directory}/{name}"] = (stats[name], digest)
        return {
            n: self._hashed[f"{directory}/{n}"][1]
            for n in stats
            if f"{directory}/{n}" in self._hashed
        }

    @writes
    def take_backup(self, cluster: Cluster, directory: str, run_id: str) -> BackupManifest:
        """Globals plus one pg_dump per database, each in the snapshot its fingerprint is
        taken in, so the verification compares like with like while writers keep writing."""
        self.shell.run(["rm", "-rf", directory])
        self.make_dir(directory)
        self.shell.run(
            [
                cluster.bin("pg_dumpall"),
                "--globals-only",
                "-h",
                cluster.socket_dir,
                "-p",
                str(cluster.port),
                "-f",
                f"{directory}/globals.sql",
            ],
            timeout=600,
        )
        source: facts.Fingerprints = {}
        for db in self.databases(cluster):
            file, rc_file = f"{directory}/{dump_file(db)}", f"{directory}/.rc"
            dump = [cluster.bin("pg_dump"), "-h", cluster.socket_dir, "-p", str(cluster.port)]
            dump += ["-Fc", "-f", file, "-d", conninfo_dbname(db)]
            script = facts.fingerprint_script(dump, rc_file)
            out = self.shell.run([*cluster.psql(db), "-f", "-"], input=script, timeout=3600)
            rc = (self.read_text(rc_file) or "").strip()
            self.shell.run(["rm", "-f", rc_file])
            if rc != "0":
                raise VerificationError(f"pg_dump of {db} failed (exit {rc or '?'})")
            source[db] = facts.parse_fingerprint_output(out.stdout)
        manifest = BackupManifest(
            run_id=run_id,
            system_identifier=self.system_identifier(cluster),
            directory=directory,
            files=self.file_hashes(directory),
            source=source,
            taken_at=now_iso(),
        )
        self.write_text(f"{directory}/{MANIFEST}", manifest.to_json())
        return manifest

    @writes
    def verify_backup(
        self, directory: str, old: Cluster, scratch: Cluster, superuser: str
    ) -> BackupManifest:
        """Restore the backup into a scratch instance of the old version, fingerprint it and
        record the comparison in the manifest. Raises UnverifiedBackupError on a difference."""
        manifest = self.read_manifest(directory)
        if manifest is None:
            raise UnverifiedBackupError(f"no backup manifest in {directory}")
        self.remove_cluster_dir(scratch, facts.major_version(self._version_num(old)))
        self.shell.run(
            [scratch.bin("initdb"), "-D", scratch.data_dir, "-U", superuser, "--auth=peer", "-N"],
            timeout=300,
        )
        log_file = f"{scratch.data_dir}.log"
        self.start(scratch, log_file, private=True, throwaway=True)
        try:
            self._restore_into(scratch, directory, manifest)
            restored = self.fingerprints(scratch)
        finally:
            self.stop(scratch)
        self.shell.run(["rm", "-rf", scratch.data_dir, log_file])
        manifest = manifest.with_restore(restored, now_iso())
        self.write_text(f"{directory}/{MANIFEST}", manifest.to_json())
        if manifest.problems:
            raise UnverifiedBackupError(
                "the restored backup differs from the source: " + "; ".join(manifest.problems[:3]),
                problems=list(manifest.problems),
            )
        return manifest

    def _restore_into(self, scratch: Cluster, directory: str, manifest: BackupManifest) -> None:
        proc = self.shell.run(
            [
                scratch.bin("psql"),
                "-X",
                "-q",
                "-h",
                scratch.socket_dir,
                "-p",
                str(scratch.port),
                "-d",
                "postgres",
                "-f",
                f"{directory}/globals.sql",
            ],
            check=False,
        )
        errors = [
            line
            for line in proc.stderr.splitlines()
            if "ERROR" in line and "already exists" not in line
        ]
        if proc.returncode != 0 or errors:
            raise VerificationError(f"restoring globals failed: {' | '.join(errors[:3])}")
        present = set(self.databases(scratch))
        for name in sorted(manifest.files):
            if not name.endswith(".dump"):
                continue
            db = db_of_dump(name)
            restore = [scratch.bin("pg_restore"), "--exit-on-error", "-h", scratch.socket_dir]
            restore += ["-p", str(scratch.port)]
            restore += ["-d", conninfo_dbname(db)] if db in present else ["-C", "-d", "postgres"]
            self.shell.run([*restore, f"{directory}/{name}"], timeout=3600)

    def _version_num(self, cluster: Cluster) -> int:
        return int(self.query_json(cluster, "SELECT current_setting('server_version_num')::int"))

    @reads
    def version_num(self, cluster: Cluster) -> int:
        return self._version_num(cluster)

    @writes
    def stop_writers(self, cluster: Cluster, *, backup_dir: str, run_id: str) -> dict[str, Any]:
        """Stop writers: stop the cluster (every session ends, the endpoint closes). A sync
        and a checkpoint first, while applications still write, leave the shutdown and
        pg_upgrade little to flush. Proves the backup first; returns the proof, the moment
        the writers stopped and, under ``backup_stamps``, the backup files' stamps taken just
        before they were hashed (for pg_upgrade's guard; not a thing for the record)."""
        stamps = self.file_stamps(backup_dir)
        proof = self.require_verified_backup(backup_dir, cluster, run_id)
        # the file system's dirty pages (backup, restore test, initdb) written out now: else
        # pg_upgrade's fsyncs inside the downtime wait for them
        self.shell.run(["sync", "-f", cluster.data_dir, backup_dir], timeout=3600)
        self.shell.run([*cluster.psql(), "-c", "CHECKPOINT"], timeout=3600)
        stopped_at = now_iso()
        self.stop(cluster)
        if self.accepts_connections(cluster):
            raise VerificationError(f"{cluster.endpoint} still accepts connections")
        return {"writers_stopped_at": stopped_at, **proof, "backup_stamps": stamps}

    @writes
    def open_with_snapshots(
        self,
        new: Cluster,
        log_file: str,
        *,
        role: str,
        databases: list[str],
        out_dir: str,
        backup_dir: str,
        run_id: str,
        system_identifier: str,
        backup_stamps: Mapping[str, str] | None = None,
    ) -> tuple[facts.Fingerprints, str]:
        """Start the new cluster on its service endpoint behind the gate
        (``postgres_open``), take one snapshot per database, open the service, and read
        every table in those snapshots. Returns the fingerprints at the opening and its
        time. Proves the backup (of the old cluster, ``system_identifier``) first, hashing
        only what changed since ``backup_stamps`` (`stop_writers`)."""
        self.prove_backup(backup_dir, run_id, system_identifier, stamped=backup_stamps)
        self.stop(new)  # an interrupted opening (a resumed run) starts again
        if self.exists(f"{out_dir}/pg_hba.conf.service"):  # and its gate comes off first
            for name in ("pg_hba.conf.service", "postgresql.conf"):
                target = f"{new.data_dir}/{name.removesuffix('.service')}"
                self.shell.run(["cp", f"{out_dir}/{name}", target])
        self.shell.run(["rm", "-rf", out_dir])
        self.make_dir(out_dir)
        self.write_text(f"{out_dir}/snapshot.sql", gate.snapshot_script())
        argv = gate.gated_open_argv(
            new.data_dir, new.bin_dir, log_file, out_dir, role, new.socket_dir, new.port,
            [conninfo_dbname(db) for db in databases],
        )  # fmt: skip
        proc = self.shell.run(argv, check=False, timeout=7200)
        opened = proc.stdout.strip().splitlines()[:1]
        if proc.returncode != 0 or not opened:
            raise VerificationError(
                f"opening {new.endpoint} failed (exit {proc.returncode}): {tail(proc.stderr)}"
            )
        if not self.accepts_connections(new):
            raise VerificationError(f"{new.endpoint} does not accept connections")
        found: facts.Fingerprints = {}
        for i, db in enumerate(databases, start=1):
            text = self.read_text(f"{out_dir}/fp.{i}.out") or ""
            found[db] = facts.parse_fingerprint_output(text)
        return found, opened[0]

    @writes
    def fingerprint_stopped(self, private: Cluster, log_file: str) -> facts.Fingerprints:
        """Every table of a stopped cluster (the old one, kept by copy mode): started on its
        private socket where no application reaches it, read, stopped again."""
        self.start(private, log_file, private=True)
        try:
            return self.fingerprints(private)
        finally:
            self.stop(private)

    @writes
    def bring_back_old(
        self,
        old: Cluster,
        new: Cluster | None,
        log_file: str,
        expected: facts.Fingerprints | None,
        from_version: int,
        private: Cluster | None = None,
    ) -> dict[str, Any]:
        """Rollback: stop the new cluster wherever it runs, prove every table of the old one
        as before (``expected``, read on its ``private`` socket before any application can
        write), and start it on its service endpoint as the old version."""
        if new is not None and self.exists(f"{new.data_dir}/PG_VERSION"):
            self.stop(new)
        self.stop(old)
        evidence: dict[str, Any] = {"endpoint": old.endpoint}
        if expected is not None and private is not None:  # read before anyone writes again
            self.start(private, log_file, private=True)
            try:
                problems = facts.compare_fingerprints(expected, self.fingerprints(private))
            finally:
                self.stop(private)
            if problems:
                raise RollbackError(
                    "the old cluster is back but differs: " + "; ".join(problems[:3])
                )
            evidence["tables_verified"] = sum(len(t) for t in expected.values())
        self.start(old, log_file)
        version = facts.major_version(self._version_num(old))
        if version != from_version:
            raise RollbackError(f"{old.endpoint} answers as PostgreSQL {version}")
        return {"version": version, **evidence}

    # ------------------------------------------------------------------ link/swap: WAL
    def _start_with(
        self, cluster: Cluster, log_file: str, settings: dict[str, str], *, private: bool
    ) -> None:
        """pg_ctl start with ``settings`` on the command line (never written to a file)."""
        if private:
            settings = {
                "listen_addresses": "",
                "port": str(cluster.port),
                "unix_socket_directories": cluster.socket_dir,
                **settings,
            }
        argv = [cluster.bin("pg_ctl"), "start", "-D", cluster.data_dir, "-l", log_file, "-w"]
        argv += ["-t", "3600", "-o", wal.server_options(settings)]
        self.shell.run(argv, timeout=3700)

    @writes
    def start_archiving(self, old: Cluster, wal_dir: str, log_file: str) -> dict[str, Any]:
        """Restart the old cluster with WAL archiving into ``wal_dir`` (command-line settings:
        nothing of its configuration changes, and a later start is without them)."""
        self.make_dir(wal_dir)
        command = wal.archive_command(wal_dir)
        self.stop(old)
        self._start_with(
            old, log_file, {"archive_mode": "on", "archive_command": command}, private=False
        )
        sql = (
            "SELECT to_json(current_setting('archive_mode') || ' ' "
            "|| current_setting('archive_command'))"
        )
        now = str(self.query_json(old, sql))
        if now != f"on {command}":
            raise VerificationError(f"WAL archiving is not on after the restart: {now!r}")
        return {"archive_mode": "on", "archive_command": command}

    @writes
    def stop_archiving(self, old: Cluster, log_file: str) -> None:
        """Undo ``start_archiving``: the old cluster restarted with its own configuration."""
        if self.is_running(old):
            self.stop(old)
        self.start(old, log_file)

    @writes
    def take_base_backup(self, old: Cluster, directory: str) -> dict[str, Any]:
        """pg_basebackup (plain, its WAL streamed in) of the running old cluster, checked
        against its manifest by pg_verifybackup."""
        self.shell.run(["rm", "-rf", directory])
        argv = [old.bin("pg_basebackup"), "-h", old.socket_dir, "-p", str(old.port)]
        argv += ["-D", directory, "-Fp", "-X", "stream", "-c", "fast"]
        self.shell.run(argv, timeout=7200)
        check = self.shell.run([old.bin("pg_verifybackup"), directory], timeout=7200)
        label = self.read_text(f"{directory}/backup_label") or ""
        return {
            "base_backup": directory,
            "start_wal": wal.start_wal_file(label),
            "bytes": self.dir_bytes(directory),
            "pg_verifybackup": tail(check.stdout, 1),
        }

    @writes
    def save_final_wal(self, old: Cluster, wal_dir: str, base_dir: str) -> dict[str, Any]:
        """With the old cluster shut down: copy the segments its archiver had not archived
        (the unfinished last one) into the archive, and prove the archive runs without a gap
        from the base backup's start to the shutdown checkpoint."""
        control = self.controldata(old)
        if control.get("Database cluster state") != "shut down":
            raise VerificationError(f"{old.data_dir} is not cleanly shut down: {control}")
        last = control["Latest checkpoint's REDO WAL file"]
        seg = int(control["Bytes per WAL segment"])
        listing = self.shell.run(["ls", "-1", f"{old.data_dir}/pg_wal"]).stdout.split()
        archived = set(self.shell.run(["ls", "-1", wal_dir]).stdout.split())
        last_no = wal.segment_number(last, seg)
        missing = [
            n
            for n in listing
            if wal.SEGMENT.match(n) and n not in archived and wal.segment_number(n, seg) <= last_no
        ]
        if missing:
            self.shell.run(["cp", *(f"{old.data_dir}/pg_wal/{n}" for n in missing), wal_dir])
        first = wal.start_wal_file(self.read_text(f"{base_dir}/backup_label") or "")
        holes = wal.gaps(sorted(archived | set(missing)), first, last, seg)
        if holes:
            raise VerificationError(f"the WAL archive misses {len(holes)} segments: {holes[:3]}")
        return {
            "stop_lsn": control["Latest checkpoint location"],
            "wal_from": first,
            "wal_to": last,
            "saved_from_pg_wal": missing,
        }

    def _recover(
        self, private: Cluster, base_dir: str, wal_dir: str, log_file: str
    ) -> facts.Fingerprints:
        """Copy the base backup into ``private``'s data directory, replay the archived WAL to
        its end (the stop), read every table; the server is left running privately."""
        self.shell.run(["rm", "-rf", private.data_dir])
        self.shell.run(["cp", "-a", base_dir, private.data_dir])
        self.shell.run(["chmod", "0700", private.data_dir])
        self.write_text(f"{private.data_dir}/recovery.signal", "")
        settings = {
            "restore_command": wal.restore_command(wal_dir),
            "archive_mode": "off",
            "hot_standby": "off",  # no connection before recovery has ended
        }
        self._start_with(private, log_file, settings, private=True)
        # pg_ctl -w returns once recovery runs; connections come when it has ended
        ready = [private.bin("pg_isready"), "-q", "-h", private.socket_dir, "-p", str(private.port)]
        wait = 'i=0; until "$@"; do i=$((i+1)); [ $i -gt 36000 ] && exit 1; sleep 0.1; done'
        self.shell.run(["sh", "-c", wait, "sh", *ready], timeout=3700)
        if self.query_json(private, "SELECT to_json(pg_is_in_recovery())") is not False:
            raise VerificationError(f"{private.data_dir} is still in recovery")
        return self.fingerprints(private)

    @writes
    def rehearse_restore(
        self, scratch: Cluster, base_dir: str, wal_dir: str, log_file: str
    ) -> facts.Fingerprints:
        """The way back, rehearsed in a scratch directory: every table as it was at the stop."""
        try:
            return self._recover(scratch, base_dir, wal_dir, log_file)
        finally:
            self.stop(scratch)
            self.shell.run(["rm", "-rf", scratch.data_dir])

    @writes
    def restore_old_from_base(
        self,
        old: Cluster,
        private: Cluster,
        *,
        base_dir: str,
        wal_dir: str,
        aside: str,
        log_file: str,
        expected: facts.Fingerprints | None,
        from_version: int,
    ) -> dict[str, Any]:
        """Rollback after link or swap: the old data directory (unusable) moved to ``aside``,
        the base backup restored in its place with the archived WAL replayed to the stop,
        every table proven against ``expected``, then served again."""
        self.shell.run(["rm", "-rf", aside])
        if self.exists(old.data_dir):
            self.shell.run(["mv", old.data_dir, aside])
        try:
            restored = self._recover(private, base_dir, wal_dir, log_file)
        finally:
            self.stop(private)
        evidence: dict[str, Any] = {"restored_from": base_dir, "wal": wal_dir, "aside": aside}
        if expected is not None:
            problems = facts.compare_fingerprints(expected, restored)
            if problems:
                raise RollbackError("the restored cluster differs: " + "; ".join(problems[:3]))
            evidence["tables_verified"] = sum(len(t) for t in expected.values())
        self.start(old, log_file)
        version = facts.major_version(self._version_num(old))
        if version != from_version:
            raise RollbackError(f"{old.endpoint} answers as PostgreSQL {version}")
        return {"version": version, **evidence}

    @reads
    def upgrade_check(
        self, old: Cluster, new_bin: str, *, checksums: bool, superuser: str
    ) -> UpgradeCheck:
        """``pg_upgrade --check`` of the running old cluster against a throwaway new cluster
        initialised with the given checksum setting.

        A plan makes this check, so nothing of the server's is written: the throwaway cluster,
        pg_upgrade's logs and sockets live in a directory of their own (``mktemp -d`` in the
        server's temporary directory), removed when the check ends, by the script's trap and
        again here, and found gone before the report is returned."""
        scratch = self.shell.run(["mktemp", "-d", "-t", f"{SCRATCH_PREFIX}XXXXXX"]).stdout.strip()
        if not scratch.startswith("/") or SCRATCH_PREFIX not in scratch:
            raise VerificationError(f"mktemp gave {scratch!r}, not a scratch directory")
        new_dir = f"{scratch}/new"
        initdb = initdb_argv(new_dir, new_bin, checksums, superuser, self.locale(old))
        check = ["env", "-C", scratch, f"{new_bin}/pg_upgrade", "--check"]
        check += ["-b", old.bin_dir, "-B", new_bin, "-d", old.data_dir, "-D", new_dir]
        check += ["-p", str(old.port), "-P", str(PG_UPGRADE_NEW_PORT), "-s", scratch]
        check += ["-U", superuser]
        script = (
            "trap 'rm -rf -- \"$1\"' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; "
            "trap 'exit 143' TERM; "
            f'{shlex.join(initdb)} >"$1/initdb.log" 2>&1 '
            '|| { tail -n 5 "$1/initdb.log"; exit 3; }; '
            f"{shlex.join(check)}"
        )
        try:
            proc = self.shell.run(["sh", "-c", script, "sh", scratch], check=False, timeout=600)
        finally:
            gone = self.shell.run(
                ["sh", "-c", 'rm -rf -- "$1"; ! test -e "$1"', "sh", scratch], check=False
            )
        if gone.returncode != 0:
            raise VerificationError(f"the scratch directory {scratch} could not be removed")
        report = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0:
            raise VerificationError(
                f"pg_upgrade --check failed: {tail(report)}", report=report[-4000:]
            )
        return UpgradeCheck(report, scratch)

    @reads
    def upgrade_modes(self, bin_dir: str) -> list[str]:
        """The transfer modes this pg_upgrade offers (``--swap`` came with PostgreSQL 18)."""
        text = self.shell.run([f"{bin_dir}/pg_upgrade", "--help"]).stdout
        offered = set(re.findall(r"--(\w+)", text))
        return [m for m in UPGRADE_MODES if m in offered]

    @writes
    def make_bin_shim(self, real_bin: str, shim_dir: str, strip_options: list[str]) -> str:
        """A bin directory of links to ``real_bin`` whose pg_restore strips column options the
        new server refuses (see ``postgres_facts.pg_restore_shim``). Returns its path."""
        self.shell.run(["rm", "-rf", shim_dir])
        self.shell.run(["mkdir", "-p", shim_dir])
        link = 'for f in "$1"/*; do ln -s "$f" "$2/"; done; rm "$2/pg_restore"'
        self.shell.run(["sh", "-c", link, "sh", real_bin, shim_dir])
        self.write_text(f"{shim_dir}/pg_restore", facts.pg_restore_shim(real_bin, strip_options))
        self.shell.run(["chmod", "0755", f"{shim_dir}/pg_restore"])
        return shim_dir

    @writes
    def pg_upgrade(
        self,
        old: Cluster,
        new: Cluster,
        *,
        mode: str,
        work_dir: str,
        superuser: str,
        backup_dir: str,
        run_id: str,
        upgrade_bin: str | None = None,
        backup_stamps: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """pg_upgrade: copy or clone keep the old cluster startable as it was; link and swap
        do not: once the new cluster has started, the old one cannot be (the runbook refuses
        them until it has a way back without the old cluster). ``upgrade_bin`` replaces the
        new bin dir for pg_upgrade (a shim, ``make_bin_shim``). ``backup_stamps`` (from
        `stop_writers`): the backup files unchanged since the stop are not hashed again
        inside the downtime."""
        if mode not in UPGRADE_MODES:
            raise InputError(f"pg_upgrade mode {mode!r}: one of {', '.join(UPGRADE_MODES)}")
        proof = self.require_verified_backup(backup_dir, old, run_id, stamped=backup_stamps)
        if self.is_running(old):
            raise VerificationError(f"{old.data_dir} is still running; stop writers first")
        jobs = self.shell.run(["nproc"], check=False).stdout.strip() or "1"
        started = datetime.now(UTC)
        try:
            proc = self.shell.run(
                [
                    "env",
                    "-C",
                    work_dir,
                    new.bin("pg_upgrade"),
                    f"--{mode}",
                    f"--jobs={jobs}",
                    "-b",
                    old.bin_dir,
                    "-B",
                    upgrade_bin or new.bin_dir,
                    "-d",
                    old.data_dir,
                    "-D",
                    new.data_dir,
                    "-p",
                    str(PG_UPGRADE_OLD_PORT),
                    "-P",
                    str(PG_UPGRADE_NEW_PORT),
                    "-s",
                    work_dir,
                    "-U",
                    superuser,
                ],
                timeout=3600,
            )
        except CommandError as exc:
            logs = self._upgrade_logs(new.data_dir)
            raise VerificationError(
                f"pg_upgrade failed: {tail(logs, 4) or exc}", log_tail=logs[-4000:]
            ) from exc
        seconds = (datetime.now(UTC) - started).total_seconds()
        return {"pg_upgrade_s": round(seconds, 2), "report": tail(proc.stdout, 6), **proof}

    def _upgrade_logs(self, data_dir: str) -> str:
        script = (
            'for f in $(ls -t "$1"/pg_upgrade_output.d/*/log/*.log 2>/dev/null | head -3); '
            'do echo "== $f"; tail -n 15 "$f"; done'
        )
        return self.shell.run(["sh", "-c", script, "sh", data_dir], check=False).stdout
