"""The machine-room checklists (instructions 6 and 9) through the `runbook` command, with the
local store and NetBox answering from a fake: a visit is planned, reviewed, approved, run with
its confirmations and signed; an upkeep round is run and signed, and a reading out of its
range fails its item with the finding. Each sheet shows every confirmation's who and when in
the department's zone, and both signatures."""

# ruff: noqa: RUF001  (the Chinese text uses its own full-width punctuation)

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbooks.cli import main
from runbooks.core import policy
from runbooks.core.context import RunContext
from runbooks.core.gateway import Mode
from runbooks.core.policy import Identity
from runbooks.gateways.netbox import NetBoxGateway
from tests.conftest import LEDGER
from tests.unit.gateways.netbox_fake import Answer, Sent, fake_gateway

SITES = {"mr-1": {"id": 4, "name": "MR-1", "slug": "mr-1"}}
USERS = {"eddie": {"id": 9, "username": "eddie", "first_name": "Eddie", "last_name": "Wong"}}


class Acting:
    """Who the `runbook` command is acting as (NetBox says so in the lab)."""

    def __init__(self) -> None:
        self.who = Identity("olivia", frozenset({policy.HANDLE}), source="netbox")

    def be(self, name: str, *authorities: str) -> None:
        self.who = Identity(name, frozenset(authorities), source="netbox")


def _answer(table: dict[str, dict[str, Any]], *keys: str) -> Any:
    def route(sent: Sent) -> Answer:
        asked = {v.lower() for k, v in sent.query if k in keys}
        hits = [obj for name, obj in table.items() if name in asked]
        return Answer(body={"count": len(hits), "results": hits})

    return route


@pytest.fixture
def acting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Acting]:
    acting = Acting()
    for where in ("runbooks.cli.identity", "runbooks.cli.changes.identity"):
        monkeypatch.setattr(where, lambda ctx: acting.who)

    def opened(cls: type[NetBoxGateway], ctx: RunContext, key: str) -> NetBoxGateway:
        gw, fake = fake_gateway(ctx.mode if isinstance(ctx.mode, Mode) else Mode.PLAN)
        fake.on("GET", "/api/dcim/sites/", _answer(SITES, "name", "slug"))
        fake.on("GET", "/api/dcim/locations/", Answer(body={"count": 0, "results": []}))
        fake.on("GET", "/api/users/users/", _answer(USERS, "username"))
        return gw

    monkeypatch.setattr(NetBoxGateway, "open", classmethod(opened))
    monkeypatch.setenv("RUNBOOKS_MODULES", f"{LEDGER},runbooks.library.machine_room")
    monkeypatch.setenv("RUNBOOKS_TIME_ZONE", "Asia/Taipei")
    monkeypatch.delenv("RUNBOOKS_SHEET_LANGUAGE", raising=False)
    yield acting


def cli(store: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["--store", str(store), *argv])
    return code, capsys.readouterr().out


def sign_and_export(
    store: Path, capsys: pytest.CaptureFixture[str], acting: Acting, run_id: str
) -> str:
    acting.be("olivia", policy.HANDLE)
    assert cli(store, capsys, "signoff", run_id)[0] == 0
    acting.be("sophia", policy.SUPERVISE)
    assert cli(store, capsys, "signoff", run_id)[0] == 0
    code, sheet = cli(store, capsys, "records", "export", run_id, "--format", "md")
    assert code == 0
    return sheet


def confirmations(sheet: str) -> list[tuple[str, str]]:
    return re.findall(r"- 確認人 confirmed by: (\S+), (\S+ \S+) \(UTC\+08:00 Asia/Taipei\)", sheet)


ACCESS = [
    "visitor=Chan Tai Man",
    "company=Cool Air Ltd",
    "escort=eddie",
    "purpose=replace the filter of CRAC 2",
    "room=MR-1",
    "expected=2026-12-08 09:00, 2 h",
]


