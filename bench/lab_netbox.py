"""Time the lab's NetBox: cold `up` from the kept migration, restart, warm `up`, and `reset`.

Run: .venv/bin/python bench/lab_netbox.py [--rounds N]
Needs a machine where `runbook lab up` works; the first ever run migrates once (~6 min),
which this benchmark does beforehand so it is not counted.
Cold (snapshot restore) = `destroy(keep_migrated=False)` first: databases and state gone, only
the cache's migrated dump kept. Cold (template kept) = `destroy()` first, which keeps the migrated
template database (what `lab down` does).
Restart = `down()` first (server stopped, databases and tokens kept).
Warm = NetBox already up (the idempotent no-op check).
It runs on its own NetBox instance (RUNBOOKS_NETBOX_INSTANCE=bench, port 8766 unless set), so the
lab's NetBox that others use keeps serving; the bench instance is destroyed at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
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
    os.environ.setdefault("RUNBOOKS_NETBOX_INSTANCE", "bench")
    os.environ.setdefault("RUNBOOKS_NETBOX_PORT", "8766")

    netbox.up()  # makes sure the migration snapshot exists (not timed)
    figures: dict[str, list[float]] = {
        "cold up (snapshot restore)": [],
        "cold up (template kept)": [],
        "restart up": [],
        "warm up": [],
        "reset": [],
    }
    for _ in range(args.rounds):
        netbox.destroy(keep_migrated=False)
        figures["cold up (snapshot restore)"].append(timed(netbox.up))
        netbox.destroy()
        figures["cold up (template kept)"].append(timed(netbox.up))
        netbox.down()
        figures["restart up"].append(timed(netbox.up))
        figures["warm up"].append(timed(netbox.up))
        figures["reset"].append(timed(netbox.reset))

    netbox.destroy(keep_migrated=False)
    cold = statistics.median(figures["cold up (snapshot restore)"])
    print(
        f"NetBox {netbox.VERSION} lab (instance {netbox.instance() or 'main'}), "
        f"{args.rounds} rounds, median seconds (min-max); load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'operation':<26} {'median':>8} {'range':>15} {'vs cold':>9}")
    for name, values in figures.items():
        med = statistics.median(values)
        span = f"{min(values):.2f}-{max(values):.2f}"
        print(f"{name:<26} {med:8.2f} {span:>15} {med / cold:8.3f}x")
    print("first migrate (not repeated here): ~6 min, see LAB-NOTES.md")


if __name__ == "__main__":
    main()
