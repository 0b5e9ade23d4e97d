"""The department's time zone is a setting (``time_zone``, issue 17): a window time given
without an offset is in it, and the record sheet shows its times in it, naming it."""

from __future__ import annotations

import doctest
import json
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest

from runbooks import config
from runbooks.cli import main
from runbooks.core import window as window_module
from runbooks.core.errors import InputError
from runbooks.core.store import RecordStore
from runbooks.core.window import Window
from runbooks.report import sheet

TAIPEI = ZoneInfo("Asia/Taipei")


def test_a_window_without_an_offset_is_in_the_zone_passed_in() -> None:
    window = Window.parse("2026-12-01T22:00", "2026-12-02T01:00", TAIPEI)
    assert window.start == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert window.to_dict()["start"] == "2026-12-01T22:00:00+08:00"
    # an offset given wins over the zone
    given = Window.parse("2026-12-01T22:00+01:00", "2026-12-02T01:00+01:00", TAIPEI)
    assert given.start == datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    # core reads no setting: without a zone such a time is still refused
    with pytest.raises(InputError, match="need a time zone"):
        Window.parse("2026-12-01T22:00", "2026-12-02T01:00")


def test_a_time_a_clock_change_skips_or_repeats_is_refused() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    with pytest.raises(InputError, match="does not exist in Europe/Berlin"):
        Window.parse("2026-03-29T02:30", "2026-03-29T05:00", berlin)
    with pytest.raises(InputError, match="happens twice in Europe/Berlin"):
        Window.parse("2026-10-25T02:30", "2026-10-25T05:00", berlin)


def test_the_setting_is_an_iana_name_default_the_departments_utc_plus_8() -> None:
    assert config.load(env={}).config.time_zone == "Asia/Hong_Kong"
    assert config.time_zone({}).key == "Asia/Hong_Kong"
    assert config.time_zone({"RUNBOOKS_TIME_ZONE": "UTC"}).key == "UTC"
    assert config.time_zone({"RUNBOOKS_TIME_ZONE": "Asia/Taipei"}) == TAIPEI
    with pytest.raises(InputError, match="not an IANA time zone"):
        config.load(env={"RUNBOOKS_TIME_ZONE": "Taipei Standard Time"})


