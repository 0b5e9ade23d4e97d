"""The upgrade's own operations on top of the PostgreSQL gateway: a backup taken and verified by
restoring it, closing and opening the service endpoint, and bringing the old cluster back.

"Writers stopped" means the service endpoint (the socket and addresses applications use) is
closed: the cluster is restarted listening only on a private socket in the work directory, so
every application session ends and no new one can start, while the runbook can still read it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from runbooks.core.errors import RollbackError, VerificationError
from runbooks.core.gateway import reads, writes
from runbooks.gateways import postgres_facts as facts
from runbooks.gateways.postgres import Cluster, PostgresGateway
from runbooks.gateways.postgres_backup import MANIFEST, BackupManifest, UnverifiedBackupError

log = logging.getLogger(__name__)


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
        self.start(scratch, log_file, private=True)
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
    ) -> None:
        """Stop writers: restart the cluster on its private socket only (proves the backup)."""
        self.require_verified_backup(backup_dir, cluster, run_id)
        self.stop(cluster)
        self.start(private, log_file, private=True)
        if self.accepts_connections(cluster):
            raise VerificationError(f"{cluster.endpoint} still accepts connections")

    @writes
    def open_service(
        self,
        new: Cluster,
        log_file: str,
        *,
        old: Cluster,
        backup_dir: str,
        run_id: str,
    ) -> None:
        """Restart the new cluster with its own configuration: the service endpoint is its."""
        self.require_verified_backup(backup_dir, old, run_id)
        self.stop(new)
        self.start(new, log_file)
        if not self.accepts_connections(new):
            raise VerificationError(f"{new.endpoint} does not accept connections")

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
