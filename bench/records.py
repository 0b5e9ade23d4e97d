"""Benchmark: the record store's append (fsync'd) and `records verify` over 100,000 entries,
each beside a bare SQLite insert loop measured in the same run.

    .venv/bin/python bench/records.py [--appends 500] [--entries 100000]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from runbooks.core.store import GENESIS, RecordStore, canonical, entry_hash

PAYLOAD = {
    "step": "apply_config",
    "status": "changed",
    "targets": ["leaf3"],
    "diffs": [{"target": "leaf3", "text": "+ router bgp 65103\n" * 5}],
}


def bare_inserts(path: Path, n: int, commit_each: bool) -> float:
    """The floor: plain INSERTs of the same payload, same durability settings."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload TEXT)")
    body = canonical(PAYLOAD)
    start = time.perf_counter()
    if not commit_each:
        db.execute("BEGIN")
    for i in range(n):
        if commit_each:
            db.execute("BEGIN")
        db.execute("INSERT INTO t (seq, payload) VALUES (?, ?)", (i + 1, body))
        if commit_each:
            db.execute("COMMIT")
    if not commit_each:
        db.execute("COMMIT")
    took = time.perf_counter() - start
    db.close()
    return took


def appends(path: Path, n: int) -> float:
    with RecordStore(path) as store:
        start = time.perf_counter()
        for _ in range(n):
            store.append("bench-run", "step.finished", PAYLOAD, actor="bench", step="apply")
        return time.perf_counter() - start


def fill(path: Path, n: int) -> None:
    """Write a valid chain of n entries in one transaction (fast set-up, not measured)."""
    with RecordStore(path):
        pass
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    prev = GENESIS
    body = canonical(PAYLOAD)
    for seq in range(1, n + 1):
        ts = f"2026-01-01T00:00:{seq:09d}"
        digest = entry_hash("bench-run", ts, "bench", "step.finished", "apply", PAYLOAD, prev)
        db.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, "bench-run", ts, "bench", "step.finished", "apply", body, prev, digest),
        )
        prev = digest
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('head', ?)", (prev,))
    db.execute("COMMIT")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bare_each = bare_inserts(root / "bare1.sqlite3", args.appends, commit_each=True)
        ours = appends(root / "store1.sqlite3", args.appends)
        print(f"append, fsync'd, {args.appends} entries:")
        print(f"  record store append     {ours / args.appends * 1e3:8.3f} ms/entry")
        print(f"  bare SQLite insert      {bare_each / args.appends * 1e3:8.3f} ms/entry")
        print(f"  ratio store/bare        {ours / bare_each:8.2f}x")

        fill(root / "store2.sqlite3", args.entries)
        bare_loop = bare_inserts(root / "bare2.sqlite3", args.entries, commit_each=False)
        with RecordStore(root / "store2.sqlite3") as store:
            start = time.perf_counter()
            report = store.verify()
            took = time.perf_counter() - start
        assert report.ok and report.entries == args.entries
        print(f"records verify over {args.entries} entries:")
        print(f"  verify                  {took:8.3f} s ({took / args.entries * 1e6:.1f} us/entry)")
        print(f"  bare SQLite insert loop {bare_loop:8.3f} s (one transaction)")
        print(f"  ratio verify/bare       {took / bare_loop:8.2f}x")


if __name__ == "__main__":
    main()
