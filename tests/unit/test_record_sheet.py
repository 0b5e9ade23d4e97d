"""The record sheet: the receipt block of a hand-over, both languages, local times with the zone,
escaped Markdown cells, and a Chinese title for every step of the library."""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path
from zoneinfo import ZoneInfo

from runbooks import library
from runbooks.core import registry
from runbooks.core.runbook import Runbook
from runbooks.core.store import RecordStore
from runbooks.report import sheet, titles_zh


def record(tmp_path: Path, *, undone: bool = False) -> RecordStore:
    store = RecordStore(tmp_path / "records.sqlite3")
    run = "RUN-1"
    started = {
        "runbook": "pc-install",
        "instruction": "20 PC 機安裝 PC install",
        "params": {"slot": "pc1"},
        "plan_hash": "abc",
        "targets": ["pc1"],
        "window": None,
    }
    store.append(run, "run.started", started, actor="olivia")
    store.append(run, "step.started", {"title": "Record the hand-over"}, step="s", actor="olivia")
    evidence = {"journal_entry": 7, "recipient": "Wei Chen <wchen@lab.example>"}
    store.append(
        run, "step.finished", {"status": "changed", "evidence": evidence}, step="s", actor="olivia"
    )
    if undone:
        store.append(run, "undo.finished", {}, step="s", actor="olivia")
    store.append(run, "run.finished", {"status": "succeeded"}, actor="olivia")
    return store


def test_the_recipient_signs_the_hand_over(tmp_path: Path) -> None:
    store = record(tmp_path)
    entries = store.entries("RUN-1")
    md = sheet.markdown(entries, "head", True, language="both")
    assert "| 使用人簽收 Received by | 簽字 signature | 日期 date |" in md
    # the address's brackets escaped: Markdown would take it for an HTML tag
    assert "| Wei Chen &lt;wchen@lab.example&gt; | ________________ | ________ |" in md
    page = sheet.html(entries, "head", True, language="both")
    assert (
        '<span lang="zh-Hant">使用人簽收</span> <span lang="en">Received by</span> '
        "<b>Wei Chen &lt;wchen@lab.example&gt;</b>"
    ) in page
    store.close()


def test_no_receipt_block_without_a_hand_over(tmp_path: Path) -> None:
    store = record(tmp_path, undone=True)  # the hand-over step was undone: nothing received
    assert "Received by" not in sheet.markdown(store.entries("RUN-1"), "head", True)
    store.close()


TAIPEI = ZoneInfo("Asia/Taipei")
SIGNED = {
    # 07:30 on the 8th in UTC+8: a sheet in UTC said the 7th
    "responsible": {"actor": "olivia", "ts": "2026-12-07T23:30:00+00:00", "note": ""},
    "supervisor": {"actor": "sophia", "ts": "2026-12-08T01:05:00+00:00", "note": ""},
}


def rack_in_record(tmp_path: Path) -> RecordStore:
    """A rack-in of leaf3 whose manual step was confirmed, with a parameter and an error that
    hold Markdown's marks and HTML."""
    store = RecordStore(tmp_path / "records.sqlite3")
    started = {
        "runbook": "rack-in",
        "instruction": "7 網絡設備上架 network device rack-in",
        "params": {"device": "leaf3", "note": "a|b `c` <b>x</b>\nsecond line"},
        "plan_hash": "abc",
        "targets": ["leaf3"],
        "window": None,
    }
    store.append("RUN-2", "run.started", started, actor="olivia")
    step = "confirm_mounted_and_cabled"
    title = {"title": "Confirm leaf3 is mounted and cabled", "kind": "manual"}
    store.append("RUN-2", "step.started", title, step=step, actor="olivia")
    answer = {
        "confirmed": True,
        "confirmed_by": "olivia",
        "confirmed_at": "2026-12-07T23:40:00+00:00",
        "note": "mounted in R1 | U20",
    }
    store.append("RUN-2", "manual.answered", answer, step=step, actor="olivia")
    store.append("RUN-2", "step.finished", {"status": "ok"}, step=step, actor="olivia")
    failed = {"title": "leaf3 answers on its management address", "kind": "check"}
    store.append("RUN-2", "step.started", failed, step="device_answers", actor="olivia")
    error = {"error": "no answer | timed out\n`ping` <fail>"}
    store.append("RUN-2", "step.failed", error, step="device_answers", actor="olivia")
    store.append("RUN-2", "run.finished", {"status": "rolled-back"}, actor="olivia")
    return store


