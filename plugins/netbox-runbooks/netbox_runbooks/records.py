"""Record chains on the server: entries the server writes on a change, entries a run's
operator posts, and the verification of both. The hash rules are `runbooks_rules.chain`.

Callers hold the row lock of the change or run whose chain grows (select_for_update), so two
requests never compute the same position; the unique (chain, seq) constraint backs that up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from netbox.plugins import get_plugin_config
from runbooks_rules import lifecycle
from runbooks_rules.chain import (
    Entry,
    VerifyReport,
    canonical,
    entry_hash,
    genesis,
    make_entry,
    verify_entries,
)
from runbooks_rules.plan import plan_hash

from netbox_runbooks.errors import ChainConflict
from netbox_runbooks.models import Change, RecordEntry, Run

__all__ = (
    "Posted",
    "append_change_entry",
    "append_run_entries",
    "server_ts",
    "verify_change",
    "verify_run",
)

RUN_STARTED, RUN_FINISHED = "run.started", "run.finished"


def server_ts(now: datetime | None = None) -> str:
    """The server's clock as an entry's time stamp (ISO 8601, UTC, microseconds)."""
    return (now or timezone.now()).astimezone(UTC).isoformat(timespec="microseconds")


def _store(entry: Entry, user: Any, **owner: Any) -> RecordEntry:
    return RecordEntry(
        chain=entry.run_id,
        seq=entry.seq,
        ts=entry.ts,
        actor=entry.actor,
        kind=entry.kind,
        step=entry.step,
        payload=canonical(entry.payload),
        prev_hash=entry.prev_hash,
        hash=entry.hash,
        recorded_by=user,
        recorded_at=timezone.now(),
        **owner,
    )


def append_change_entry(
    change: Change, kind: str, payload: dict[str, Any], user: Any
) -> RecordEntry:
    """One entry at the end of ``change``'s own chain, written by the server: the actor is
    the authenticated user, the time the server's clock. The caller holds the change's lock."""
    last = RecordEntry.objects.filter(chain=change.name).order_by("-seq").first()
    seq, prev = (last.seq + 1, last.hash) if last else (1, genesis(change.name))
    clean = json.loads(canonical(payload))  # exactly what is hashed and stored
    entry = make_entry(change.name, seq, server_ts(), user.username, kind, None, clean, prev)
    stored = _store(entry, user, change=change)
    stored.save(force_insert=True)
    return stored


@dataclass(frozen=True)
class Posted:
    """What a post of entries left: the run's record length and head, and the status a
    run.finished entry gave the run (None while it runs)."""

    length: int
    head: str
    finished: str | None = None


def append_run_entries(
    run: Run, posted: Sequence[Mapping[str, Any]], user: Any, change: Change
) -> Posted:
    """Append entries to a run's record, all or nothing: each must take the next position,
    link to the head, match its recomputed hash, carry a time stamp the server's clock allows
    and stand in the poster's name; the first is run.started for the change's plan; nothing
    follows run.finished.
    Raises ChainConflict naming the first entry that does not fit (nothing is written).
    The caller holds the run's lock."""
    skew = timedelta(seconds=float(get_plugin_config("netbox_runbooks", "max_clock_skew_s")))
    latest = timezone.now() + skew
    seq, prev = run.length, run.head or genesis(run.run_id)
    closed = run.status != lifecycle.RUNNING
    finished: str | None = None
    rows: list[RecordEntry] = []
    for raw in posted:
        if closed:
            raise ChainConflict(
                f"the record of run {run.run_id} is closed: it has finished, so entry "
                f"#{raw['seq']} cannot follow"
            )
        entry = _entry(run.run_id, raw)
        _check_place(entry, seq + 1, prev)
        _check_time(entry, latest)
        _check_content(entry, change, run, user)
        if entry.kind == RUN_FINISHED:
            finished, closed = _finished_status(entry), True
        rows.append(_store(entry, user, run=run))
        seq, prev = entry.seq, entry.hash
    RecordEntry.objects.bulk_create(rows)
    # length and head move with the entries, without a change-log record for each post
    Run.objects.filter(pk=run.pk).update(length=seq, head=prev, last_updated=timezone.now())
    run.length, run.head = seq, prev
    return Posted(seq, prev, finished)


def _entry(run_id: str, raw: Mapping[str, Any]) -> Entry:
    """The posted fields as an Entry of this run's chain (a posted run_id is not trusted)."""
    return Entry(
        raw["seq"],
        run_id,
        raw["ts"],
        raw["actor"],
        raw["kind"],
        raw.get("step"),
        json.loads(canonical(raw["payload"])),
        raw["prev_hash"],
        raw["hash"],
    )


def _check_place(entry: Entry, expected: int, prev: str) -> None:
    if entry.seq != expected:
        raise ChainConflict(
            f"entry #{entry.seq} is out of place: the record has {expected - 1} entries, "
            f"so the next is #{expected}"
        )
    if entry.prev_hash != prev:
        raise ChainConflict(
            f"entry #{entry.seq} does not link to the record's head: it names "
            f"{entry.prev_hash[:12]}…, the head is {prev[:12]}…"
        )
    recomputed = entry_hash(
        entry.run_id,
        entry.seq,
        entry.ts,
        entry.actor,
        entry.kind,
        entry.step,
        entry.payload,
        entry.prev_hash,
    )
    if entry.hash != recomputed:
        raise ChainConflict(
            f"entry #{entry.seq} does not match its hash: it gives {entry.hash[:12]}…, "
            f"its content hashes to {recomputed[:12]}…"
        )


