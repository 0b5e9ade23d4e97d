"""Scheduled changes through NetBox: olivia schedules an approved change (confirming its manual
step in advance), and a worker on a machine of its own — its own home and store, the service
account's token, nothing but NetBox and Redis — runs it; the record says which worker ran
which change, and who confirmed what. A scheduled change whose plan drifted before its window
is refused at the worker and shows as refused in the change list, not still scheduled."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from cli_support import LEDGER, Machine, approved_ledger

from runbooks.lab import netbox

REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def machines(netbox_lab: str, tmp_path: Path) -> Any:
    env = {"RUNBOOKS_MODULES": LEDGER, "RUNBOOKS_REDIS_URL": REDIS_URL}
    with netbox.held():  # reset first; nobody else's reset during the test
        yield (
            f"test-{secrets.token_hex(4)}",  # a queue of the test's own
            Machine(tmp_path / "desk", **env),
            Machine(tmp_path / "office", **env),
            Machine(tmp_path / "worker-box", **env),
        )


def test_a_worker_elsewhere_runs_a_scheduled_change_with_its_own_token(
    machines: Any, tmp_path: Path
) -> None:
    queue, desk, office, worker = machines
    workdir = tmp_path / "work"
    workdir.mkdir()
    change, _ = approved_ledger(desk, office, workdir, window_end="+1h")

    desk("operator", "schedule", change, "--queue", queue, "--yes")
    listed = json.loads(office("approver", "changes", "--json").stdout)
    assert [c["status"] for c in listed if c["id"] == change] == ["scheduled"]

    worker("worker", "worker", "--queue", queue, "--burst")
    listed = json.loads(office("approver", "changes", "--json").stdout)
    assert [c["status"] for c in listed if c["id"] == change] == ["succeeded"]
    runs = json.loads(office("supervisor", "records", "list", "--json").stdout)
    run = next(r for r in runs if r["change"] == change)
    assert run["actor"] == "runbooks-worker" and run["status"] == "succeeded"

    record = json.loads(office("supervisor", "records", "show", run["run_id"], "--json").stdout)
    started = record[0]["payload"]
    assert started["change"] == change and started["worker"].startswith("runbooks-worker@")
    answered = [e for e in record if e["kind"] == "manual.answered"]
    assert answered and all(e["payload"]["confirmed_by"] == "olivia" for e in answered)
    history = json.loads(office("supervisor", "records", "show", change, "--json").stdout)
    scheduled = [e for e in history if e["kind"] == "change.scheduled"]
    ran = [e for e in history if e["kind"] == "change.ran"]
    assert scheduled[0]["actor"] == "olivia" and scheduled[0]["payload"]["confirm_manual"]
    assert ran[0]["actor"] == "runbooks-worker" and ran[0]["payload"]["scheduled"] is True
    # the worker's machine keeps its own copy of the record, the same chain as NetBox's
    mine = json.loads(
        worker("worker", "records", "show", run["run_id"], "--local", "--json").stdout
    )
    assert [e["hash"] for e in mine] == [e["hash"] for e in record]
    assert (workdir / "config.txt").exists()
    # only the run's operator continues it, asked before anything is done
    refused = office("reviewer", "resume", run["run_id"], "--yes", ok=False)
    assert refused.returncode == 3 and "rachel did not start run" in refused.stderr
    finished = worker("worker", "resume", run["run_id"], "--yes", ok=False)
    assert finished.returncode == 2 and "already finished (succeeded)" in finished.stderr


def test_a_scheduled_change_whose_plan_drifted_shows_as_refused(
    machines: Any, tmp_path: Path
) -> None:
    queue, desk, office, worker = machines
    workdir = tmp_path / "work"
    workdir.mkdir()
    change, _ = approved_ledger(desk, office, workdir, window_end="+1h")
    desk("operator", "schedule", change, "--queue", queue, "--yes")
    (workdir / "config.txt").write_text("hostname someone-else\n")  # the world moves on

    worker("worker", "worker", "--queue", queue, "--burst")
    listed = json.loads(office("approver", "changes", "--json").stdout)
    entry = next(c for c in listed if c["id"] == change)
    assert entry["status"] == "refused"
    assert "the world changed since the plan was approved" in entry["refusal"]
    assert "plan again" in entry["refusal"]
    assert not (workdir / "ledger.log").exists()  # nothing was applied
