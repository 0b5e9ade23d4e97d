# ruff: noqa: RUF001  (the Chinese text uses its own full-width punctuation)
"""An incident's sheet: who reported what and when, which red line, the clock's verdict, the
runs that triaged it, and the manual's two signatures (職位責任人簽字 / 上級主管簽字).

Times are shown in the zone the caller passes (the `runbook` command: the department's
``time_zone`` setting), and the sheet names it. Its words are in the manual's language and in
English (the ``sheet_language`` setting: both side by side, zh-Hant or en). Every value that
lands in a table cell is escaped, so a reporter's ``|`` or a line break cannot break the table.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from runbooks.core import secrets
from runbooks.core.incidents import UNVERIFIED, duration_text, local_time
from runbooks.report.i18n import Words
from runbooks.report.render import markdown_cell, render

# the incident sheet's own words: key -> (Traditional Chinese, English); the words every sheet
# shares (integrity, signatures ...) are the record sheet's (`runbooks.report.i18n`)
LABELS: dict[str, tuple[str, str]] = {
    "title": ("故障處理記錄", "Incident record"),
    "red_line": ("紅線", "Red line"),
    "reported_by": ("報告人", "Reported by"),
    "affected": ("受影響", "Affected"),
    "summary": ("故障描述", "Summary"),
    "opened_by": ("登記人", "Opened by"),
    "recovered": ("恢復", "Recovered"),
    "not_yet": ("未恢復", "not yet"),
    "outage": ("中斷時長", "Outage"),
    "crossed": ("觸及紅線", "Red line crossed"),
    "yes": ("是", "YES"),
    "no": ("否", "no"),
    "status": ("狀態", "Status"),
    "runs": ("排查運行", "Triage runs"),
    "none": ("無", "None collected."),
    "run": ("運行", "run"),
    "runbook": ("作業", "runbook"),
    "collected": ("收集方式", "collected"),
    "head_hash": ("末端雜湊值", "Incident head hash"),
}
RED_LINES: dict[str, str] = {
    "network": "重大網絡故障影響業務超過 2 小時",
    "application": "所維護的應用系統故障超過 2 小時",
    "backbone": "核心骨幹網絡中斷超過 4 小時",
    "datacentre": "數據中心網絡中斷超過 2 小時",
    "virus": "局域網一年內大規模病毒爆發超過 3 次",
}
STATUSES: dict[str, str] = {"open": "處理中", "recovered": "已恢復", "closed": "已結案"}


def cell(value: Any) -> str:
    r"""A value as one Markdown table cell (an empty one as a dash).

    >>> print(cell("a | b\nc"), cell(None))
    a \| b<br>c —
    """
    return "—" if value in (None, "") else markdown_cell(value)


def _at(ts: str | None, zone: tzinfo) -> str:
    return local_time(datetime.fromisoformat(ts), zone) if ts else ""


def context(
    record: dict[str, Any], head: str, chain_ok: bool, zone: tzinfo, language: str = "both"
) -> dict[str, Any]:
    """What the sheet shows, every cell escaped, every time in ``zone``, its words in
    ``language`` (``both``, ``zh-Hant`` or ``en``)."""
    words = Words(language)

    def label(key: str) -> str:
        return words.pair(*LABELS[key])

    clock, virus = record.get("clock"), record.get("virus")
    if clock is not None:
        verdict = (
            f"{duration_text(timedelta(seconds=clock['elapsed_s']))} / "
            f"{duration_text(timedelta(seconds=clock['budget_s']))} ({clock['percent']:g} %)"
        )
        if not clock["stopped"]:
            verdict += " — " + label("not_yet")
    else:
        assert virus is not None
        verdict = words.pair(
            f"{virus['year']} 年第 {virus['number']} 次，該年已記錄 {virus['in_year']} 次"
            f"（超過 {virus['allowed']} 次觸及紅線）",
            f"outbreak no. {virus['number']} in {virus['year']}; {virus['in_year']} this year "
            f"(more than {virus['allowed']} a year crosses)",
        )
    signatures = {s["role"]: s for s in record["signatures"]}
    recovered = (
        f"{_at(record['recovered_at'], zone)}, {cell(record['recovered_by'])}"
        + _vouched(record.get("recovered_by_source"))
        + (f" ({cell(record['recovery_note'])})" if record["recovery_note"] else "")
        if record["recovered_at"]
        else "— " + label("not_yet")
    )
    return {
        "id": record["id"],
        "l": {key: label(key) for key in LABELS},
        "w": words,
        "kind": cell(record["kind"]),
        "red_line": cell(words.pair(RED_LINES[record["kind"]], record["red_line"])),
        "status": words.pair(STATUSES[record["status"]], record["status"]),
        "reporter": cell(record["reporter"]),
        "affected": cell(record["affected_text"]),
        "summary": cell(record["summary"]),
        "reported_at": _at(record["reported_at"], zone),
        "opened": f"{cell(record['opened_by'])}{_vouched(record.get('opened_by_source'))}, "
        f"{_at(record['opened_at'], zone)}",
        "recovered": recovered,
        "verdict": cell(verdict),
        "crossed": label("yes") if record["crossed"] else label("no"),
        "runs": [
            {
                **{k: cell(v) for k, v in r.items()},
                "started": _at(str(r["started"]), zone),
                "status": cell(words.status(str(r["status"])) if r["status"] else ""),
            }
            for r in record["runs"]
        ],
        "responsible": _signature(signatures.get("responsible"), zone, words),
        "supervisor": _signature(signatures.get("supervisor"), zone, words),
        "head": head,
        "chain_ok": chain_ok,
        "time_zone": str(getattr(zone, "key", None) or zone.tzname(None) or zone),
    }


def _signature(signed: dict[str, Any] | None, zone: tzinfo, words: Words) -> str:
    if not signed:
        return f"________________ {words.label('date')} ________"
    return f"{cell(signed['by'])}, {_at(signed['at'], zone)}"


def markdown(
    record: dict[str, Any], head: str, chain_ok: bool, zone: tzinfo, language: str = "both"
) -> str:
    held = context(record, head, chain_ok, zone, language)
    return render("incident.md.j2", **secrets.mask(held))


def _vouched(source: object) -> str:
    """A name no server vouched for (NetBox did not answer), said so on the sheet."""
    return f" ({cell(UNVERIFIED)})" if source == UNVERIFIED else ""
