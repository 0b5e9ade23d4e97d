"""The record store: append-only, hash-chained; verify names each kind of tampering."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
from pathlib import Path

import pytest

from runbooks.core.errors import StoreError
from runbooks.core.store import RecordStore, genesis, read_jsonl, verify_entries


@pytest.fixture
def filled(store_path: Path) -> Path:
    with RecordStore(store_path) as store:
        for n in range(1, 7):
            store.append("run-a" if n < 4 else "run-b", "step.finished", {"n": n}, actor="olivia")
    return store_path


def tamper(path: Path, *sql: str) -> None:
    """What someone with the file and sqlite3 can do: drop the guards, then edit."""
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("DROP TRIGGER entries_no_delete")
    for statement in sql:
        db.execute(statement)
    db.commit()
    db.close()


def problems(path: Path) -> list[tuple[str, str, int]]:
    with RecordStore(path) as store:
        return [(p.kind, p.run_id, p.seq) for p in store.verify().problems]


def test_each_run_is_its_own_intact_chain(filled: Path) -> None:
    with RecordStore(filled) as store:
        report = store.verify()
        assert report.ok and report.entries == 6
        for run in ("run-a", "run-b"):
            entries = store.entries(run)
            assert [e.seq for e in entries] == [1, 2, 3]
            assert entries[0].prev_hash == genesis(run)
            assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
            assert store.run_head(run) == entries[-1].hash == report.heads[run]


def test_the_store_refuses_update_and_delete(filled: Path) -> None:
    db = sqlite3.connect(filled)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE entries SET actor = 'mallory' WHERE pos = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM entries WHERE pos = 2")


def test_verify_detects_an_edited_entry(filled: Path) -> None:
    tamper(filled, """UPDATE entries SET payload = '{"n":99}' WHERE pos = 3""")
    assert problems(filled) == [("edited", "run-a", 3)]


def test_verify_detects_an_edited_entry_whose_hash_was_recomputed(filled: Path) -> None:
    # another first digit, always (a hash that began with the digit written would be unchanged)
    tamper(
        filled,
        "UPDATE entries SET hash = CASE substr(hash, 1, 1) WHEN 'f' THEN 'e' ELSE 'f' END"
        " || substr(hash, 2) WHERE pos = 2",
    )
    found = problems(filled)
    assert ("edited", "run-a", 2) in found
    assert ("deleted", "run-a", 3) in found  # entry 3 now links to a hash that is gone


def test_verify_detects_a_deleted_entry(filled: Path) -> None:
    tamper(filled, "DELETE FROM entries WHERE pos = 5")
    assert problems(filled) == [("deleted", "run-b", 3)]


def test_verify_detects_deleted_entries_at_the_end_of_a_run(filled: Path) -> None:
    tamper(filled, "DELETE FROM entries WHERE pos = 3")
    assert problems(filled) == [("truncated", "run-a", 2)]


def test_verify_detects_a_whole_run_deleted(filled: Path) -> None:
    tamper(filled, "DELETE FROM entries WHERE run_id = 'run-b'")
    assert problems(filled) == [("deleted", "run-b", 0)]


def test_verify_detects_a_changed_position(filled: Path) -> None:
    tamper(filled, "UPDATE entries SET seq = 9 WHERE pos = 2")
    assert ("edited", "run-a", 9) in problems(filled)


def test_verify_detects_reordered_entries(filled: Path) -> None:
    tamper(
        filled,
        "UPDATE entries SET pos = 100 WHERE pos = 2",
        "UPDATE entries SET pos = 2 WHERE pos = 3",
        "UPDATE entries SET pos = 3 WHERE pos = 100",
    )
    kinds = {kind for kind, _, _ in problems(filled)}
    assert kinds == {"reordered", "deleted"}


def test_a_run_export_verifies_on_its_own_and_catches_an_edit(filled: Path) -> None:
    buf = io.StringIO()
    with RecordStore(filled) as store:
        assert store.export_jsonl(buf, "run-b") == 3
        head = store.run_head("run-b")
    lines = buf.getvalue().splitlines()
    report = verify_entries(read_jsonl(lines))
    assert report.ok and report.head == head
    assert verify_entries(read_jsonl(lines[:-1]), {"run-b": head}).problems[0].kind == ("truncated")
    lines[1] = lines[1].replace('"n":5', '"n":50')
    assert [p.kind for p in verify_entries(read_jsonl(lines)).problems] == ["edited"]


def test_a_store_of_the_old_format_is_refused_in_one_line(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite3"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, run_id TEXT)")
    db.close()
    with pytest.raises(StoreError, match=r"format of runbooks 0\.1"):
        RecordStore(old)


def test_a_chain_from_elsewhere_is_imported_only_when_it_continues(
    filled: Path, tmp_path: Path
) -> None:
    with RecordStore(filled) as store:
        theirs = store.entries("run-a")
    with RecordStore(tmp_path / "mine.sqlite3") as mine:
        assert mine.import_chain(theirs[:2]) == 2
        assert mine.import_chain(theirs) == 1
        assert mine.verify().ok and mine.run_head("run-a") == theirs[-1].hash
        forged = dataclasses.replace(theirs[2], payload={"n": 7})
        with pytest.raises(StoreError, match="cannot be imported: edited"):
            RecordStore(tmp_path / "other.sqlite3").import_chain([*theirs[:2], forged])


def test_runs_are_listed_and_searchable(store_path: Path) -> None:
    with RecordStore(store_path) as store:
        store.append("r1", "run.started", {"runbook": "rack-in", "targets": ["leaf3"]}, actor="o")
        store.append("r1", "run.finished", {"status": "succeeded"}, actor="o")
        store.append("r2", "run.started", {"runbook": "rack-out", "targets": ["leaf1"]}, actor="o")
        assert [r["status"] for r in store.runs()] == ["interrupted", "succeeded"]
        assert [r["run_id"] for r in store.runs(runbook="rack-in")] == ["r1"]
        assert [r["run_id"] for r in store.runs(text="leaf1")] == ["r2"]
        assert store.resolve_run("r2") == "r2"


def test_an_unreadable_store_is_a_store_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-db.sqlite3"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open record store"):
        RecordStore(bogus)
    with pytest.raises(StoreError, match="cannot open record store"):
        RecordStore(tmp_path)  # a directory
