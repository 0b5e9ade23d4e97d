"""The record store: append-only, hash-chained entries in SQLite, exportable as JSONL.

Every run, and every change, is its own chain (`runbooks_rules.chain`): entry *n* carries the
hash of entry *n-1* of the same run, entry 1 the run's genesis, and the hash covers every
field including the entry's position. The same chain, byte for byte, is what NetBox holds when
the netbox-runbooks plugin is configured, so each run's head here can be compared with the head
anchored there. ``verify`` recomputes every chain and names what broke: an entry edited,
deleted, reordered, or a run truncated (the ``heads`` table remembers each run's last entry).
SQLite triggers refuse UPDATE and DELETE of entries and ``meta`` rows, and let a run's head
only move forward to an entry that is there, so accidents cannot happen. Someone with the file
can drop them: a store that opens and finds a trigger missing or altered recreates it and
appends an entry of its own saying so (chain ``store``, kind ``store.triggers_recreated``),
which ``verify`` reports as "unguarded" from then on. The chain catches deliberate edits, and
the witnesses (NetBox's copy, the journal entries the runbooks write) catch a chain rewritten
with recomputed hashes -- and triggers put back before the store was next opened.

Secrets are masked before anything is written.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from runbooks_rules.chain import (
    STORE_CHAIN,
    UNGUARDED,
    Entry,
    Problem,
    VerifyReport,
    canonical,
    compare_with_witness,
    genesis,
    json_safe,
    make_entry,
    verify_entries,
    verify_rows,
)

from runbooks.core import secrets
from runbooks.core.errors import InputError, StoreError

__all__ = [
    "STORE_CHAIN",
    "UNGUARDED",
    "Claim",
    "Entry",
    "Problem",
    "RecordStore",
    "VerifyReport",
    "canonical",
    "compare_with_witness",
    "genesis",
    "json_safe",
    "read_jsonl",
    "verify_entries",
]

FORMAT = "2"  # per-run chains; format 1 (one chain through the whole store) is not read
GUARDS = "2"  # meta 'guards': the triggers below are all installed (a store before had two)

_TABLES = (
    """CREATE TABLE IF NOT EXISTS entries (
    pos       INTEGER PRIMARY KEY,
    run_id    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    ts        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    step      TEXT,
    payload   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE,
    UNIQUE (run_id, seq)
)""",
    """CREATE TABLE IF NOT EXISTS heads (
    run_id TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL,
    hash   TEXT NOT NULL
)""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

# name -> the statement (as sqlite_master keeps it, up to white space). The first two are
# what every store of this format had from its start; INSERT OR REPLACE deletes a row without
# firing a DELETE trigger, hence the *_no_replace ones.
_TRIGGERS = {
    "entries_no_update": """CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'records are append-only'); END""",
    "entries_no_delete": """CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'records are append-only'); END""",
    "entries_no_replace": """CREATE TRIGGER entries_no_replace BEFORE INSERT ON entries
    WHEN EXISTS (SELECT 1 FROM entries e WHERE e.pos = NEW.pos
                 OR (e.run_id = NEW.run_id AND e.seq = NEW.seq) OR e.hash = NEW.hash)
    BEGIN SELECT RAISE(ABORT, 'records are append-only'); END""",
    "heads_no_delete": """CREATE TRIGGER heads_no_delete BEFORE DELETE ON heads
    BEGIN SELECT RAISE(ABORT, 'a run''s head only moves forward'); END""",
    "heads_forward": """CREATE TRIGGER heads_forward BEFORE UPDATE ON heads
    WHEN NEW.run_id IS NOT OLD.run_id OR NEW.seq <= OLD.seq
      OR NOT EXISTS (SELECT 1 FROM entries e
                     WHERE e.run_id = NEW.run_id AND e.seq = NEW.seq AND e.hash = NEW.hash)
    BEGIN SELECT RAISE(ABORT, 'a run''s head only moves forward, to an entry of it'); END""",
    "heads_no_replace": """CREATE TRIGGER heads_no_replace BEFORE INSERT ON heads
    WHEN EXISTS (SELECT 1 FROM heads h WHERE h.run_id = NEW.run_id)
      OR NOT EXISTS (SELECT 1 FROM entries e
                     WHERE e.run_id = NEW.run_id AND e.seq = NEW.seq AND e.hash = NEW.hash)
    BEGIN SELECT RAISE(ABORT, 'a run''s head only moves forward, to an entry of it'); END""",
    "meta_no_update": """CREATE TRIGGER meta_no_update BEFORE UPDATE ON meta
    BEGIN SELECT RAISE(ABORT, 'the store''s meta data is written once'); END""",
    "meta_no_delete": """CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta
    BEGIN SELECT RAISE(ABORT, 'the store''s meta data is written once'); END""",
    "meta_no_replace": """CREATE TRIGGER meta_no_replace BEFORE INSERT ON meta
    WHEN EXISTS (SELECT 1 FROM meta m WHERE m.key = NEW.key)
    BEGIN SELECT RAISE(ABORT, 'the store''s meta data is written once'); END""",
}
_FIRST_TRIGGERS = ("entries_no_update", "entries_no_delete")
# the store's own chain says when a store from before the guards got them: a store whose
# 'guards' mark is gone afterwards was tampered with, not old
GUARDS_INSTALLED = "store.guards_installed"

