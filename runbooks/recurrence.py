"""Recurring maintenance windows (系統維護計劃編制): an RRULE (RFC 5545, read by python-dateutil)
and a window length, in the department's time zone.

The rule is read in local wall-clock time, as iCalendar and calendars read a rule whose
DTSTART names a zone: ``FREQ=DAILY;BYHOUR=2;BYMINUTE=0`` in ``Europe/Berlin`` is 02:00 in
Berlin every night, winter and summer (01:00 or 00:00 UTC). A local time a clock change skips
(02:30 on the spring-forward night) moves forward by the gap (03:30), and one that happens
twice is the first of the two (RFC 5545 §3.3.5). A window's length is elapsed time: a 4 h
window is four hours long on a night the clocks change too.

The first window (DTSTART) is the rule's first occurrence at or after the start given (by
default today's local midnight, so that the rule's own BYHOUR/BYMINUTE give the time of day
and an unnamed minute or second is 0), so a calendar expands the exported event to the same
windows as the worker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from dateutil.rrule import rrule, rrulestr

from runbooks.core.errors import InputError
from runbooks.core.window import Window

__all__ = ["Recurrence", "ScheduledWindows", "calendar", "parse_length"]

_LENGTH = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNTIL = re.compile(r"UNTIL=([0-9T]+Z?)")
# the windows compared for overlap when a rule is read: a year's (the zone's clock changes),
# at most this many
_OVERLAP_CHECKED = 10_000
_OVERLAP_YEAR = timedelta(days=367)


def parse_length(text: str) -> timedelta:
    """A window's length: ``4h``, ``90m``, ``1h30m``, ``1d``, ``45s``.

    >>> parse_length("1h30m")
    datetime.timedelta(seconds=5400)
    """
    match = _LENGTH.match(text.strip())
    if not text.strip() or match is None:
        raise InputError(f"bad window length {text!r}: e.g. 4h, 90m, 1h30m, 1d")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    length = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if length <= timedelta(0):
        raise InputError(f"bad window length {text!r}: it must be longer than nothing")
    return length


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    """A local wall-clock time (naive, as the rule yields it) in ``zone``: a time a clock
    change skips is moved on by the gap, one that happens twice is the first."""
    return moment.replace(tzinfo=zone, fold=0).astimezone(UTC).astimezone(zone)


@dataclass(frozen=True)
class Recurrence:
    """A rule's windows: ``rule`` (the RRULE, its UNTIL in UTC), ``first`` (DTSTART, aware, in
    ``zone``: the first window's start) and ``length``."""

    rule: str
    first: datetime
    length: timedelta
    zone: ZoneInfo

    @classmethod
    def parse(
        cls,
        rule: str,
        length: timedelta,
        zone: ZoneInfo,
        now: datetime,
        start: datetime | None = None,
    ) -> Recurrence:
        """Read ``rule``; its first window begins at or after ``start`` (default: today's
        local midnight) and ends after ``now``. A rule that does not parse, has no window
        still to come, or whose windows overlap is an `InputError` (one line)."""
        text = rule.strip()
        if text.upper().startswith("RRULE:"):
            text = text[6:]
        if not text or any(c in text for c in "\r\n") or "DTSTART" in text.upper():
            raise InputError(
                f"bad rule {rule!r}: give one RRULE, e.g. FREQ=DAILY;BYHOUR=2;BYMINUTE=0 "
                "(its start is --from)"
            )
        text = _until_in_utc(text.upper(), zone)
        anchor = (start or now).astimezone(zone)
        if start is None:
            anchor = anchor.replace(hour=0, minute=0, second=0, microsecond=0)
        draft = cls(text, anchor, length, zone)
        first = next(iter(draft._starts(anchor)), None)
        if first is None:
            raise InputError(f"the rule {rule!r} has no window from {anchor.isoformat()} on")
        recurrence = cls(text, first, length, zone)
        if recurrence.next_window(now) is None:
            raise InputError(f"the rule {rule!r} has no window still to come")
        recurrence._check_no_overlap()
        return recurrence

    def _rule(self) -> rrule:
        local = _UNTIL.sub(lambda m: f"UNTIL={self._until_local(m.group(1))}", self.rule)
        try:
            parsed = rrulestr(local, dtstart=self.first.replace(tzinfo=None))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise InputError(f"bad rule {self.rule!r}: {exc or type(exc).__name__}") from None
        if not isinstance(parsed, rrule):  # pragma: no cover - a one-rule text is an rrule
            raise InputError(f"bad rule {self.rule!r}: one RRULE only")
        return parsed

    def _until_local(self, value: str) -> str:
        moment = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return moment.astimezone(self.zone).strftime("%Y%m%dT%H%M%S")

    def _starts(self, after: datetime) -> Iterator[datetime]:
        """Window starts at or after ``after``, in order, each once."""
        last: datetime | None = None
        # a day back: local times near a clock change map on either side of ``after``
        local_after = after.astimezone(self.zone).replace(tzinfo=None) - timedelta(days=1)
        for naive in self._rule().xafter(local_after, inc=True):
            moment = _local(naive, self.zone)
            if moment < after or (last is not None and moment <= last):
                continue
            last = moment
            yield moment

    def window_at(self, start: datetime) -> Window:
        """The window starting at ``start``; its end is ``length`` of elapsed time later."""
        end = (start.astimezone(UTC) + self.length).astimezone(self.zone)
        return Window(start.astimezone(self.zone), end)

    def windows(self, since: datetime, until: datetime) -> list[Window]:
        """The windows not over at ``since`` that begin before ``until``."""
        found = []
        for start in self._starts(max(self.first, since - self.length)):
            if start >= until:
                break
            window = self.window_at(start)
            if window.end > since:
                found.append(window)
        return found

    def next_window(self, now: datetime, after: datetime | None = None) -> Window | None:
        """The first window not over at ``now`` (and beginning after ``after``, when given)."""
        since = max(self.first, now - self.length)
        for start in self._starts(since):
            if after is not None and start <= after:
                continue
            window = self.window_at(start)
            if window.end > now:
                return window
        return None

    def _check_no_overlap(self) -> None:
        """No window begins before the one before it ends, in elapsed time (UTC: two aware
        times in one zone subtract by wall clock, blind to a clock change). The windows of a
        year from the first are compared (every clock change of the zone once), up to
        `_OVERLAP_CHECKED` of them: a rule that dense has no hour a clock change skips
        without a window in it, so its windows come no nearer then."""
        previous: datetime | None = None
        until = self.first + _OVERLAP_YEAR
        for index, start in enumerate(self._starts(self.first)):
            if index >= _OVERLAP_CHECKED or start > until:
                break
            if previous is not None and start.astimezone(UTC) - previous.astimezone(UTC) < (
                self.length
            ):
                raise InputError(
                    f"the windows of {self.rule} overlap: {previous.isoformat()} and "
                    f"{start.isoformat()} are less than {self.length} apart"
                )
            previous = start

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "first": self.first.isoformat(),
            "length_s": self.length.total_seconds(),
            "time_zone": self.zone.key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recurrence:
        zone = ZoneInfo(str(data["time_zone"]))
        first = datetime.fromisoformat(str(data["first"])).astimezone(zone)
        return cls(str(data["rule"]), first, timedelta(seconds=float(data["length_s"])), zone)


