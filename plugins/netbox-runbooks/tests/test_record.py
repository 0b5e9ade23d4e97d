"""A run's record on the server: entries that do not continue the chain are refused with 409
and nothing is written; only the run's operator adds to it; the database itself refuses to
rewrite entries and signatures; verify recomputes every hash and names what broke."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from runbooks_rules.chain import make_entry

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab


def _run(nb: Lab, entries: int = 2) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """An approved change, its run, and the run's first ``entries`` entries posted."""
    change = nb.approved()
    run = nb.start(change).json()
    steps = [("step.started", f"s{i}", {"n": i}) for i in range(entries - 1)]
    posted = nb.entries(run, [nb.started(run, change), *steps])
    resp = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": posted})
    assert resp.status_code == 201, resp.text
    return change, run, posted


def _record(nb: Lab, run: dict[str, Any]) -> tuple[int, str, list[str]]:
    """What the server holds of a run's record: length, head, the stored hashes."""
    summary = nb["admin"].get(f"runs/{run['id']}/").json()
    stored = nb["admin"].get(f"runs/{run['id']}/entries/", limit=0).json()["results"]
    return summary["length"], summary["head"], [e["hash"] for e in stored]


def _conflict(resp: Any, names: str) -> str:
    assert resp.status_code == 409, resp.text
    detail = str(resp.json()["detail"])
    assert names in detail, detail
    return detail


def _next(run: dict[str, Any], last: dict[str, Any], **change: Any) -> dict[str, Any]:
    """The entry after ``last``, hashed, then with ``change`` applied (so it breaks)."""
    ts = datetime.now(UTC).isoformat(timespec="microseconds")
    entry = make_entry(
        run["run_id"], last["seq"] + 1, ts, "olivia", "step.started", "x", {}, last["hash"]
    )
    return entry.to_dict() | change


def test_entries_that_do_not_continue_the_chain_are_refused(nb: Lab) -> None:
    change, run, posted = _run(nb)
    held = _record(nb, run)
    last = posted[-1]
    bad = {
        "a wrong previous hash": _conflict_body(run, last, prev_hash="f" * 64),
        "a wrong hash": [_next(run, last, hash="0" * 64)],
        "a skipped position": _conflict_body(run, last, seq=last["seq"] + 2),
        "a time stamp from the future": _conflict_body(
            run, last, ts=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
        ),
    }
    expected = {
        "a wrong previous hash": "does not link to the record's head",
        "a wrong hash": "does not match its hash",
        "a skipped position": "is out of place",
        "a time stamp from the future": "later than the server's clock allows",
    }
    for what, entries in bad.items():
        resp = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": entries})
        detail = _conflict(resp, f"entry #{entries[0]['seq']}")
        assert expected[what] in detail, (what, detail)
        assert _record(nb, run) == held, what
    # all or nothing: a good entry followed by a bad one writes neither
    good = _next(run, last)
    worse = _next(run, good, prev_hash="e" * 64)
    resp = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": [good, worse]})
    _conflict(resp, f"entry #{worse['seq']}")
    assert _record(nb, run) == held
    assert "change.refused" not in [e["kind"] for e in nb.chain(change)]  # 409 is no refusal


def _conflict_body(run: dict[str, Any], last: dict[str, Any], **field: Any) -> list[dict[str, Any]]:
    """An entry whose ``field`` is wrong but whose hash matches its (wrong) content: only
    its place in the chain or its time is wrong."""
    entry = _next(run, last) | field
    fixed = make_entry(
        run["run_id"],
        entry["seq"],
        entry["ts"],
        entry["actor"],
        entry["kind"],
        entry["step"],
        entry["payload"],
        entry["prev_hash"],
    )
    return [fixed.to_dict()]


def test_a_record_starts_with_the_approved_plan_and_closes_when_finished(nb: Lab) -> None:
    change = nb.approved()
    run = nb.start(change).json()
    other = {"runbook": "ledger", "plan_hash": "a" * 64}
    entries = nb.entries(run, [("run.started", None, other)])
    resp = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": entries})
    _conflict(resp, "entry #1 starts a run of plan aaaaaaaaaaaa")
    done = nb.entries(
        run, [nb.started(run, change), ("run.finished", None, {"status": "rolled-back"})]
    )
    assert nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": done}).status_code == 201
    assert nb["admin"].get(f"runs/{run['id']}/").json()["status"] == "rolled-back"
    assert nb.change(change)["status"] == "rolled-back"
    late = [_next(run, done[-1])]
    resp = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": late})
    _conflict(resp, "is closed")


def test_a_run_that_stopped_part_way_ends_stopped_and_its_change_never_runs_again(
    nb: Lab,
) -> None:
    """run.finished `stopped` (batches kept) is accepted: the run and its change say stopped,
    the lists filter by it, and the change takes no run, signature or schedule any more."""
    change, run = nb.stopped_run()
    assert nb["admin"].get(f"runs/{run['id']}/").json()["status"] == "stopped"
    assert nb.change(change)["status"] == "stopped"
    runs = nb["admin"].get("runs/", status="stopped").json()["results"]
    assert run["run_id"] in [r["run_id"] for r in runs]
    changes = nb["admin"].get("changes/", status="stopped").json()["results"]
    assert [c["name"] for c in changes] == [change["name"]]
    says = f"{change['name']} stopped part-way with batches kept: it never runs again"
    assert says in nb.refused(nb.start(change), change, "operator")
    assert says in nb.refused(nb.sign("approver2", change, "approve"), change, "approver2")
    resp = nb["operator"].post(f"changes/{change['id']}/schedule/", {})
    assert says in nb.refused(resp, change, "operator")


