"""The record store: append-only, hash-chained entries in SQLite, exportable as JSONL.

Each entry carries the hash of the entry before it. ``verify`` recomputes the chain and
names what broke: an entry edited (its content no longer matches its hash), deleted
(a link points to no entry), reordered (a link points to an entry elsewhere in the
store) or truncated (the stored head is gone). SQLite triggers refuse UPDATE and DELETE
so accidents cannot happen; the chain catches deliberate edits, and each run's head hash
is also written to an independent witness (the NetBox journal) by the runbooks.

Secrets are masked before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from runbooks.core import secrets
from runbooks.core.errors import InputError, StoreError

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq       INTEGER PRIMARY KEY,
    run_id    TEXT NOT NULL,
    ts        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    step      TEXT,
    payload   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS entries_run ON entries (run_id, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
"""


_SELECT = "SELECT seq, run_id, ts, actor, kind, step, payload, prev_hash, hash FROM entries"


def canonical(data: Any) -> str:
    """The one JSON form that is hashed: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Entry:
    seq: int
    run_id: str
    ts: str
    actor: str
    kind: str
    step: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def content_hash(self) -> str:
        return entry_hash(
            self.run_id, self.ts, self.actor, self.kind, self.step, self.payload, self.prev_hash
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "run_id": self.run_id,
            "ts": self.ts,
            "actor": self.actor,
            "kind": self.kind,
            "step": self.step,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def entry_hash(
    run_id: str,
    ts: str,
    actor: str,
    kind: str,
    step: str | None,
    payload: dict[str, Any],
    prev_hash: str,
) -> str:
    body = canonical(
        {
            "run_id": run_id,
            "ts": ts,
            "actor": actor,
            "kind": kind,
            "step": step,
            "payload": payload,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str  # edited | deleted | reordered | truncated
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    head: str
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_entries(entries: Iterable[Entry], expected_head: str | None = None) -> VerifyReport:
    """Recompute the chain over entries in sequence order and name every break."""
    rows = list(entries)
    by_hash = {e.hash: e for e in rows}
    problems: list[Problem] = []
    prev = GENESIS
    last_seq = 0
    for entry in rows:
        if entry.content_hash() != entry.hash:
            problems.append(
                Problem(entry.seq, "edited", f"entry {entry.seq} does not match its hash")
            )
        if entry.prev_hash != prev:
            if entry.prev_hash in by_hash and by_hash[entry.prev_hash].seq != last_seq:
                problems.append(
                    Problem(
                        entry.seq,
                        "reordered",
                        f"entry {entry.seq} follows entry {by_hash[entry.prev_hash].seq}, "
                        f"not entry {last_seq}",
                    )
                )
            elif entry.prev_hash != GENESIS and entry.prev_hash not in by_hash:
                problems.append(
                    Problem(entry.seq, "deleted", f"the entry before {entry.seq} is missing")
                )
            else:
                problems.append(
                    Problem(
                        entry.seq,
                        "reordered",
                        f"entry {entry.seq} is out of its place in the chain",
                    )
                )
        prev = entry.hash
        last_seq = entry.seq
    if expected_head is not None and expected_head != prev:
        problems.append(
            Problem(
                last_seq,
                "truncated",
                "the store's head entry is missing: entries at the end were deleted",
            )
        )
    return VerifyReport(len(rows), prev, tuple(problems))


class RecordStore:
    """Append-only record entries in one SQLite file (fsync'd on every append)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open record store {self.path}: {exc}", path=str(path)
            ) from exc

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
        """Mask, chain and durably write one entry."""
        clean = json.loads(canonical(secrets.mask(payload)))
        actor = secrets.mask_text(actor)
        ts = datetime.now(UTC).isoformat(timespec="microseconds")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            digest = entry_hash(run_id, ts, actor, kind, step, clean, prev)
            self._db.execute(
                "INSERT INTO entries (seq, run_id, ts, actor, kind, step, payload, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, run_id, ts, actor, kind, step, canonical(clean), prev, digest),
            )
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('head', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (digest,),
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot write record store {self.path}: {exc}") from exc
        return Entry(seq, run_id, ts, actor, kind, step, clean, prev, digest)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> Iterator[Entry]:
        try:
            cursor = self._db.execute(sql, args)
            for row in cursor:
                yield Entry(
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    row[4],
                    row[5],
                    json.loads(row[6]),
                    row[7],
                    row[8],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read record store {self.path}: {exc}") from exc

    def entries(self, run_id: str | None = None) -> list[Entry]:
        if run_id is None:
            return list(self._rows(_SELECT + " ORDER BY seq"))
        return list(self._rows(_SELECT + " WHERE run_id = ? ORDER BY seq", (run_id,)))

    def head(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
        return str(row[0]) if row else GENESIS

    def run_head(self, run_id: str) -> str:
        row = self._db.execute(
            "SELECT hash FROM entries WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
        ).fetchone()
        return str(row[0]) if row else GENESIS

    def resolve_run(self, prefix: str) -> str:
        """A run id from a unique prefix of it; InputError when none or several match."""
        rows = self._db.execute(
            "SELECT DISTINCT run_id FROM entries WHERE run_id LIKE ? || '%' LIMIT 2", (prefix,)
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
                   (SELECT COUNT(*) FROM entries c WHERE c.run_id = s.run_id)
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
        sql += " ORDER BY s.seq DESC"
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
                "status": r[5] or "interrupted",
                "entries": r[6],
            }
            for r in rows
        ]

    def verify(self) -> VerifyReport:
        return verify_entries(self.entries(), expected_head=self.head())

    def export_jsonl(self, out: IO[str], run_id: str | None = None) -> int:
        count = 0
        for entry in self.entries(run_id):
            out.write(canonical(entry.to_dict()) + "\n")
            count += 1
        return count


def read_jsonl(lines: Iterable[str]) -> list[Entry]:
    """Entries from a JSONL export, for verifying an archived copy."""
    return [Entry.from_dict(json.loads(line)) for line in lines if line.strip()]