_SELECT = "SELECT pos, run_id, seq, ts, actor, kind, step, payload, prev_hash, hash FROM entries"


def _same_sql(a: str | None, b: str) -> bool:
    return " ".join((a or "").split()) == " ".join(b.split())


class Claim:
    """A run this process is working on: an exclusive lock (flock) on the run's lock file
    beside the store, which the kernel releases when the process ends, however it ends."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        os.close(self._fd)


class RecordStore:
    """Append-only record entries in one SQLite file (fsync'd on every append)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # called with each entry once it is durable (a mirror to NetBox wakes up on it)
        self.observers: list[Callable[[Entry], None]] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._check_format()
            if not self._guarded():
                with self._writing():
                    self._guard()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open record store {self.path}: {exc}", path=str(path)
            ) from exc

    def _check_format(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        if columns and "pos" not in columns:
            raise StoreError(
                f"record store {self.path} has the format of runbooks 0.1 (one chain through "
                "the whole store); move it aside (its `records export` of that version stays "
                "verifiable) and start a new one",
                path=str(self.path),
            )

    def _guarded(self) -> bool:
        """Are the tables there with every trigger as written, and the meta data? (A read.)"""
        have = dict(self._db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
        if any(not _same_sql(have.get(name), sql) for name, sql in _TRIGGERS.items()):
            return False
        keys = {row[0] for row in self._db.execute("SELECT key FROM meta")}
        return {"format", "guards"} <= keys

    def _guard(self) -> None:
        """Create what is missing; within one write transaction, so a store opened by two
        processes at once records a missing trigger once. Triggers missing or altered in a
        store that had them are recreated and recorded (UNGUARDED); a store of this format
        from before its guards were added gets the ones it never had, and that is recorded
        too (GUARDS_INSTALLED), so deleting the 'guards' mark later is not taken for age."""
        tables = {
            row[0]
            for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        for sql in _TABLES:
            self._db.execute(sql)
        have = dict(self._db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        missing = [name for name in _TRIGGERS if name not in have]
        altered = [n for n in _TRIGGERS if n in have and not _same_sql(have[n], _TRIGGERS[n])]
        for name in altered:
            self._db.execute(f"DROP TRIGGER {name}")
        for name in [*missing, *altered]:
            self._db.execute(_TRIGGERS[name])
        for key, value in (("format", FORMAT), ("guards", GUARDS)):
            if key not in meta:
                self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        if not tables & {"entries", "heads", "meta"}:
            return  # a new store
        noticed = datetime.now(UTC).isoformat(timespec="microseconds")
        if "guards" not in meta and "format" in meta:
            if self._guards_installed():  # its guards were installed once: their mark is gone
                missing = [*missing, "meta 'guards'"]
            else:  # from before the guards: not all lost; installing them is on record
                missing = [name for name in missing if name in _FIRST_TRIGGERS]
                installed = {"installed": sorted(_TRIGGERS), "noticed": noticed}
                self._append_in_transaction(
                    STORE_CHAIN, GUARDS_INSTALLED, installed, actor="runbooks", ts=noticed
                )
        if missing or altered:
            said = {"missing": missing, "altered": altered, "noticed": noticed, "recreated": True}
            self._append_in_transaction(STORE_CHAIN, UNGUARDED, said, actor="runbooks", ts=noticed)

    def _guards_installed(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM entries WHERE run_id = ? AND kind = ? LIMIT 1",
            (STORE_CHAIN, GUARDS_INSTALLED),
        ).fetchone()
        return row is not None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(
        self,
        run_id: str,
        kind: str,
        payload: dict[str, Any],
        *,
        actor: str,
        step: str | None = None,
    ) -> Entry:
        """Mask, chain and durably write one entry at the end of its run's chain."""
        clean = json.loads(canonical(json_safe(secrets.mask(payload))))
        actor = secrets.mask_text(actor)
        ts = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._writing():
            entry = self._append_in_transaction(run_id, kind, clean, actor=actor, step=step, ts=ts)
        for observer in self.observers:
            observer(entry)
        return entry

    def append_new(
        self, run_id: str, kind: str, payload: dict[str, Any], *, actor: str
    ) -> Entry | None:
        """Start a chain with its first entry, in one transaction with the check that no
        chain of that name exists (None then: another process took the name first)."""
        clean = json.loads(canonical(json_safe(secrets.mask(payload))))
        actor = secrets.mask_text(actor)
        ts = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._writing():
            taken = self._db.execute("SELECT 1 FROM heads WHERE run_id = ?", (run_id,)).fetchone()
            entry = (
                None
                if taken
                else self._append_in_transaction(run_id, kind, clean, actor=actor, ts=ts)
            )
        if entry is not None:
            for observer in self.observers:
                observer(entry)
        return entry

    def _append_in_transaction(
        self,
        run_id: str,
        kind: str,
        clean: dict[str, Any],
        *,
        actor: str,
        ts: str,
        step: str | None = None,
    ) -> Entry:
        row = self._db.execute("SELECT seq, hash FROM heads WHERE run_id = ?", (run_id,)).fetchone()
        seq, prev = (row[0] + 1, row[1]) if row else (1, genesis(run_id))
        entry = make_entry(run_id, seq, ts, actor, kind, step, clean, prev)
        self._insert(entry)
        return entry

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): all of it or nothing."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot write record store {self.path}: {exc}") from exc

    def _insert(self, entry: Entry) -> None:
        self._db.execute(
            "INSERT INTO entries (run_id, seq, ts, actor, kind, step, payload, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.run_id,
                entry.seq,
                entry.ts,
                entry.actor,
                entry.kind,
                entry.step,
                canonical(entry.payload),
                entry.prev_hash,
                entry.hash,
            ),
        )
        moved = self._db.execute(
            "UPDATE heads SET seq = ?, hash = ? WHERE run_id = ?",
            (entry.seq, entry.hash, entry.run_id),
        )
        if not moved.rowcount:
            self._db.execute(
                "INSERT INTO heads (run_id, seq, hash) VALUES (?, ?, ?)",
                (entry.run_id, entry.seq, entry.hash),
            )

    def import_chain(self, entries: list[Entry]) -> int:
        """Copy a run's entries kept elsewhere (NetBox) into this store, after the ones it
        already has; each must verify and continue the local chain. Returns how many."""
        if not entries:
            return 0
        run_id = entries[0].run_id
        have = self.entries(run_id)
        report = verify_entries([*have, *[e for e in entries if e.seq > len(have)]])
        if not report.ok:
            first = report.problems[0]
            raise StoreError(f"{run_id} cannot be imported: {first.kind}: {first.detail}")
        new = [e for e in entries if e.seq > len(have)]
        with self._writing():
            for entry in new:
                self._insert(entry)
        return len(new)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> Iterator[Entry]:
        try:
            for row in self._db.execute(sql, args):
                yield Entry(
                    row[2],
                    row[1],
                    row[3],
                    row[4],
                    row[5],
                    row[6],
                    json.loads(row[7]),
                    row[8],
                    row[9],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read record store {self.path}: {exc}") from exc

    def entries(self, run_id: str | None = None, after: int = 0) -> list[Entry]:
        """Every entry in the order written; or one run's, from position ``after + 1`` on."""
        if run_id is None:
            return list(self._rows(_SELECT + " ORDER BY pos"))
        return list(
            self._rows(_SELECT + " WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after))
        )

    def entries_of_kind(
        self, kind: str, path: str | None = None, values: Iterable[Any] | None = None
    ) -> list[Entry]:
        """Every entry of ``kind``, in the order written; with ``path`` (a JSON path into the
        payload, ``$.params.incident``) only those with a value there, one of ``values``
        when they are given."""
        if path is None:
            return list(self._rows(_SELECT + " WHERE kind = ? ORDER BY pos", (kind,)))
        if values is None:
            sql = _SELECT + " WHERE kind = ? AND json_extract(payload, ?) IS NOT NULL ORDER BY pos"
            return list(self._rows(sql, (kind, path)))
        wanted = list(values)
        if not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        sql = _SELECT + f" WHERE kind = ? AND json_extract(payload, ?) IN ({marks}) ORDER BY pos"
        return list(self._rows(sql, (kind, path, *wanted)))

    def heads(self) -> dict[str, tuple[int, str]]:
        """Each run's (length, head hash), as the store recorded them on append."""
        rows = self._db.execute("SELECT run_id, seq, hash FROM heads").fetchall()
        return {str(r[0]): (int(r[1]), str(r[2])) for r in rows}

    def run_head(self, run_id: str) -> str:
        """The hash of a run's last entry ('' for a run with none)."""
        row = self._db.execute("SELECT hash FROM heads WHERE run_id = ?", (run_id,)).fetchone()
        return str(row[0]) if row else ""

    def chains(self) -> dict[str, list[str]]:
        """Each run's hashes in order (to compare with a witness)."""
        out: dict[str, list[str]] = {}
        for run_id, digest in self._db.execute(
            "SELECT run_id, hash FROM entries ORDER BY run_id, seq"
        ):
            out.setdefault(str(run_id), []).append(str(digest))
        return out

    def _lock_file(self, run_id: str) -> Path:
        folder = self.path.parent / f"{self.path.stem}.locks"
        folder.mkdir(exist_ok=True)
        return folder / (re.sub(r"[^\w.-]", "_", run_id) + ".lock")

    def claim(self, run_id: str) -> Claim:
        """Work on a run in this process; InputError while another process works on it."""
        fd = os.open(self._lock_file(run_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"run {run_id} is running now, in another process") from None
        return Claim(fd)

    def live(self, run_id: str) -> bool:
        """Is a process working on the run now? (An unfinished run with none: interrupted.)"""
        path = self._lock_file(run_id)
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def resolve_run(self, prefix: str) -> str:
        """A run id from a unique prefix of it; InputError when none or several match."""
        rows = self._db.execute(
            "SELECT DISTINCT run_id FROM heads WHERE run_id LIKE ? || '%' LIMIT 2", (prefix,)
        ).fetchall()
        if not rows:
            raise InputError(f"no run {prefix!r} in {self.path}", run=prefix)
        if len(rows) > 1:
            raise InputError(f"run id {prefix!r} is ambiguous: give more of it", run=prefix)
        return str(rows[0][0])

    def runs(self, runbook: str | None = None, text: str | None = None) -> list[dict[str, Any]]:
        """One summary per run, newest first; optional filters on runbook and free text."""
        sql = """
            SELECT s.run_id, s.ts, s.actor,
                   json_extract(s.payload, '$.runbook'),
                   json_extract(s.payload, '$.targets'),
                   (SELECT json_extract(f.payload, '$.status') FROM entries f
                     WHERE f.run_id = s.run_id AND f.kind = 'run.finished'
                     ORDER BY f.seq DESC LIMIT 1),
                   (SELECT COUNT(*) FROM entries c WHERE c.run_id = s.run_id),
                   json_extract(s.payload, '$.change')
              FROM entries s WHERE s.kind = 'run.started'
        """
        args: list[Any] = []
        if runbook:
            sql += " AND json_extract(s.payload, '$.runbook') = ?"
            args.append(runbook)
        if text:
            sql += (
                " AND EXISTS (SELECT 1 FROM entries t"
                " WHERE t.run_id = s.run_id AND t.payload LIKE ?)"
            )
            args.append(f"%{text}%")
        sql += " ORDER BY s.pos DESC"
        try:
            rows = self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read record store {self.path}: {exc}") from exc
        return [
            {
                "run_id": r[0],
                "started": r[1],
                "actor": r[2],
                "runbook": r[3],
                "targets": json.loads(r[4]) if r[4] else [],
                "status": r[5] or ("running" if self.live(r[0]) else "interrupted"),
                "entries": r[6],
                "change": r[7],
            }
            for r in rows
        ]

    def verify(self, run_id: str | None = None) -> VerifyReport:
        """Recompute every chain (or one run's) against the heads recorded on append; the
        store's own chain says whether its triggers were ever found missing (unguarded).
        Each entry's payload is hashed as stored, not parsed."""
        heads = {k: v[1] for k, v in self.heads().items() if run_id in (None, k)}
        columns = "SELECT seq, run_id, ts, actor, kind, step, payload, prev_hash, hash FROM entries"
        try:
            if run_id is None:
                rows = self._db.execute(columns + " ORDER BY pos")
            else:
                rows = self._db.execute(columns + " WHERE run_id = ? ORDER BY pos", (run_id,))
            return verify_rows(rows, expected_heads=heads)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read record store {self.path}: {exc}") from exc

    def export_jsonl(self, out: IO[str], run_id: str | None = None) -> int:
        count = 0
        for entry in self.entries(run_id):
            out.write(canonical(entry.to_dict()) + "\n")
            count += 1
        return count


def read_jsonl(lines: Iterable[str]) -> list[Entry]:
    """Entries from a JSONL export, for verifying an archived copy."""
    return [Entry.from_dict(json.loads(line)) for line in lines if line.strip()]
