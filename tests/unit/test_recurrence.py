"""Recurring windows (issue 18's maintenance plan): an RRULE read in the department's local
wall-clock time, DST-correct, and the windows as an iCalendar file a calendar expands to the
same windows."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from dateutil.rrule import rrulestr

from runbooks import recurrence as recurrence_module
from runbooks.core.errors import InputError
from runbooks.recurrence import Recurrence, ScheduledWindows, calendar, parse_length

BERLIN = ZoneInfo("Europe/Berlin")
TAIPEI = ZoneInfo("Asia/Taipei")
NIGHTLY = "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"


def starts(rec: Recurrence, since: datetime, days: int) -> list[str]:
    return [w.start.isoformat() for w in rec.windows(since, since + timedelta(days=days))]


def test_a_nightly_rule_is_local_wall_clock_time_across_both_clock_changes() -> None:
    spring = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    rec = Recurrence.parse(NIGHTLY, timedelta(hours=2), BERLIN, spring)
    assert starts(rec, spring, 3) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",  # 02:30 does not exist that night: moved on by the gap
        "2026-03-30T02:30:00+02:00",  # 02:30 local again, an hour earlier in UTC
    ]
    autumn = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    rec = Recurrence.parse(NIGHTLY, timedelta(hours=2), BERLIN, autumn)
    windows = rec.windows(autumn, autumn + timedelta(days=2))
    # 02:30 happens twice on 25 October: the first (summer time), once
    assert [w.start.isoformat() for w in windows] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    # a window's length is elapsed time: 2 h, though the clocks go back inside it
    assert windows[0].end.astimezone(UTC) - windows[0].start.astimezone(UTC) == timedelta(hours=2)
    assert windows[0].end.isoformat() == "2026-10-25T03:30:00+01:00"


def test_the_rule_is_in_the_zone_given_and_the_first_window_is_its_first_time() -> None:
    now = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)  # 21:00 in Taipei
    rec = Recurrence.parse("FREQ=DAILY;BYHOUR=2;BYMINUTE=0", timedelta(hours=1), TAIPEI, now)
    assert rec.first.isoformat() == "2026-12-07T02:00:00+08:00"  # today's, from local midnight
    window = rec.next_window(now)
    assert window is not None
    assert window.start == datetime(2026, 12, 7, 18, 0, tzinfo=UTC)  # 02:00 Taipei, 8 Dec
    assert rec.next_window(now, after=window.start) == rec.window_at(
        datetime(2026, 12, 8, 18, 0, tzinfo=UTC)
    )
    monthly = Recurrence.parse(
        "RRULE:freq=monthly;byday=1SA;byhour=22;byminute=0", timedelta(hours=4), TAIPEI, now
    )
    assert monthly.rule == "FREQ=MONTHLY;BYDAY=1SA;BYHOUR=22;BYMINUTE=0"
    assert starts(monthly, now, 70) == ["2027-01-02T22:00:00+08:00", "2027-02-06T22:00:00+08:00"]
    given = Recurrence.parse(
        "FREQ=WEEKLY;BYDAY=TU;BYHOUR=23;BYMINUTE=0",
        timedelta(hours=1),
        TAIPEI,
        now,
        start=datetime(2026, 12, 20, tzinfo=TAIPEI),
    )
    assert given.first.isoformat() == "2026-12-22T23:00:00+08:00"


def test_a_local_until_is_kept_in_utc_and_ends_the_windows() -> None:
    now = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    rec = Recurrence.parse(
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=0;UNTIL=20261209T020000", timedelta(hours=1), TAIPEI, now
    )
    assert rec.rule.endswith("UNTIL=20261208T180000Z")  # RFC 5545: UTC with a zoned DTSTART
    assert starts(rec, now, 10) == ["2026-12-08T02:00:00+08:00", "2026-12-09T02:00:00+08:00"]


@pytest.mark.parametrize(
    ("rule", "length", "message"),
    [
        ("FREQ=NEVERLY", "1h", "bad rule"),
        ("BYHOUR=2", "1h", "bad rule"),
        ("FREQ=DAILY;BYHOUR=25", "1h", "bad rule"),
        ("FREQ=DAILY\nRRULE:FREQ=WEEKLY", "1h", "give one RRULE"),
        ("DTSTART:20260101T000000;FREQ=DAILY", "1h", "give one RRULE"),
        ("", "1h", "give one RRULE"),
        ("FREQ=DAILY;UNTIL=20200101T000000Z", "1h", "has no window"),
        ("FREQ=DAILY;COUNT=1", "1h", "no window still to come"),
        ("FREQ=DAILY;UNTIL=2020", "1h", "bad UNTIL"),
        ("FREQ=HOURLY", "2h", "overlap"),
    ],
)
def test_a_bad_rule_is_one_line_of_input_error(rule: str, length: str, message: str) -> None:
    now = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    with pytest.raises(InputError, match=message) as caught:
        Recurrence.parse(rule, parse_length(length), TAIPEI, now)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text", ["", "2", "h", "-1h", "0m", "1h 30m", "PT2H"])
def test_a_bad_length_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="bad window length"):
        parse_length(text)


def test_lengths() -> None:
    assert parse_length("4h") == timedelta(hours=4)
    assert parse_length("1d2h3m4s") == timedelta(days=1, hours=2, minutes=3, seconds=4)
    assert doctest.testmod(recurrence_module).failed == 0


def test_the_ics_keeps_the_rule_and_zone_and_expands_to_the_same_windows() -> None:
    now = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    nightly = Recurrence.parse(NIGHTLY, timedelta(hours=2), BERLIN, now)
    monthly = Recurrence.parse(
        "FREQ=MONTHLY;BYDAY=1SA;BYHOUR=22;BYMINUTE=0", timedelta(hours=4), BERLIN, now
    )
    text = calendar(
        [
            ScheduledWindows("SCH-1", "CHG-1", "network-maintenance", nightly, "olivia"),
            ScheduledWindows("SCH-2", "CHG-2", "network-remediation", monthly),
        ],
        now,
    )
    cal = icalendar.Calendar.from_ical(text)
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Europe/Berlin"]
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {"SCH-1@runbooks", "SCH-2@runbooks"}
    event = events["SCH-1@runbooks"]
    assert "network-maintenance" in str(event["SUMMARY"]) and "CHG-1" in str(event["SUMMARY"])
    assert event["RRULE"].to_ical().decode() in (NIGHTLY, "FREQ=DAILY;BYMINUTE=30;BYHOUR=2")
    assert timedelta(hours=2) == event.DURATION
    assert nightly.first == event.DTSTART and event.DTSTART.tzinfo is not None
    assert b"DTSTART;TZID=Europe/Berlin:20260320T023000" in text
    # a calendar expands each event (its RRULE from its DTSTART, in Berlin's wall-clock time;
    # RFC 5545 moves a time the clock skips on by the gap) to the windows the worker runs
    until = now + timedelta(days=70)
    for uid, rec in (("SCH-1@runbooks", nightly), ("SCH-2@runbooks", monthly)):
        ev = events[uid]
        rule = rrulestr(ev["RRULE"].to_ical().decode(), dtstart=ev.DTSTART.replace(tzinfo=None))
        local = [
            d.replace(tzinfo=BERLIN).astimezone(UTC)
            for d in rule.between(ev.DTSTART.replace(tzinfo=None), until.replace(tzinfo=None), True)
        ]
        ours = [w.start for w in rec.windows(rec.first, until)]
        assert [d for d in local if d < until] == ours
        assert ours[0] == ev.DTSTART


def test_windows_that_overlap_only_across_a_clock_change_are_refused() -> None:
    """01:30 and 03:30 local are two hours apart by the wall clock, but on the night the clocks
    go forward (2027-03-28 in Berlin) one hour apart: 2 h windows would overlap then."""
    now = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    rule = "FREQ=DAILY;BYHOUR=1,3;BYMINUTE=30"
    with pytest.raises(InputError, match="overlap: 2027-03-28T01:30:00") as caught:
        Recurrence.parse(rule, timedelta(hours=2), BERLIN, now)
    assert "\n" not in str(caught.value)
    Recurrence.parse(rule, timedelta(hours=1), BERLIN, now)  # an hour's windows do not
    with pytest.raises(InputError, match="overlap"):  # nor a rule's every other hour
        Recurrence.parse("FREQ=HOURLY;INTERVAL=2", timedelta(hours=2), BERLIN, now)
