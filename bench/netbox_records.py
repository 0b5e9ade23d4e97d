"""Benchmark: what NetBox's change control costs a run and a reviewer, side by side in one run.

1. Recording. The entries of a run of N steps (each step: step.started with its diffs, then
   step.finished with its evidence, as the engine writes them) appended
   a. to the local store alone (a run without NetBox);
   b. to the local store with the mirror to NetBox (the `runbook` command with the plugin):
      the time on the run's path, and the time NetBox took after the last step to hold all;
   c. to the local store, each step then posted to NetBox before the next (what a client
      without the mirror would make a run wait for).
   Each NetBox run is granted by the plugin for a real change (planned, reviewed, approved).
   Target: (b) adds ≤ 50 ms per step over (a).
2. Reading. NetBox's page of a change of 50 steps (its review document: a field diff and a
   coloured configuration diff per step) for a signed-in reviewer, beside NetBox's own page of
   a device, median of several loads. Target: ≤ 1 s.

Run: .venv/bin/python bench/netbox_records.py [--steps 50] [--loads 7]
Needs the lab's NetBox with the plugin (`runbook lab up`); holds it, and resets it after.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import checkout  # noqa: F401  (binds the checkout's tests package: bench/checkout.py)

from runbooks.config import NetBoxSettings
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox_plugin import PluginAPI
from runbooks.gateways.netbox_records import RecordMirror
from runbooks.lab import netbox
from tests.support.synthetic_plan import plan

Writer = Callable[[RecordStore, str, int], None]


def api(role: str) -> PluginAPI:
    url, token = netbox.credentials(role)
    return PluginAPI(NetBoxSettings(url, token))


def granted_run(steps: int) -> tuple[str, int, str]:
    """A change planned by olivia, reviewed by rachel, approved by arthur; the run NetBox
    grants olivia: (run id, NetBox's id of it, the plan hash)."""
    doc = plan("leaf1", steps=steps, lines=60)
    olivia = api("operator")
    change = olivia.post(
        "changes/", {"runbook": doc["runbook"], "plan": doc, "params": doc["params"]}
    )
    for role, authority in (("reviewer", "review"), ("approver", "approve")):
        api(role).post(
            f"changes/{change['id']}/sign/", {"authority": authority, "hash": change["plan_hash"]}
        )
    run = olivia.post(f"changes/{change['id']}/runs/", {"plan_hash": change["plan_hash"]})
    return str(run["run_id"]), int(run["id"]), str(change["plan_hash"])


def write_run(
    store: RecordStore, run_id: str, plan_hash: str, steps: int, after_step: Callable[[], None]
) -> list[float]:
    """The engine's entries for a run of ``steps`` steps; the time of each step's appends (and
    whatever ``after_step`` makes the run wait for)."""
    doc = plan("leaf1", steps=steps, lines=60)
    store.append(
        run_id, "run.started", {"runbook": "ledger", "plan_hash": plan_hash}, actor="olivia"
    )
    took = []
    for step in doc["steps"][1:]:
        started = time.perf_counter()
        store.append(
            run_id,
            "step.started",
            {
                "kind": "change",
                "title": step["title"],
                "targets": step["targets"],
                "diffs": step["diffs"],
            },
            actor="olivia",
            step=step["step"],
        )
        store.append(
            run_id,
            "step.finished",
            {
                "status": "changed",
                "evidence": {"committed": True, "seconds": 1.25},
                "diffs": step["diffs"],
            },
            actor="olivia",
            step=step["step"],
        )
        after_step()
        took.append(time.perf_counter() - started)
    store.append(run_id, "run.finished", {"status": "succeeded"}, actor="olivia")
    return took


def recording(steps: int, tmp: Path) -> None:
    local = RecordStore(tmp / "alone.sqlite3")
    alone = write_run(local, "bench-local", "0" * 64, steps, lambda: None)

    run_id, key, digest = granted_run(steps)
    store = RecordStore(tmp / "mirrored.sqlite3")
    mirror = RecordMirror(api("operator"), store.path)
    store.observers.append(mirror.observe)
    mirror.track(run_id, key)
    mirrored = write_run(store, run_id, digest, steps, lambda: None)
    waited = time.perf_counter()
    held = mirror.flush(run_id)
    flush = time.perf_counter() - waited
    mirror.close()
    assert held.sent == 2 * steps + 2 and held.head == store.run_head(run_id)

    run_id, key, digest = granted_run(steps)
    sync_store = RecordStore(tmp / "synchronous.sqlite3")
    poster = api("operator")
    sent = [0]

    def post_now() -> None:
        batch = sync_store.entries(run_id, after=sent[0])
        answer = poster.post(f"runs/{key}/entries/", {"entries": [e.to_dict() for e in batch]})
        sent[0] = int(answer["length"])

    synchronous = write_run(sync_store, run_id, digest, steps, post_now)

    a, b, c = (statistics.median(t) * 1e3 for t in (alone, mirrored, synchronous))
    print(f"recording a run of {steps} steps (2 entries a step, ~3 KB each), median per step:")
    print(f"  a. local store alone                  {a:8.2f} ms")
    print(f"  b. local store + mirror to NetBox     {b:8.2f} ms  (+{b - a:.2f} ms; target +50 ms)")
    print(
        f"     NetBox held the whole record {flush * 1e3:.0f} ms after the last step "
        f"({held.sent} entries)"
    )
    print(f"  c. local store + a POST per step      {c:8.2f} ms  (+{c - a:.2f} ms)")
    print(f"  ratio b/a {b / a:6.2f}x   c/a {c / a:6.2f}x   c/b {c / b:6.2f}x")


def reading(steps: int, loads: int) -> None:
    doc = plan("leaf1", steps=steps, lines=60)
    change = api("operator").post(
        "changes/", {"runbook": doc["runbook"], "plan": doc, "params": doc["params"]}
    )
    web = netbox.web_session("reviewer")
    base = netbox.url()
    device = (
        api("admin").call("GET", "/api/dcim/devices/", params={"name": "leaf1"}).data["results"][0]
    )

    def median_load(path: str) -> tuple[float, int]:
        web.get(base + path, timeout=60).raise_for_status()  # warm: templates, session
        took, size = [], 0
        for _ in range(loads):
            started = time.perf_counter()
            page = web.get(base + path, timeout=60)
            took.append(time.perf_counter() - started)
            page.raise_for_status()
            size = len(page.content)
        return statistics.median(took), size

    change_s, change_bytes = median_load(f"/plugins/runbooks/changes/{change['id']}/")
    device_s, device_bytes = median_load(f"/dcim/devices/{device['id']}/")
    print(f"NetBox pages for a signed-in reviewer, median of {loads} loads:")
    print(
        f"  change of {steps} steps (review document)  {change_s * 1e3:8.0f} ms  "
        f"({change_bytes // 1024} KB; target 1000 ms)"
    )
    print(
        f"  NetBox's own device page (leaf1)        {device_s * 1e3:8.0f} ms  "
        f"({device_bytes // 1024} KB)"
    )
    print(f"  ratio change/device {change_s / device_s:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--loads", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with netbox.held(reset_first=True), tempfile.TemporaryDirectory() as tmp:
        try:
            recording(args.steps, Path(tmp))
            reading(args.steps, args.loads)
        finally:
            netbox.reset()  # the seeded state for whoever comes next


if __name__ == "__main__":
    main()
