"""Change control with the lab's people through the `runbook` command: identity is the owner of
the NetBox token in use, authorities come from NetBox groups, NetBox's netbox-runbooks plugin
decides and records every refusal, and the CLI's review page renders in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_support import LEDGER, Machine, Runner, approved_ledger, planned_ledger
from PIL import Image

from runbooks.lab import netbox

SUPPORT = Path(__file__).resolve().parents[1] / "support"


@pytest.fixture
def as_role(netbox_lab: str, store_path: Path, tmp_path: Path) -> Runner:
    """The CLI with the token of a lab person (operator, reviewer, approver, supervisor)."""
    return Machine(tmp_path / "home", RUNBOOKS_STORE=str(store_path), RUNBOOKS_MODULES=LEDGER)


def test_the_whole_change_flow_with_the_lab_people(
    as_role: Runner, workdir: Path, store_path: Path
) -> None:
    planned = planned_ledger(as_role, workdir)
    change, digest = planned["change"], planned["hash"]
    assert planned["actor"] == "olivia"

    refused = as_role("operator", "review", change, "--accept", "--hash", digest, ok=False)
    assert refused.returncode == 3 and "needs the 審核 review authority" in refused.stderr
    as_role("reviewer", "review", change, "--accept", "--hash", digest)
    refused = as_role("reviewer", "approve", change, "--hash", digest, ok=False)
    assert refused.returncode == 3 and "rachel cannot approve" in refused.stderr
    refused = as_role("approver", "approve", change, "--hash", "0" * 16, ok=False)
    assert "must name the plan's hash" in refused.stderr
    as_role("approver", "approve", change, "--hash", digest[:12])

    refused = as_role("reviewer", "run", change, "--yes", ok=False)
    assert "rachel cannot run a change" in refused.stderr
    result = json.loads(as_role("operator", "run", change, "--yes", "--json").stdout)
    assert result["status"] == "succeeded"
    assert result["netbox_entries"] > 0 and result["netbox_url"].startswith(netbox.url())

    as_role("operator", "signoff", result["run_id"])
    as_role("supervisor", "signoff", result["run_id"])
    sheet = as_role("supervisor", "records", "export", result["run_id"], "--format", "md").stdout
    assert "| 審核 review | rachel |" in sheet and "| 批准 approve | arthur |" in sheet
    assert "olivia, 20" in sheet and "sophia, 20" in sheet  # both signature blocks signed
    listed = json.loads(as_role("supervisor", "records", "list", "--json").stdout)
    assert listed[0]["actor"] == "olivia" and listed[0]["change"] == change
    # the change's own chain, kept by NetBox: every refusal with the person who tried
    history = json.loads(as_role("supervisor", "records", "show", change, "--json").stdout)
    refusals = [
        (e["actor"], e["payload"]["action"]) for e in history if e["kind"] == "change.refused"
    ]
    assert refusals == [
        ("olivia", "review"),
        ("rachel", "approve"),
        ("arthur", "approve"),
        ("rachel", "run"),
    ]
    kinds = [e["kind"] for e in history]
    assert kinds[0] == "change.planned" and kinds.count("change.signed") == 2
    assert "change.ran" in kinds and kinds.count("record.signed") == 2


def test_the_review_page_shows_the_diffs_in_a_browser(
    as_role: Runner, workdir: Path, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is installed by scripts/lab-deps.sh"
    (workdir / "config.txt").write_text("hostname old-name\nversion 1\n")
    change = json.loads(
        as_role("operator", "plan", "test-ledger", f"workdir={workdir}", "--json").stdout
    )["change"]
    page = tmp_path / "review.html"
    as_role("reviewer", "review", change, "--html", str(page))
    html = page.read_text()
    assert 'class="del">-hostname old-name' in html and 'class="add">+hostname leaf9' in html
    shot = tmp_path / "review.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1200,1400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    counts = {rgb: n for n, rgb in colours}
    added = counts.get((0xEA, 0xFF, 0xEA), 0)  # the green of added lines and "after" cells
    removed = counts.get((0xFF, 0xEC, 0xEC), 0)  # the red of removed lines and "before" cells
    assert added > 2000 and removed > 2000, (added, removed)
    if artifacts := os.environ.get("RUNBOOKS_ARTIFACTS"):  # keep the screenshot for a person
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "review.png")


def test_drift_names_each_value_and_the_way_on_and_a_fresh_plan_runs(
    as_role: Runner, workdir: Path
) -> None:
    change, _ = approved_ledger(as_role, as_role, workdir)
    (workdir / "inventory.json").write_text(json.dumps({"leaf9": {"status": "planned"}}))
    refused = as_role("operator", "run", change, "--yes", ok=False)
    assert refused.returncode == 3
    line = refused.stderr.strip().splitlines()[-1]  # after the re-plan's progress lines
    assert line.startswith("runbook: error: refused: ") and len(line) < 500, line
    assert "inventory:leaf9 entry: None → {'status': 'planned'}" in line
    assert line.endswith(
        f"plan again: runbook plan test-ledger workdir={workdir} --window-start … --window-end …"
    )
    runs = json.loads(as_role("operator", "records", "list", "--local", "--json").stdout)
    assert runs[0]["status"] == "refused"  # the attempt is on record: begun, then refused

    (workdir / "inventory.json").unlink()  # the drift undone: plan again, approvals again
    again, _ = approved_ledger(as_role, as_role, workdir)
    result = json.loads(as_role("operator", "run", again, "--yes", "--json").stdout)
    assert result["status"] == "succeeded"


def test_who_signs_is_checked_before_the_re_plan(as_role: Runner, workdir: Path) -> None:
    """A reviewer trying to approve hears why at once, from NetBox, before the client
    re-plans (which would fail here: the work directory is gone)."""
    planned = json.loads(
        as_role("operator", "plan", "test-ledger", f"workdir={workdir}", "--json").stdout
    )
    change, digest = planned["change"], planned["hash"]
    as_role("reviewer", "review", change, "--accept", "--hash", digest)
    shutil.rmtree(workdir)
    refused = as_role("reviewer", "approve", change, "--hash", digest, ok=False)
    assert refused.returncode == 3
    # her authority or her duties (she reviewed it) refuse her; not the plan
    assert re.fullmatch(
        r"runbook: error: rachel (cannot approve a change: .*|reviewed this change; .*)\n",
        refused.stderr,
    ), refused.stderr
