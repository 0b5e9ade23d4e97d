"""Holes an outside review found in the server's rules, each closed: nobody cancels a scheduled
change by asking to run it; a permission counts only for the changes its constraints admit; a
signature row nobody signed through the API counts for nothing and verify names it; a record
entry stands in the poster's name; the person who scheduled a worker's run signs its record as
the responsible person."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab


def scheduled(nb: Lab, window: tuple[datetime, datetime]) -> dict[str, Any]:
    change = nb.approved(window=window)
    answer = nb["operator"].post(f"changes/{change['id']}/schedule/", {"confirm_manual": True})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_asking_to_run_a_scheduled_change_does_not_cancel_it(nb: Lab) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1), datetime.now(UTC) + timedelta(hours=2))
    change = scheduled(nb, later)
    stranger = nb.start(change, "reviewer", scheduled=True, check_only=True, plan_hash="")
    assert nb.refused(stranger, change, "reviewer").startswith("rachel cannot run a change")
    early = nb.start(change, "worker", scheduled=True, worker="box:1")
    assert nb.refused(early, change, "worker").startswith("outside the change's maintenance")
    assert nb.change(change)["status"] == "scheduled"  # neither cancels it: its window comes


def test_a_scheduled_change_whose_window_is_over_is_refused(nb: Lab) -> None:
    soon = (datetime.now(UTC) - timedelta(seconds=30), datetime.now(UTC) + timedelta(seconds=4))
    change = scheduled(nb, soon)
    stranger = nb.start(change, "reviewer", scheduled=True, check_only=True, plan_hash="")
    nb.refused(stranger, change, "reviewer")
    assert nb.change(change)["status"] == "scheduled"
    time.sleep(max(0.0, (soon[1] - datetime.now(UTC)).total_seconds()) + 1)
    late = nb.start(change, "worker", scheduled=True, worker="box:1")
    detail = nb.refused(late, change, "worker")
    after = nb.change(change)
    assert (after["status"], after["refusal"], after["stale"]) == ("refused", detail, False)


def test_a_constrained_permission_counts_only_where_it_admits(nb: Lab) -> None:
    body = {
        "name": "test: approve pc-install changes only",
        "object_types": ["netbox_runbooks.change"],
        "actions": ["approve"],
        "constraints": {"runbook": "pc-install"},
        "users": [nb.user_id("supervisor")],
    }
    assert nb["admin"].post("/api/users/permissions/", body).status_code == 201
    change = nb.create()  # a "ledger" change, not pc-install
    assert nb.sign("reviewer", change, "review").status_code == 201
    detail = nb.refused(nb.sign("supervisor", change, "approve"), change, "supervisor")
    assert detail.startswith("sophia cannot approve a change: needs the 批准 approve authority")


def test_a_signature_row_put_in_the_table_counts_for_nothing(nb: Lab) -> None:
    change = nb.create()
    assert nb.sign("reviewer", change, "review").status_code == 201
    values = f"{change['id']}, 'approve', {nb.user_id('approver')}, '{change['plan_hash']}'"
    columns = "change_id, authority, user_id, plan_hash, note, created"
    statement = f"INSERT INTO netbox_runbooks_signature ({columns}) VALUES ({values}, '', now())"  # noqa: S608
    inserted = nb.sql(statement)
    assert inserted.returncode == 0, inserted.stderr  # INSERT is not what the trigger refuses
    detail = nb.refused(nb.start(change), change, "operator")
    assert detail.startswith("the change is not approved for this plan")
    verified = nb["admin"].get(f"changes/{change['id']}/verify/").json()
    assert not verified["ok"]
    assert any("approve by arthur) is not recorded" in p["detail"] for p in verified["problems"])


def test_an_entry_in_another_persons_name_is_refused(nb: Lab) -> None:
    change = nb.approved()
    run = nb.start(change).json()
    forged = nb.entries(run, [nb.started(run, change)], actor="arthur")
    answer = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": forged})
    assert answer.status_code == 409
    assert "in the name of 'arthur': olivia may add entries in their own name" in answer.text
    assert nb["admin"].get(f"runs/{run['id']}/").json()["length"] == 0


def test_the_scheduler_signs_a_workers_record_as_responsible(nb: Lab) -> None:
    now = datetime.now(UTC)
    change = scheduled(nb, (now - timedelta(minutes=5), now + timedelta(hours=1)))
    run = nb.start(change, "worker", scheduled=True, worker="box:1").json()
    started = ("run.started", None, {**nb.started(run, change)[2]})
    answered = ("manual.answered", "mount", {"confirmed_by": "olivia"})
    posted = nb.entries(run, [started], actor="runbooks-worker")
    posted += nb.entries(run, [answered], after=(1, posted[-1]["hash"]), actor="olivia")
    posted += nb.entries(
        run,
        [("run.finished", None, {"status": "succeeded"})],
        after=(2, posted[-1]["hash"]),
        actor="runbooks-worker",
    )
    answer = nb["worker"].post(f"runs/{run['id']}/entries/", {"entries": posted})
    assert answer.status_code == 201, answer.text
    signed = nb["operator"].post(f"runs/{run['id']}/signoff/", {"note": ""})
    assert signed.status_code == 201 and signed.json()["role"] == "responsible", signed.text
    supervised = nb["supervisor"].post(f"runs/{run['id']}/signoff/", {"note": ""})
    assert supervised.status_code == 201 and supervised.json()["role"] == "supervisor"
