"""The CLI: bad input is one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.cli import main
from runbooks.core import registry
from runbooks.core.store import RecordStore

RUNBOOK = [sys.executable, "-m", "runbooks.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUNBOOK, *args], capture_output=True, text=True, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("runbook: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in done.stderr


def test_unknown_runbook(tmp_path: Path) -> None:
    done = run_cli("--store", str(tmp_path / "s.sqlite3"), "run", "no-such-runbook")
    known = ", ".join(sorted(registry.discover()))
    assert "rack-in" in known and "db-upgrade" in known
    assert_one_line_error(done, f"unknown runbook 'no-such-runbook' (known: {known})")


def test_invalid_parameter(tmp_path: Path, workdir: Path) -> None:
    done = run_cli(
        "--store",
        str(tmp_path / "s.sqlite3"),
        "plan",
        "test-ledger",
        f"workdir={workdir}",
        "version=two",
    )
    assert_one_line_error(done, "version: Input should be a valid integer")
    done = run_cli("--store", str(tmp_path / "s.sqlite3"), "plan", "test-ledger", "novalue")
    assert_one_line_error(done, "parameter 'novalue' is not name=value")


def test_unreadable_store(tmp_path: Path, workdir: Path) -> None:
    bogus = tmp_path / "bogus.sqlite3"
    bogus.write_bytes(b"garbage" * 200)
    done = run_cli(
        "--store",
        str(bogus),
        "run",
        "test-ledger",
        f"workdir={workdir}",
        "--yes",
        "--no-change-control",
    )
    assert_one_line_error(done, "cannot open record store")
    assert not (workdir / "config.txt").exists()


def test_usage_errors_are_one_line_too(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("frobnicate"), "No such command")
    assert_one_line_error(run_cli("records", "show", "--store-typo"), "No such option")


def test_unknown_run_to_resume(store_path: Path) -> None:
    done = run_cli("--store", str(store_path), "resume", "20990101")
    assert_one_line_error(done, "no run '20990101'")


def test_list_show_plan_run_and_records(
    store_path: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--store", str(store_path)]
    assert main([*base, "list", "--json"]) == 0
    assert "test-ledger" in [b["name"] for b in json.loads(capsys.readouterr().out)]
    assert main([*base, "show", "test-ledger"]) == 0
    assert "Confirm the device is mounted and cabled" in capsys.readouterr().out
    assert main([*base, "plan", "test-ledger", f"workdir={workdir}", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["changes"] == 2 and len(planned["hash"]) == 64
    assert (
        main(
            [
                *base,
                "run",
                "test-ledger",
                f"workdir={workdir}",
                "--yes",
                "--json",
                "--no-change-control",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "succeeded"
    assert main([*base, "records", "verify"]) == 0
    assert "chain intact" in capsys.readouterr().out
    assert main([*base, "records", "show", result["run_id"][:15]]) == 0
    assert "run.finished" in capsys.readouterr().out
    # a failed run exits 1 and says it rolled back
    failing = [
        *base,
        "run",
        "test-ledger",
        f"workdir={workdir}",
        "hostname=x",
        "fail_at=plan_inventory",
        "--yes",
        "--no-change-control",
    ]
    assert main(failing) == 1
    assert "rolled-back" in capsys.readouterr().out
    # a run whose rollback fails exits 4, as the README says: a person must look now
    assert main([*failing, "fail_undo=plan_config"]) == 4
    assert "rollback-failed" in capsys.readouterr().out
    # the record sheet of the run, in Markdown and HTML
    assert main([*base, "records", "export", result["run_id"], "--format", "md"]) == 0
    sheet = capsys.readouterr().out
    assert "職位責任人簽字 Responsible person" in sheet and "上級主管簽字 Supervisor" in sheet
    assert "| 經辦 handle |" in sheet and "Write the configuration" in sheet


def test_a_runbook_is_not_run_without_change_control_by_default(
    store_path: Path, workdir: Path
) -> None:
    done = run_cli("--store", str(store_path), "run", "test-ledger", f"workdir={workdir}", "--yes")
    assert_one_line_error(done, "test-ledger is a runbook, not a change")
    assert not (workdir / "config.txt").exists()


def test_without_netbox_the_local_user_can_prepare_but_not_approve(
    store_path: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--store", str(store_path)]
    assert main([*base, "plan", "test-ledger", f"workdir={workdir}", "--json"]) == 0
    change = json.loads(capsys.readouterr().out)["change"]
    assert change.startswith("CHG-")
    assert main([*base, "review", change]) == 0
    assert "Change " + change in capsys.readouterr().out
    assert main([*base, "approve", change, "--hash", "0" * 12]) == 3
    assert "approve needs an authenticated identity" in capsys.readouterr().err


def test_a_claimed_name_signs_nothing_and_is_written_nowhere(
    store_path: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a NetBox token nobody is authenticated: RUNBOOKS_ACTOR=arthur does not make an
    approval, a review or a sign-off, and no refusal is recorded under the name arthur."""
    base = ["--store", str(store_path)]
    assert main([*base, "plan", "test-ledger", f"workdir={workdir}", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("RUNBOOKS_ACTOR", "arthur")
    codes, errors = [], []
    for args in (
        ["approve", planned["change"], "--hash", planned["hash"]],
        ["review", planned["change"], "--accept", "--hash", planned["hash"]],
    ):
        codes.append(main([*base, *args]))
        errors.append(capsys.readouterr().err)
    with RecordStore(store_path) as records:
        written = [(e.kind, e.payload) for e in records.entries() if e.actor == "arthur"]
    assert written == []
    assert codes == [3, 3]
    assert all("needs an authenticated identity" in e for e in errors), errors
