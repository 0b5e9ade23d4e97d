"""The review document of a change: every intended change and the pre-check evidence, one page.

Markdown for the terminal, a self-contained HTML page for the browser; both carry the plan
hash that approvals sign.
"""

from __future__ import annotations

from typing import Any

from runbooks.core import secrets
from runbooks.core.changes import Change
from runbooks.core.policy import AUTHORITY_NAMES
from runbooks.report.render import render


def context(change: Change) -> dict[str, Any]:
    plan = secrets.mask(change.plan)
    steps = plan["steps"]
    return {
        "change": change,
        "plan": plan,
        "steps": steps,
        "checks": [s for s in steps if s["kind"] == "check"],
        "object_diffs": [(s, d) for s in steps for d in s["diffs"] if d["fields"]],
        "text_diffs": [(s, d) for s in steps for d in s["diffs"] if d["text"]],
        "other_diffs": [
            (s, d) for s in steps for d in s["diffs"] if not d["fields"] and not d["text"]
        ],
        "signatures": change.signatures,
        "authority_names": AUTHORITY_NAMES,
    }


def markdown(change: Change) -> str:
    return render("review.md.j2", **context(change))


def html(change: Change) -> str:
    return render("review.html.j2", **context(change))
