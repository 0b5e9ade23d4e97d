"""Change control in NetBox, as a team uses it: two engineers on two machines (separate homes,
separate local stores) complete a rack-in of leaf3 through one NetBox — one plans and runs,
the others review, approve and sign off where they are — and a local chain rewritten with
recomputed hashes is named by `runbook records verify`, because NetBox anchored the head."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from cli_support import Machine, device_env
from runbooks_rules.chain import canonical, entry_hash

from runbooks.core.store import RecordStore
from runbooks.lab import frr, netbox


def api(path: str, role: str = "supervisor") -> Any:
    url, token = netbox.credentials(role)
    response = requests.get(
        f"{url}/api/plugins/runbooks/{path}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def netbox_rows(*tables: str) -> str:
    """Everything NetBox stored in these tables, as text (psql as postgres)."""
    return "".join(
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                netbox.database(),
                "-qAt",
                "-c",
                f"SELECT t::text FROM {table} t",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        for table in tables
    )


def rewrite(store: Path, run_id: str) -> None:
    """What someone with the file can do: drop the guards, edit an entry of a run, recompute
    that entry's hash and every later one, and the run's head — the chain verifies again (the
    store, opened next, notes that its guards were dropped)."""
    db = sqlite3.connect(store)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("DROP TRIGGER heads_forward")
    rows = db.execute(
        "SELECT pos, seq, ts, actor, kind, step, payload FROM entries WHERE run_id = ? "
        "ORDER BY seq",
        (run_id,),
    ).fetchall()
    prev = None
    for pos, seq, ts, actor, kind, step, payload in rows:
        body = json.loads(payload)
        if kind == "run.finished":
            body["note"] = "all fine"  # the edit
        prev = (
            prev or db.execute("SELECT prev_hash FROM entries WHERE pos = ?", (pos,)).fetchone()[0]
        )
        digest = entry_hash(run_id, seq, ts, actor, kind, step, body, prev)
        db.execute(
            "UPDATE entries SET payload = ?, prev_hash = ?, hash = ? WHERE pos = ?",
            (canonical(body), prev, digest, pos),
        )
        prev = digest
    db.execute("UPDATE heads SET hash = ? WHERE run_id = ?", (prev, run_id))
    db.commit()
    db.close()


@pytest.mark.slow
def test_two_engineers_rack_in_leaf3_through_one_netbox(lab_reset: Any, tmp_path: Path) -> None:
    olivias = Machine(tmp_path / "olivia-laptop", **device_env())  # plans and runs
    office = Machine(tmp_path / "office-pc", **device_env())  # rachel reviews, arthur approves

    planned = json.loads(
        olivias(
            "operator",
            "plan",
            "rack-in",
            "device=leaf3",
            "--window-start",
            "-5m",
            "--window-end",
            "+2h",
            "--json",
        ).stdout
    )
    change, digest, page = planned["change"], planned["hash"], planned["url"]
    assert change.startswith("CHG-") and page.startswith(netbox.url())
    assert (
        not olivias.store.exists()
        or not sqlite3.connect(olivias.store)
        .execute("SELECT 1 FROM entries WHERE run_id = ?", (change,))
        .fetchall()
    )

    # the office machine has never seen this change: it reads it from NetBox
    listed = json.loads(office("reviewer", "changes", "--json").stdout)
    assert [c["id"] for c in listed if c["status"] == "planned"] == [change]
    review = office("reviewer", "review", change).stdout
    assert "leaf3" in review and digest in review
    office("reviewer", "review", change, "--accept", "--hash", digest[:16])
    refused = olivias("operator", "approve", change, "--hash", digest[:16], ok=False)
    assert refused.returncode == 3 and "olivia cannot approve a change" in refused.stderr
    office("approver", "approve", change, "--hash", digest[:16])
    assert json.loads(office("approver", "changes", "--json").stdout)[0]["status"] == "approved"

    result = json.loads(olivias("operator", "run", change, "--yes", "--json").stdout)
    assert result["status"] == "succeeded", result
    run_id = result["run_id"]
    local = (
        sqlite3.connect(olivias.store)
        .execute("SELECT COUNT(*), MAX(seq) FROM entries WHERE run_id = ?", (run_id,))
        .fetchone()
    )
    assert result["netbox_entries"] == local[0] == local[1] > 20

    held = api(f"runs/?run_id={run_id}")["results"][0]
    assert held["operator"] == "olivia" and held["status"] == "succeeded"
    assert held["length"] == local[0] and held["head"] == result["netbox_head"]
    assert api(f"changes/?name={change}")["results"][0]["status"] == "succeeded"

    olivias("operator", "signoff", run_id)
    refused = office("reviewer", "signoff", run_id, ok=False)
    assert refused.returncode == 3 and "supervise" in refused.stderr
    office("supervisor", "signoff", run_id)
    sheet = office("supervisor", "records", "export", run_id, "--format", "md").stdout
    assert "| 審核 review | rachel |" in sheet and "| 批准 approve | arthur |" in sheet
    assert "olivia, 20" in sheet and "sophia, 20" in sheet  # both signature blocks
    assert "chain verified" in sheet

    # no secret reached what NetBox keeps: every person's token, the devices' key
    stored = netbox_rows(
        "netbox_runbooks_change",
        "netbox_runbooks_run",
        "netbox_runbooks_recordentry",
        "netbox_runbooks_signature",
    )
    key = Path(frr.device_ssh_params("leaf3")["key_file"]).read_text()
    secrets = [netbox.credentials(r)[1] for r in ("operator", "reviewer", "approver", "supervisor")]
    secrets += [line for line in key.splitlines() if len(line) > 40]
    assert stored.count(run_id) > 20 and not [s for s in secrets if s in stored]

    verified = olivias("operator", "records", "verify", run_id, "--json").stdout
    assert json.loads(verified)["compared_with_netbox"] >= 1

    # olivia's laptop: the run's chain rewritten with every hash recomputed verifies alone,
    # but not against the head NetBox anchored
    rewrite(olivias.store, run_id)
    with RecordStore(olivias.store) as rewritten:
        # the chains consistent in themselves: only the anchor can tell the rewrite; the store
        # tells that its triggers were dropped
        assert [p.kind for p in rewritten.verify().problems] == ["unguarded"]
    caught = olivias("operator", "records", "verify", ok=False)
    assert caught.returncode == 5, caught.stdout + caught.stderr
    assert f"rewritten {run_id}" in caught.stdout and "NetBox anchored" in caught.stdout
    assert "unguarded store #1" in caught.stdout
