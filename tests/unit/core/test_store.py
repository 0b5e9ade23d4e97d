"""The record store: append-only, hash-chained; verify names each kind of tampering."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
from pathlib import Path

import pytest
from runbooks_rules.chain import entry_hash, entry_hash_of_text

from runbooks.core.errors import StoreError
from runbooks.core.store import RecordStore, canonical, genesis, read_jsonl, verify_entries


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


# what the store noted of itself on opening after `tamper` dropped its guards
UNGUARDED = ("unguarded", "store", 1)


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
    assert problems(filled) == [("edited", "run-a", 3), UNGUARDED]


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
    assert problems(filled) == [("deleted", "run-b", 3), UNGUARDED]


def test_verify_detects_deleted_entries_at_the_end_of_a_run(filled: Path) -> None:
    tamper(filled, "DELETE FROM entries WHERE pos = 3")
    assert problems(filled) == [UNGUARDED, ("truncated", "run-a", 2)]


def test_verify_detects_a_whole_run_deleted(filled: Path) -> None:
    tamper(filled, "DELETE FROM entries WHERE run_id = 'run-b'")
    assert problems(filled) == [UNGUARDED, ("deleted", "run-b", 0)]


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
    assert kinds == {"reordered", "deleted", "unguarded"}


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


# -- the guards: heads and meta, a trigger dropped ------------------------------------------------


def refused(db: sqlite3.Connection, sql: str, match: str) -> None:
    with pytest.raises(sqlite3.IntegrityError, match=match):
        db.execute(sql)


def test_heads_and_meta_refuse_update_delete_and_replace(filled: Path) -> None:
    db = sqlite3.connect(filled)
    head_a = db.execute("SELECT seq, hash FROM heads WHERE run_id = 'run-a'").fetchone()
    first_b = db.execute("SELECT hash FROM entries WHERE run_id = 'run-b' AND seq = 1").fetchone()
    moves = "only moves forward"
    refused(db, "DELETE FROM heads WHERE run_id = 'run-a'", moves)
    refused(db, "UPDATE heads SET seq = 2 WHERE run_id = 'run-a'", moves)  # backwards
    refused(db, "UPDATE heads SET seq = 4, hash = 'f00' WHERE run_id = 'run-a'", moves)  # nowhere
    refused(db, f"UPDATE heads SET seq = 4, hash = '{first_b[0]}' WHERE run_id = 'run-a'", moves)
    refused(db, "UPDATE heads SET run_id = 'run-c' WHERE run_id = 'run-a'", moves)
    refused(db, "INSERT OR REPLACE INTO heads VALUES ('run-a', 9, 'f00')", moves)
    refused(db, "INSERT INTO heads VALUES ('run-c', 1, 'f00')", moves)  # no such entry
    once = "written once"
    refused(db, "UPDATE meta SET value = '1' WHERE key = 'format'", once)
    refused(db, "DELETE FROM meta WHERE key = 'format'", once)
    refused(db, "INSERT OR REPLACE INTO meta VALUES ('format', '1')", once)
    refused(db, "INSERT OR REPLACE INTO entries SELECT * FROM entries WHERE pos = 2", "append-only")
    db.close()
    with RecordStore(filled) as store:
        assert store.heads()["run-a"] == tuple(head_a)
        assert store.append("run-a", "step.finished", {"n": 7}, actor="olivia").seq == 4
        assert store.verify().ok  # and the store itself still moves heads forward


@pytest.mark.parametrize(
    "drop",
    [
        ["entries_no_update"],
        ["entries_no_update", "entries_no_delete", "heads_forward", "meta_no_delete"],
    ],
)
def test_a_dropped_trigger_is_recreated_and_verify_says_so_for_ever(
    filled: Path, drop: list[str]
) -> None:
    db = sqlite3.connect(filled)
    for name in drop:
        db.execute(f"DROP TRIGGER {name}")
    db.execute("UPDATE entries SET actor = 'mallory' WHERE pos = 6")  # no longer refused
    db.commit()
    db.close()
    with RecordStore(filled) as store:
        (noted,) = store.entries("store")
        assert noted.kind == "store.triggers_recreated"
        assert noted.payload["missing"] == drop and noted.payload["altered"] == []
        assert noted.payload["noticed"] == noted.ts
    db = sqlite3.connect(filled)
    refused(db, "UPDATE entries SET actor = 'eve' WHERE pos = 2", "append-only")  # back
    db.close()
    for _ in range(2):  # reopened: no second entry, and the first one is still reported
        with RecordStore(filled) as store:
            report = store.verify()
            assert len(store.entries("store")) == 1
        assert [(p.kind, p.run_id, p.seq) for p in report.problems] == [
            ("edited", "run-b", 3),
            UNGUARDED,
        ]
        detail = report.problems[1].detail
        assert all(name in detail for name in drop) and noted.ts in detail


def test_a_trigger_replaced_by_one_that_refuses_nothing_counts_as_dropped(filled: Path) -> None:
    db = sqlite3.connect(filled)
    db.execute("DROP TRIGGER entries_no_delete")
    db.execute(
        "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries WHEN 0"
        " BEGIN SELECT RAISE(ABORT, 'records are append-only'); END"
    )
    db.commit()
    db.close()
    with RecordStore(filled) as store:
        (noted,) = store.entries("store")
        assert noted.payload["missing"] == [] and noted.payload["altered"] == ["entries_no_delete"]
        assert [p.kind for p in store.verify().problems] == ["unguarded"]
    db = sqlite3.connect(filled)
    refused(db, "DELETE FROM entries WHERE pos = 2", "append-only")
    db.close()


def test_a_store_from_before_the_guards_gets_them_without_a_false_alarm(
    store_path: Path,
) -> None:
    # what this format's store held before heads and meta had triggers
    store_path.parent.mkdir(parents=True)
    db = sqlite3.connect(store_path)
    db.executescript(
        """
        CREATE TABLE entries (
            pos INTEGER PRIMARY KEY, run_id TEXT NOT NULL, seq INTEGER NOT NULL,
            ts TEXT NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL, step TEXT,
            payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
            UNIQUE (run_id, seq));
        CREATE TABLE heads (run_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
            BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
        CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
            BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
        INSERT INTO meta VALUES ('format', '2');
        """
    )
    db.close()
    with RecordStore(store_path) as store:
        store.append("run-a", "step.finished", {"n": 1}, actor="olivia")
        assert store.verify().ok  # no alarm; that the guards came now is on record
        assert [e.kind for e in store.entries("store")] == ["store.guards_installed"]
    db = sqlite3.connect(store_path)
    refused(db, "DELETE FROM heads", "only moves forward")
    refused(db, "DELETE FROM meta", "written once")
    db.close()
    # found by review: every guard dropped and the 'guards' mark deleted, so that the store
    # looks as if it came from before the guards — the record of their installing says not
    db = sqlite3.connect(store_path)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    db.execute("DELETE FROM meta WHERE key = 'guards'")
    db.commit()
    db.close()
    assert problems(store_path) == [("unguarded", "store", 2)]


def test_verify_names_an_edited_position(filled: Path) -> None:
    tamper(filled, "UPDATE entries SET seq = 4 WHERE pos = 3")  # the hash left as it was
    with RecordStore(filled) as store:
        found = store.verify().problems
    assert [(p.kind, p.run_id, p.seq) for p in found] == [
        ("edited", "run-a", 4),  # the hash covers the position
        ("deleted", "run-a", 4),  # and #3 is gone from where it was
        UNGUARDED,
    ]
    assert found[0].detail == "run-a #4 does not match its hash"


# -- the fast path: stored text hashed as it is ------------------------------------------------


ODD_PAYLOADS = [
    {},
    {"n": 1, "f": 0.1, "big": 2**70, "neg": -0.0, "e": 1e300, "t": True, "z": None},
    {"漢字": "ünïcödé ✓ 🙂", "ctl": '\x00\x1f\x7f\t\n"\\/', "sep": "\u2028\u2029"},
    {"nested": [{"b": [1, [2, {"c": "d"}]], "a": {}}], "empty": [], "s": ""},
]


@pytest.mark.parametrize("payload", ODD_PAYLOADS)
@pytest.mark.parametrize("step", [None, "apply_config", 'ステップ "q"'])
def test_hashing_the_stored_text_is_hashing_the_payload(
    payload: dict[str, object], step: str | None
) -> None:
    args = ("20261207-101500-a1b2c3", 7, "2026-12-07T10:15:00.000001+00:00", "ölivia\n", "k")
    prev = genesis("x")
    assert entry_hash_of_text(*args, step, canonical(payload), prev) == entry_hash(
        *args, step, payload, prev
    )


def test_store_verify_hashes_rows_as_the_entries_verify(store_path: Path) -> None:
    with RecordStore(store_path) as store:
        for n, payload in enumerate(ODD_PAYLOADS * 2):
            store.append(f"run-{n % 3}", "step.finished", payload, actor="o", step=f"s{n}")
        fast, slow = (
            store.verify(),
            verify_entries(store.entries(), {k: h for k, (_, h) in store.heads().items()}),
        )
        assert fast == slow and fast.ok and fast.entries == 8


def test_a_payload_edited_in_its_text_only_is_still_edited(filled: Path) -> None:
    # the same JSON value, other bytes: what was hashed is not what is stored
    tamper(filled, """UPDATE entries SET payload = '{"n": 2}' WHERE pos = 2""")
    assert problems(filled) == [("edited", "run-a", 2), UNGUARDED]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE entries SET seq = '2x' WHERE pos = 2",
        "UPDATE entries SET actor = X'6f6c69766961' WHERE pos = 2",  # a BLOB
        "UPDATE entries SET step = 7 WHERE pos = 2",
    ],
)
def test_a_field_of_another_type_is_an_edit_not_a_crash(filled: Path, sql: str) -> None:
    tamper(filled, sql)
    found = problems(filled)
    assert found[0][0] == "edited" and found[0][1] == "run-a" and UNGUARDED in found


# -- exports: `records verify --file F [--head H]` ----------------------------------------------


def test_records_verify_of_a_one_run_export(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runbooks.cli import main

    with RecordStore(filled) as store:
        head = store.run_head("run-b")
    export = tmp_path / "run-b.jsonl"
    assert main(["--store", str(filled), "records", "export", "run-b", "-o", str(export)]) == 0
    capsys.readouterr()
    verify = ["--store", str(filled), "records", "verify", "--file", str(export)]
    # the run alone is a whole chain: nothing "deleted" about the other runs of the store
    assert main(verify) == 0
    assert main([*verify, "--head", head]) == 0
    assert "3 entries in 1 run(s), every chain intact" in capsys.readouterr().out
    lines = export.read_text().splitlines(keepends=True)
    export.write_text("".join(lines[:-1]))  # its last entry cut off
    assert main(verify) == 0  # alone, a shorter chain is still a chain
    capsys.readouterr()
    assert main([*verify, "--head", head]) == 5
    said = capsys.readouterr().out
    assert said.startswith("truncated run-b #2") and len(said.strip().splitlines()) == 1
    assert "not at its expected head" in said
    export.write_text("")  # nothing left: one line saying so, exit 2
    assert main([*verify, "--head", head]) == 2
    assert f"{export} holds no entry" in capsys.readouterr().err


def test_records_verify_of_a_store_whose_triggers_were_dropped(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runbooks.cli import main

    db = sqlite3.connect(filled)
    db.execute("DROP TRIGGER meta_no_update")
    db.close()
    assert main(["--store", str(filled), "records", "verify"]) == 5
    said = capsys.readouterr().out
    assert "unguarded store #1" in said and "meta_no_update" in said
