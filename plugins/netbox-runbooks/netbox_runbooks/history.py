"""The chains as pages show them: a change's own history (planned, signed, refused — with who
and why — scheduled, ran, record signed) and a run's record, each with the server's verdict
on its chain (`netbox_runbooks.records.verify_change` / `verify_run`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runbooks_rules.policy import AUTHORITY_NAMES

from netbox_runbooks.choices import AuthorityChoices
from netbox_runbooks.models import Change, RecordEntry, Run
from netbox_runbooks.records import report_dict, verify_change, verify_run

__all__ = ("change_history", "run_record")

Payload = Mapping[str, Any]


def _short(digest: Any) -> str:
    return f"{str(digest)[:12]}…" if digest else "—"


def _planned(p: Payload) -> str:
    targets = ", ".join(p.get("targets") or []) or "no target"
    mark = " (unreviewed: its preparer runs it without signatures)" if p.get("unreviewed") else ""
    digest = _short(p.get("plan_hash"))
    return f"planned {p.get('runbook', '')} for {targets}, plan hash {digest}{mark}"


def _signed(p: Payload) -> str:
    name = AUTHORITY_NAMES.get(str(p.get("authority")), str(p.get("authority")))
    note = f": {p['note']}" if p.get("note") else ""
    return f"{name}, naming plan hash {_short(p.get('plan_hash'))}{note}"


def _refused(p: Payload) -> str:
    return f"{p.get('action', '')} refused: {p.get('reason', '')}"


def _scheduled(p: Payload) -> str:
    confirmed = "; the manual steps confirmed in advance" if p.get("confirm_manual") else ""
    return f"queued for its window{confirmed}"


def _ran(p: Payload) -> str:
    how = " as an EMERGENCY run outside its window" if p.get("emergency") else ""
    worker = f" by worker {p['worker']}" if p.get("scheduled") and p.get("worker") else ""
    return f"run {p.get('run_id', '')} started{how}{worker}"


def _record_signed(p: Payload) -> str:
    role = str(dict(AuthorityChoices).get(p.get("role"), p.get("role")))
    note = f": {p['note']}" if p.get("note") else ""
    return (
        f"{role} signed the record of {p.get('run_id', '')} ({p.get('length', 0)} entries, "
        f"head {_short(p.get('head'))}){note}"
    )


SENTENCES: dict[str, Callable[[Payload], str]] = {
    "change.planned": _planned,
    "change.signed": _signed,
    "change.refused": _refused,
    "change.scheduled": _scheduled,
    "change.ran": _ran,
    "record.signed": _record_signed,
}


def _row(entry: RecordEntry) -> dict[str, Any]:
    payload = entry.data
    sentence = SENTENCES.get(entry.kind)
    return {
        "entry": entry,
        "at": entry.ts[:19].replace("T", " "),
        "event": entry.kind.split(".", 1)[-1] if entry.kind.startswith("change.") else entry.kind,
        "detail": sentence(payload) if sentence else "",
        "refused": entry.kind == "change.refused",
        "payload": payload,
    }


def change_history(change: Change) -> dict[str, Any]:
    """The change's own chain, each entry with a sentence, and whether it verifies."""
    entries = RecordEntry.objects.filter(chain=change.name).select_related("recorded_by")
    report, problems = verify_change(change)
    return {
        "rows": [_row(e) for e in entries.order_by("seq")],
        "verified": report_dict(report, problems),
    }


def run_record(run: Run) -> dict[str, Any]:
    """A run's record entries in order, and the server's verdict on its chain."""
    entries = run.entries.select_related("recorded_by").order_by("seq")
    return {"entries": list(entries), "verified": report_dict(verify_run(run))}
