"""The review document of a change: what a reviewer reads first (the summary), then every
intended change and the pre-check evidence, on one page.

Markdown for the terminal, a self-contained HTML page for the browser; both carry the plan
hash that approvals sign. The summary and the sorting of diffs are `runbooks_rules.review`,
which NetBox's change page uses too.
"""

from __future__ import annotations

from typing import Any

from runbooks_rules import review as rules

from runbooks.core import secrets
from runbooks.core.changes import Change
from runbooks.core.policy import AUTHORITY_NAMES
from runbooks.report.render import render


def context(change: Change) -> dict[str, Any]:
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
    }


def markdown(change: Change) -> str:
    return render("review.md.j2", **context(change))


def html(change: Change) -> str:
    return render("review.html.j2", **context(change))
