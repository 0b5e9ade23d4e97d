"""An incident's sheet: who reported what and when, which red line, the clock's verdict, the
runs that triaged it, and the manual's two signatures (職位責任人簽字 / 上級主管簽字).

Times are shown in the zone the caller passes (the `runbook` command: the department's
``time_zone`` setting), and the sheet names it. Every value that lands in a table cell is
escaped, so a reporter's ``|`` or a line break cannot break the table."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from runbooks.core import secrets
from runbooks.core.incidents import duration_text, local_time
from runbooks.report.render import markdown_cell, render


def cell(value: Any) -> str:
    r"""A value as one Markdown table cell (an empty one as a dash).

    >>> print(cell("a | b\nc"), cell(None))
    a \| b<br>c —
    """
    return "—" if value in (None, "") else markdown_cell(value)


def _at(ts: str | None, zone: tzinfo) -> str:
    return local_time(datetime.fromisoformat(ts), zone) if ts else ""


def context(record: dict[str, Any], head: str, chain_ok: bool, zone: tzinfo) -> dict[str, Any]:
    """What the sheet shows, every cell escaped, every time in ``zone``."""
    clock, virus = record.get("clock"), record.get("virus")
    if clock is not None:
        verdict = (
            f"{duration_text(timedelta(seconds=clock['elapsed_s']))} of a "
            f"{duration_text(timedelta(seconds=clock['budget_s']))} budget "
            f"({clock['percent']:g} %)"
            + ("" if clock["stopped"] else ", still running: not recovered")
        )
    else:
        assert virus is not None
        verdict = (
            f"virus outbreak {virus['number']} of {virus['year']} "
            f"(more than {virus['allowed']} a year crosses)"
        )
    signatures = {s["role"]: s for s in record["signatures"]}
    return {
        "id": record["id"],
        "kind": cell(record["kind"]),
        "red_line": cell(record["red_line"]),
        "status": record["status"],
        "reporter": cell(record["reporter"]),
        "affected": cell(", ".join(record["affected"])),
        "summary": cell(record["summary"]),
        "reported_at": _at(record["reported_at"], zone),
        "opened": f"{cell(record['opened_by'])}, {_at(record['opened_at'], zone)}",
        "recovered": (
            f"{_at(record['recovered_at'], zone)} by {cell(record['recovered_by'])}"
            + (f" ({cell(record['recovery_note'])})" if record["recovery_note"] else "")
            if record["recovered_at"]
            else "— not yet"
        ),
        "verdict": cell(verdict),
        "crossed": record["crossed"],
        "level": record["level"],
        "runs": [
            {
                **{k: cell(v) for k, v in r.items()},
                "started": _at(str(r["started"]), zone),
            }
            for r in record["runs"]
        ],
        "responsible": _signature(signatures.get("responsible"), zone),
        "supervisor": _signature(signatures.get("supervisor"), zone),
        "head": head,
        "chain_ok": chain_ok,
        "time_zone": str(getattr(zone, "key", None) or zone.tzname(None) or zone),
    }


def _signature(signed: dict[str, Any] | None, zone: tzinfo) -> str:
    if not signed:
        return "________________ date ________"
    return f"{cell(signed['by'])}, {_at(signed['at'], zone)}"


def markdown(record: dict[str, Any], head: str, chain_ok: bool, zone: tzinfo) -> str:
    return render("incident.md.j2", **secrets.mask(context(record, head, chain_ok, zone)))