def test_a_sheet_in_both_languages_with_local_times(tmp_path: Path) -> None:
    entries = rack_in_record(tmp_path).entries("RUN-2")
    md = sheet.markdown(entries, "h", True, TAIPEI, "both", signatures=SIGNED)
    assert "# 相關記錄 Record sheet — rack-in" in md
    assert "| 結果 Outcome | **已回退 rolled-back** |" in md
    assert (
        "| 確認 leaf3 已上架並接好線纜 Confirm leaf3 is mounted and cabled | 人工確認 manual |"
        in md
    )
    assert (
        "| leaf3 在管理地址上應答 leaf3 answers on its management address | 檢查 check "
        "| 失敗 failed |" in md
    )
    # the confirmation's who and when, in the zone, named
    assert "- 確認人 confirmed by: olivia, 2026-12-08 07:40:00 (UTC+08:00 Asia/Taipei) — " in md
    assert "confirmed by olivia at 2026-12-07T23:40" not in md  # not the UTC note
    # a signature at 07:30 in UTC+8 carries its own day, with the zone
    assert "| olivia, 2026-12-08 07:30 (UTC+08:00 Asia/Taipei) | sophia, 2026-12-08 09:05 " in md
    assert "| 職位責任人簽字 Responsible person | 上級主管簽字 Supervisor |" in md
    assert "雜湊鏈已驗證。" in md and "chain verified." in md


def test_one_language_alone(tmp_path: Path) -> None:
    entries = rack_in_record(tmp_path).entries("RUN-2")
    zh = sheet.markdown(entries, "h", True, TAIPEI, "zh-Hant", signatures=SIGNED)
    assert "| 結果 | **已回退** |" in zh and "| 確認 leaf3 已上架並接好線纜 | 人工確認 |" in zh
    assert "Outcome" not in zh and "chain verified" not in zh
    en = sheet.markdown(entries, "h", True, TAIPEI, "en", signatures=SIGNED)
    assert "| Outcome | **rolled-back** |" in en and "| Confirm leaf3 is mounted and cabled |" in en
    assert "結果" not in en and "確認" not in en
    assert "olivia, 2026-12-08 07:30 (UTC+08:00 Asia/Taipei)" in en


def test_every_markdown_cell_is_escaped(tmp_path: Path) -> None:
    entries = rack_in_record(tmp_path).entries("RUN-2")
    md = sheet.markdown(entries, "h", True, TAIPEI, "both")
    params = next(line for line in md.splitlines() if line.startswith("| 參數 Parameters |"))
    assert "note=a\\|b \\`c\\` &lt;b&gt;x&lt;/b&gt;<br>second line" in params
    assert params.count("|") - params.count("\\|") == 3  # one row of two cells still
    assert "second line" not in md.replace(params, "")  # the newline did not end the row
    assert "- 錯誤 error: no answer \\| timed out<br>\\`ping\\` &lt;fail&gt;" in md
    assert "<b>" not in md and "<fail>" not in md
    # steps table: every row has its seven cells
    rows = [
        line for line in md.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")
    ]
    assert [r.count("|") - r.count("\\|") for r in rows] == [8, 8]


def test_the_html_sheet_marks_its_languages(tmp_path: Path) -> None:
    entries = rack_in_record(tmp_path).entries("RUN-2")
    page = sheet.html(entries, "h", True, TAIPEI, "both", signatures=SIGNED)
    assert page.startswith('<!doctype html>\n<html lang="zh-Hant">')
    assert '<span lang="zh-Hant">結果</span> <span lang="en">Outcome</span>' in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert '<html lang="en">' in sheet.html(entries, "h", True, TAIPEI, "en")
    assert '<span lang="en">' not in sheet.html(entries, "h", True, TAIPEI, "en")


def library_runbooks() -> dict[str, list[str]]:
    """Every runbook in runbooks.library (registered or not yet), by name, with its steps."""
    found: dict[str, list[str]] = {}
    for module in pkgutil.iter_modules(library.__path__):
        for cls in vars(importlib.import_module(f"{library.__name__}.{module.name}")).values():
            if isinstance(cls, type) and issubclass(cls, Runbook) and "name" in vars(cls):
                found[cls.name] = [s.name for s in cls.steps()]
    return found


def test_every_step_of_the_library_has_its_chinese_title() -> None:
    """Each installed runbook (an entry point) and each one titles_zh names has a Chinese title
    for each of its steps: a new or renamed step would be shown in English alone."""
    found = library_runbooks()
    installed = {ep.name for ep in entry_points(group=registry.GROUP)}
    wanted = {rb: steps for rb, steps in found.items() if rb in installed | set(titles_zh.TITLES)}
    assert titles_zh.missing(wanted) == []


def test_a_chinese_title_reads_a_dash_for_a_parameter_not_given() -> None:
    """A fault-server plan without a remedy: its remedy step's title has no service."""
    remedy = "處理：重啟服務 "  # noqa: RUF001 (the manual's full-width colon)
    assert titles_zh.title("fault-server", "plan_remedy", {"service": None}) == remedy + "—"
    assert titles_zh.title("fault-server", "plan_remedy", {"service": "cron"}) == remedy + "cron"
