"""The record sheet's context (`runbooks_rules.sheet`): what a run's end means, and a batched
run's batches kept, failed and not run, as its run.finished entry names them."""

from __future__ import annotations

from typing import Any

from runbooks_rules import sheet
from runbooks_rules.chain import Entry, genesis, make_entry


def record(*entries: tuple[str, str | None, dict[str, Any]]) -> list[Entry]:
    out: list[Entry] = []
    for n, (kind, step, payload) in enumerate(entries, 1):
        prev = out[-1].hash if out else genesis("R1")
        ts = f"2026-12-07T10:00:{n:02}+00:00"
        out.append(make_entry("R1", n, ts, "olivia", kind, step, payload, prev))
    return out


STARTED = ("run.started", None, {"runbook": "fleet", "targets": ["d1", "d2", "d3"]})


def test_a_stopped_run_names_its_batches_and_what_stopped_means() -> None:
    batches = {
        "kept": ["batch 1 of 3 (canary): d1"],
        "failed": ["batch 2 of 3: d2"],
        "not_run": ["batch 3 of 3: d3"],
    }
    finished = {
        "status": "stopped",
        "error": "BatchStopped: d2 lost a neighbour",
        "batches": batches,
    }
    entries = record(STARTED, ("run.finished", None, finished))

    held = sheet.context(entries, entries[-1].hash, True)

    assert held["status"] == "stopped"
    assert held["meaning"].startswith("stopped part-way: the batches kept stay in place")
    assert held["batches"] == (
        "kept: batch 1 of 3 (canary): d1; failed: batch 2 of 3: d2; not run: batch 3 of 3: d3"
    )


def test_a_run_without_batches_names_none() -> None:
    entries = record(STARTED, ("run.finished", None, {"status": "rolled-back", "error": "x"}))
    held = sheet.context(entries, entries[-1].hash, True)
    assert held["batches"] == ""
    assert held["meaning"].startswith("rolled back")
    unfinished = sheet.context(entries[:1], entries[0].hash, True)
    assert (unfinished["status"], unfinished["meaning"], unfinished["batches"]) == (
        "interrupted",
        "",
        "",
    )
