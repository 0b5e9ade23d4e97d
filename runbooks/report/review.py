"""The review document of a change: what a reviewer reads first (the summary), then every
intended change and the pre-check evidence, on one page.

Markdown for the terminal, a self-contained HTML page for the browser; both carry the plan
hash that approvals sign. The summary and the sorting of diffs are `runbooks_rules.review`,
which NetBox's change page uses too.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, tzinfo
from typing import Any

from runbooks_rules import review as rules

from runbooks.core import secrets
from runbooks.core.changes import Change
from runbooks.core.policy import AUTHORITY_NAMES
from runbooks.core.window import Window
from runbooks.report.render import render


def context(change: Change, zone: tzinfo | None = None) -> dict[str, Any]:
    """``zone``: the window is shown in it, named (the `runbook` command passes the
    department's ``time_zone`` setting; default UTC)."""
    zone = zone or UTC
    if change.window:
        shown = Window(change.window.start.astimezone(zone), change.window.end.astimezone(zone))
        change = replace(change, window=shown)
    plan = secrets.mask(change.plan)
    window = (change.window.start, change.window.end) if change.window else None
    return {
        "change": change,
        "plan": plan,
        "steps": plan["steps"],
        "summary": rules.summary(plan, window),
        "sections": rules.sections(plan),
        "system_names": rules.SYSTEM_NAMES,
        "signatures": change.signatures,
        "authority_names": AUTHORITY_NAMES,
        "time_zone": str(getattr(zone, "key", None) or zone.tzname(None) or zone),
    }


def markdown(change: Change, zone: tzinfo | None = None) -> str:
    return render("review.md.j2", **context(change, zone))


def html(change: Change, zone: tzinfo | None = None) -> str:
    return render("review.html.j2", **context(change, zone))
