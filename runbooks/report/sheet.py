"""The record sheet (相關記錄) of one run, rendered: the rows and their evidence, who held each
authority, and the manual's two signature blocks (職位責任人簽字 / 上級主管簽字). What a sheet
holds is `runbooks_rules.sheet.context`, which the NetBox plugin renders too.

Its times are shown in the zone the caller passes (the `runbook` command: the department's
``time_zone`` setting; default UTC), and the sheet names that zone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from runbooks_rules import sheet as _sheet

from runbooks.core import secrets
from runbooks.core.errors import InputError
from runbooks.core.store import Entry
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
        held = _sheet.context(entries, head, chain_ok, signatures, authorities)
    except _sheet.NotARun as exc:
        raise InputError(str(exc)) from None
    return in_zone(held, zone or UTC)


def in_zone(held: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """The sheet's times (run, steps, window, signatures) in ``zone``, and the zone's name."""
    held = dict(held)
    held["start_ts"], held["end_ts"] = _local(held["start_ts"], zone), _local(held["end_ts"], zone)
    held["rows"] = [
        {**r, "started": _local(r["started"], zone), "ended": _local(r["ended"], zone)}
        for r in held["rows"]
    ]
    window = held["started"].get("window")
    if isinstance(window, Mapping):
        held["started"] = {
            **held["started"],
            "window": {k: _local(str(v), zone) for k, v in window.items()},
        }
    for role in ("responsible", "supervisor"):
        if held.get(role):
            held[role] = {**held[role], "ts": _local(str(held[role].get("ts", "")), zone)}
    held["time_zone"] = str(getattr(zone, "key", None) or zone.tzname(None) or zone)
    return held


def _local(ts: str, zone: tzinfo) -> str:
    """``ts`` (ISO, UTC when it names no offset) in ``zone``; what is not a time stays as is.

    >>> from zoneinfo import ZoneInfo
    >>> _local("2026-12-07T14:30:05.123+00:00", ZoneInfo("Asia/Taipei"))
    '2026-12-07T22:30:05+08:00'
    """
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return ts
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).isoformat(timespec="seconds")


def markdown(
    entries: list[Entry], head: str, chain_ok: bool, zone: tzinfo | None = None, **server: Any
) -> str:
    held = context(entries, head, chain_ok, zone=zone, **server)
    return render("sheet.md.j2", **secrets.mask(held))


def html(
    entries: list[Entry], head: str, chain_ok: bool, zone: tzinfo | None = None, **server: Any
) -> str:
    held = context(entries, head, chain_ok, zone=zone, **server)
    return render("sheet.html.j2", **secrets.mask(held))