def test_plan_takes_an_unzoned_window_in_the_departments_zone(
    store_path: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNBOOKS_TIME_ZONE", "Asia/Taipei")
    base = ["--store", str(store_path)]
    window = ["--window-start", "2026-12-01T22:00", "--window-end", "2026-12-02T01:00"]
    assert main([*base, "plan", "test-ledger", f"workdir={workdir}", *window, "--json"]) == 0
    change = json.loads(capsys.readouterr().out)["change"]
    assert main([*base, "changes", "--json"]) == 0
    listed = {c["id"]: c for c in json.loads(capsys.readouterr().out)}
    assert listed[change]["window"] == {
        "start": "2026-12-01T22:00:00+08:00",
        "end": "2026-12-02T01:00:00+08:00",
    }


def _record(tmp_path: Path) -> RecordStore:
    store = RecordStore(tmp_path / "records.sqlite3")
    window = {"start": "2026-12-01T14:00:00+00:00", "end": "2026-12-01T17:00:00+00:00"}
    started = {"runbook": "pc-install", "instruction": "20", "params": {}, "plan_hash": "abc"}
    store.append("RUN-1", "run.started", {**started, "targets": [], "window": window}, actor="o")
    store.append("RUN-1", "step.started", {"title": "Install"}, step="s", actor="o")
    store.append("RUN-1", "step.finished", {"status": "changed"}, step="s", actor="o")
    store.append("RUN-1", "run.finished", {"status": "succeeded"}, actor="o")
    return store


def test_the_record_sheet_shows_its_times_in_the_zone_and_names_it(tmp_path: Path) -> None:
    entries = _record(tmp_path).entries("RUN-1")
    started = datetime.fromisoformat(entries[0].ts)
    local = started.astimezone(TAIPEI)
    md = sheet.markdown(entries, "head", True, zone=TAIPEI)
    assert f"| Started / ended | {local:%Y-%m-%d %H:%M:%S} / " in md
    assert "every time on this sheet is in UTC+08:00 Asia/Taipei" in md
    assert "| Window | 2026-12-01 22:00 to 2026-12-02 01:00 |" in md
    assert f"| {local:%Y-%m-%d %H:%M:%S} |" in md  # the step's start
    page = sheet.html(entries, "head", True, zone=TAIPEI)
    assert "every time on this sheet is in UTC+08:00 Asia/Taipei" in page
    # no zone given: UTC, named
    assert "every time on this sheet is in UTC)" in sheet.markdown(entries, "head", True)


def test_records_export_uses_the_setting(
    store_path: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ["--store", str(store_path)]
    run = [*base, "run", "test-ledger", f"workdir={workdir}", "--yes", "--json"]
    assert main([*run, "--no-change-control"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    monkeypatch.setenv("RUNBOOKS_TIME_ZONE", "Asia/Taipei")
    assert main([*base, "records", "export", run_id, "--format", "md"]) == 0
    assert "every time on this sheet is in UTC+08:00 Asia/Taipei" in capsys.readouterr().out
    monkeypatch.delenv("RUNBOOKS_TIME_ZONE")  # the department's by default
    assert main([*base, "records", "export", run_id, "--format", "md"]) == 0
    assert "本記錄所有時間均為 every time on this sheet is in UTC+08:00 Asia/Hong_Kong" in (
        capsys.readouterr().out
    )
    # one sheet in another language and zone than the settings'
    given = ["--language", "zh-Hant", "--time-zone", "Europe/Berlin"]
    assert main([*base, "records", "export", run_id, "--format", "md", *given]) == 0
    text = capsys.readouterr().out
    assert "本記錄所有時間均為 UTC+01:00 Europe/Berlin" in text and "every time" not in text
    for bad, said in (("--language", "klingon"), ("--time-zone", "Mars/Olympus")):
        assert main([*base, "records", "export", run_id, "--format", "md", bad, said]) != 0
        assert said in capsys.readouterr().err


@pytest.mark.parametrize("module", [config, sheet, window_module])
def test_the_examples_in_the_settings_docstrings_hold(module: ModuleType) -> None:
    assert doctest.testmod(module).failed == 0


def test_the_review_document_and_the_list_show_times_in_the_zone(
    store_path: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ["--store", str(store_path)]
    window = ["--window-start", "2026-12-01T14:00Z", "--window-end", "2026-12-01T17:00Z"]
    assert main([*base, "plan", "test-ledger", f"workdir={workdir}", *window, "--json"]) == 0
    change = json.loads(capsys.readouterr().out)["change"]
    monkeypatch.setenv("RUNBOOKS_TIME_ZONE", "Asia/Taipei")
    page = store_path.parent / "review.html"
    assert main([*base, "review", change, "--html", str(page)]) == 0
    capsys.readouterr()
    shown = "2026-12-01T22:00:00+08:00 to 2026-12-02T01:00:00+08:00 (Asia/Taipei)"
    assert shown in page.read_text()
    assert main([*base, "changes"]) == 0
    assert "+08:00" in capsys.readouterr().out


def test_the_sheet_names_the_zones_offset_when_the_run_started() -> None:
    """Europe/Berlin at 00:30 UTC on the night its clocks go forward (01:00 UTC): the run
    started at 01:30 CET, UTC+01:00, not the summer offset the local time would read as."""
    held = {
        "start_ts": "2026-03-29T00:30:00+00:00",
        "end_ts": "2026-03-29T01:30:00+00:00",
        "rows": [],
        "started": {},
    }
    shown = sheet.in_zone(held, ZoneInfo("Europe/Berlin"))
    assert shown["start_ts"] == "2026-03-29 01:30:00"
    assert shown["end_ts"] == "2026-03-29 03:30:00"
    assert shown["time_zone"] == "UTC+01:00 Europe/Berlin"
