"""Maintenance windows: a run starts inside its window, and no step starts that cannot
finish before the window closes — the run stops and rolls back instead.

A window time names its offset (``2026-12-01T22:00+08:00``); one without is in the zone the
caller passes (the `runbook` command passes the department's ``time_zone`` setting), and
refused when none is passed. Core reads no setting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from runbooks.core.errors import InputError, WindowError


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InputError("window times need a time zone (e.g. 2026-12-01T22:00+08:00)")
        if self.end <= self.start:
            raise InputError("the window ends before it starts")

    @classmethod
    def parse(cls, start: str, end: str, zone: tzinfo | None = None) -> Window:
        """``zone``: what a time given without an offset is in (none: such a time is refused).

        >>> from zoneinfo import ZoneInfo
        >>> str(Window.parse("2026-12-01T22:00", "2026-12-02T01:00", ZoneInfo("Asia/Taipei")))
        '2026-12-01T22:00:00+08:00 to 2026-12-02T01:00:00+08:00'
        """
        try:
            return cls(_parse_time(start, zone), _parse_time(end, zone))
        except ValueError as exc:
            raise InputError(f"bad window time: {exc}") from exc

    def contains(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def check_start(self, now: datetime) -> None:
        if not self.contains(now):
            raise WindowError(f"now ({_fmt(now)}) is outside the window {self}")

    def check_step(self, now: datetime, expected: timedelta, title: str) -> None:
        """Refuse to start a step whose expected duration would cross the window's end."""
        if now + expected > self.end:
            left = max(self.end - now, timedelta(0))
            raise WindowError(
                f"not starting '{title}': it is expected to take {expected}, the window "
                f"closes at {_fmt(self.end)} ({left.total_seconds():.0f} s left)"
            )

    def __str__(self) -> str:
        return f"{_fmt(self.start)} to {_fmt(self.end)}"

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def parse_time(text: str, zone: tzinfo | None = None) -> datetime:
    """One time as a window's times are given (``now``, ``+2h``, ISO 8601, local in
    ``zone`` without an offset); a bad one is an `InputError`.

    >>> from zoneinfo import ZoneInfo
    >>> parse_time("2026-07-01T02:00", ZoneInfo("Europe/Berlin")).isoformat()
    '2026-07-01T02:00:00+02:00'
    """
    try:
        moment = _parse_time(text, zone)
    except ValueError as exc:
        raise InputError(f"bad time: {exc}") from exc
    if moment.tzinfo is None:
        raise InputError(f"bad time: {text} needs an offset (e.g. +08:00)")
    return moment


def _parse_time(text: str, zone: tzinfo | None = None) -> datetime:
    if text == "now":
        return datetime.now(UTC)
    if text[:1] in ("+", "-"):  # "+90m", "+2h", "-5m": relative to now
        unit = text[-1]
        amount = float(text[:-1])
        seconds = {"s": 1, "m": 60, "h": 3600}.get(unit)
        if seconds is None:
            raise ValueError(f"{text!r}: relative times end in s, m or h")
        return datetime.now(UTC) + timedelta(seconds=amount * seconds)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None or zone is None:
        return moment
    zoned = moment.replace(tzinfo=zone)
    if zoned.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != moment:
        raise ValueError(f"{text} does not exist in {zone} (a clock change skips it)")
    if zoned.utcoffset() != zoned.replace(fold=1).utcoffset():
        raise ValueError(f"{text} happens twice in {zone} (a clock change): give its offset")
    return zoned


def _fmt(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
