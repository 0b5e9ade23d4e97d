"""The record sheet (相關記錄) of a run as a download, Markdown or HTML: what
`runbooks_rules.sheet.context` holds (the same data the `runbook` command renders), with the
signatures and authorities as the server holds them and the chain as the server verified it.
The web UI's run page can render `context(run)` with its own template."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.template.loader import render_to_string
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from runbooks_rules import policy
from runbooks_rules import sheet as rules_sheet

from netbox_runbooks.changes import signatures_of
from netbox_runbooks.errors import ChainConflict
from netbox_runbooks.models import Run
from netbox_runbooks.records import verify_run

__all__ = ("FORMATS", "RENDERERS", "Download", "context", "download", "markdown")

FORMATS = {"html": "text/html", "md": "text/markdown"}


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


def context(run: Run) -> dict[str, Any]:
    """Everything the sheet shows; ChainConflict when the run has no record yet."""
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
        ctx = rules_sheet.context(entries, report.head or run.head, report.ok, signed, authorities)
    except rules_sheet.NotARun:
        raise ChainConflict(f"run {run.run_id} has no record yet") from None
    return {**ctx, "change": change.name, "emergency": run.emergency}


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _signature(block: dict[str, str] | None) -> str:
    return f"{block['actor']}, {block['ts'][:10]}" if block else "________________ date ________"


def markdown(ctx: dict[str, Any]) -> str:
    started = ctx["started"]
    window = started.get("window") or {}
    params = " ".join(f"{k}={_value(v)}" for k, v in (started.get("params") or {}).items())
    lines = [
        f"# Record sheet (相關記錄) — {started.get('runbook', '')}",
        "",
        "| | |",
        "|---|---|",
        f"| Instruction | {started.get('instruction', '')} |",
        f"| Run | {ctx['run_id']} |",
        f"| Change | {ctx['change']}"
        + (" **EMERGENCY RUN outside its window**" if ctx["emergency"] else "")
        + " |",
        f"| Targets | {', '.join(started.get('targets', []))} |",
        f"| Window | {window.get('start', '—')} to {window.get('end', '—')} |",
        f"| Started / ended | {ctx['start_ts'][:19]} / {ctx['end_ts'][:19] or '—'} |",
        f"| Outcome | **{ctx['status']}**" + (f" — {ctx['error']}" if ctx["error"] else "") + " |",
        *([f"| Batches | {ctx['meaning']} — {ctx['batches']} |"] if ctx["batches"] else []),
        f"| Parameters | {params} |",
        f"| Plan hash | `{started.get('plan_hash') or '—'}` |",
        "",
        "## Authorities",
        "| authority | held by |",
        "|---|---|",
        *(f"| {name} | {who} |" for name, who in ctx["authorities"]),
        "",
        "## Steps",
        "| # | step | kind | status | by | started | ended |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {i} | {r['title'] or r['step']} | {r['kind']} | {r['status']} | {r['actor']} "
            f"| {r['started'][11:19]} | {r['ended'][11:19]} |"
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
        f"| {_signature(ctx['responsible'])} | {_signature(ctx['supervisor'])} |",
    ]
    if ctx["recipients"]:
        lines += [
            "",
            "## Hand-over",
            "| 使用人簽收 Received by | signature | date |",
            "|---|---|---|",
        ]
        lines += [f"| {r} | ________________ | ________ |" for r in ctx["recipients"]]
    return "\n".join(lines) + "\n"


def download(run: Run, fmt: str) -> HttpResponse:
    ctx = context(run)
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
