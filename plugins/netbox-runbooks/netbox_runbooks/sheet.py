"""The record sheet (相關記錄) of a run: what `runbooks_rules.sheet.context` holds (the same
data the `runbook` command renders), with the signatures and authorities as the server holds
them and the chain as the server verified it — as the run page shows it and as a download
(Markdown or HTML).

The page speaks as the `runbook` command's sheets do (`runbooks_rules.words`,
`runbooks_rules.titles_zh`): labels, step titles, kinds and statuses in Traditional Chinese
and English (``PLUGINS_CONFIG["netbox_runbooks"]["sheet_language"]``: ``both`` by default,
``zh-Hant`` or ``en``), and every time in the department's zone with the zone named
(``time_zone``: ``Asia/Hong_Kong`` by default, not NetBox's own TIME_ZONE, which a lab keeps
at UTC): a signature at 23:30 UTC reads ``2026-12-08 07:30 (UTC+08:00 Asia/Hong_Kong)``.
The downloads show the same times; their words stay English (what their readers' tools
match), Markdown cells escaped.
"""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.template.loader import render_to_string
from netbox.plugins.utils import get_plugin_config
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from runbooks_rules import policy
from runbooks_rules import sheet as rules_sheet
from runbooks_rules.words import (
    LANGUAGES,
    Words,
    local,
    markdown_cell,
    named,
    row_words,
    zone_name,
)

from netbox_runbooks.changes import signatures_of
from netbox_runbooks.errors import ChainConflict
from netbox_runbooks.models import Run
from netbox_runbooks.records import verify_run

__all__ = ("FORMATS", "RENDERERS", "Download", "context", "download", "markdown", "settings")

FORMATS = {"html": "text/html", "md": "text/markdown"}
# the `runbook` command's defaults (its settings sheet_language and time_zone)
LANGUAGE, TIME_ZONE = "both", "Asia/Hong_Kong"


def settings() -> tuple[str, ZoneInfo]:
    """The sheets' language and zone from PLUGINS_CONFIG; a bad value is one sentence."""
    language = str(get_plugin_config("netbox_runbooks", "sheet_language", LANGUAGE))
    if language not in LANGUAGES:
        raise ImproperlyConfigured(
            f"netbox_runbooks sheet_language {language!r}: one of {', '.join(LANGUAGES)}"
        )
    name = str(get_plugin_config("netbox_runbooks", "time_zone", TIME_ZONE))
    try:
        return language, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"netbox_runbooks time_zone {name!r}: not a time zone (e.g. Asia/Hong_Kong)"
        ) from None


class _SheetRenderer(BaseRenderer):
    """Lets ``?format=md|html`` through DRF's content negotiation; an error answer (a dict)
    is written as JSON text."""

    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> bytes:
        return json.dumps(data, ensure_ascii=False).encode()


class HTMLSheetRenderer(_SheetRenderer):
    media_type, format = "text/html", "html"


class MarkdownSheetRenderer(_SheetRenderer):
    media_type, format = "text/markdown", "md"


RENDERERS = [HTMLSheetRenderer, MarkdownSheetRenderer]