def _check_time(entry: Entry, latest: datetime) -> None:
    try:
        ts = datetime.fromisoformat(entry.ts)
    except ValueError:
        raise ChainConflict(
            f"entry #{entry.seq} has no ISO 8601 time stamp: {entry.ts[:40]!r}"
        ) from None
    if ts.tzinfo is None:
        raise ChainConflict(f"entry #{entry.seq} has a time stamp without a time zone")
    if ts > latest:
        raise ChainConflict(
            f"entry #{entry.seq} is dated {entry.ts}, later than the server's clock allows "
            f"({server_ts(latest)})"
        )


def _check_content(entry: Entry, change: Change, run: Run, user: Any) -> None:
    """A run's record starts with run.started for the plan its change was approved for; what
    it says of the grant is what the server granted; every entry is in the poster's name (a
    manual step of a scheduled run may be confirmed by whoever scheduled it, in advance)."""
    data = entry.payload
    if entry.seq == 1 and entry.kind != RUN_STARTED:
        raise ChainConflict(f"entry #1 is {entry.kind}: a run's record starts with run.started")
    if entry.kind == RUN_STARTED and data.get("plan_hash") != change.plan_hash:
        raise ChainConflict(
            f"entry #{entry.seq} starts a run of plan {str(data.get('plan_hash'))[:12]}…, not "
            f"of the change's plan {change.plan_hash[:12]}…"
        )
    if entry.kind == RUN_STARTED and data.get("change") not in (None, change.name):
        raise ChainConflict(
            f"entry #{entry.seq} starts a run of {data.get('change')}, not of {change.name}"
        )
    granted_as = data.get("emergency") if entry.kind in (RUN_STARTED, "run.granted") else None
    if granted_as is not None and bool(granted_as) != run.emergency:
        granted = "an emergency" if run.emergency else "not an emergency"
        raise ChainConflict(f"entry #{entry.seq} misstates the grant: the run is {granted}")
    allowed = {user.username}
    if entry.kind == "manual.answered" and change.confirm_manual and change.scheduled_by:
        allowed.add(change.scheduled_by.username)
    if entry.actor not in allowed:
        raise ChainConflict(
            f"entry #{entry.seq} is in the name of {entry.actor!r}: {user.username} may add "
            "entries in their own name only"
        )


def _finished_status(entry: Entry) -> str:
    try:
        return lifecycle.finished_status(entry.payload.get("status"))
    except ValueError as exc:
        raise ChainConflict(f"entry #{entry.seq}: {exc}") from None


def verify_run(run: Run) -> VerifyReport:
    """Recompute a run's record; its anchored head (the run's ``head``) catches an end cut off."""
    entries = [e.to_entry() for e in run.entries.order_by("seq")]
    expected = {run.run_id: run.head} if run.head else None
    return verify_entries(entries, expected)


def verify_change(change: Change) -> tuple[VerifyReport, list[dict[str, Any]]]:
    """Recompute a change's own chain, and check that its plan document still hashes to the
    hash its chain was started with. Returns the report and the plan problems found."""
    entries = [e.to_entry() for e in RecordEntry.objects.filter(chain=change.name).order_by("seq")]
    report = verify_entries(entries)
    problems = _unwitnessed(change, entries)
    planned = next((e for e in entries if e.kind == "change.planned"), None)
    recomputed = plan_hash(change.plan)
    anchored = {change.plan_hash, planned.payload.get("plan_hash") if planned else recomputed}
    if anchored != {recomputed}:
        problems.append(
            {
                "run_id": change.name,
                "seq": planned.seq if planned else 0,
                "kind": "edited",
                "detail": f"the plan of {change.name} hashes to {recomputed[:12]}…, not to "
                "the hash it was planned and signed with",
            }
        )
    return report, problems


def _unwitnessed(change: Change, entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """Signature rows of the change that no entry of its chain records (put in by other means
    than the API: they count for nothing, and verify names them)."""
    witnessed = {
        e.payload.get("signature"): (e.actor, e.payload.get("authority"))
        for e in entries
        if e.kind in ("change.signed", "record.signed")
    }
    problems = []
    for sig in change.signatures.select_related("user"):
        recorded = witnessed.get(sig.pk)
        if recorded is None or recorded[0] != sig.user.username:
            problems.append(
                {
                    "run_id": change.name,
                    "seq": 0,
                    "kind": "edited",
                    "detail": f"signature #{sig.pk} ({sig.authority} by {sig.user.username}) is "
                    f"not recorded in {change.name}'s chain",
                }
            )
    return problems


def report_dict(report: VerifyReport, extra: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The answer of a verify endpoint: {"ok", "entries", "head", "problems"}."""
    problems = [
        {"run_id": p.run_id, "seq": p.seq, "kind": p.kind, "detail": p.detail}
        for p in report.problems
    ]
    problems += [dict(p) for p in extra]
    return {
        "ok": not problems,
        "entries": report.entries,
        "head": report.head,
        "problems": problems,
    }
