"""The review document (Markdown and HTML) shows a check's warnings in its summary: what a
device's driver cannot answer is named where the reviewer reads first (issue 15)."""

from __future__ import annotations

from runbooks.core.changes import Change
from runbooks.report import review

WARNING = (
    "Post-check: loopbacks routed: cannot check on bird2 (border1): "
    "driver bird2 has no get_route_to"
)


def change(warnings: list[str]) -> Change:
    step = {
        "name": "drivers_can_answer",
        "title": "Each device's driver can answer the post-checks",
        "kind": "check",
        "targets": ["border1"],
        "status": "ok",
        "evidence": {"warnings": warnings},
        "diffs": [],
        "error": None,
        "reversible": True,
        "duration_s": 0.1,
    }
    plan = {
        "runbook": "rack-in",
        "instruction": "7 網絡設備上架 network device rack-in",
        "params": {"device": "border1"},
        "steps": [step],
    }
    return Change("CHG-1", "rack-in", {"device": "border1"}, plan, "h" * 64, "olivia", "now", None)


def test_the_review_document_names_what_cannot_be_checked() -> None:
    md, page = review.markdown(change([WARNING])), review.html(change([WARNING]))
    assert "**Warnings** (cannot be checked; the reviewer decides)" in md
    assert f"  - {WARNING}" in md
    assert "<td>Warnings</td>" in page and WARNING in page


def test_no_warnings_row_when_everything_can_be_checked() -> None:
    assert "Warnings" not in review.markdown(change([]))
    assert "<td>Warnings</td>" not in review.html(change([]))