def test_only_the_operator_adds_to_the_record(nb: Lab) -> None:
    change, run, posted = _run(nb)
    held = _record(nb, run)
    entry = _next(run, posted[-1], actor="rachel")
    resp = nb["reviewer"].post(f"runs/{run['id']}/entries/", {"entries": [entry]})
    detail = nb.refused(resp, change, "reviewer")
    assert (
        detail
        == f"rachel did not start run {run['run_id']}: only its operator olivia adds to its record"
    )
    assert _record(nb, run) == held


def test_the_database_refuses_to_rewrite_the_record(nb: Lab) -> None:
    change, run, _ = _run(nb)
    for statement in (
        "UPDATE netbox_runbooks_recordentry SET payload = '{}' WHERE seq = 2",
        "DELETE FROM netbox_runbooks_recordentry WHERE seq = 2",
        "TRUNCATE netbox_runbooks_recordentry",
        "UPDATE netbox_runbooks_signature SET note = 'rewritten'",
        "DELETE FROM netbox_runbooks_signature",
    ):
        done = nb.sql(statement)
        assert done.returncode != 0, statement
        assert "runbook records are append-only" in done.stderr, done.stderr
    for table in ("run", "change"):  # held by nothing else, a run or change still stays
        done = nb.sql(f"DELETE FROM netbox_runbooks_{table}")  # noqa: S608
        assert "runbook changes and runs are never deleted" in done.stderr, done.stderr
    verify = nb["admin"].get(f"runs/{run['id']}/verify/").json()
    assert verify["ok"] and verify["entries"] == 2
    assert len(nb.change(change)["signatures"]) == 2


def test_verify_recomputes_the_chain(nb: Lab) -> None:
    change, run, posted = _run(nb, entries=3)
    ok = nb["reviewer"].get(f"runs/{run['id']}/verify/").json()
    assert ok == {"ok": True, "entries": 3, "head": posted[-1]["hash"], "problems": []}
    # a superuser with the triggers switched off edits one entry and cuts off the last
    edited = json.dumps({"n": 99}, separators=(",", ":"))
    rid, name = run["run_id"], change["name"]
    tamper = nb.sql(
        "\n".join(
            (
                "SET session_replication_role = replica;",
                f"UPDATE netbox_runbooks_recordentry SET payload = '{edited}'",  # noqa: S608
                f"WHERE chain = '{rid}' AND seq = 2;",
                "DELETE FROM netbox_runbooks_recordentry",
                f"WHERE chain = '{rid}' AND seq = 3;",
                "UPDATE netbox_runbooks_change",
                "SET plan = jsonb_set(plan, '{params,colour}', '\"red\"')",
                f"WHERE name = '{name}';",
            )
        )
    )
    assert tamper.returncode == 0, tamper.stderr
    report = nb["reviewer"].get(f"runs/{run['id']}/verify/").json()
    assert report["ok"] is False
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [(2, "edited"), (2, "truncated")]
    changed = nb["reviewer"].get(f"changes/{change['id']}/verify/").json()
    assert changed["ok"] is False
    assert [p["kind"] for p in changed["problems"]] == ["edited"]
    assert "the plan of" in changed["problems"][0]["detail"]


def test_an_api_token_never_lands_in_stored_data(nb: Lab) -> None:
    """Clients mask secrets; a body that still carries a token is refused before anything is
    read from it, so no token reaches the database."""
    own = nb["operator"].token
    other = nb["reviewer"].token
    plan = nb.plan()
    plan["params"]["password"] = own
    body = {"runbook": "ledger", "plan": plan | {"hash": None}, "params": plan["params"]}
    resp = nb["operator"].post("changes/", body)
    assert resp.status_code == 400 and "API token" in resp.json()["detail"], resp.text
    change = nb.approved()
    leaked = nb.sign("approver2", change, "emergency", note=f"use {other}")
    assert leaked.status_code == 400, leaked.text
    run = nb.start(change).json()
    entries = nb.entries(
        run, [("run.started", None, {"plan_hash": change["plan_hash"], "env": own})]
    )
    resp = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": entries})
    assert resp.status_code == 400, resp.text
    for secret in (own.rpartition(".")[2], other.rpartition(".")[2]):
        for table in ("change", "signature", "run", "recordentry", "core_objectchange"):
            name = table if table.startswith("core") else f"netbox_runbooks_{table}"
            query = f"SELECT count(*) FROM {name} t WHERE t::text LIKE '%{secret}%'"  # noqa: S608
            found = nb.sql(query)  # on stdin: the token is on no command line
            assert found.stdout.strip() == "0", (table, found.stderr)
    assert nb["admin"].get("changes/").json()["count"] == 1


def test_concurrent_posts_of_one_position_write_it_once(nb: Lab) -> None:
    _, run, posted = _run(nb)
    entry = _next(run, posted[-1])
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = list(
            pool.map(
                lambda _: (
                    nb["operator"]
                    .post(f"runs/{run['id']}/entries/", {"entries": [entry]})
                    .status_code
                ),
                range(6),
            )
        )
    assert sorted(codes) == [201, 409, 409, 409, 409, 409]
    assert _record(nb, run)[:2] == (3, entry["hash"])
