"""The whole way of a change through the plugin's API, with its statuses at every stage:
plan → review → approve → run → entries → run.finished → sign-offs; the chains verify,
the people who act next are notified, the record sheet carries both signatures."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab
log = logging.getLogger(__name__)


def _status(nb: Lab, change: dict[str, Any]) -> str:
    return str(nb.change(change)["status"])


def _notified(nb: Lab, role: str, obj: str, pk: int) -> list[str]:
    """The event types of the notifications a person holds for one object."""
    user = nb["admin"].get("/api/users/users/", username=nb[role].username).json()["results"][0]
    rows = (
        nb["admin"]
        .get("/api/extras/notifications/", user_id=user["id"], object_id=pk, limit=0)
        .json()["results"]
    )
    return [r["event_type"] for r in rows if r["object_type"] == f"netbox_runbooks.{obj}"]


def test_a_change_from_plan_to_signed_record(nb: Lab) -> None:
    change = nb.create()
    assert change["status"] == "planned"
    assert change["preparer"] == nb["operator"].username
    assert change["targets"] == ["leaf1"]
    assert change["name"].startswith("CHG-")
    assert "runbooks_review_requested" in _notified(nb, "reviewer", "change", change["id"])

    reviewed = nb.sign("reviewer", change, "review", note="diffs read")
    assert reviewed.status_code == 201, reviewed.text
    assert reviewed.json()["status"] == "reviewed"
    assert "runbooks_approval_requested" in _notified(nb, "approver", "change", change["id"])
    approved = nb.sign("approver", change, "approve")
    assert approved.status_code == 201, approved.text
    assert approved.json()["status"] == "approved"
    assert [(s["authority"], s["user"]) for s in approved.json()["signatures"]] == [
        ("review", nb["reviewer"].username),
        ("approve", nb["approver"].username),
    ]
    assert "runbooks_change_approved" in _notified(nb, "operator", "change", change["id"])

    started = nb.start(change)
    assert started.status_code == 201, started.text
    run = started.json()
    assert (run["operator"], run["status"], run["emergency"]) == ("olivia", "running", False)
    assert _status(nb, change) == "running"

    entries = nb.entries(
        run,
        [
            nb.started(run, change),
            ("step.started", "set_colour", {"title": "Paint the device", "kind": "change"}),
            ("step.finished", "set_colour", {"status": "changed", "evidence": {"colour": "blue"}}),
            ("run.finished", None, {"status": "succeeded"}),
        ],
    )
    posted = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": entries})
    assert posted.status_code == 201, posted.text
    assert posted.json() == {"length": 4, "head": entries[-1]["hash"]}
    finished = nb["admin"].get(f"runs/{run['id']}/").json()
    assert (finished["status"], finished["length"], finished["head"]) == (
        "succeeded",
        4,
        entries[-1]["hash"],
    )
    assert finished["finished"]
    assert _status(nb, change) == "succeeded"
    assert "runbooks_signoff_requested" in _notified(nb, "supervisor", "run", run["id"])

    verify = nb["reviewer"].get(f"runs/{run['id']}/verify/").json()
    assert verify == {"ok": True, "entries": 4, "head": entries[-1]["hash"], "problems": []}
    stored = nb["reviewer"].get(f"runs/{run['id']}/entries/").json()["results"]
    assert [e["hash"] for e in stored] == [e["hash"] for e in entries]
    assert {e["recorded_by"] for e in stored} == {"olivia"}

    responsible = nb["operator"].post(f"runs/{run['id']}/signoff/", {"note": "done"})
    assert responsible.status_code == 201, responsible.text
    assert responsible.json()["role"] == "responsible"
    supervisor = nb["supervisor"].post(f"runs/{run['id']}/signoff/", {"note": "checked"})
    assert supervisor.status_code == 201, supervisor.text
    assert supervisor.json()["role"] == "supervisor"

    kinds = [e["kind"] for e in nb.chain(change)]
    assert kinds == [
        "change.planned",
        "change.signed",
        "change.signed",
        "change.ran",
        "record.signed",
        "record.signed",
    ]
    assert nb["approver"].get(f"changes/{change['id']}/verify/").json()["ok"] is True

    sheet = nb["supervisor"].get(f"runs/{run['id']}/sheet/", format="md")
    assert sheet.status_code == 200, sheet.text
    assert "text/markdown" in sheet.headers["Content-Type"]
    assert "olivia, " in sheet.text and "sophia, " in sheet.text and "verified" in sheet.text
    html = nb["supervisor"].get(f"runs/{run['id']}/sheet/", format="html")
    assert html.status_code == 200 and "<h1>Record sheet" in html.text


def test_lists_filter_and_leave_the_plan_out(nb: Lab) -> None:
    first = nb.create()
    nb.create(plan=nb.plan(target="leaf2"))
    rows = nb["reviewer"].get("changes/", target="leaf1").json()["results"]
    assert [r["name"] for r in rows] == [first["name"]]
    assert "plan" not in rows[0] and rows[0]["plan_hash"] == first["plan_hash"]
    by_name = nb["reviewer"].get("changes/", name__isw=first["name"][:12]).json()["count"]
    assert by_name >= 1
    mine = nb["reviewer"].get("changes/", preparer="olivia", status="planned").json()
    assert mine["count"] == 2
    brief = nb["reviewer"].get("changes/", brief=1).json()["results"][0]
    assert set(brief) == {"id", "url", "display", "name", "runbook", "status", "plan_hash"}
    assert "plan" in nb["reviewer"].get(f"changes/{first['id']}/").json()


def test_graphql_reads_changes_and_runs(nb: Lab) -> None:
    change = nb.approved()
    run = nb.start(change).json()
    query = (
        "{ runbook_change_list { name status plan_hash preparer { username } "
        "signatures { authority user { username } } runs { run_id status } } "
        "runbook_run_list { run_id status change { name } operator { username } } }"
    )
    resp = nb["reviewer"].post("/graphql/", {"query": query})
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["runbook_change_list"][0]["name"] == change["name"]
    assert data["runbook_change_list"][0]["runs"] == [
        {"run_id": run["run_id"], "status": "running"}
    ]
    assert data["runbook_run_list"][0]["operator"] == {"username": "olivia"}


def test_a_batch_of_entries_and_then_a_single_one_continue_the_record(nb: Lab) -> None:
    """The client's batch (200 entries) and a single entry after it: both accepted in order.
    (What posting costs is measured in bench/netbox_records.py, not here.)"""
    change = nb.approved()
    run = nb.start(change).json()
    batch = nb.entries(
        run,
        [nb.started(run, change)]
        + [("step.finished", f"s{i}", {"status": "ok", "n": i}) for i in range(199)],
    )
    answer = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": batch})
    assert answer.status_code == 201 and answer.json()["length"] == 200
    one = nb.entries(run, [("step.started", "x", {})], after=(200, batch[-1]["hash"]))
    answer = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": one})
    assert answer.status_code == 201 and answer.json() == {"length": 201, "head": one[0]["hash"]}


def test_a_scheduled_change_is_run_by_the_worker(nb: Lab) -> None:
    change = nb.approved()
    queued = nb["operator"].post(f"changes/{change['id']}/schedule/", {"confirm_manual": True})
    assert queued.status_code == 200, queued.text
    assert (queued.json()["status"], queued.json()["confirm_manual"]) == ("scheduled", True)
    run = nb.start(change, "worker", scheduled=True, worker="host1:4242")
    assert run.status_code == 201, run.text
    assert (run.json()["operator"], run.json()["worker"]) == ("runbooks-worker", "host1:4242")
    assert nb.change(change)["status"] == "running"
    ran = nb.chain(change)[-1]
    assert (ran["kind"], ran["actor"], ran["payload"]["scheduled"]) == (
        "change.ran",
        "runbooks-worker",
        True,
    )


def test_a_run_keeps_the_id_its_record_began_under(nb: Lab) -> None:
    """The client begins a run's record before its re-plan, under an id of its own; NetBox
    grants the run under that id (once), and takes the record from its first entry."""
    change = nb.approved()
    begun = "20261207-101500-abc123"
    resp = nb.start(change, run_id=begun)
    assert resp.status_code == 201, resp.text
    run = resp.json()
    assert run["run_id"] == begun
    entries = nb.entries(
        run, [nb.started(run, change), ("run.replanning", None, {}), ("run.granted", None, {})]
    )
    posted = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": entries})
    assert posted.status_code == 201, posted.text
    assert posted.json()["length"] == 3
    other = nb.approved()
    taken = nb.start(other, run_id=begun)
    assert taken.status_code == 409 and "exists already" in taken.json()["detail"]
    assert nb.change(other)["runs"] == [] and nb.change(other)["status"] == "approved"
    malformed = nb.start(other, run_id="../../etc")
    assert malformed.status_code == 400
