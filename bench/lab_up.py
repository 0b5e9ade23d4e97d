"""Time the whole lab: cold `up`, warm `up`, `reset`, `down`, and BGP/LLDP convergence.

Run: .venv/bin/python bench/lab_up.py [--rounds N] [--no-netbox | --fresh-netbox]
Cold = `lab down` first (NetBox databases and state gone, the cache's migrated snapshot kept;
no namespaces, processes or state). Warm = the lab already up (verify only).
Reset = NetBox to its seed, devices to their rendered configs, hosts to fresh filesystems.
--no-netbox times devices and hosts alone (configs generated from the topology); this leaves
NetBox untouched, so it is safe while someone else works on NetBox.
Each phase's figures are medians over the rounds; bgp/lldp are the convergence waits.
--fresh-netbox times NetBox's part of a fresh machine's first `up` once, beside the lab: an
instance of its own (RUNBOOKS_NETBOX_INSTANCE=bench, port 8791, its own databases and state)
with an empty cache directory (NetBox's venv installed anew, pip's cache off, no dump of this
machine's), then removes it. The lab's NetBox is not touched, so it needs no hold.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lab"))

from lab_fixtures import topology_configs

from runbooks.lab import lab, topology
from runbooks.lab.lab import Timings


def quiet(_line: str) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-netbox", action="store_true")
    parser.add_argument("--fresh-netbox", action="store_true")
    args = parser.parse_args()
    if args.fresh_netbox:
        fresh_netbox()
        return
    logging.basicConfig(level=logging.WARNING)
    configs = None
    if args.no_netbox:
        os.environ["RUNBOOKS_LAB_NETBOX"] = "0"
        configs = topology_configs(topology.load())

    runs: dict[str, list[Timings]] = {"cold up": [], "warm up": [], "reset": [], "down": []}
    walls: dict[str, list[float]] = {k: [] for k in runs}

    def timed(kind: str, fn: object) -> None:
        assert callable(fn)
        started = time.perf_counter()
        runs[kind].append(fn())
        walls[kind].append(time.perf_counter() - started)

    lab.up(quiet, configs=configs)  # the first ever run may migrate NetBox: not counted
    for _ in range(args.rounds):
        timed("down", lambda: lab.down(quiet))
        timed("cold up", lambda: lab.up(quiet, configs=configs))
        timed("warm up", lambda: lab.up(quiet, configs=configs))
        timed("reset", lambda: lab.reset(quiet))

    print(
        f"lab timings, median of {args.rounds} rounds"
        f"{' (no NetBox)' if args.no_netbox else ''}, seconds"
    )
    print(f"{'action':<10} {'wall':>6}  phases")
    for kind, timings in runs.items():
        phases = {
            p: statistics.median(t.phases.get(p, 0.0) for t in timings) for p in timings[0].phases
        }
        detail = "  ".join(f"{p}={v:.2f}" for p, v in phases.items())
        print(f"{kind:<10} {statistics.median(walls[kind]):>6.2f}  {detail}")


def fresh_netbox() -> None:
    """NetBox's first `up` on a fresh machine, its log lines timed from the start."""
    cache = tempfile.mkdtemp(prefix="runbooks-bench-cache-")
    os.environ |= {
        "RUNBOOKS_CACHE_DIR": cache,
        "RUNBOOKS_NETBOX_INSTANCE": "bench",
        "RUNBOOKS_NETBOX_PORT": "8791",
        "PIP_NO_CACHE_DIR": "1",  # as fresh as a new machine: wheels built again
    }
    logging.basicConfig(
        level=logging.INFO, format="%(relativeCreated)8.0f ms  %(name)s: %(message)s", force=True
    )
    from runbooks.lab import netbox

    started = time.perf_counter()
    try:
        netbox.up()
        elapsed = time.perf_counter() - started
    finally:
        netbox.destroy(keep_migrated=False)
        shutil.rmtree(cache, ignore_errors=True)
    print(f"NetBox's part of a fresh machine's first lab up: {elapsed:.1f} s")


if __name__ == "__main__":
    main()
