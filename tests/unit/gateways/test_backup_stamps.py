"""pg_upgrade's guard inside the downtime hashes only what changed since the stop's guard hashed
the backup: the files' stamps (size, modification and change time, inode) decide."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runbooks.core.gateway import Mode, reads
from runbooks.gateways import postgres_backup
from runbooks.gateways.postgres import Cluster, PostgresGateway
from runbooks.gateways.postgres_backup import (
    MANIFEST,
    BackupManifest,
    UnverifiedBackupError,
    unchanged_since,
)
from runbooks.gateways.postgres_facts import TableSum
from runbooks.gateways.postgres_shell import LocalShell

SOURCE = {"app": {"public.orders": TableSum(500, "abc")}}
OLD = Cluster("/d15", "/b15", 5432, "/s")
A = "5 90.0 90.0 7"  # size, modification time, change time, inode


@pytest.mark.parametrize(
    ("stamped", "now", "unchanged"),
    [
        ({".": "100.0", "a": "5 90.0 90.0 7"}, {".": "130.0", "a": "5 90.0 90.0 7"}, True),
        # written since: its change time moved (also when its modification time is set back)
        ({".": "100.0", "a": "5 90.0 90.0 7"}, {".": "130.0", "a": "5 90.0 120.0 7"}, False),
        ({".": "100.0", "a": "5 90.0 90.0 7"}, {".": "130.0", "a": "6 90.0 90.0 7"}, False),
        ({".": "100.0", "a": "5 90.0 90.0 7"}, {".": "130.0", "a": "5 90.0 90.0 8"}, False),
        # a file added or gone
        ({".": "100.0", "a": A}, {".": "130.0", "a": A, "b": "1 1.0 1.0 9"}, False),
        ({".": "100.0", "a": A, "b": "1 1.0 1.0 9"}, {".": "130.0", "a": A}, False),
        # changed within RACY_S of the stamping: it may change again unseen in the same tick
        ({".": "100.0", "a": "5 99.5 99.5 7"}, {".": "130.0", "a": "5 99.5 99.5 7"}, False),
        # nothing stamped, no moment, a stamp not as file_stamps writes it
        (None, {".": "130.0", "a": "5 90.0 90.0 7"}, False),
        ({".": "100.0"}, {".": "130.0"}, False),
        ({"a": "5 90.0 90.0 7"}, {".": "130.0", "a": "5 90.0 90.0 7"}, False),
        ({".": "100.0", "a": "5 90.0"}, {".": "130.0", "a": "5 90.0"}, False),
    ],
)  # fmt: skip
def test_unchanged_only_when_every_stamp_is_the_same_and_not_racy(
    stamped: dict[str, str] | None, now: dict[str, str], unchanged: bool
) -> None:
    assert unchanged_since(stamped, now) is unchanged


class HashCounting(PostgresGateway):
    """The real stamps and hashes of a local directory; a cluster identifier without a cluster."""

    hashed = 0

    @reads
    def system_identifier(self, cluster: Cluster) -> str:
        return "7441"

    @reads
    def file_hashes(self, directory: str) -> dict[str, str]:
        self.hashed += 1
        return super().file_hashes(directory)


@pytest.fixture
def backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[HashCounting, Path]:
    """A verified backup in a directory; files stamped right after writing count as not racy
    (RACY_S 0): the test cannot wait seconds."""
    monkeypatch.setattr(postgres_backup, "RACY_S", 0.0)
    gw = HashCounting(Mode.PLAN, LocalShell(os_user="root"))
    (tmp_path / "globals.sql").write_text("-- roles\n")
    (tmp_path / "db-617070.dump").write_bytes(b"dump")
    manifest = BackupManifest(
        "run-1", "7441", str(tmp_path), gw.file_hashes(str(tmp_path)), SOURCE, "t"
    ).with_restore(SOURCE, "t2")
    (tmp_path / MANIFEST).write_text(manifest.to_json())
    gw.hashed = 0
    return gw, tmp_path


def test_untouched_files_are_not_hashed_again(backup: tuple[HashCounting, Path]) -> None:
    gw, path = backup
    stamps = gw.file_stamps(str(path))
    assert set(stamps) == {".", "globals.sql", "db-617070.dump", MANIFEST}
    proof = gw.require_verified_backup(str(path), OLD, "run-1", stamped=stamps)
    assert proof["files_checked"].startswith("unchanged since hashed")
    assert gw.hashed == 0
    proof = gw.require_verified_backup(str(path), OLD, "run-1")  # no stamps: hashed
    assert proof["files_checked"] == "hashed" and gw.hashed == 1


@pytest.mark.parametrize("set_back", [False, True])
def test_a_file_rewritten_since_is_hashed_and_refused(
    backup: tuple[HashCounting, Path], set_back: bool
) -> None:
    """Same size, and even its modification time set back: its change time gives it away."""
    gw, path = backup
    stamps = gw.file_stamps(str(path))
    dump = path / "db-617070.dump"
    before = dump.stat()
    dump.write_bytes(b"DUMP")
    if set_back:
        os.utime(dump, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(UnverifiedBackupError, match=r"db-617070\.dump changed"):
        gw.require_verified_backup(str(path), OLD, "run-1", stamped=stamps)
    assert gw.hashed == 1


def test_a_manifest_edited_since_is_checked_whole(backup: tuple[HashCounting, Path]) -> None:
    gw, path = backup
    stamps = gw.file_stamps(str(path))
    text = (path / MANIFEST).read_text().replace('"run_id": "run-1"', '"run_id": "run-9"')
    (path / MANIFEST).write_text(text)
    with pytest.raises(UnverifiedBackupError, match="belongs to run run-9"):
        gw.require_verified_backup(str(path), OLD, "run-1", stamped=stamps)
    assert gw.hashed == 1