class Download(BaseContentNegotiation):
    """A download is what ``?format=`` asks for, whatever the client's Accept header says
    (a JSON client asks for a sheet too); the action picks the format itself."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


def context(run: Run, *, html: bool = True, language: str | None = None) -> dict[str, Any]:
    """Everything the sheet shows, its times in the configured zone and its words in the
    configured language (``language`` instead; marked per language for a page: ``html``);
    ChainConflict when the run has no record yet."""
    configured, zone = settings()
    entries = [e.to_entry() for e in run.entries.order_by("seq")]
    report = verify_run(run)
    signed = {
        s.authority: {"actor": s.user.username, "ts": s.created.isoformat(), "note": s.note}
        for s in run.signatures.select_related("user")
    }
    change = run.change
    sigs = signatures_of(change)
    authorities = {
        policy.HANDLE: [change.preparer.username, run.operator.username],
        policy.REVIEW: policy.signers(sigs, policy.REVIEW, change.plan_hash),
        policy.APPROVE: policy.signers(sigs, policy.APPROVE, change.plan_hash),
        policy.EMERGENCY: policy.signers(sigs, policy.EMERGENCY, change.plan_hash),
    }
    try:
        ctx = rules_sheet.context(
            entries, report.head or run.head, report.ok, signed, authorities, zone=zone
        )
    except rules_sheet.NotARun:
        raise ChainConflict(f"run {run.run_id} has no record yet") from None
    ctx = {**ctx, "change": change.name, "emergency": run.emergency}
    return shown(ctx, Words(language or configured, html=html), zone)


def shown(ctx: dict[str, Any], words: Words, zone: tzinfo) -> dict[str, Any]:
    """``ctx`` as a sheet shows it: its times in ``zone`` (the signatures' with the zone
    named), its words (``labels``, each row's ``shown`` title, ``kind_shown`` and
    ``status_shown``, the authorities) as ``words`` says them."""
    started = dict(ctx["started"])
    runbook, params = str(started.get("runbook", "")), started.get("params") or {}
    window = started.get("window")
    if isinstance(window, dict):
        started["window"] = {k: local(str(v), zone, minutes=True) for k, v in window.items()}
    rows = [
        {
            **r,
            "started": local(r["started"], zone),
            "ended": local(r["ended"], zone),
            **row_words(words, runbook, params, r),
        }
        for r in ctx["rows"]
    ]
    signed = {
        role: {**block, "ts": named(str(block.get("ts", "")), zone, minutes=True)}
        for role in ("responsible", "supervisor")
        if (block := ctx.get(role))
    }
    return {
        **ctx,
        **signed,
        "started": started,
        "start_ts": local(ctx["start_ts"], zone),
        "end_ts": local(ctx["end_ts"], zone),
        "rows": rows,
        "authorities": [(words.authority(name), who) for name, who in ctx["authorities"]],
        "status_shown": words.status(str(ctx["status"])),
        "time_zone": zone_name(zone, ctx["start_ts"]),
        "labels": words.labels(),
        "lang": words.lang,
        "zh": words.zh,
        "en": words.en,
    }


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _signature(block: dict[str, str] | None) -> str:
    return f"{block['actor']}, {block['ts']}" if block else "________________ date ________"


def markdown(ctx: dict[str, Any]) -> str:
    """The sheet as Markdown (English words, ``ctx``'s times), every cell escaped."""
    c = markdown_cell
    started = ctx["started"]
    window = started.get("window") or {}
    params = " ".join(c(f"{k}={_value(v)}") for k, v in (started.get("params") or {}).items())
    lines = [
        f"# Record sheet (相關記錄) — {c(started.get('runbook', ''))}",
        "",
        "| | |",
        "|---|---|",
        f"| Instruction | {c(started.get('instruction', ''))} |",
        f"| Run | {c(ctx['run_id'])} |",
        f"| Change | {c(ctx['change'])}"
        + (" **EMERGENCY RUN outside its window**" if ctx["emergency"] else "")
        + " |",
        f"| Targets | {c(', '.join(started.get('targets', [])))} |",
        f"| Window | {c(window.get('start', '—'))} to {c(window.get('end', '—'))} |",
        f"| Started / ended | {ctx['start_ts']} / {ctx['end_ts'] or '—'} |",
        f"| Time zone | {c(ctx['time_zone'])} (every time on this sheet) |",
        f"| Outcome | **{c(ctx['status'])}**"
        + (f" — {c(ctx['error'])}" if ctx["error"] else "")
        + " |",
        *([f"| Batches | {c(ctx['meaning'])} — {c(ctx['batches'])} |"] if ctx["batches"] else []),
        f"| Parameters | {params} |",
        f"| Plan hash | `{started.get('plan_hash') or '—'}` |",
        "",
        "## Authorities",
        "| authority | held by |",
        "|---|---|",
        *(f"| {c(name)} | {c(who)} |" for name, who in ctx["authorities"]),
        "",
        "## Steps",
        "| # | step | kind | status | by | started | ended | notes |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {i} | {c(r['title'] or r['step'])} | {c(r['kind'])} | {c(r['status'])} "
            f"| {c(r['actor'])} | {r['started']} | {r['ended']} "
            f"| {c(chr(10).join(([f'error: {r["error"]}'] if r['error'] else []) + r['notes']))} |"
            for i, r in enumerate(ctx["rows"], 1)
        ),
        "",
        "## Integrity",
        f"{ctx['entries']} entries; run head hash `{ctx['head']}`; chain "
        + ("verified" if ctx["chain_ok"] else "BROKEN")
        + ".",
        "",
        "## Signatures",
        "| 職位責任人簽字 Responsible person | 上級主管簽字 Supervisor |",
        "|---|---|",
        f"| {c(_signature(ctx['responsible']))} | {c(_signature(ctx['supervisor']))} |",
    ]
    if ctx["recipients"]:
        lines += [
            "",
            "## Hand-over",
            "| 使用人簽收 Received by | signature | date |",
            "|---|---|---|",
        ]
        lines += [f"| {c(r)} | ________________ | ________ |" for r in ctx["recipients"]]
    return "\n".join(lines) + "\n"


def download(run: Run, fmt: str) -> HttpResponse:
    ctx = context(run, html=False, language="en")
    if fmt == "md":
        body = markdown(ctx)
    else:
        values = {k: _value(v) for k, v in (ctx["started"].get("params") or {}).items()}
        body = render_to_string(
            "netbox_runbooks/record_sheet.html",
            {
                **ctx,
                "params": values,
                "responsible_line": _signature(ctx["responsible"]),
                "supervisor_line": _signature(ctx["supervisor"]),
            },
        )
    response = HttpResponse(body, content_type=f"{FORMATS[fmt]}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="record-{run.run_id}.{fmt}"'
    return response
