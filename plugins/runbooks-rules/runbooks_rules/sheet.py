"""The record sheet (相關記錄) of one run, as data: one row per step with what happened to it,
who held each authority, and the manual's two signature blocks (職位責任人簽字 / 上級主管簽字).
A run that handed something over to a person (a step's evidence names its ``recipient``) gets
their receipt block too. A run of a batched change names its batches kept, failed and not run
(a run *stopped* part-way: `runbooks_rules.lifecycle`). The CLI and the NetBox plugin render
the same context. Its notes say their times in the zone given (UTC unless the caller names
the department's), the zone named: ``undone at 2026-12-08 07:30:05 (UTC+08:00 Asia/Taipei)``
(`runbooks_rules.words`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from runbooks_rules.chain import Entry
from runbooks_rules.lifecycle import MEANINGS
from runbooks_rules.policy import AUTHORITY_NAMES
from runbooks_rules.words import named

# what a run.finished entry's ``batches`` holds, in the words a sheet shows them
BATCH_OUTCOMES = (("kept", "kept"), ("failed", "failed"), ("not_run", "not run"))


class NotARun(ValueError):
    """The entries given are not a run's record."""


@dataclass
class Row:
    step: str
    title: str = ""
    kind: str = ""
    status: str = ""
    targets: list[str] = field(default_factory=list)
    started: str = ""
    ended: str = ""
    actor: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    diffs: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    notes: list[str] = field(default_factory=list)


def rows(entries: Iterable[Entry], zone: tzinfo = UTC) -> list[Row]:
    """One row per step, in order, with what happened to it (undo included); the times its
    notes name are in ``zone``, named."""
    table: dict[str, Row] = {}
    for e in entries:
        if not e.step:
            continue
        row = table.setdefault(e.step, Row(e.step))
        p = e.payload
        if e.kind == "step.started":
            row.title, row.kind = p.get("title", ""), p.get("kind", "")
            row.targets, row.started, row.actor = p.get("targets", []), e.ts, e.actor
        elif e.kind == "step.finished":
            row.status, row.ended = p.get("status", ""), e.ts
            # a step recorded as not run has no step.started: its title is in its result
            row.title, row.kind = row.title or p.get("title", ""), row.kind or p.get("kind", "")
            row.evidence, row.diffs = p.get("evidence", {}), p.get("diffs", [])
            if p.get("resumed"):
                row.notes.append(f"resumed: {p['resumed']}")
        elif e.kind in ("step.failed", "step.refused"):
            row.status = "failed" if e.kind == "step.failed" else "refused"
            row.error, row.ended = p.get("error", ""), e.ts
        elif e.kind == "manual.answered":
            at = str(p.get("confirmed_at", "") or e.ts)
            row.notes.append(
                f"confirmed by {p.get('confirmed_by')} at {named(at, zone)}: {p.get('note', '')}"
            )
        elif e.kind == "undo.finished":
            row.notes.append(f"undone at {named(e.ts, zone)}")
            row.status = "undone"
        elif e.kind in ("undo.failed", "undo.skipped"):
            row.notes.append(
                f"UNDO {e.kind.split('.')[1].upper()}: {p.get('error') or p.get('reason', '')}"
            )
    return list(table.values())


def batches_line(batches: Mapping[str, Any] | None) -> str:
    """A run.finished entry's batches in one line ("" when it names none).

    >>> batches_line({"kept": ["batch 1 of 3 (canary): d1"], "failed": ["batch 2 of 3: d2"],
    ...               "not_run": ["batch 3 of 3: d3"]})
    'kept: batch 1 of 3 (canary): d1; failed: batch 2 of 3: d2; not run: batch 3 of 3: d3'
    >>> batches_line({"kept": [], "failed": ["batch 1 of 2 (canary): d1"], "not_run": []})
    'kept: none; failed: batch 1 of 2 (canary): d1; not run: none'
    >>> batches_line(None)
    ''
    """
    if not batches:
        return ""
    return "; ".join(
        f"{words}: {', '.join(map(str, batches[key])) if batches.get(key) else 'none'}"
        for key, words in BATCH_OUTCOMES
        if key in batches
    )


def signed_in_record(entries: Iterable[Entry]) -> dict[str, dict[str, str]]:
    """The sign-offs a local record holds as ``record.signed`` entries, by role."""
    return {
        str(e.payload.get("role")): {
            "actor": e.actor,
            "ts": e.ts,
            "note": str(e.payload.get("note", "")),
        }
        for e in entries
        if e.kind == "record.signed"
    }


def context(
    entries: list[Entry],
    head: str,
    chain_ok: bool,
    signatures: Mapping[str, Mapping[str, str]] | None = None,
    authorities: Mapping[str, list[str]] | None = None,
    zone: tzinfo = UTC,
) -> dict[str, Any]:
    """Everything a record sheet shows. ``signatures`` (role -> actor, ts, note) and
    ``authorities`` (authority -> people) come from the server where it holds them; a local
    record's own entries otherwise. The rows' notes name their times in ``zone``; the other
    times are as recorded (ISO), for the renderer to show in its zone."""
    if not entries or entries[0].kind != "run.started":
        raise NotARun("not a run: its record does not start with run.started")
    # a run of a change is granted after its record began: whether it ran as an emergency
    # is in its run.granted entry
    granted = [e.payload for e in entries if e.kind == "run.granted"]
    started = {
        **entries[0].payload,
        **{k: v for g in granted[-1:] for k, v in g.items() if k == "emergency"},
    }
    finished = [e for e in entries if e.kind == "run.finished"]
    signed = signed_in_record(entries) if signatures is None else signatures
    held = authorities or started.get("authorities") or {"handle": [entries[0].actor]}
    table = rows(entries, zone)
    status = finished[-1].payload.get("status") if finished else "interrupted"
    batches = finished[-1].payload.get("batches") if finished else None
    return {
        "run_id": entries[0].run_id,
        "started": started,
        "start_ts": entries[0].ts,
        "end_ts": finished[-1].ts if finished else "",
        "status": status,
        "meaning": MEANINGS.get(str(status), ""),
        "error": finished[-1].payload.get("error", "") if finished else "",
        "batches": batches_line(batches if isinstance(batches, Mapping) else None),
        "rows": [asdict(r) for r in table],
        "authorities": [
            (AUTHORITY_NAMES.get(k, k), ", ".join(dict.fromkeys(v)) or "—") for k, v in held.items()
        ],
        "responsible": signed.get("responsible"),
        "supervisor": signed.get("supervisor"),
        "recipients": list(
            dict.fromkeys(
                str(r.evidence["recipient"])
                for r in table
                if r.status != "undone" and r.evidence.get("recipient")
            )
        ),
        "head": head,
        "chain_ok": chain_ok,
        "entries": len(entries),
    }
