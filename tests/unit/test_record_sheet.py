"""The record sheet: a run that handed something over to a person carries their receipt block."""

from __future__ import annotations

from pathlib import Path

from runbooks.core.store import RecordStore
from runbooks.report import sheet


def record(tmp_path: Path, *, undone: bool = False) -> RecordStore:
    store = RecordStore(tmp_path / "records.sqlite3")
    run = "RUN-1"
    started = {
        "runbook": "pc-install",
        "instruction": "20 PC 機安裝 PC install",
        "params": {"slot": "pc1"},
        "plan_hash": "abc",
        "targets": ["pc1"],
        "window": None,
    }
    store.append(run, "run.started", started, actor="olivia")
    store.append(run, "step.started", {"title": "Record the hand-over"}, step="s", actor="olivia")
    evidence = {"journal_entry": 7, "recipient": "Wei Chen <wchen@lab.example>"}
    store.append(
        run, "step.finished", {"status": "changed", "evidence": evidence}, step="s", actor="olivia"
    )
    if undone:
        store.append(run, "undo.finished", {}, step="s", actor="olivia")
    store.append(run, "run.finished", {"status": "succeeded"}, actor="olivia")
    return store


def test_the_recipient_signs_the_hand_over(tmp_path: Path) -> None:
    store = record(tmp_path)
    entries = store.entries("RUN-1")
    md = sheet.markdown(entries, "head", True)
    assert "| 使用人簽收 Received by | signature | date |" in md
    assert "| Wei Chen <wchen@lab.example> | ________________ | ________ |" in md
    page = sheet.html(entries, "head", True)
    assert "使用人簽收 Received by <b>Wei Chen &lt;wchen@lab.example&gt;</b>" in page
    store.close()


def test_no_receipt_block_without_a_hand_over(tmp_path: Path) -> None:
    store = record(tmp_path, undone=True)  # the hand-over step was undone: nothing received
    assert "Received by" not in sheet.markdown(store.entries("RUN-1"), "head", True)
    store.close()
