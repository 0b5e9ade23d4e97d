"""A record sheet in Chinese and English with local times, read in a real browser (Debian's
chromium driven by chromedriver through Selenium; nothing downloaded, no lab): an upkeep round
of a machine room is run and signed through the `runbook` command at 23:30 UTC — 07:30 the
next morning in Taipei — and its HTML sheet, exported with the department's zone, shows the
local date and time with the zone and both languages where a reader sees them. A screenshot
is kept ($RUNBOOKS_ARTIFACTS, else under the test's tmp_path).

Without chromium the test fails, never skips: scripts/setup installs it (CI runs it first)."""

# ruff: noqa: RUF001  (the Chinese text uses its own full-width punctuation)

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from runbooks.core import policy
from tests.support.browser import chromium, installed
from tests.unit.library.test_machine_room import UPKEEP, Acting, acting, cli, sign_and_export

NIGHT = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # 07:30 on the 8th in UTC+8

__all__ = ["acting"]  # the fixture, shared with the CLI tests of the checklists


class AtNight(datetime):
    """The clock of the record store and the confirmations: 23:30 UTC."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> AtNight:
        moment = NIGHT.astimezone(tz) if tz else NIGHT.replace(tzinfo=None)
        return cls.fromtimestamp(moment.timestamp(), tz)


def browser(profile: Path) -> webdriver.Chrome:
    if not installed():
        # never skipped: scripts/setup installs them, and a sheet nobody looked at is not
        # checked (leave the integration tests out with -m "not slow" instead)
        pytest.fail("needs Debian's chromium and chromium-driver: run scripts/setup")
    return chromium(profile)


def test_a_sheet_in_chinese_and_english_shows_local_times_in_a_browser(
    store_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    acting: Acting,
) -> None:
    monkeypatch.setattr("runbooks.core.store.datetime", AtNight)
    monkeypatch.setattr("runbooks.core.context.datetime", AtNight)
    run = ["run", "machine-room-upkeep", *UPKEEP, "temperature_c=22", "--yes"]
    code, out = cli(store_path, capsys, *run, "--no-change-control", "--json")
    assert code == 0, out
    run_id = json.loads(out)["run_id"]
    sign_and_export(store_path, capsys, acting, run_id)
    page = tmp_path / "sheet.html"
    acting.be("sophia", policy.SUPERVISE)
    export = ["records", "export", run_id, "--format", "html", "-o", str(page)]
    assert cli(store_path, capsys, *export)[0] == 0

    driver = browser(tmp_path / "chromium-profile")
    try:
        driver.get(page.as_uri())
        text = driver.find_element(By.TAG_NAME, "body").text
        shots = Path(os.environ.get("RUNBOOKS_ARTIFACTS") or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shots / "record-sheet-zh-en.png"))
        print(f"screenshot: {shots / 'record-sheet-zh-en.png'}")
        lang = driver.execute_script("return document.documentElement.lang")
        english = {e.text for e in driver.find_elements(By.CSS_SELECTOR, 'span[lang="en"]')}
        signed = [driver.find_element(By.CLASS_NAME, c).text for c in ("responsible", "supervisor")]
    finally:
        driver.quit()

    assert lang == "zh-Hant" and {"Outcome", "Responsible person", "Supervisor"} <= english
    # the signatures: the local day (the 8th, not the 7th), time and zone
    local = "2026-12-08 07:30 (UTC+08:00 Asia/Taipei)"
    assert signed[0].startswith("職位責任人簽字 Responsible person: olivia") and local in signed[0]
    assert signed[1].startswith("上級主管簽字 Supervisor: sophia") and local in signed[1]
    assert "2026-12-07" not in text
    # the run's times, each confirmation's who and when, the zone named; both languages
    assert "開始 / 結束 Started / ended 2026-12-08 07:30:00 / 2026-12-08 07:30:00" in text
    assert "確認人 confirmed by: olivia, 2026-12-08 07:30:00 (UTC+08:00 Asia/Taipei)" in text
    assert "本記錄所有時間均為 every time on this sheet is in UTC+08:00 Asia/Taipei" in text
    assert "空調：溫度及濕度讀數 Cooling: temperature and humidity" in text
    assert "結果 Outcome 成功 succeeded" in text
