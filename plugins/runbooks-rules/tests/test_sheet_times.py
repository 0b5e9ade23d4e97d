"""A record sheet's notes name their times in the department's zone (`runbooks_rules.sheet`),
and the words both sheets share (`runbooks_rules.words`, `runbooks_rules.titles_zh`) hold their
examples; a Django or Jinja page takes a marked pair as HTML, its words escaped."""

from __future__ import annotations

import doctest
import importlib
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from runbooks_rules import sheet
from runbooks_rules.chain import Entry, genesis, make_entry
from runbooks_rules.words import Html, Words

TAIPEI = ZoneInfo("Asia/Taipei")


def record(*entries: tuple[str, str | None, dict[str, Any]]) -> list[Entry]:
    """A run's entries a minute apart from 23:30 UTC on 7 December."""
    out: list[Entry] = []
    for n, (kind, step, payload) in enumerate(entries):
        prev = out[-1].hash if out else genesis("R1")
        ts = f"2026-12-07T23:{30 + n:02}:05.250+00:00"
        out.append(make_entry("R1", n + 1, ts, "olivia", kind, step, payload, prev))
    return out


ENTRIES = record(
    ("run.started", None, {"runbook": "machine-room-upkeep"}),
    ("step.started", "power", {"title": "Power", "kind": "manual"}),
    (
        "manual.answered",
        "power",
        {"confirmed": True, "confirmed_by": "olivia", "confirmed_at": "2026-12-07T23:59:30Z"},
    ),
    ("step.finished", "power", {"status": "ok"}),
    ("undo.finished", "power", {}),
    ("run.finished", None, {"status": "rolled-back"}),
)


def test_the_notes_name_their_times_in_the_zone_given() -> None:
    (row,) = sheet.rows(ENTRIES, TAIPEI)
    assert row.notes == [
        "confirmed by olivia at 2026-12-08 07:59:30 (UTC+08:00 Asia/Taipei): ",
        "undone at 2026-12-08 07:34:05 (UTC+08:00 Asia/Taipei)",
    ]
    assert row.status == "undone"


def test_without_a_zone_the_notes_are_in_utc_named() -> None:
    (row,) = sheet.context(ENTRIES, ENTRIES[-1].hash, True)["rows"]
    assert row["notes"] == [
        "confirmed by olivia at 2026-12-07 23:59:30 (UTC): ",
        "undone at 2026-12-07 23:34:05 (UTC)",
    ]


def test_the_context_passes_its_zone_to_the_rows() -> None:
    held = sheet.context(ENTRIES, ENTRIES[-1].hash, True, zone=ZoneInfo("America/New_York"))
    assert (
        held["rows"][0]["notes"][1] == "undone at 2026-12-07 18:34:05 (UTC-05:00 America/New_York)"
    )
    assert held["start_ts"] == ENTRIES[0].ts  # the other times stay as recorded, for the renderer


def test_a_marked_pair_is_html_with_its_words_escaped() -> None:
    shown = Words("both", html=True).status("<ok>")
    assert isinstance(shown, Html) and shown.__html__() == '<span lang="en">&lt;ok&gt;</span>'
    pair = Words("both", html=True).pair("結果 & 備註", "<b>x</b>")
    assert (
        pair
        == '<span lang="zh-Hant">結果 &amp; 備註</span> <span lang="en">&lt;b&gt;x&lt;/b&gt;</span>'
    )
    assert Words("en", html=True).label("outcome") == "Outcome"
    assert Words("zh-Hant", html=True).label("outcome") == "結果"


@pytest.mark.parametrize("name", ["words", "titles_zh"])
def test_the_doctests_of(name: str) -> None:
    module = importlib.import_module(f"runbooks_rules.{name}")
    assert doctest.testmod(module).failed == 0