def _until_in_utc(rule: str, zone: ZoneInfo) -> str:
    """A local UNTIL (no Z) as UTC: RFC 5545 wants UTC with a zoned DTSTART."""

    def utc(match: re.Match[str]) -> str:
        value = match.group(1)
        if value.endswith("Z"):
            return match.group(0)
        try:
            moment = datetime.strptime(value, "%Y%m%dT%H%M%S")
        except ValueError:
            try:
                moment = datetime.strptime(value, "%Y%m%d").replace(hour=23, minute=59, second=59)
            except ValueError:
                raise InputError(f"bad UNTIL {value!r}: YYYYMMDD or YYYYMMDDTHHMMSS[Z]") from None
        return "UNTIL=" + _local(moment, zone).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return _UNTIL.sub(utc, rule)


@dataclass(frozen=True)
class ScheduledWindows:
    """One recurring schedule, as a calendar shows it."""

    schedule: str
    change: str
    runbook: str
    recurrence: Recurrence
    created_by: str = ""


def calendar(schedules: list[ScheduledWindows], stamp: datetime) -> bytes:
    """The schedules as an iCalendar file: one VEVENT per schedule, its RRULE as it is, its
    DTSTART in the department's zone (with the VTIMEZONE), its DURATION the window's length."""
    cal = icalendar.Calendar.new(
        prodid="-//runbooks//maintenance windows//EN", name="Maintenance windows"
    )
    for item in schedules:
        rec = item.recurrence
        event = icalendar.Event.new(
            uid=f"{item.schedule}@runbooks",
            summary=f"Maintenance window: {item.runbook} ({item.change})",
            start=rec.first,
            stamp=stamp.astimezone(UTC),
            description=(
                f"runbook {item.runbook}, change {item.change}, schedule {item.schedule}"
                + (f", scheduled by {item.created_by}" if item.created_by else "")
                + f"; each window {rec.length}, times in {rec.zone.key}"
            ),
        )
        event.add("duration", rec.length)
        event.add("rrule", icalendar.vRecur.from_ical(rec.rule))
        cal.add_component(event)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())
