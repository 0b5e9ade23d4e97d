"""Throwaway PostgreSQL 15 clusters for the db-upgrade tests and benchmark.

One template cluster (initdb + sample data, stopped) is made once and copied per test: a copy
takes ~0.1 s, an initdb plus data ~2 s. Every cluster listens on a unix socket in its own
directory only (no TCP), runs as the ``postgres`` user, and is stopped with pg_ctl on its own
data directory: never a process found by name, never the machine's own cluster.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbooks.library.db_upgrade import embedded_bin_dir

PG15 = Path("/usr/lib/postgresql/15/bin")
PG18 = Path(embedded_bin_dir())
SERVICE_PORT = 54315  # a socket file name in our own directory; never 5432, never TCP
PRIVATE_PORT = 54316

SAMPLE_SQL = """
CREATE EXTENSION citext;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email citext UNIQUE NOT NULL,
                        created_at timestamptz NOT NULL DEFAULT '2026-01-01 12:00+02');
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers,
                     amount numeric(10,2), ratio float8, tags text[], note jsonb);
CREATE TABLE no_key (a int, b text);
CREATE TABLE writes (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
INSERT INTO customers (name, email)
  SELECT 'Customer ' || i, 'Customer' || i || '@Example.com' FROM generate_series(1, 200) i;
INSERT INTO orders (customer_id, amount, ratio, tags, note)
  SELECT 1 + i % 200, i * 1.25, i / 7.0, ARRAY['t' || i % 3], jsonb_build_object('i', i)
  FROM generate_series(1, 2000) i;
INSERT INTO no_key SELECT i % 10, 'dup' FROM generate_series(1, 50) i;
CREATE DATABASE shop;
\\c shop
CREATE EXTENSION hstore;
CREATE TABLE items (sku text PRIMARY KEY, attrs hstore, price money);
INSERT INTO items SELECT 'SKU' || i, hstore('colour', 'c' || i % 4), i * 2
  FROM generate_series(1, 300) i;
"""


def as_postgres(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    check = bool(kwargs.pop("check", True))
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=check, **kwargs)


def postgres_dir(prefix: str) -> Path:
    """A short directory (unix socket paths are limited to ~107 bytes) owned by postgres."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    shutil.chown(path, "postgres", "postgres")
    return path


def pg_ctl(bin_dir: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), *args], check=False)


