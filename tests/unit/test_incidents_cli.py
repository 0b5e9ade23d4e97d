"""`runbook incident`, and the incident's clock on `runbook plan` / `runbook run` of a runbook
whose parameters name it. Times are relative to the real clock by whole minutes (so what is left
shows a minute less: it is a few milliseconds short of the whole minute), and no reading
is near a warning's edge."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from runbooks.cli import main, output
from runbooks.config import NetBoxSettings
from runbooks.core import policy
from runbooks.core.errors import ConnectError
from runbooks.core.policy import Identity
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox_http import NetBoxHTTP

FAULT_RUNBOOK = '''
from datetime import timedelta
from typing import Any

from pydantic import Field

from runbooks.core.context import RunContext
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import check


class FaultParams(Params):
    device: str = "leaf1"
    incident: str | None = Field(None, description="The incident this triage serves.")


class FaultRunbook(Runbook):
    """Test instruction: gather a device's evidence for an incident."""

    name = "test-fault"
    title = "Triage a pretend device (test runbook)"
    instruction = "test: a fault-handling runbook"
    expected_duration = timedelta(seconds=1)
    Params = FaultParams

    @check("Read the device", targets="{device}", duration=timedelta(seconds=1))
    def read(self, ctx: RunContext) -> dict[str, Any]:
        return {"up": True}
