"""Benchmark: the record store's append (fsync'd) and `records verify` over 100,000 entries,
each beside the bare SQLite loop doing the least the same work needs, measured in the same run
(ratios, to read beside each other; not a timed test).

    .venv/bin/python bench/records.py [--appends 500] [--entries 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from runbooks_rules.chain import entry_hash

from runbooks.core.store import RecordStore, canonical, genesis

RUN = "20260101-000000-abcdef"
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
            store.append(RUN, "step.finished", PAYLOAD, actor="bench", step="apply")
        return time.perf_counter() - start


def fill(path: Path, n: int) -> None:
    """Write a valid chain of n entries in one transaction (fast set-up, not measured)."""
    with RecordStore(path):
        pass
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    prev = genesis(RUN)
    body = canonical(PAYLOAD)
    for seq in range(1, n + 1):
        ts = f"2026-01-01T00:00:00.{seq:06d}+00:00"
        digest = entry_hash(RUN, seq, ts, "bench", "step.finished", "apply", PAYLOAD, prev)
        db.execute(
            "INSERT INTO entries (run_id, seq, ts, actor, kind, step, payload, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (RUN, seq, ts, "bench", "step.finished", "apply", body, prev, digest),
        )
        prev = digest
    db.execute("INSERT INTO heads (run_id, seq, hash) VALUES (?, ?, ?)", (RUN, n, prev))
    db.execute("COMMIT")
    db.close()


def bare_hash_loop(path: Path, n: int) -> float:
    """The floor of verifying: read every row as verify does and sha256 its fields joined."""
    db = sqlite3.connect(path)
    start = time.perf_counter()
    count = 0
    for row in db.execute(
        "SELECT seq, run_id, ts, actor, kind, step, payload, prev_hash, hash FROM entries"
        " ORDER BY pos"
    ):
        hashlib.sha256("\x1f".join(map(str, row)).encode()).hexdigest()
        count += 1
    took = time.perf_counter() - start
    db.close()
    assert count == n
    return took


def verify(path: Path, n: int) -> float:
    """`records verify` of the store: RecordStore.verify, what the command calls."""
    with RecordStore(path) as store:
        start = time.perf_counter()
        report = store.verify()
        took = time.perf_counter() - start
    assert report.ok and report.entries == n, report.problems[:3]
    return took


def best(runs: int, *measures: Callable[[int], float]) -> list[float]:
    """Each measure's least time of ``runs``, taken in turns (so a busy moment of the machine
    falls on all of them alike; its other work only ever adds time)."""
    times = [[m(i) for m in measures] for i in range(runs)]
    return [min(column) for column in zip(*times, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="Best of this many runs each.")
    args = parser.parse_args()
    n, runs = args.entries, args.runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bare_each, ours = best(
            runs,
            lambda i: bare_inserts(root / f"b{i}", args.appends, commit_each=True),
            lambda i: appends(root / f"s{i}", args.appends),
        )
        print(f"append, fsync'd, one transaction each, {args.appends} entries, best of {runs}:")
        print(f"  record store append     {ours / args.appends * 1e3:8.3f} ms/entry")
        print(f"  bare SQLite insert      {bare_each / args.appends * 1e3:8.3f} ms/entry")
        print(f"  ratio store/bare        {ours / bare_each:8.2f}x")

        store = root / "verify.sqlite3"
        fill(store, n)
        bare_loop, bare_hash, took = best(
            runs,
            lambda i: bare_inserts(root / f"bl{i}", n, commit_each=False),
            lambda _: bare_hash_loop(store, n),
            lambda _: verify(store, n),
        )
        print(f"records verify over {n} entries, best of {runs}:")
        print(f"  verify                  {took:8.3f} s ({took / n * 1e6:.1f} us/entry)")
        print(f"  bare read + sha256 loop {bare_hash:8.3f} s (the same rows, no chain)")
        print(f"  ratio verify/bare hash  {took / bare_hash:8.2f}x")
        print(f"  bare SQLite insert loop {bare_loop:8.3f} s (one transaction)")
        print(f"  ratio verify/bare insert{took / bare_loop:8.2f}x")


if __name__ == "__main__":
    main()