def make_template() -> Path:
    """initdb 15 (checksums off, as initdb 15 does by default) with sample data, stopped."""
    root = postgres_dir("rbpg-tpl-")
    data, sock = root / "data", root / "sock"
    as_postgres(["mkdir", str(sock)])
    as_postgres(
        [str(PG15 / "initdb"), "-D", str(data), "-U", "postgres", "--auth=peer", "-N",
         "--encoding=UTF8", "--locale=C.UTF-8"]
    )  # fmt: skip
    opts = f"-c listen_addresses='' -c port={SERVICE_PORT} -c unix_socket_directories='{sock}'"
    pg_ctl(PG15, data, "start", "-w", "-l", str(root / "log"), "-o", opts).check_returncode()
    try:
        as_postgres(
            [str(PG15 / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(sock),
             "-p", str(SERVICE_PORT), "-d", "postgres"],
            input=SAMPLE_SQL,
        )  # fmt: skip
    finally:
        pg_ctl(PG15, data, "stop", "-m", "fast", "-w")
    return data


@dataclass
class LocalCluster:
    """A running copy of the template: its directory, and the runbook's parameters for it."""

    root: Path

    @property
    def params(self) -> dict[str, Any]:
        return {
            "host": "local-test",
            "transport": "local",
            "old_bin": str(PG15),
            "new_bin": str(PG18),
            "old_data": str(self.root / "15"),
            "new_data": str(self.root / "18"),
            "port": SERVICE_PORT,
            "socket_dir": str(self.root / "sock"),
            "work_dir": str(self.root / "work"),
            "private_port": PRIVATE_PORT,
            "journal": False,  # a throwaway cluster is no NetBox device: nothing to witness in
        }

    def psql(self, sql: str, db: str = "postgres", bin_dir: Path = PG15) -> str:
        argv = [str(bin_dir / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self.root / "sock"), "-p", str(SERVICE_PORT), "-d", db, "-c", sql]
        return as_postgres(argv).stdout.strip()

    def postmaster_pid(self, version: int = 15) -> int | None:
        pid_file = self.root / str(version) / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop_all(self) -> None:
        """Stop every cluster this test may have started, by data directory (pg_ctl)."""
        candidates = [
            (PG15, self.root / "15"),
            (PG18, self.root / "18"),
            *((PG15, p / "scratch") for p in (self.root / "work").glob("*") if p.is_dir()),
        ]
        for bin_dir, data in candidates:
            if (data / "postmaster.pid").exists():
                pg_ctl(bin_dir, data, "stop", "-m", "immediate", "-w")

    def remove(self) -> None:
        self.stop_all()
        shutil.rmtree(self.root, ignore_errors=True)


def copy_template(template: Path) -> LocalCluster:
    """A fresh running PostgreSQL 15 cluster with the sample data, serving on its socket."""
    root = postgres_dir("rbpg-")
    as_postgres(["cp", "-a", str(template), str(root / "15")])
    for sub in ("sock", "work"):
        as_postgres(["mkdir", "-m", "0700", str(root / sub)])
    conf = (
        f"\nlisten_addresses = ''\nport = {SERVICE_PORT}\n"
        f"unix_socket_directories = '{root / 'sock'}'\n"
    )
    as_postgres(["sh", "-c", f"cat >> {root / '15' / 'postgresql.conf'}"], input=conf)
    cluster = LocalCluster(root)
    log = str(root / "work" / "start.log")
    pg_ctl(PG15, root / "15", "start", "-w", "-l", log).check_returncode()
    return cluster


def can_run() -> str | None:
    """Why the real-cluster tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (to run PostgreSQL as the postgres user)"
    if not (PG15 / "initdb").exists():
        return f"no PostgreSQL 15 in {PG15}"
    if not (PG18 / "pg_upgrade").exists():
        return f"no PostgreSQL 18 in {PG18} (pip install runbooks[pg18])"
    return None


class Writer(threading.Thread):
    """Inserts a row into ``writes`` every ~20 ms through the service endpoint, as an
    application would; remembers which inserts were acknowledged."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(daemon=True)
        self.cluster, self.stop = cluster, threading.Event()
        self.ok: list[float] = []
        self.failed: list[float] = []
        self.acked: list[tuple[int, int]] = []  # (row id, major version that acknowledged it)

    def run(self) -> None:
        insert = (
            "INSERT INTO writes DEFAULT VALUES "
            "RETURNING id, current_setting('server_version_num')::int / 10000"
        )
        while not self.stop.is_set():
            try:
                row_id, version = self.cluster.psql(insert).split("|")
                self.acked.append((int(row_id), int(version)))
                self.ok.append(time.monotonic())
            except Exception:
                self.failed.append(time.monotonic())
            time.sleep(0.02)

    def longest_gap(self) -> float:
        times = sorted(self.ok)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


# An application's role for `ConnWriter`: ``root`` logs in by peer as the OS user root (the
# tests and the bench run as root), with no other right than writing ``writes``.
WRITER_ROLE_SQL = """
CREATE ROLE root LOGIN;
GRANT SELECT, INSERT ON writes TO root;
GRANT USAGE ON SEQUENCE writes_id_seq TO root;
"""


class ConnWriter(Writer):
    """`Writer` as an application writes: one psycopg connection (role ``root``, by peer on
    the service socket; `WRITER_ROLE_SQL`), a row every ~20 ms on it; once the connection is
    lost, one connection attempt per 0.1 s (at most ~10 a second). No process per insert or
    per retry: on a 2-core machine a writer spawning runuser and psql 50 times a second took
    the CPU the upgrade it measured needed."""

    retry_s = 0.1

    def run(self) -> None:
        import psycopg

        insert = (
            "INSERT INTO writes DEFAULT VALUES "
            "RETURNING id, current_setting('server_version_num')::int / 10000"
        )
        conn: psycopg.Connection[tuple[int, int]] | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(
                        host=str(self.cluster.root / "sock"), port=SERVICE_PORT, user="root",
                        dbname="postgres", autocommit=True, connect_timeout=2,
                    )  # fmt: skip
                row = conn.execute(insert).fetchone()
                assert row is not None
                self.acked.append((int(row[0]), int(row[1])))
                self.ok.append(time.monotonic())
                time.sleep(0.02)
            except Exception:
                self.failed.append(time.monotonic())
                if conn is not None:
                    conn.close()
                    conn = None
                time.sleep(self.retry_s)
        if conn is not None:
            conn.close()
