"""The PostgreSQL gateway: facts about a cluster and the operations of a major-version upgrade.

A cluster is described by parameters (``Cluster``: data directory, binaries, port and socket
directory); how commands reach the server is a ``Shell`` (this machine, a lab host's
namespaces, or SSH). Every client program runs on the server over the unix socket.

Reads are allowed in plans. The upgrade's own operations are in ``postgres_upgrade``: there
every destructive write (closing the service, pg_upgrade, opening the service on the new
cluster) first proves a verified backup of this cluster from this run
(``postgres_backup.require_verified``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Self

from runbooks.core.context import RunContext
from runbooks.core.errors import InputError, VerificationError
from runbooks.core.gateway import Gateway, Mode, reads, writes
from runbooks.gateways import postgres_facts as facts
from runbooks.gateways import postgres_parallel as parallel
from runbooks.gateways.ansible_settings import AnsibleSettings
from runbooks.gateways.postgres_backup import (
    MANIFEST,
    BackupManifest,
    require_verified,
    unchanged_since,
)
from runbooks.gateways.postgres_shell import LocalShell, NsenterShell, Shell, SshShell

log = logging.getLogger(__name__)

# A read never writes: its session starts every transaction read-only, so the server itself
# refuses an INSERT, a nextval() or a function that writes.
READ_ONLY_SESSION = "PGOPTIONS=-c default_transaction_read_only=on"

# A read is one SELECT (or WITH … SELECT) statement: psql runs a string that starts with a
# backslash as its own command (`\! cmd` is a shell), a second statement or a comment could hide
# one that leaves the read-only transaction (COMMIT, SET ..., set_config), and a few functions
# act even in a read-only transaction (large-object export, ending other sessions, reloading
# the configuration; COPY … TO PROGRAM is a statement of its own). Over-eager on purpose.
_A_READ = re.compile(r"\A\s*(select|with)\b", re.IGNORECASE)
_LEAVES_READ_ONLY = re.compile(
    r";|--|/\*|read\s+write|transaction_read_only|set_config"
    r"|\b(lo_import|lo_export|lo_\w+|pg_terminate_backend|pg_cancel_backend|pg_reload_conf"
    r"|pg_rotate_logfile|pg_switch_wal|pg_promote|pg_file_\w+|pg_create_\w+|pg_drop_\w+"
    r"|dblink\w*|pg_advisory\w*)\s*\(",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Cluster:
    """Where a cluster's files and binaries are and where it listens (unix socket)."""

    data_dir: str
    bin_dir: str
    port: int
    socket_dir: str

    def bin(self, program: str) -> str:
        return f"{self.bin_dir}/{program}"

    def at(self, port: int, socket_dir: str) -> Cluster:
        return replace(self, port=port, socket_dir=socket_dir)

    @property
    def endpoint(self) -> str:
        return f"{self.socket_dir}/.s.PGSQL.{self.port}"

    def psql(self, db: str = "postgres") -> list[str]:
        return [
            self.bin("psql"),
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.socket_dir,
            "-p",
            str(self.port),
            "-d",
            conninfo_dbname(db),
        ]

    def psql_read_only(self, db: str = "postgres") -> list[str]:
        """``psql`` in a session whose transactions are read-only (``READ_ONLY_SESSION``)."""
        return ["env", READ_ONLY_SESSION, *self.psql(db)]


def conninfo_dbname(db: str) -> str:
    r"""``db`` for ``psql -d`` as a database name only: psql (libpq) reads a ``-d`` holding
    ``=`` or starting with ``postgresql://`` as a connection string, which could name another
    host, port or database; a ``dbname=`` connection string, its value quoted as libpq
    reads it (single quotes, ``\`` before ``'`` and ``\``), is never more than the name.

    >>> conninfo_dbname("sales"), conninfo_dbname("x host=203.0.113.9")
    ("dbname='sales'", "dbname='x host=203.0.113.9'")
    >>> print(conninfo_dbname("o'b\\c"))
    dbname='o\'b\\c'
    """
    return "dbname='" + db.replace("\\", "\\\\").replace("'", "\\'") + "'"


