"""A change's review document as the change page shows it: the same parts, in the same order,
as the `runbook review` document (runbooks/report/templates/review.html.j2) — the summary a
reviewer reads first, the steps, the pre-check evidence, then each system's intended changes.

The summary and the sorting of diffs are `runbooks_rules.review`'s; this module only shapes
them for a Django template. Diffs are turned into HTML here, in Python, once per page: a
template loop over every line of every configuration is what makes a long change slow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from runbooks_rules import review

from netbox_runbooks.models import Change

__all__ = ("diff_html", "duration", "review_context", "value")

# NetBox's own colours (Tabler's light backgrounds), so the diff reads in light and dark mode
LINE_CLASSES = {
    "add": "rb-diff-add bg-green-lt",
    "del": "rb-diff-del bg-red-lt",
    "hunk": "rb-diff-hunk text-blue",
    "file": "rb-diff-file fw-bold text-secondary",
    "ctx": "rb-diff-ctx",
}


def value(v: Any) -> str:
    """A field value as a reviewer reads it (the CLI's review document writes them so)."""
    if v is None:
        return "—"
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def duration(seconds: float | None) -> str:
    """Seconds as a person reads a duration: 45 s, 12 min, 2 h 5 min.

    >>> [duration(s) for s in (45, 720, 7500, None)]
    ['45 s', '12 min', '2 h 5 min', '—']
    """
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    hours, minutes = divmod(whole // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def diff_html(text: str) -> SafeString:
    """A unified diff, one block line per diff line, classed as `review.diff_lines` says
    (every line escaped)."""
    lines = review.diff_lines(text)
    return format_html_join(
        "", '<span class="d-block {}">{}</span>', ((LINE_CLASSES[c], ln or " ") for c, ln in lines)
    )


def _fields(diff: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "name": str(f.get("name", "")),
            "before": value(f.get("before")),
            "after": value(f.get("after")),
        }
        for f in diff.get("fields") or []
    ]


def _item(step: Mapping[str, Any], diff: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {
        "target": str(diff.get("target", "")),
        "summary": str(diff.get("summary") or ""),
        "kind": str(diff.get("kind", "")),
        "step": str(step.get("title") or step.get("step", "")),
        "diff": diff_html(text) if text else "",
        "fields": [] if text else _fields(diff),
    }


def _systems(parts: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Each system with intended changes, in the review document's order."""
    return [
        {
            "system": system,
            "title": name[:1].upper() + name[1:],
            "items": [_item(step, diff, text) for step, diff, text in parts[system]],
        }
        for system, name in review.SYSTEM_NAMES.items()
        if parts[system]
    ]


def _steps(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "title": str(s.get("title") or s.get("step", "")),
            "step": str(s.get("step", "")),
            "kind": str(s.get("kind", "")),
            "reversible": s.get("reversible", True),
            "targets": ", ".join(str(t) for t in s.get("targets") or []),
            "status": str(s.get("status", "")),
            "expected": duration(float(s.get("duration_s") or 0)),
            "changes": len(s.get("diffs") or []),
        }
        for s in plan.get("steps", [])
    ]


def _checks(checks: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "title": str(s.get("title") or s.get("step", "")),
            "status": str(s.get("status", "")),
            "error": str(s.get("error") or ""),
            "evidence": [(str(k), value(v)) for k, v in (s.get("evidence") or {}).items()],
        }
        for s in checks
    ]


def _summary(plan: Mapping[str, Any], change: Change) -> dict[str, Any]:
    summary = review.summary(plan, change.window)
    counted = "; ".join(
        f"{s['count']} {s['name']} ("
        + ", ".join(f"{n} {kind}" for kind, n in s["kinds"].items())
        + ")"
        for s in summary["systems"]
    )
    return {
        **summary,
        "counted": counted,
        "expected": duration(summary["expected_s"]),
        "window": duration(summary["window_s"]) if summary["window_s"] is not None else "",
        "steps_by_kind": ", ".join(f"{n} {k}" for k, n in sorted(summary["steps"].items())),
    }


def review_context(change: Change) -> dict[str, Any]:
    """Everything the change page shows of the plan itself."""
    plan = change.plan or {}
    parts = review.sections(plan)
    return {
        "summary": _summary(plan, change),
        "steps": _steps(plan),
        "checks": _checks(parts["checks"]),
        "systems": _systems(parts),
        "params": [(str(k), value(v)) for k, v in (change.params or {}).items()],
    }
