"""The upgrade's own operations on top of the PostgreSQL gateway: ``pg_upgrade --check`` and
pg_upgrade itself, a backup taken and verified by restoring it, closing and opening the service
endpoint, and bringing the old cluster back.

"Writers stopped" means the service endpoint (the socket and addresses applications use) is
closed: the cluster is restarted listening only on a private socket in the work directory, so
every application session ends and no new one can start, while the runbook can still read it.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runbooks.core.errors import InputError, RollbackError, VerificationError
from runbooks.core.gateway import reads, writes
from runbooks.gateways import postgres_facts as facts
from runbooks.gateways.postgres import Cluster, PostgresGateway, initdb_argv, tail
from runbooks.gateways.postgres_backup import MANIFEST, BackupManifest, UnverifiedBackupError
from runbooks.gateways.postgres_shell import CommandError

log = logging.getLogger(__name__)

PG_UPGRADE_OLD_PORT = 50432  # pg_upgrade's private servers: sockets in the work dir, no TCP
PG_UPGRADE_NEW_PORT = 50433
SCRATCH_PREFIX = "runbook-check."  # pg_upgrade --check's throwaway directory (mktemp -d -t)


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
            dump += ["-Fc", "-f", file, "-d", db]
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
            restore += ["-d", db] if db in present else ["-C", "-d", "postgres"]
            self.shell.run([*restore, f"{directory}/{name}"], timeout=3600)

    def _version_num(self, cluster: Cluster) -> int:
        return int(self.query_json(cluster, "SELECT current_setting('server_version_num')::int"))

    @reads
    def version_num(self, cluster: Cluster) -> int:
        return self._version_num(cluster)

    @writes
    def close_service(
        self, cluster: Cluster, private: Cluster, log_file: str, *, backup_dir: str, run_id: str
    ) -> dict[str, Any]:
        """Stop writers: restart the cluster on its private socket only. Proves the backup
        first and returns the proof."""
        proof = self.require_verified_backup(backup_dir, cluster, run_id)
        self.stop(cluster)
        self.start(private, log_file, private=True)
        if self.accepts_connections(cluster):
            raise VerificationError(f"{cluster.endpoint} still accepts connections")
        return proof

    @writes
    def open_service(
        self,
        new: Cluster,
        log_file: str,
        *,
        old: Cluster,
        backup_dir: str,
        run_id: str,
    ) -> dict[str, Any]:
        """Restart the new cluster with its own configuration: the service endpoint is its.
        Proves the backup first and returns the proof."""
        proof = self.require_verified_backup(backup_dir, old, run_id)
        self.stop(new)
        self.start(new, log_file)
        if not self.accepts_connections(new):
            raise VerificationError(f"{new.endpoint} does not accept connections")
        return proof

    @writes
    def bring_back_old(
        self,
        old: Cluster,
        new: Cluster | None,
        log_file: str,
        expected: facts.Fingerprints | None,
        from_version: int,
    ) -> dict[str, Any]:
        """Rollback: stop the new cluster wherever it runs, start the old one on its service
        endpoint, and prove it is the old version with every table as before."""
        if new is not None and self.exists(f"{new.data_dir}/PG_VERSION"):
            self.stop(new)
        self.stop(old)
        self.start(old, log_file)
        version = facts.major_version(self._version_num(old))
        if version != from_version:
            raise RollbackError(f"{old.endpoint} answers as PostgreSQL {version}")
        evidence: dict[str, Any] = {"version": version, "endpoint": old.endpoint}
        if expected is not None:
            problems = facts.compare_fingerprints(expected, self.fingerprints(old))
            if problems:
                raise RollbackError(
                    "the old cluster is back but differs: " + "; ".join(problems[:3])
                )
            evidence["tables_verified"] = sum(len(t) for t in expected.values())
        return evidence

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
    ) -> dict[str, Any]:
        """pg_upgrade in copy or clone mode: the old cluster stays startable as it was.
        ``upgrade_bin`` replaces the new bin dir for pg_upgrade (a shim, ``make_bin_shim``)."""
        if mode not in ("copy", "clone"):
            raise InputError(f"pg_upgrade mode {mode!r}: only copy or clone keep the old cluster")
        proof = self.require_verified_backup(backup_dir, old, run_id)
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
