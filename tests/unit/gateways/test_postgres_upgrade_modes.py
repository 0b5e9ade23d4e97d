"""db-upgrade's gateway parts that need no cluster: which modes pg_upgrade offers, the gate
that opens the new cluster only once every snapshot is taken (run for real with fake
pg_ctl and psql), the WAL archive's arithmetic, database names to pg_restore."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from runbooks.core.gateway import Mode
from runbooks.gateways import postgres_open as gate
from runbooks.gateways import postgres_wal as wal
from runbooks.gateways.postgres import Cluster
from runbooks.gateways.postgres_backup import BackupManifest
from runbooks.gateways.postgres_upgrade import UpgradeGateway, dump_file
from tests.unit.gateways.test_postgres_reads import ScriptedShell

HELP_18 = """  -k, --link                    link instead of copying files to new cluster
  --clone                       clone instead of copying files to new cluster
  --copy                        copy files to new cluster (default)
  --copy-file-range             copy files to new cluster with copy_file_range
  --swap                        move data directories to new cluster
"""
HELP_15 = HELP_18.replace(
    "  --swap                        move data directories to new cluster\n", ""
)


def test_the_modes_a_pg_upgrade_offers() -> None:
    for text, modes in (
        (HELP_18, ["copy", "clone", "link", "swap"]),
        (HELP_15, ["copy", "clone", "link"]),
    ):
        gw = UpgradeGateway(Mode.PLAN, ScriptedShell(lambda argv, t=text: (0, t)))
        assert gw.upgrade_modes("/bin18") == modes


def fake_bin(tmp_path: Path, psql_fails: bool = False, ready_after: int = 0) -> Path:
    """pg_ctl that records the gate files it finds at start and at reload; pg_isready that
    answers "no response" ``ready_after`` times (-1: always), then "accepting"; psql that
    says it took its snapshot (unless it fails first) and prints one table."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pg_isready").write_text(
        "#!/bin/sh\n"
        'n="$(dirname "$0")/isready"; echo x >>"$n"\n'
        f'[ {ready_after} -ge 0 ] && [ "$(wc -l <"$n")" -gt {ready_after} ] && exit 0\n'
        "exit 2\n"
    )
    (bin_dir / "pg_ctl").write_text(
        "#!/bin/sh\n"
        'log="$(dirname "$0")/calls"\n'
        'echo "$1" >>"$log"; cat "$3/pg_hba.conf" >>"$log"\n'
        'tail -n 1 "$3/postgresql.conf" >>"$log"\n'
    )
    body = (
        "echo 'psql: error: gone' >&2; exit 2\n"
        if psql_fails
        else ('touch "$RB_READY"; echo \'{"table": "public.t", "rows": 3, "checksum": "42"}\'\n')
    )
    (bin_dir / "psql").write_text("#!/bin/sh\n" + body)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def open_gated(tmp_path: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "pg_hba.conf").write_text("host all app 198.18.0.0/15 scram-sha-256\n")
    (data / "postgresql.conf").write_text("port = 5432\n")
    out = tmp_path / "out"
    argv = gate.gated_open_argv(
        str(data), str(bin_dir), str(tmp_path / "log"), str(out), "postgres", "/s", 5432,
        ["dbname='a'", "dbname='b'"],
    )  # fmt: skip
    out.mkdir()
    (out / "snapshot.sql").write_text(gate.snapshot_script())
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_the_service_opens_only_after_every_snapshot(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path)
    proc = open_gated(tmp_path, bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("20")  # the opening time, ISO
    calls = (bin_dir / "calls").read_text().splitlines()
    assert calls == [
        "start",  # behind the gate: the runbook's role only, read-only transactions
        "local all postgres peer",
        "default_transaction_read_only = on  # db-upgrade gate",
        "reload",  # every snapshot taken: the real files back
        "host all app 198.18.0.0/15 scram-sha-256",
        "port = 5432",
    ]
    assert (tmp_path / "out" / "ready.1").exists() and (tmp_path / "out" / "ready.2").exists()
    assert "public.t" in (tmp_path / "out" / "fp.2.out").read_text()
    assert (tmp_path / "data" / "postgresql.conf").read_text() == "port = 5432\n"


def test_the_snapshots_wait_until_the_server_accepts_connections(tmp_path: Path) -> None:
    """Started without pg_ctl's wait (it looks every 100 ms): the gate asks every 10 ms."""
    bin_dir = fake_bin(tmp_path, ready_after=3)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "postmaster.pid").write_text(f"{os.getpid()}\n")  # a live postmaster
    proc = open_gated(tmp_path, bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert (bin_dir / "isready").read_text().count("x") == 4  # three "no response", then ready


def test_a_server_that_never_answers_and_is_gone_reopens_the_gate(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, ready_after=-1)  # no postmaster.pid: it died starting
    started = time.monotonic()
    proc = open_gated(tmp_path, bin_dir)
    assert proc.returncode == 4
    assert time.monotonic() - started < 30  # about 100 looks, not the 120 s timeout
    assert (tmp_path / "data" / "pg_hba.conf").read_text().startswith("host all app")
    assert not (tmp_path / "out" / "ready.1").exists()  # no snapshot was begun


def test_a_snapshot_that_fails_reopens_and_says_so(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, psql_fails=True)
    proc = open_gated(tmp_path, bin_dir)
    assert proc.returncode == 5
    assert "gone" in proc.stderr
    assert (tmp_path / "data" / "pg_hba.conf").read_text().startswith("host all app")


def test_the_snapshot_is_taken_before_the_ready_signal() -> None:
    script = gate.snapshot_script()
    begin = script.index("BEGIN ISOLATION LEVEL REPEATABLE READ")
    assert begin < script.index("FROM pg_class") < script.index('touch "$RB_READY"')
    assert script.index('touch "$RB_READY"') < script.index("\\gexec")


def test_wal_archive_arithmetic_across_a_log_file_boundary() -> None:
    seg = 16 * 2**20
    names = ["0000000100000000000000FE", "000000010000000100000000"]
    assert wal.gaps(names, names[0], names[1], seg) == ["0000000100000000000000FF"]
    assert wal.gaps([*names, "0000000100000000000000FF"], names[0], names[1], seg) == []
    options = wal.server_options({"archive_command": wal.archive_command("/w d")})
    assert shlex.split(options) == ["-c", "archive_command=test ! -f '/w d'/%f && cp %p '/w d'/%f"]


def test_pg_restore_gets_the_database_name_only() -> None:
    name = "x host=127.0.0.2"
    shell = ScriptedShell(lambda argv: (0, "[]" if argv[0] == "env" else ""))
    gw = UpgradeGateway(Mode.RUN, shell)
    files = {"globals.sql": "h", dump_file(name): "h"}
    manifest = BackupManifest("r", "1", "/b", files, {}, "t")
    scratch = Cluster("/s/data", "/bin15", 5499, "/s")
    gw._restore_into(scratch, "/b", manifest)
    restore = next(a for a in shell.commands if a[0].endswith("pg_restore"))
    assert restore[restore.index("-d") - 1 :][:2] == ["-C", "-d"]  # created from the dump
    assert restore[restore.index("-d") + 1] == "postgres"
    shell2 = ScriptedShell(lambda argv: (0, f'["{name}"]' if argv[0] == "env" else ""))
    UpgradeGateway(Mode.RUN, shell2)._restore_into(scratch, "/b", manifest)
    restore = next(a for a in shell2.commands if a[0].endswith("pg_restore"))
    assert conninfo_to_dict(restore[restore.index("-d") + 1]) == {"dbname": name}


def test_backup_files_are_hashed_again_only_when_their_stat_changed(tmp_path: Path) -> None:
    """The proofs inside the downtime stat the backup; a file written since is read again."""
    (tmp_path / "globals.sql").write_text("roles\n")
    (tmp_path / "db-61.dump").write_text("dump\n")
    (tmp_path / "manifest.json").write_text("{}")
    calls: list[list[str]] = []

    def run(argv: list[str]) -> tuple[int, str]:
        calls.append(argv)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout

    gw = UpgradeGateway(Mode.RUN, ScriptedShell(run))
    first = gw.file_hashes(str(tmp_path))
    assert sorted(first) == ["db-61.dump", "globals.sql"]  # never the manifest
    hashed = [a for a in calls if "sha256sum" in a[2]]
    assert sorted(hashed[0][5:]) == ["db-61.dump", "globals.sql"]
    calls.clear()
    assert gw.file_hashes(str(tmp_path)) == first
    assert not [a for a in calls if "sha256sum" in a[2]]  # a stat, no read
    (tmp_path / "globals.sql").write_text("roles, and a new one\n")
    again = gw.file_hashes(str(tmp_path))
    assert [a[5:] for a in calls if "sha256sum" in a[2]] == [["globals.sql"]]
    assert again["globals.sql"] != first["globals.sql"]
    assert again["db-61.dump"] == first["db-61.dump"]
