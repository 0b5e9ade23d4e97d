"""The record store: append-only, hash-chained; verify names each kind of tampering."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from runbooks.core.errors import StoreError
from runbooks.core.store import RecordStore, read_jsonl, verify_entries


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


def problems(path: Path) -> list[tuple[str, int]]:
    with RecordStore(path) as store:
        return [(p.kind, p.seq) for p in store.verify().problems]


def test_intact_chain_verifies(filled: Path) -> None:
    with RecordStore(filled) as store:
        report = store.verify()
        assert report.ok and report.entries == 6
        entries = store.entries()
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]


def test_the_store_refuses_update_and_delete(filled: Path) -> None:
    db = sqlite3.connect(filled)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE entries SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM entries WHERE seq = 2")


def test_verify_detects_an_edited_entry(filled: Path) -> None:
    tamper(filled, """UPDATE entries SET payload = '{"n":99}' WHERE seq = 3""")
    assert problems(filled) == [("edited", 3)]


def test_verify_detects_an_edited_entry_whose_hash_was_recomputed(filled: Path) -> None:
    tamper(filled, "UPDATE entries SET hash = 'f' || substr(hash, 2) WHERE seq = 3")
    assert ("edited", 3) in problems(filled)
    assert ("deleted", 4) in problems(filled)  # entry 4 now points at a hash that is gone


def test_verify_detects_a_deleted_entry(filled: Path) -> None:
    tamper(filled, "DELETE FROM entries WHERE seq = 4")
    assert problems(filled) == [("deleted", 5)]


def test_verify_detects_deleted_entries_at_the_end(filled: Path) -> None:
    tamper(filled, "DELETE FROM entries WHERE seq >= 5")
    assert problems(filled) == [("truncated", 4)]


def test_verify_detects_reordered_entries(filled: Path) -> None:
    tamper(
        filled,
        "UPDATE entries SET seq = 100 WHERE seq = 2",
        "UPDATE entries SET seq = 2 WHERE seq = 3",
        "UPDATE entries SET seq = 3 WHERE seq = 100",
    )
    kinds = {kind for kind, _ in problems(filled)}
    assert kinds == {"reordered"}


def test_a_jsonl_export_verifies_and_catches_an_edit(filled: Path) -> None:
    buf = io.StringIO()
    with RecordStore(filled) as store:
        assert store.export_jsonl(buf) == 6
    lines = buf.getvalue().splitlines()
    assert verify_entries(read_jsonl(lines)).ok
    lines[1] = lines[1].replace('"n":2', '"n":20')
    assert [p.kind for p in verify_entries(read_jsonl(lines)).problems] == ["edited"]


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
