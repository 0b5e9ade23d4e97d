"""Issue 15's done-when on three vendors without a lab: the secrets NetBox's templates hold
and the devices run (IOS's enable secret and BGP passwords, EOS's peer-group password, Junos'
BGP authentication key) appear in none of what people read or keep — the plan, the review
document (Markdown and HTML), the record store, its exports (jsonl and the record sheet in
Markdown and HTML) and the log lines of the plan and the run."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from runbooks.core.changes import Change
from runbooks.core.results import RunStatus
from runbooks.core.store import RecordStore
from runbooks.library.rack_in import RackIn
from runbooks.report import review, sheet
from tests.unit.library.vendor_support import VENDORS, VendorFabric

SETTLE = {"settle_timeout_s": 0.5}


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_planted_secrets_reach_no_plan_review_record_export_or_log(
    vendor: str, store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fabric = VendorFabric(vendor, store_path)
    planted = fabric.vendor.secrets

    def running_secrets() -> set[str]:
        return {s for s in planted for n in fabric.network.devices if s in fabric.running(n)}

    assert running_secrets(), "the devices run planted secrets (else this test proves nothing)"
    caplog.set_level(logging.DEBUG)
    runbook = RackIn(RackIn.parse_params({"device": "leaf3", **SETTLE}))
    plan = fabric.plan(runbook)
    assert plan.refusal is None, plan.refusal
    document = plan.to_dict()
    change = Change(
        "CHG-1", "rack-in", {"device": "leaf3"}, document, "h" * 64, "olivia", "t", None
    )
    result = fabric.run(RackIn(RackIn.parse_params({"device": "leaf3", **SETTLE})))
    assert result.status is RunStatus.SUCCEEDED, result.error
    with RecordStore(fabric.store_path) as store:
        entries = store.entries(result.run_id)
        head = store.heads()[result.run_id][1]
        jsonl = io.StringIO()
        store.export_jsonl(jsonl, result.run_id)
    read_by_people = {
        "the plan": json.dumps(document, default=str),
        "the review (Markdown)": review.markdown(change),
        "the review (HTML)": review.html(change),
        "the record store": fabric.record_text(),
        "the jsonl export": jsonl.getvalue(),
        "the record sheet (Markdown)": sheet.markdown(entries, head, True),
        "the record sheet (HTML)": sheet.html(entries, head, True),
        "the log": caplog.text,
    }
    # sanitised, not left out: the configurations the run committed (the spines' new
    # sessions to leaf3 carry a secret each) are in the record with a placeholder
    assert "<removed>" in read_by_people["the record store"]
    for where, text in read_by_people.items():
        leaked = [s for s in planted if s in text]
        assert not leaked, f"{vendor}: {leaked} in {where}"
