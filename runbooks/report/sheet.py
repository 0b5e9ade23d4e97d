"""The record sheet (相關記錄) of one run, rendered: the rows and their evidence, who held each
authority, and the manual's two signature blocks (職位責任人簽字 / 上級主管簽字). What a sheet
holds is `runbooks_rules.sheet.context`, which the NetBox plugin renders too.

Its times are shown in the zone the caller passes (the `runbook` command: the department's
``time_zone`` setting; default UTC), each signature and confirmation naming it
(``2026-12-08 07:30 (UTC+08:00 Asia/Taipei)``), so a signature given before 08:00 in UTC+8
carries its own day. Its words are in the ``language`` passed (`runbooks.report.i18n`: the
command's ``sheet_language`` setting, both side by side by default; English here): labels,
kinds, statuses and step titles (the Chinese ones from `runbooks.report.titles_zh`). Every
Markdown table cell is escaped (`runbooks.report.render.markdown_cell`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import Any

from runbooks_rules import sheet as _sheet
from runbooks_rules.words import local as _local
from runbooks_rules.words import row_words
from runbooks_rules.words import zone_name as _name

from runbooks.core import secrets
from runbooks.core.errors import InputError
from runbooks.core.store import Entry
from runbooks.report.i18n import Words
from runbooks.report.render import render


def context(
    entries: list[Entry],
    head: str,
    chain_ok: bool,
    signatures: Mapping[str, Mapping[str, str]] | None = None,
    authorities: Mapping[str, list[str]] | None = None,
    zone: tzinfo | None = None,
) -> dict[str, Any]:
    try:
        held = _sheet.context(entries, head, chain_ok, signatures, authorities, zone=zone or UTC)
    except _sheet.NotARun as exc:
        raise InputError(str(exc)) from None
    return in_zone(with_confirmations(held, entries, zone or UTC), zone or UTC)


# a moment in evidence (ISO, with its offset): shown in the sheet's zone like its other times
_MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)$")


def in_zone(held: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """The sheet's times (run, steps, window, signatures) in ``zone``, and the zone's name."""
    held = dict(held)
    held["time_zone"] = _name(zone, held["start_ts"])  # its offset when the run started
    held["start_ts"], held["end_ts"] = _local(held["start_ts"], zone), _local(held["end_ts"], zone)
    held["rows"] = [
        {
            **r,
            "started": _local(r["started"], zone),
            "ended": _local(r["ended"], zone),
            "evidence": {
                k: _local(v, zone) if isinstance(v, str) and _MOMENT.match(v) else v
                for k, v in r["evidence"].items()
            },
        }
        for r in held["rows"]
    ]
    window = held["started"].get("window")
    if isinstance(window, Mapping):
        held["started"] = {
            **held["started"],
            "window": {k: _local(str(v), zone, minutes=True) for k, v in window.items()},
        }
    for role in ("responsible", "supervisor"):
        if held.get(role):
            ts = str(held[role].get("ts", ""))
            held[role] = {
                **held[role],
                "ts": f"{_local(ts, zone, minutes=True)} ({_name(zone, ts)})",
            }
    return held


def with_confirmations(held: dict[str, Any], entries: list[Entry], zone: tzinfo) -> dict[str, Any]:
    """Each manual step's confirmations as data (who, when in ``zone``, confirmed or not, the
    note), in place of the rows' notes that say them in UTC."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        if e.kind == "manual.answered" and e.step:
            p = e.payload
            at = str(p.get("confirmed_at", "") or e.ts)
            answers.setdefault(e.step, []).append(
                {
                    "by": str(p.get("confirmed_by") or e.actor),
                    "at": f"{_local(at, zone)} ({_name(zone, at)})",
                    "confirmed": bool(p.get("confirmed")),
                    "note": str(p.get("note", "")),
                }
            )
    said = ("confirmed", "confirmed_by", "confirmed_at", "note")  # what a confirmation shows
    rows = [
        {
            **r,
            "confirmations": answers.get(r["step"], []),
            "notes": [n for n in r["notes"] if not n.startswith("confirmed by ")],
            "evidence": {
                k: v for k, v in r["evidence"].items() if r["step"] not in answers or k not in said
            },
        }
        for r in held["rows"]
    ]
    return {**held, "rows": rows}


def _words(held: dict[str, Any], language: str, *, html: bool) -> dict[str, Any]:
    """The context with its words in ``language``: ``w`` for labels, each row's ``shown``
    title (Chinese from `titles_zh`, formatted with the run's parameters), kind and status."""
    words = Words(language, html=html)
    runbook = str(held["started"].get("runbook", ""))
    params = held["started"].get("params") or {}
    rows = [{**r, **row_words(words, runbook, params, r)} for r in held["rows"]]
    authorities = [(words.authority(name), who) for name, who in held["authorities"]]
    return {
        **held,
        "w": words,
        "rows": rows,
        "authorities": authorities,
        "status_shown": words.status(str(held["status"])),
    }


def markdown(
    entries: list[Entry],
    head: str,
    chain_ok: bool,
    zone: tzinfo | None = None,
    language: str = "en",
    **server: Any,
) -> str:
    held = context(entries, head, chain_ok, zone=zone, **server)
    return render("sheet.md.j2", **_words(secrets.mask(held), language, html=False))


def html(
    entries: list[Entry],
    head: str,
    chain_ok: bool,
    zone: tzinfo | None = None,
    language: str = "en",
    **server: Any,
) -> str:
    held = context(entries, head, chain_ok, zone=zone, **server)
    return render("sheet.html.j2", **_words(secrets.mask(held), language, html=True))
