# ruff: noqa: RUF001, RUF002  (the Chinese text uses its own full-width punctuation)
"""A record sheet's words in the manual's language (Traditional Chinese, in the manual's own
terms) and in English — its labels, the kinds and statuses of steps and runs, and the language
setting that says which of them a sheet shows (``zh-Hant``, ``en``, or ``both`` side by side) —
and its times in the department's zone, named. The `runbook` command's sheets
(`runbooks.report.i18n`) and the NetBox plugin's show the same words and times; this package
is the one both have (the standard library only).

A word is looked up by its English key; a key with no translation is shown as it is, so a new
status never breaks a sheet.

>>> Words("both").label("outcome"), Words("zh-Hant").label("outcome"), Words("en").label("outcome")
('結果 Outcome', '結果', 'Outcome')
>>> Words("both").status("rolled-back")
'已回退 rolled-back'
>>> Words("zh-Hant").status("something-new")
'something-new'
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from runbooks_rules import titles_zh

LANGUAGES = ("both", "zh-Hant", "en")

# sheet labels: key -> (Traditional Chinese, English)
LABELS: dict[str, tuple[str, str]] = {
    "sheet": ("相關記錄", "Record sheet"),
    "instruction": ("作業指引", "Instruction"),
    "run": ("運行編號", "Run"),
    "change": ("變更單", "Change"),
    "no_change_control": ("無變更控制", "run without change control"),
    "emergency": ("緊急運行（窗口外）", "EMERGENCY RUN outside its window"),
    "targets": ("對象", "Targets"),
    "window": ("維護窗口", "Window"),
    "to": ("至", "to"),
    "started_ended": ("開始 / 結束", "Started / ended"),
    "time_zone": ("時區", "Time zone"),
    "every_time": ("本記錄所有時間均為", "every time on this sheet is in"),
    "outcome": ("結果", "Outcome"),
    "batches": ("批次", "Batches"),
    "parameters": ("參數", "Parameters"),
    "plan_hash": ("計劃雜湊值", "Plan hash"),
    "authorities": ("權限", "Authorities"),
    "authority": ("權限", "authority"),
    "held_by": ("持有人", "held by"),
    "steps": ("步驟", "Steps"),
    "steps_evidence": ("步驟與證據", "Steps and evidence"),
    "step": ("步驟", "step"),
    "kind": ("類型", "kind"),
    "status": ("狀態", "status"),
    "by": ("執行人", "by"),
    "started": ("開始", "started"),
    "ended": ("結束", "ended"),
    "evidence": ("證據", "Evidence"),
    "error": ("錯誤", "error"),
    "change_on": ("變更對象", "change on"),
    "confirmed_by": ("確認人", "confirmed by"),
    "declined_by": ("未確認", "not confirmed by"),
    "at": ("時間", "at"),
    "undone_at": ("已撤銷於", "undone at"),
    "integrity": ("完整性", "Integrity"),
    "entries": ("條記錄", "entries"),
    "head_hash": ("運行末端雜湊值", "run head hash"),
    "chain": ("雜湊鏈", "chain"),
    "verified": ("已驗證", "verified"),
    "broken": ("已損壞", "BROKEN"),
    "signatures": ("簽字", "Signatures"),
    "responsible": ("職位責任人簽字", "Responsible person"),
    "supervisor": ("上級主管簽字", "Supervisor"),
    "date": ("日期", "date"),
    "hand_over": ("移交", "Hand-over"),
    "received_by": ("使用人簽收", "Received by"),
    "signature": ("簽字", "signature"),
}

# step kinds and the statuses of steps and runs
KINDS: dict[str, str] = {"check": "檢查", "change": "變更", "manual": "人工確認", "wait": "等待"}
STATUSES: dict[str, str] = {
    "planned": "已計劃",
    "ok": "通過",
    "no-change": "無變更",
    "changed": "已變更",
    "failed": "失敗",
    "skipped": "已跳過",
    "undone": "已撤銷",
    "undo-failed": "撤銷失敗",
    "refused": "已拒絕",
    "running": "運行中",
    "succeeded": "成功",
    "rolled-back": "已回退",
    "rollback-failed": "回退失敗",
    "stopped": "中途停止",
    "interrupted": "已中斷",
    "abandoned": "已放棄",
}
# the manual's four authorities, as `runbooks_rules.policy.AUTHORITY_NAMES` names them
AUTHORITIES: dict[str, str] = {
    "經辦 handle": "經辦",
    "審核 review": "審核",
    "批准 approve": "批准",
    "督導 supervise": "督導",
    "emergency approval": "緊急批准",
}


class Html(str):
    """Text that is HTML already: Django's templates and Jinja's (markupsafe) both take an
    object with ``__html__`` as it is, without escaping it again."""

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"Html({str.__repr__(self)})"


@dataclass(frozen=True)
class Words:
    """The words of one sheet in ``language`` (one of `LANGUAGES`); for an HTML page
    (``html``) each word of a pair is marked with its ``lang``, escaped.

    >>> Words("both", html=True).pair("結果", "<Outcome>")
    Html('<span lang="zh-Hant">結果</span> <span lang="en">&lt;Outcome&gt;</span>')
    """

    language: str = "both"
    html: bool = False

    @property
    def zh(self) -> bool:
        """Whether the sheet shows Chinese (its sentences are written once per language)."""
        return self.language != "en"

    @property
    def en(self) -> bool:
        return self.language != "zh-Hant"

    @property
    def lang(self) -> str:
        """The page's ``lang`` attribute: the first language it shows."""
        return "en" if self.language == "en" else "zh-Hant"

    def pair(self, zh: str, en: str) -> str:
        """``zh`` and ``en`` as this sheet shows them (one, or both side by side)."""
        if self.language == "en" or not zh:
            return self._mark("en", en) if self.language != "en" else en
        if self.language == "zh-Hant" or not en or zh == en:
            return zh
        if self.html:
            return self._safe(f"{self._mark('zh-Hant', zh)} {self._mark('en', en)}")
        return f"{zh} {en}"

    def _mark(self, lang: str, text: str) -> str:
        if not self.html:
            return text
        return self._safe(f'<span lang="{lang}">{self._escape(text)}</span>')

    def _escape(self, text: str) -> str:
        """``text`` escaped for HTML (as it is when it is HTML already)."""
        html = getattr(text, "__html__", None)
        return str(html()) if html else _html.escape(text, quote=False)

    def _safe(self, text: str) -> str:
        """HTML built here, marked as such for the templates."""
        return Html(text)

    def label(self, key: str) -> str:
        zh, en = LABELS[key]
        return self.pair(zh, en)

    def labels(self) -> dict[str, str]:
        """Every label, by key (for templates that cannot call `label`)."""
        return {key: self.label(key) for key in LABELS}

    def kind(self, kind: str) -> str:
        return self.pair(KINDS.get(kind, ""), kind)

    def status(self, status: str) -> str:
        return self.pair(STATUSES.get(status, ""), status)

    def authority(self, name: str) -> str:
        zh = AUTHORITIES.get(name, "")
        english = name.removeprefix(f"{zh} ") if zh else name
        return self.pair(zh, english)