def shell_from(params: Any) -> Shell:
    """The shell a runbook's parameters describe: ``transport`` local | nsenter | ssh (as the
    hosts' remote user of the settings, `AnsibleSettings.remote_user`)."""
    transport = getattr(params, "transport", "local")
    os_user = getattr(params, "os_user", "postgres")
    if transport == "local":
        return LocalShell(os_user)
    if transport == "nsenter":
        pid = getattr(params, "nsenter_pid", None)
        if not pid:
            raise InputError("transport nsenter needs nsenter_pid (the lab host's holder)")
        return NsenterShell(int(pid), os_user, name=str(getattr(params, "host", "") or pid))
    if transport == "ssh":
        host, key = getattr(params, "host", None), getattr(params, "ssh_key", None)
        if not host or not key:
            raise InputError("transport ssh needs host and ssh_key")
        # logged in as every runbook logs in to the hosts (Ansible's remote user setting,
        # RUNBOOKS_ANSIBLE_USER); unset: ssh's own choice, as Ansible's would be
        user = AnsibleSettings.from_env().remote_user
        return SshShell(str(host), str(key), user=user, os_user=os_user)
    raise InputError(f"unknown transport {transport!r} (local, nsenter, ssh)")


class PostgresGateway(Gateway):
    """One database server, through one shell, for one run."""

    def __init__(self, mode: Mode, shell: Shell) -> None:
        super().__init__(mode)
        self.shell = shell

    @classmethod
    def open(cls, ctx: RunContext, key: str) -> Self:
        return cls(ctx.mode, shell_from(ctx.params))

    def close(self) -> None:
        self.shell.close()

    # ------------------------------------------------------------------ facts
    @reads
    def binary_version(self, bin_dir: str) -> int:
        out = self.shell.run([f"{bin_dir}/postgres", "--version"]).stdout
        return facts.parse_binary_version(out)

    @reads
    def controldata(self, cluster: Cluster) -> dict[str, str]:
        out = self.shell.run([cluster.bin("pg_controldata"), "-D", cluster.data_dir]).stdout
        return facts.parse_controldata(out)

    @reads
    def system_identifier(self, cluster: Cluster) -> str:
        return self.controldata(cluster)["Database system identifier"]

    @reads
    def is_running(self, cluster: Cluster) -> bool:
        argv = [cluster.bin("pg_ctl"), "status", "-D", cluster.data_dir]
        proc = self.shell.run(argv, check=False)
        return proc.returncode == 0

    @reads
    def accepts_connections(self, cluster: Cluster) -> bool:
        argv = [cluster.bin("pg_isready"), "-q", "-h", cluster.socket_dir, "-p", str(cluster.port)]
        return self.shell.run(argv, check=False, timeout=15).returncode == 0

    @reads
    def query_json(self, cluster: Cluster, sql: str, db: str = "postgres") -> Any:
        """Run one query returning one JSON value, in a read-only session: the server refuses
        any write, and a statement that could leave the read-only transaction is refused here.
        """
        if not _A_READ.match(sql) or _LEAVES_READ_ONLY.search(sql):
            raise InputError(
                f"query_json only reads: {' '.join(sql.split())[:80]!r} is not one plain "
                "SELECT: it could leave its read-only transaction or act outside it"
            )
        out = self.shell.run([*cluster.psql_read_only(db), "-c", sql]).stdout.strip()
        return json.loads(out) if out else None

    @reads
    def survey(self, cluster: Cluster) -> dict[str, Any]:
        """Version, databases and sizes, connections, replication, checksums, locale, settings."""
        data = self.query_json(cluster, _SURVEY_SQL)
        if not isinstance(data, dict):
            raise VerificationError(f"{cluster.endpoint}: survey returned nothing")
        data["extensions"] = self.extensions(cluster, [d["name"] for d in data["databases"]])
        return data

    @reads
    def extensions(self, cluster: Cluster, databases: list[str]) -> dict[str, dict[str, str]]:
        sql = "SELECT coalesce(json_object_agg(extname, extversion), '{}') FROM pg_extension"
        return {db: dict(self.query_json(cluster, sql, db)) for db in databases}

    @reads
    def column_options(self, cluster: Cluster) -> dict[str, int]:
        """Column option names in use (all databases) with how many columns carry each."""
        total: dict[str, int] = {}
        for db in self.databases(cluster):
            for key, n in dict(self.query_json(cluster, facts.COLUMN_OPTIONS_SQL, db)).items():
                total[key] = total.get(key, 0) + int(n)
        return total

    @reads
    def databases(self, cluster: Cluster) -> list[str]:
        sql = (
            "SELECT coalesce(json_agg(datname ORDER BY datname), '[]') FROM pg_database "
            "WHERE datallowconn AND NOT datistemplate"
        )
        return [str(d) for d in self.query_json(cluster, sql)]

    @reads
    def fingerprints(self, cluster: Cluster, *, quiet_jobs: int = 1) -> facts.Fingerprints:
        """Every table's row count and checksum, per database: one snapshot per database, or,
        on a cluster nobody writes to, ``quiet_jobs`` sessions reading page ranges at once."""
        out: facts.Fingerprints = {}
        script = facts.fingerprint_script()
        for db in self.databases(cluster):
            if quiet_jobs < 2:
                argv = [*cluster.psql_read_only(db), "-f", "-"]
                text = self.shell.run(argv, input=script).stdout
                out[db] = facts.parse_fingerprint_output(text)
                continue
            sizes = {str(t["table"]): int(t["pages"]) for t in self.query_json(
                cluster, parallel.TABLE_SIZES_SQL, db)}  # fmt: skip
            scripts = parallel.parallel_scripts(sizes, quiet_jobs)
            argv = [*cluster.psql_read_only(db), "-f", "-"]
            with ThreadPoolExecutor(len(scripts) or 1) as pool:
                runs = list(pool.map(lambda s, a=argv: self.shell.run(a, input=s), scripts))
            out[db] = parallel.add_parts([r.stdout for r in runs])
        return out

    @reads
    def dir_bytes(self, path: str) -> int:
        return int(self.shell.run(["du", "-sb", path]).stdout.split()[0])

    @reads
    def free_bytes(self, path: str) -> int:
        """Free bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
        script = (
            'p=$1; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; '
            'df -B1 --output=avail "$p" | tail -1'
        )
        return int(self.shell.run(["sh", "-c", script, "sh", path]).stdout.strip())

    @reads
    def exists(self, path: str) -> bool:
        return self.shell.run(["test", "-e", path], check=False).returncode == 0

    @reads
    def read_text(self, path: str) -> str | None:
        proc = self.shell.run(["cat", path], check=False)
        return proc.stdout if proc.returncode == 0 else None

    @reads
    def file_hashes(self, directory: str) -> dict[str, str]:
        """sha256 of every file in ``directory`` except the manifest."""
        script = 'cd "$1" && for f in *; do [ -f "$f" ] && sha256sum -- "$f"; done; true'
        out = self.shell.run(["sh", "-c", script, "sh", directory], check=False).stdout
        hashes: dict[str, str] = {}
        for line in out.splitlines():
            digest, _, name = line.partition("  ")
            if name and name != MANIFEST:
                hashes[name] = digest
        return hashes

    @reads
    def file_stamps(self, directory: str) -> dict[str, str]:
        """Every file in ``directory`` (the manifest too) as ``"<size> <mtime> <ctime> <inode>"``,
        and under ``"."`` the moment they were read (the host's clock): `unchanged_since`."""
        script = (
            'date +%s.%N && cd "$1" && '
            "find . -maxdepth 1 -type f -printf '%f\\t%s %T@ %C@ %i\\n'; true"
        )
        out = self.shell.run(["sh", "-c", script, "sh", directory], check=False).stdout
        now, *lines = out.splitlines() or [""]
        stamps = {".": now.strip()}
        for line in lines:
            name, _, stamp = line.partition("\t")
            if name and stamp:
                stamps[name] = stamp
        return stamps

    @reads
    def read_manifest(self, directory: str) -> BackupManifest | None:
        text = self.read_text(f"{directory}/{MANIFEST}")
        return BackupManifest.from_json(text) if text else None

    @reads
    def require_verified_backup(
        self,
        directory: str,
        cluster: Cluster,
        run_id: str,
        *,
        stamped: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The guard: raise UnverifiedBackupError unless the backup in ``directory`` is a
        verified backup of ``cluster`` taken in this run and unchanged since. Returns the
        proof for the record. ``stamped``: see `prove_backup`."""
        return self.prove_backup(
            directory, run_id, self.system_identifier(cluster), stamped=stamped
        )

    @reads
    def prove_backup(
        self,
        directory: str,
        run_id: str,
        system_identifier: str,
        *,
        stamped: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The guard of `require_verified_backup` for a cluster known by its identifier (after
        pg_upgrade --link the old data directory's pg_control is renamed). With ``stamped``
        (`file_stamps` taken just before an earlier guard hashed the files) files whose stamps
        have not changed since are not hashed again: the manifest's hashes stand for them
        (`unchanged_since`)."""
        manifest = self.read_manifest(directory)
        if manifest is not None and unchanged_since(stamped, self.file_stamps(directory)):
            files_now, checked = dict(manifest.files), "unchanged since hashed (size, times, inode)"
        else:
            files_now, checked = self.file_hashes(directory), "hashed"
        require_verified(
            manifest, run_id=run_id, system_identifier=system_identifier, files_now=files_now
        )
        assert manifest is not None  # require_verified refuses None
        return {
            "backup": directory,
            "verified_at": manifest.verified_at,
            "files_unchanged": len(files_now),
            "files_checked": checked,
        }

    @reads
    def locale(self, cluster: Cluster) -> dict[str, str]:
        """Encoding and locale of template0: pg_upgrade needs the new cluster to match."""
        return dict(self.query_json(cluster, _LOCALE_SQL))

    # ------------------------------------------------------------------ writes
    @writes
    def write_text(self, path: str, text: str, *, append: bool = False) -> None:
        op = ">>" if append else ">"
        self.shell.run(["sh", "-c", f'cat {op} "$1"', "sh", path], input=text)

    @writes
    def make_dir(self, path: str) -> None:
        self.shell.run(["mkdir", "-p", "-m", "0700", path])

    @writes
    def remove_cluster_dir(self, cluster: Cluster, expected_major: int) -> None:
        """Delete a cluster directory, but only one of ``expected_major`` that is not running:
        never the old cluster by mistake."""
        if not self.exists(cluster.data_dir):
            return
        version = (self.read_text(f"{cluster.data_dir}/PG_VERSION") or "").strip()
        if version and version != str(expected_major):
            raise VerificationError(
                f"refusing to delete {cluster.data_dir}: it holds PostgreSQL {version}, "
                f"not {expected_major}"
            )
        if self.is_running(cluster):
            self.stop(cluster)
        self.shell.run(["rm", "-rf", cluster.data_dir])

    @writes
    def start(
        self, cluster: Cluster, log_file: str, *, private: bool = False, throwaway: bool = False
    ) -> None:
        """Start a cluster: with its own configuration (the service endpoint), or ``private``
        on ``cluster``'s socket with TCP off, where no application can reach it. A
        ``throwaway`` instance (the scratch restore) runs without fsync."""
        argv = [cluster.bin("pg_ctl"), "start", "-D", cluster.data_dir, "-l", log_file, "-w"]
        argv += ["-t", "120"]
        if private:
            options = (
                f"-c listen_addresses='' -c port={cluster.port} "
                f"-c unix_socket_directories='{cluster.socket_dir}'"
            )
            if throwaway:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            argv += ["-o", options]
        self.shell.run(argv, timeout=180)

    @writes
    def stop(self, cluster: Cluster) -> None:
        """A fast shutdown, waited for as ``pg_ctl -w`` waits (until postmaster.pid is gone)
        but looking every 10 ms, not every 100: a stop inside the downtime ends sooner."""
        if self.is_running(cluster):
            argv = ["sh", "-c", _STOP, "sh", cluster.bin("pg_ctl"), cluster.data_dir]
            self.shell.run(argv, timeout=180)

    @writes
    def initdb(
        self, cluster: Cluster, *, checksums: bool, superuser: str, locale: dict[str, str]
    ) -> None:
        """A new empty cluster with the old one's encoding, locale and checksum setting."""
        argv = initdb_argv(cluster.data_dir, cluster.bin_dir, checksums, superuser, locale)
        self.shell.run(argv, timeout=300)

    @writes
    def analyze(self, cluster: Cluster) -> None:
        argv = [cluster.bin("vacuumdb"), "--all", "--analyze-only", "-q"]
        self.shell.run([*argv, "-h", cluster.socket_dir, "-p", str(cluster.port)], timeout=3600)


# $1 pg_ctl, $2 data directory: stop -m fast, then wait up to 120 s for postmaster.pid to go
_STOP = r"""
"$1" stop -D "$2" -m fast -W >/dev/null || exit $?
t=0
while [ -e "$2/postmaster.pid" ]; do
  t=$((t+1))
  [ "$t" -gt 12000 ] && { echo "the server in $2 did not stop within 120 s" >&2; exit 1; }
  sleep 0.01
done
"""


def initdb_argv(
    data_dir: str,
    bin_dir: str,
    checksums: bool,
    superuser: str,
    locale: dict[str, str] | None,
) -> list[str]:
    """initdb for a new cluster with the old one's checksum setting and locale."""
    argv = [
        f"{bin_dir}/initdb",
        "-D",
        data_dir,
        "-U",
        superuser,
        "--auth=peer",
        "--no-sync",  # pg_upgrade syncs the whole new data directory when it is done
        facts.initdb_checksum_flag(checksums),
    ]
    if locale:
        argv += [
            f"--encoding={locale['encoding']}",
            f"--lc-collate={locale['collate']}",
            f"--lc-ctype={locale['ctype']}",
            "--locale-provider=libc",
        ]
    return argv


def tail(text: str, lines: int = 3) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


_SURVEY_SQL = """
SELECT json_build_object(
 'version_num', current_setting('server_version_num')::int,
 'version', version(),
 'data_directory', current_setting('data_directory'),
 'data_checksums', current_setting('data_checksums') = 'on',
 'in_recovery', pg_is_in_recovery(),
 'databases', (SELECT json_agg(json_build_object('name', datname,
                 'bytes', pg_database_size(oid)) ORDER BY datname)
               FROM pg_database WHERE datallowconn AND NOT datistemplate),
 'connections', (SELECT count(*) FROM pg_stat_activity
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()),
 'replicas', (SELECT count(*) FROM pg_stat_replication),
 'replication_slots', (SELECT count(*) FROM pg_replication_slots),
 'bootstrap_superuser', (SELECT rolname FROM pg_roles WHERE oid = 10),
 'settings', (SELECT json_object_agg(name, current_setting(name) ORDER BY name)
              FROM pg_settings WHERE source = 'configuration file'),
 'hba_file', current_setting('hba_file'),
 'ident_file', current_setting('ident_file'))
"""

_LOCALE_SQL = """
SELECT json_build_object('encoding', pg_encoding_to_char(encoding),
                         'collate', datcollate, 'ctype', datctype)
FROM pg_database WHERE datname = 'template0'
"""