def test_a_visit_is_approved_run_with_its_confirmations_and_signed(
    store_path: Path, capsys: pytest.CaptureFixture[str], acting: Acting
) -> None:
    window = ["--window-start", "-1m", "--window-end", "+3h"]
    code, out = cli(store_path, capsys, "plan", "machine-room-access", *ACCESS, *window, "--json")
    assert code == 0, out
    planned = json.loads(out)
    change, plan_hash = planned["change"], planned["hash"]
    acting.be("rachel", policy.REVIEW)
    assert cli(store_path, capsys, "review", change, "--accept", "--hash", plan_hash)[0] == 0
    acting.be("arthur", policy.APPROVE)
    assert cli(store_path, capsys, "approve", change, "--hash", plan_hash)[0] == 0
    acting.be("olivia", policy.HANDLE)
    code, out = cli(store_path, capsys, "run", change, "--yes", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["status"] == "succeeded"
    times = next(s for s in result["steps"] if s["step"] == "visit_times")["evidence"]

    sheet = sign_and_export(store_path, capsys, acting, result["run_id"])
    # the five confirmations, each with who and when, in the department's zone
    confirmed = confirmations(sheet)
    assert [who for who, _ in confirmed] == ["olivia"] * 5
    assert (
        "| 核對 Chan Tai Man（Cool Air Ltd）的身份證件 Check the identity of Chan Tai Man" in sheet
    )
    assert "| 進入機房：登記進入時間 Entry: the time in | 人工確認 manual | 通過 ok |" in sheet
    # the times in and out are the entry's and exit's confirmations, shown locally
    (_, entered), (_, left) = confirmed[2], confirmed[4]
    assert f"- time_in: {entered}\n" in sheet and f"- time_out: {left}\n" in sheet
    assert times["time_in_by"] == "olivia" and times["time_in"].endswith("+00:00")
    # the authorities and both signatures, dated in the zone
    assert "| 審核 review | rachel |" in sheet and "| 批准 approve | arthur |" in sheet
    signed = re.search(r"\| olivia, (\S+ \S+) \(UTC\+08:00 Asia/Taipei\) \| sophia, ", sheet)
    assert signed, sheet


UPKEEP = ["room=mr-1", "ups_load_pct=42", "pdu_load_pct=55", "humidity_pct=48"]


def test_an_upkeep_round_is_run_and_signed(
    store_path: Path, capsys: pytest.CaptureFixture[str], acting: Acting
) -> None:
    run = ["run", "machine-room-upkeep", *UPKEEP, "temperature_c=23.5", "--yes"]
    code, out = cli(store_path, capsys, *run, "--no-change-control", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert [s["status"] for s in result["steps"]] == ["ok"] * 6
    sheet = sign_and_export(store_path, capsys, acting, result["run_id"])
    assert len(confirmations(sheet)) == 5
    for item in (
        "電源：UPS 及 PDU 負載 Power",
        "空調：溫度及濕度讀數 Cooling",
        "消防",
        "佈線",
        "清潔",
    ):
        assert re.search(rf"\| \d \| {item}[^|]*\| 人工確認 manual \| 通過 ok \| olivia \|", sheet)
    assert "the room reads 23.5 °C (allowed 18-27)" in sheet
    assert '- room: {"id": 4, "kind": "site", "name": "MR-1"}' in sheet
    assert re.search(r"\| olivia, \S+ \S+ \(UTC\+08:00 Asia/Taipei\) \| sophia, ", sheet)


def test_a_reading_out_of_its_range_fails_its_item_with_the_finding(
    store_path: Path, capsys: pytest.CaptureFixture[str], acting: Acting
) -> None:
    run = ["run", "machine-room-upkeep", *UPKEEP, "temperature_c=31", "--yes"]
    code, out = cli(store_path, capsys, *run, "--no-change-control", "--json")
    assert code != 0
    result = json.loads(out)
    cooling = next(s for s in result["steps"] if s["step"] == "cooling")
    assert cooling["status"] == "failed"
    assert "temperature 31 °C is outside 18 to 27 °C" in cooling["error"]
    sheet = sign_and_export(store_path, capsys, acting, result["run_id"])
    assert (
        "| 空調：溫度及濕度讀數 Cooling: temperature and humidity | 人工確認 manual | 失敗 failed"
        in sheet
    )
    assert "- 錯誤 error: VerificationError: temperature 31 °C is outside 18 to 27 °C" in sheet
    # the power item before it was confirmed; nothing after it was
    assert len(confirmations(sheet)) == 1


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["temperature_c=22", "temperature_range=27-18"], "low end is above its high end"),
        (["temperature_c=warm"], "temperature_c"),
        (["temperature_c=22", "room=MR-9"], "NetBox has no site or location named 'MR-9'"),
    ],
)
def test_bad_input_is_one_clear_line(
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
    acting: Acting,
    argv: list[str],
    said: str,
) -> None:
    run = ["run", "machine-room-upkeep", *UPKEEP, *argv, "--yes", "--no-change-control"]
    assert main(["--store", str(store_path), *run]) != 0
    assert said in capsys.readouterr().err
