"""Benchmark: the db-upgrade runbook's downtime against a bare pg_upgrade on the same data.

For each size (``--rows``: filler rows beside the sample data), copies of one PostgreSQL 15
cluster, each with the same writer running (`pg_clusters.ConnWriter`: a row every ~20 ms on
one connection, as an application; when the cluster is down, one connection attempt per
0.1 s), so both sides pay the same for it:
- bare: stop, initdb 18, ``pg_upgrade --copy`` and ``pg_upgrade --link``, pg_upgrade timed
  (the floor of each mode);
- runbook, per ``--modes``: the whole db-upgrade run. Downtime is from writers stopped to
  the new cluster accepting writes on the service endpoint (the run's record), and,
  independently, the longest gap the writer saw.
Ratios are to the bare pg_upgrade of the same mode, side by side for every size. The load
average is printed before and after (a shared machine slows everything alike, not equally).

    PYTHONPATH=. .venv/bin/python bench/db_upgrade.py [--rows 300000 1000000] [--modes copy link]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import checkout  # noqa: F401  (binds the checkout's tests package: bench/checkout.py)

from runbooks.core.context import confirm_all
from runbooks.core.engine import Engine
from runbooks.core.store import RecordStore
from runbooks.gateways import postgres_facts as facts
from tests.support import pg_clusters as pc

FILLER = """
CREATE TABLE filler (id bigint PRIMARY KEY, payload text, at timestamptz DEFAULT now());
INSERT INTO filler SELECT i, md5(i::text) || repeat('x', 40) FROM generate_series(1, {rows}) i;
"""


def bare_upgrade(template: Path, mode: str) -> float:
    c = pc.copy_template(template)
    writer = pc.ConnWriter(c)  # the same writer as the runbook's runs have
    writer.start()
    try:
        time.sleep(0.5)
        options = facts.unknown_column_options(json.loads(c.psql(facts.COLUMN_OPTIONS_SQL)))
        pc.pg_ctl(pc.PG15, c.root / "15", "stop", "-m", "fast", "-w").check_returncode()
        pc.as_postgres(
            [
                str(pc.PG18 / "initdb"),
                "-D",
                str(c.root / "18"),
                "-U",
                "postgres",
                "--no-data-checksums",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        )
        bin_dir = pc.PG18
        if options:  # the same pg_restore filter the runbook uses (Debian 15.20's pg_attver)
            shim = c.root / "work" / "bin"
            pc.as_postgres(["mkdir", str(shim)])
            for f in pc.PG18.iterdir():
                if f.name != "pg_restore":
                    pc.as_postgres(["ln", "-s", str(f), str(shim / f.name)])
            script = facts.pg_restore_shim(str(pc.PG18), sorted(options))
            pc.as_postgres(
                ["sh", "-c", f"cat > {shim}/pg_restore && chmod 755 {shim}/pg_restore"],
                input=script,
            )
            bin_dir = shim
        start = time.perf_counter()
        pc.as_postgres(
            [
                "env",
                "-C",
                str(c.root / "work"),
                str(pc.PG18 / "pg_upgrade"),
                f"--{mode}",
                f"--jobs={os.cpu_count() or 1}",
                "-b",
                str(pc.PG15),
                "-B",
                str(bin_dir),
                "-d",
                str(c.root / "15"),
                "-D",
                str(c.root / "18"),
                "-p",
                "50432",
                "-P",
                "50433",
                "-s",
                str(c.root / "work"),
                "-U",
                "postgres",
            ]
        )
        return time.perf_counter() - start
    finally:
        writer.stop.set()
        writer.join()
        c.remove()


def runbook_upgrade(template: Path, tmp: Path, mode: str) -> tuple[float, float, float, float]:
    from runbooks.library.db_upgrade import DbUpgrade

    c = pc.copy_template(template)
    try:
        writer = pc.ConnWriter(c)
        writer.start()
        time.sleep(0.5)
        start = time.perf_counter()
        rb = DbUpgrade(DbUpgrade.parse_params({**c.params, "mode": mode}))
        result = Engine(RecordStore(tmp / "records.sqlite3"), "bench", confirmer=confirm_all()).run(
            rb
        )
        total = time.perf_counter() - start
        time.sleep(0.5)
        writer.stop.set()
        writer.join()
        if not result.ok:
            raise SystemExit(f"runbook failed: {result.error}")
        evidence = {s.step: s.evidence for s in result.steps}
        print(mode, "steps:", ", ".join(f"{s.step} {s.duration_s:.2f}" for s in result.steps))
        rows = int(c.psql("SELECT count(*) FROM writes"))
        if rows != len(writer.ok):
            raise SystemExit(f"lost writes: {len(writer.ok)} acknowledged, {rows} in 18")
        return (
            float(evidence["service_check"]["downtime_s"]),
            writer.longest_gap(),
            float(evidence["plan_upgrade"]["pg_upgrade_s"]),
            total,
        )
    finally:
        c.remove()


def make_template(rows: int) -> Path:
    """The sample cluster plus ``rows`` rows of filler, stopped."""
    t0 = time.perf_counter()
    template = pc.make_template()
    pc.pg_ctl(
        pc.PG15,
        template,
        "start",
        "-w",
        "-l",
        str(template.parent / "log"),
        "-o",
        f"-c listen_addresses='' -c port={pc.SERVICE_PORT} "
        f"-c unix_socket_directories='{template.parent / 'sock'}'",
    ).check_returncode()
    pc.as_postgres(
        [
            str(pc.PG15 / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(template.parent / "sock"),
            "-p",
            str(pc.SERVICE_PORT),
            "-d",
            "postgres",
        ],
        input=FILLER.format(rows=rows) + pc.WRITER_ROLE_SQL,
    )
    pc.pg_ctl(pc.PG15, template, "stop", "-m", "fast", "-w")
    size = sum(f.stat().st_size for f in template.rglob("*") if f.is_file())
    print(
        f"template: {size / 1e6:.0f} MB data directory, {rows} filler rows "
        f"({time.perf_counter() - t0:.1f} s to build)"
    )
    return template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[300_000, 1_000_000])
    parser.add_argument(
        "--modes", nargs="+", default=["copy", "link"], help="runbook modes (copy, link, swap)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each, interleaved; the fastest counts"
    )
    args = parser.parse_args()
    if (why := pc.can_run()) is not None:
        raise SystemExit(why)
    table = []
    load_before = os.getloadavg()
    for rows in args.rows:
        template = make_template(rows)
        tmp = pc.postgres_dir("rbpg-bench-")
        bare: dict[str, list[float]] = {"copy": [], "link": []}
        runs: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in args.modes}
        try:
            for _ in range(args.repeat):  # interleaved: a busy machine slows all alike
                for m, times in bare.items():
                    times.append(bare_upgrade(template, m))
                for mode in args.modes:
                    runs[mode].append(runbook_upgrade(template, tmp, mode))
        finally:
            shutil.rmtree(template.parent, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)
        floor = {m: min(t) for m, t in bare.items()}
        for mode, results in runs.items():
            best = tuple(min(r[i] for r in results) for i in range(4))
            table.append((rows, mode, floor, *best))
    print()
    print("downtime: writers stopped -> the new cluster accepts writes (record); gap: the")
    print("longest time between two acknowledged inserts of the writer; ratios to bare pg_upgrade")
    print("in the same mode (copy mode against --copy, link mode against --link); with")
    print(f"--repeat {args.repeat}: the fastest of each; every run with the same writer")
    print(
        f"load average (1/5/15 min) on {os.cpu_count()} cores: before "
        + "/".join(f"{x:.1f}" for x in load_before)
        + ", after "
        + "/".join(f"{x:.1f}" for x in os.getloadavg())
    )
    head = f"{'rows':>9} {'mode':>5} {'bare copy':>9} {'bare link':>9} {'pg_upg':>7} "
    head += f"{'downtime':>8} {'gap':>6} {'ratio':>6} {'gap ratio':>9} {'whole run':>9}"
    print(head)
    for rows, mode, bare, downtime, gap, in_run, total in table:
        ref = bare[mode]
        print(
            f"{rows:>9} {mode:>5} {bare['copy']:>8.2f}s {bare['link']:>8.2f}s {in_run:>6.2f}s "
            f"{downtime:>7.2f}s {gap:>5.2f}s {downtime / ref:>6.2f} {gap / ref:>9.2f} "
            f"{total:>8.1f}s"
        )


if __name__ == "__main__":
    main()