'''


@pytest.fixture
def base(store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    module = tmp_path / "fault_runbook.py"
    module.write_text(FAULT_RUNBOOK, encoding="utf-8")
    monkeypatch.setenv("RUNBOOKS_MODULES", f"{os.environ['RUNBOOKS_MODULES']},{module}")
    monkeypatch.setenv("RUNBOOKS_TIME_ZONE", "Asia/Taipei")
    monkeypatch.setenv("RUNBOOKS_SHEET_LANGUAGE", "en")
    monkeypatch.setenv("RUNBOOKS_ACTOR", "olivia")
    return ["--store", str(store_path)]


def acting_as(monkeypatch: pytest.MonkeyPatch, who: Identity) -> None:
    """NetBox says who the token's owner is (the lab tests ask a real NetBox)."""
    monkeypatch.setattr("runbooks.cli.incidents.identity", lambda ctx: who)


def test_open_show_and_list_with_the_clock(
    base: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    opened = [
        *base,
        "incident",
        "open",
        "--kind",
        "network",
        "--reporter",
        "Mr Chan | ext 1234",
        "--affected",
        "leaf1,leaf2",
        "--affected",
        "OA system",
        "--reported-at",
        "-70m",
    ]
    assert main(opened) == 0
    said = capsys.readouterr().out
    assert said.startswith("opened INC-1: a major network fault affecting operations")
    assert "INC-1 (network, budget 2 h, open): 1 h 10 min since " in said
    assert "+08:00, 58 % of 2 h: WARNING half the budget used, 49 min left, red line at" in said
    assert main([*base, "incident", "show", "INC-1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["affected"] == ["leaf1", "leaf2", "OA system"]
    assert shown["reporter"] == "Mr Chan | ext 1234" and shown["opened_by"] == "olivia"
    assert (shown["level"], shown["crossed"]) == ("warning-50", False)
    assert shown["clock"]["left_s"] == pytest.approx(50 * 60, abs=30)
    assert main([*base, "incident", "open", "--kind", "backbone", "--reporter", "NOC",
                 "--affected", "core1", "--reported-at", "-250m"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main([*base, "incident", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(i["id"], i["level"], i["crossed"]) for i in listed] == [
        ("INC-2", "crossed", True),
        ("INC-1", "warning-50", False),
    ]
    assert main([*base, "incident", "show", "2"]) == 0
    assert "RED LINE CROSSED at" in capsys.readouterr().out


def test_plan_and_run_of_a_runbook_naming_the_incident_show_its_clock_and_are_collected(
    base: list[str], store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*base, "incident", "open", "--kind", "application", "--reporter", "helpdesk",
                 "--affected", "erp", "--reported-at", "-110m"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main([*base, "plan", "test-fault", "incident=INC-1", "--json"]) == 0
    done = capsys.readouterr()
    change = json.loads(done.out)["change"]
    assert "INC-1 (application, budget 2 h, open)" in done.err
    assert "WARNING 90 % of the budget used, 9 min left" in done.err
    run = [*base, "run", "test-fault", "incident=1", "--no-change-control", "--yes", "--json"]
    assert main(run) == 0
    done = capsys.readouterr()
    run_id = json.loads(done.out)["run_id"]
    assert "WARNING 90 %" in done.err
    # a change's own parameters name the incident: its run shows the clock (then is refused)
    assert main([*base, "run", change, "--yes"]) == 3
    assert "INC-1 (application" in capsys.readouterr().err
    assert main([*base, "incident", "show", "1", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["id"], r["kind"], r["how"]) for r in runs] == [
        (change, "change", "parameter"),
        (run_id, "run", "parameter"),
    ]
    assert runs[1]["status"] == "succeeded"
    assert main([*base, "incident", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["runs"] == runs


def test_every_command_touching_a_run_or_change_naming_the_incident_shows_its_clock(
    base: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """resume, review, approve, records show and export: the clock on stderr (--json output
    stays clean); a run that names no incident shows none."""
    assert main([*base, "incident", "open", "--kind", "network", "--reporter", "NOC",
                 "--affected", "core1", "--reported-at", "-70m"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main([*base, "plan", "test-fault", "incident=INC-1", "--json"]) == 0
    change = json.loads(capsys.readouterr().out)["change"]
    run = [*base, "run", "test-fault", "incident=1", "--no-change-control", "--yes", "--json"]
    assert main(run) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main([*base, "run", "test-fault", "--no-change-control", "--yes", "--json"]) == 0
    other = json.loads(capsys.readouterr().out)["run_id"]
    clock = "INC-1 (network, budget 2 h, open): 1 h 10 min since"
    for command in (
        ["review", change],
        ["approve", change[:12], "--hash", "0" * 8],  # refused: the clock is shown first
        ["resume", run_id],  # finished: refused, the clock is shown first
        ["records", "show", run_id[:-2], "--json"],
        ["records", "show", change],
        ["records", "export", run_id, "--format", "md"],
        ["records", "show", "INC-1"],  # the incident's own chain
    ):
        main([*base, *command])
        assert clock in capsys.readouterr().err, command
    assert main([*base, "records", "show", run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["kind"] == "run.started"
    for command in (["records", "show", other], ["records", "export"]):
        assert main([*base, *command]) == 0
        assert "INC-1" not in capsys.readouterr().err, command


def test_a_runbook_naming_an_unknown_incident_is_refused_before_any_work(
    base: list[str], store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*base, "plan", "test-fault", "incident=INC-9"]) == 2
    assert "no incident INC-9" in capsys.readouterr().err
    with RecordStore(store_path) as store:
        assert store.entries() == []


def test_recover_attach_close_and_export_the_sheet(
    base: list[str],
    store_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main([*base, "incident", "open", "--kind", "datacentre", "--reporter", "NOC",
                 "--affected", "dc-fabric", "--reported-at", "-3h"]) == 0  # fmt: skip
    run = [*base, "run", "test-fault", "--no-change-control", "--yes", "--json"]
    assert main(run) == 0
    run_id = json.loads(capsys.readouterr().out.split("\n", 2)[-1])["run_id"]
    assert main([*base, "incident", "attach", "1", run_id[:14]]) == 0
    assert f"INC-1 collects {run_id}" in capsys.readouterr().out
    assert main([*base, "incident", "recover", "1", "--at", "-55m", "--note", "fabric up"]) == 0
    said = capsys.readouterr().out
    assert "recovered at" in said and "after 2 h 05 min (104 % of 2 h): RED LINE CROSSED by" in said
    assert main([*base, "incident", "close", "1"]) == 3  # the local user's name signs nothing
    assert "needs an authenticated identity" in capsys.readouterr().err
    acting_as(monkeypatch, Identity("olivia", frozenset({policy.HANDLE})))
    assert main([*base, "incident", "close", "1", "--note", "root cause: optics"]) == 0
    assert "signed INC-1 as responsible: olivia" in capsys.readouterr().out
    assert main([*base, "incident", "close", "1"]) == 3
    assert "already carries the responsible" in capsys.readouterr().err
    acting_as(monkeypatch, Identity("sam", frozenset({policy.SUPERVISE})))
    assert main([*base, "incident", "close", "1"]) == 0
    assert "INC-1 is closed" in capsys.readouterr().out
    assert main([*base, "incident", "list"]) == 0
    assert "no incidents open" in capsys.readouterr().out
    sheet = tmp_path / "inc1.md"
    assert main([*base, "incident", "export", "1", "-o", str(sheet)]) == 0
    text = sheet.read_text(encoding="utf-8")
    assert "| Red line crossed | **YES** |" in text
    assert "| Recovered |" in text and ", olivia (fabric up) |" in text
    assert f"| {run_id} | run | test-fault | olivia |" in text and "| attached |" in text
    assert "| olivia, " in text and " | sam, " in text
    assert "every time on this sheet is in Asia/Taipei" in text
    assert main([*base, "records", "verify"]) == 0  # the incident's chain is verified with runs
    assert "chain intact" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["incident", "export", "1"], ["records", "export"]])
def test_an_export_to_a_place_that_cannot_be_written_is_one_line(
    base: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main([*base, "incident", "open", "--kind", "network", "--reporter", "NOC",
                 "--affected", "core1"]) == 0  # fmt: skip
    capsys.readouterr()
    nowhere = tmp_path / "not-there" / "x.md"
    assert main([*base, *command, "-o", str(nowhere)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"runbook: error: cannot write {nowhere}: No such file or directory"]
    assert not nowhere.parent.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "power"], "unknown incident kind 'power'"),
        (["--kind", "network", "--reported-at", "yesterday"], "bad time"),
        (["--kind", "network", "--reported-at", "+10m"], "is in the future"),
    ],
)
def test_bad_input_is_one_line_and_opens_nothing(
    base: list[str],
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    common = ["--reporter", "NOC", "--affected", "core1"]
    assert main([*base, "incident", "open", *common, *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    with RecordStore(store_path) as store:
        assert store.entries() == []
    assert main([*base, "incident", "show", "INC-4"]) == 2
    assert "no incident INC-4" in capsys.readouterr().err


def test_affected_names_are_looked_up_in_netbox_in_one_request(
    base: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With NetBox configured, each affected name is shown with what NetBox holds under it (one
    GraphQL query); a NetBox that does not answer does not stop the incident from opening."""
    asked: list[dict[str, object]] = []

    def graphql(
        self: NetBoxHTTP, query: str, variables: dict[str, object], what: str
    ) -> dict[str, object]:
        asked.append(dict(variables))
        if len(asked) > 1:
            raise ConnectError("NetBox at https://netbox.example is unreachable")
        return {
            "device_list": [{"id": "3", "name": "leaf1"}],
            "service_list": [{"id": "5", "name": "erp"}, {"id": "6", "name": "erp"}],
        }

    monkeypatch.setattr(
        "runbooks.cli.incidents.netbox_settings",
        lambda: NetBoxSettings("https://netbox.example", "0123456789abcdef"),
    )
    monkeypatch.setattr(NetBoxHTTP, "graphql", graphql)
    acting_as(monkeypatch, Identity("olivia", frozenset({policy.HANDLE})))
    opened = [*base, "incident", "open", "--kind", "application", "--reporter", "NOC"]
    assert main([*opened, "--affected", "leaf1,erp,OA system", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert asked == [{"names": ["leaf1", "erp", "OA system"]}]
    assert shown["netbox"] == {
        "leaf1": ["dcim.device #3"],
        "erp": ["ipam.service #5", "ipam.service #6"],
        "OA system": [],
    }
    assert main([*base, "incident", "show", "1"]) == 0
    assert (
        "affected: leaf1 (dcim.device #3), erp (ipam.service #5, ipam.service #6), "
        "OA system (free text)"
    ) in capsys.readouterr().out
    assert main([*opened, "--affected", "core1"]) == 0
    done = capsys.readouterr()
    assert "opened INC-2" in done.out and "NetBox was not asked" in done.err
    assert main([*base, "incident", "show", "2", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["netbox"] is None and again["affected_text"] == "core1"


def test_open_and_recover_go_on_when_netbox_does_not_answer_but_close_does_not(
    base: list[str],
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NetBox configured at a closed port of 127.0.0.1: the incident opens and recovers under
    the local user's name, recorded as unverified; signing it is refused, nothing recorded."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the probe is
    monkeypatch.setenv("RUNBOOKS_NETBOX_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("RUNBOOKS_NETBOX_TOKEN", "0123456789abcdef0123456789abcdef01234567")
    assert main([*base, "incident", "open", "--kind", "backbone", "--reporter", "NOC",
                 "--affected", "core1", "--reported-at", "-20m"]) == 0  # fmt: skip
    done = capsys.readouterr()
    assert "opened INC-1" in done.out
    assert f"NetBox at http://127.0.0.1:{port} is unreachable" in done.err
    assert "recorded as olivia, unverified" in done.err
    assert main([*base, "incident", "recover", "1", "--at", "-1m"]) == 0
    assert "red line not crossed" in capsys.readouterr().out
    assert main([*base, "incident", "close", "1"]) != 0
    assert "unreachable" in capsys.readouterr().err
    with RecordStore(store_path) as store:
        entries = store.entries("INC-1")
    assert [(e.kind, e.actor, e.payload["identity_source"]) for e in entries] == [
        ("incident.opened", "olivia", "unverified: NetBox unreachable"),
        ("incident.recovered", "olivia", "unverified: NetBox unreachable"),
    ]
    assert main([*base, "incident", "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert "opened by olivia (unverified: NetBox unreachable) at" in shown
    assert "by olivia (unverified: NetBox unreachable)" in shown.split("recovered at")[1]
    assert main([*base, "incident", "export", "1"]) == 0
    sheet = capsys.readouterr().out
    assert "| olivia (unverified: NetBox unreachable), " in sheet
    assert sheet.count("olivia (unverified: NetBox unreachable)") == 2


def test_every_outbreak_of_a_year_shows_the_years_count_so_far(
    base: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first outbreak of a year reads "ok" alone; once the fourth is recorded, its show,
    list and sheet say the year crossed the red line (its own verdict stays: not the one)."""
    monkeypatch.setattr(output.out, "_width", 200)  # the list's rows unwrapped
    opened = [*base, "incident", "open", "--kind", "virus", "--reporter", "helpdesk",
              "--affected", "LAN"]  # fmt: skip
    assert main([*opened, "--reported-at", "2026-03-01 10:00"]) == 0
    assert main([*base, "incident", "show", "1"]) == 0
    assert "no. 1 in 2026; 1 this year (more than 3 a year crosses" in capsys.readouterr().out
    for ago in ("2026-06-01 10:00", "2026-09-01 10:00"):
        assert main([*opened, "--reported-at", ago]) == 0
    capsys.readouterr()
    assert main([*base, "incident", "list"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("3 this year: one more crosses the red line") == 3, listed
    assert main([*opened, "--reported-at", "2026-11-01 10:00"]) == 0
    capsys.readouterr()
    assert main([*base, "incident", "show", "1"]) == 0
    assert (
        "INC-1 (virus, open): virus outbreak no. 1 in 2026; 4 this year: RED LINE CROSSED by "
        "no. 4 (more than 3 a year)"
    ) in capsys.readouterr().out
    assert main([*base, "incident", "list"]) == 0
    listed = capsys.readouterr().out
    assert "outbreak no. 1 in 2026; 4 this year: red line crossed" in listed
    assert listed.count("4 this year: red line crossed") == 4, listed
    assert main([*base, "incident", "show", "1", "--json"]) == 0
    virus = json.loads(capsys.readouterr().out)["virus"]
    assert (virus["number"], virus["crossed"], virus["in_year"], virus["year_crossed"]) == (
        1, False, 4, True,
    )  # fmt: skip
    sheet = tmp_path / "inc1.md"
    assert main([*base, "incident", "export", "1", "-o", str(sheet)]) == 0
    assert "outbreak no. 1 in 2026; 4 this year (more than 3 a year crosses)" in sheet.read_text(
        encoding="utf-8"
    )


def test_closing_an_outbreak_counts_its_year_in_the_time_zone_setting(
    base: list[str],
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three outbreaks in 2025; one at 2026-01-01 04:00 in Taipei (2025-12-31 20:00 UTC) is
    2026's first in the closed record, not 2025's fourth."""
    opened = [*base, "incident", "open", "--kind", "virus", "--reporter", "helpdesk",
              "--affected", "LAN", "--reported-at"]  # fmt: skip
    for at in ("2025-03-01 10:00", "2025-06-01 10:00", "2025-09-01 10:00", "2026-01-01 04:00"):
        assert main([*opened, at]) == 0
    assert main([*base, "incident", "recover", "4", "--at", "2026-01-01 05:00"]) == 0
    acting_as(monkeypatch, Identity("olivia", frozenset({policy.HANDLE}), source="netbox"))
    assert main([*base, "incident", "close", "4"]) == 0
    acting_as(monkeypatch, Identity("sam", frozenset({policy.SUPERVISE}), source="netbox"))
    assert main([*base, "incident", "close", "4"]) == 0
    with RecordStore(store_path) as store:
        closed = store.entries("INC-4")[-1]
    assert closed.kind == "incident.closed"
    assert (closed.payload["virus"]["year"], closed.payload["virus"]["number"]) == (2026, 1)
    assert closed.payload["crossed"] is False
