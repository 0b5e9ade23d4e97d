"""Time the lab's NetBox: cold `up` from the kept migration, restart, warm `up`, and `reset`.

Run: .venv/bin/python bench/lab_netbox.py [--rounds N]
Needs a machine where `runbook lab up` works; the first ever run migrates once (~6 min),
which this benchmark does beforehand so it is not counted.
Cold = `destroy()` first (databases and state gone, the cache's migrated snapshot kept).
Restart = `down()` first (server stopped, databases and tokens kept).
Warm = NetBox already up (the idempotent no-op check).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

from runbooks.lab import netbox


def timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    netbox.up()  # makes sure the migration snapshot exists (not timed)
    figures: dict[str, list[float]] = {
        "cold up (kept migration)": [],
        "restart up": [],
        "warm up": [],
        "reset": [],
    }
    for _ in range(args.rounds):
        netbox.destroy()
        figures["cold up (kept migration)"].append(timed(netbox.up))
        netbox.down()
        figures["restart up"].append(timed(netbox.up))
        figures["warm up"].append(timed(netbox.up))
        figures["reset"].append(timed(netbox.reset))

    cold = statistics.median(figures["cold up (kept migration)"])
    print(f"NetBox {netbox.VERSION} lab, {args.rounds} rounds, median seconds (min-max)")
    print(f"{'operation':<26} {'median':>8} {'range':>15} {'vs cold':>9}")
    for name, values in figures.items():
        med = statistics.median(values)
        span = f"{min(values):.2f}-{max(values):.2f}"
        print(f"{name:<26} {med:8.2f} {span:>15} {med / cold:8.3f}x")
    print("first migrate (not repeated here): ~6 min, see LAB-NOTES.md")


if __name__ == "__main__":
    main()