def row_words(
    words: Words, runbook: str, params: Mapping[str, Any], row: Mapping[str, Any]
) -> dict[str, str]:
    """A sheet row's words: its ``shown`` title (the Chinese one from `titles_zh`, with the
    run's ``params``, and its English one), ``kind_shown`` and ``status_shown``.

    >>> row = {"step": "power", "title": "Power", "kind": "manual", "status": "ok"}
    >>> row_words(Words("both"), "machine-room-upkeep", {}, row)["shown"]
    '電源：UPS 及 PDU 負載 Power'
    """
    return {
        "shown": words.pair(
            titles_zh.title(runbook, str(row["step"]), params, str(row["title"])),
            str(row["title"] or row["step"]),
        ),
        "kind_shown": words.kind(str(row["kind"])),
        "status_shown": words.status(str(row["status"])),
    }


def local(ts: str, zone: tzinfo, *, minutes: bool = False) -> str:
    """``ts`` (ISO, UTC when it names no offset) in ``zone``, as a sheet shows it; what is not a
    time stays as is.

    >>> from zoneinfo import ZoneInfo
    >>> local("2026-12-07T23:30:05.123+00:00", ZoneInfo("Asia/Taipei"))
    '2026-12-08 07:30:05'
    >>> local("2026-12-07T23:30:05", ZoneInfo("Asia/Taipei"), minutes=True)
    '2026-12-08 07:30'
    >>> local("", UTC), local("soon", UTC)
    ('', 'soon')
    """
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return ts
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M" if minutes else "%Y-%m-%d %H:%M:%S")


def zone_name(zone: tzinfo, ts: str = "") -> str:
    """The zone as a sheet names it: its offset at ``ts`` (now when none) and its IANA name.

    >>> from zoneinfo import ZoneInfo
    >>> zone_name(ZoneInfo("Asia/Taipei")), zone_name(UTC)
    ('UTC+08:00 Asia/Taipei', 'UTC')
    >>> zone_name(ZoneInfo("Europe/Berlin"), "2026-07-01T12:00:00+00:00")
    'UTC+02:00 Europe/Berlin'
    """
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        moment = datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    key = str(getattr(zone, "key", None) or zone.tzname(moment) or zone)
    offset = moment.astimezone(zone).strftime("%z")
    if key == "UTC" and offset == "+0000":
        return "UTC"
    return f"UTC{offset[:3]}:{offset[3:]} {key}"


def named(ts: str, zone: tzinfo, *, minutes: bool = False) -> str:
    """``ts`` in ``zone`` with the zone named after it (`local`, `zone_name`).

    >>> from zoneinfo import ZoneInfo
    >>> named("2026-12-07T23:30:00+00:00", ZoneInfo("Asia/Taipei"), minutes=True)
    '2026-12-08 07:30 (UTC+08:00 Asia/Taipei)'
    """
    return f"{local(ts, zone, minutes=minutes)} ({zone_name(zone, ts)})"


_MARKDOWN = re.compile(r"([\\`*\[\]|])")


def markdown_cell(value: Any) -> str:
    """``value`` safe in a Markdown table cell: Markdown's marks and HTML escaped, line
    breaks as ``<br>``.

    >>> markdown_cell("a|b `c` <script>\\n*d*")
    'a\\\\|b \\\\`c\\\\` &lt;script&gt;<br>\\\\*d\\\\*'
    """
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN.sub(r"\\\1", text)
    return "<br>".join(text.splitlines()) if "\n" in text or "\r" in text else text
