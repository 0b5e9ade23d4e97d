"""Incidents and the red-line clock (the manual's red lines, 崗位"電網").

An incident is opened when a fault is reported: who reported it, when, what it affects and
which red line's budget applies. Four red lines are outage budgets, one is a yearly count:

    network      a major network fault affecting operations     2 h
    application  an application system the department maintains 2 h
    backbone     the core backbone network down                 4 h
    datacentre   the data-centre network down                   2 h
    virus        large virus outbreaks on the LAN               more than 3 a calendar year

The clock of an incident is read from its record alone (the reported time, the recovery time
when there is one, and the moment it is read), so anyone reading the record later gets the same
answer: elapsed, time left, share of the budget, a warning at 50 % and at 90 %, and whether the
red line was crossed ("more than 2 hours": exactly 2 h is not crossed). A virus outbreak counts
in the calendar year of its report in the department's time zone; the third of a year warns,
the fourth crosses.

In the local store an incident is its own hash chain (``INC-<n>``), like a change:

    incident.opened     number, kind, budget, reporter, affected, summary, reported_at
    incident.attached   a triage run (or change) collected by hand
    incident.recovered  the service is back: the recovery time, fixed
    incident.signed     responsible | supervisor, by whom
    incident.refused    a signature an authenticated person tried and the rules refused
    incident.closed     the verdict once both have signed: recovery, elapsed, crossed or not

Runs and changes whose parameters carry ``incident=<id>`` are collected without an entry:
the store is asked for them. Where incidents live is an `Incidents` book; `IncidentBook` keeps
them in the local record store, and a NetBox-backed book can follow with the same interface.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from runbooks.core import policy
from runbooks.core.changes import authenticated
from runbooks.core.errors import ApprovalError, InputError
from runbooks.core.policy import Identity, Signature
from runbooks.core.store import Entry, RecordStore

__all__ = [
    "BUDGETS",
    "KINDS",
    "PARAM",
    "UNVERIFIED",
    "VIRUS_ALLOWED",
    "WARN_AT",
    "Clock",
    "Incident",
    "IncidentBook",
    "Incidents",
    "VirusCount",
    "clock",
    "duration_text",
    "incident_id",
    "record",
    "virus_count",
]

# the parameter of a fault-handling runbook that names its incident (agreed with their author)
PARAM = "incident"

BUDGETS: dict[str, timedelta] = {
    "network": timedelta(hours=2),
    "application": timedelta(hours=2),
    "backbone": timedelta(hours=4),
    "datacentre": timedelta(hours=2),
}
KINDS: dict[str, str] = {
    "network": "a major network fault affecting operations",
    "application": "an application system the department maintains fails",
    "backbone": "the core backbone network is down",
    "datacentre": "the data-centre network is down",
    "virus": "a large virus outbreak on the LAN",
}
VIRUS = "virus"
# who opened or recovered an incident while NetBox did not answer: the local user's name, which
# no server vouched for (recorded as such; it never signs)
UNVERIFIED = "unverified: NetBox unreachable"
VIRUS_ALLOWED = 3  # "more than 3 large virus outbreaks on the LAN in a year" crosses
WARN_AT = (0.5, 0.9)  # the shares of a budget that warn

OK, WARN_50, WARN_90, CROSSED = "ok", "warning-50", "warning-90", "crossed"

_T = datetime(2026, 12, 7, tzinfo=UTC)  # a time for the examples
_ID = re.compile(r"^(?:INC-)?0*(\d+)$", re.IGNORECASE)


def incident_id(text: str) -> str:
    """An incident's id from how people write it: ``7``, ``INC-7``, ``inc-007``.

    >>> incident_id("7"), incident_id("inc-007")
    ('INC-7', 'INC-7')
    """
    found = _ID.match(text.strip())
    if not found or int(found.group(1)) == 0:
        raise InputError(f"{text!r} is not an incident (INC-7, or 7)")
    return f"INC-{int(found.group(1))}"


@dataclass(frozen=True)
class Incident:
    """One incident as its record tells it."""

    id: str
    kind: str
    reporter: str
    affected: tuple[str, ...]
    reported_at: datetime
    opened_by: str
    opened_at: datetime
    summary: str = ""
    recovered_at: datetime | None = None
    recovered_by: str = ""
    recovery_note: str = ""
    attached: tuple[str, ...] = ()  # runs and changes collected by hand
    # what NetBox holds under each affected name ("dcim.device #3"); None: NetBox not asked
    objects: Mapping[str, tuple[str, ...]] | None = None
    signatures: tuple[Signature, ...] = ()
    opened_source: str = ""  # who vouched for opened_by: netbox, local, or UNVERIFIED
    recovered_source: str = ""

    @property
    def budget(self) -> timedelta | None:
        """The outage budget; None for a virus outbreak (its red line is a count)."""
        return BUDGETS.get(self.kind)

    @property
    def number(self) -> int:
        return int(self.id.split("-", 1)[1])

    @property
    def handlers(self) -> set[str]:
        """Who opened or recovered it (its book adds who acted in its runs and changes)."""
        return {self.opened_by, *([self.recovered_by] if self.recovered_by else [])}

    def affected_text(self) -> str:
        """What it affects, each name with what NetBox holds under it (or "free text").

        >>> i = Incident("INC-1", "network", "NOC", ("leaf1", "OA system"), _T, "o", _T,
        ...              objects={"leaf1": ("dcim.device #3",), "OA system": ()})
        >>> i.affected_text()
        'leaf1 (dcim.device #3), OA system (free text)'
        """
        if self.objects is None:
            return ", ".join(self.affected)
        return ", ".join(
            f"{name} ({', '.join(self.objects.get(name, ())) or 'free text'})"
            for name in self.affected
        )

    def signer(self, role: str) -> Signature | None:
        return next((s for s in self.signatures if s.authority == role), None)

    @property
    def status(self) -> str:
        if self.signer(policy.SUPERVISOR):
            return "closed"
        if self.recovered_at is not None:
            return "recovered"
        return "open"


@dataclass(frozen=True)
class Clock:
    """An outage budget's clock read at one moment (stopped at recovery)."""

    budget: timedelta
    reported_at: datetime
    read_at: datetime  # the recovery time when recovered, else the moment it was read
    stopped: bool

    @property
    def elapsed(self) -> timedelta:
        return max(self.read_at - self.reported_at, timedelta(0))

    @property
    def left(self) -> timedelta:
        return self.budget - self.elapsed  # negative once crossed

    @property
    def share(self) -> float:
        return self.elapsed / self.budget

    @property
    def deadline(self) -> datetime:
        """When the red line is crossed (past it, by a moment: "more than")."""
        return self.reported_at + self.budget

    @property
    def crossed(self) -> bool:
        return self.elapsed > self.budget

    @property
    def level(self) -> str:
        if self.crossed:
            return CROSSED
        if self.share >= WARN_AT[1]:
            return WARN_90
        if self.share >= WARN_AT[0]:
            return WARN_50
        return OK

    def line(self, zone: tzinfo) -> str:
        """One line a person reads under pressure."""
        budget = duration_text(self.budget)
        used = f"{self.share:.0%} of {budget}".replace("%", " %")
        if self.stopped:
            head = (
                f"recovered at {local_time(self.read_at, zone)} after "
                f"{duration_text(self.elapsed)} ({used})"
            )
            return head + (
                f": RED LINE CROSSED by {duration_text(-self.left)}"
                if self.crossed
                else ": red line not crossed"
            )
        head = f"{duration_text(self.elapsed)} since {local_time(self.reported_at, zone)}, {used}"
        if self.crossed:
            return (
                f"{head}: RED LINE CROSSED at {local_time(self.deadline, zone)}, "
                f"{duration_text(-self.left)} ago"
            )
        tail = f"{duration_text(self.left)} left, red line at {local_time(self.deadline, zone)}"
        if self.level == WARN_90:
            return f"{head}: WARNING 90 % of the budget used, {tail}"
        if self.level == WARN_50:
            return f"{head}: WARNING half the budget used, {tail}"
        return f"{head}, {tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget_s": self.budget.total_seconds(),
            "elapsed_s": self.elapsed.total_seconds(),
            "left_s": self.left.total_seconds(),
            "percent": round(self.share * 100, 1),
            "deadline": self.deadline.isoformat(),
            "stopped": self.stopped,
            "level": self.level,
            "crossed": self.crossed,
        }


@dataclass(frozen=True)
class VirusCount:
    """Where a virus outbreak stands in its calendar year (the department's time zone)."""

    year: int
    number: int  # this outbreak's place among the year's, by the reported time
    in_year: int  # every outbreak recorded for that year so far

    @property
    def crossed(self) -> bool:
        return self.number > VIRUS_ALLOWED

    @property
    def level(self) -> str:
        """This outbreak's own verdict: the third warns, the fourth and later cross."""
        return _count_level(self.number)

    @property
    def year_level(self) -> str:
        """Where its year stands with every outbreak recorded so far (an early one of a year
        that crossed later reads so)."""
        return _count_level(self.in_year)

    def year_text(self) -> str:
        """The year's state in a few words.

        >>> VirusCount(2026, 1, 4).year_text()
        '4 this year: red line crossed'
        """
        state = {
            CROSSED: "red line crossed",
            WARN_90: "one more crosses the red line",
            OK: "red line not crossed",
        }[self.year_level]
        return f"{self.in_year} this year: {state}"

    def line(self) -> str:
        """This outbreak's place and its year's state.

        >>> VirusCount(2026, 1, 4).line()
        'virus outbreak no. 1 in 2026; 4 this year: RED LINE CROSSED by no. 4 (more than 3 a year)'
        """
        head = f"virus outbreak no. {self.number} in {self.year}; {self.in_year} this year"
        rule = f"more than {VIRUS_ALLOWED} a year"
        if self.year_level == CROSSED:
            by = "this one" if self.number == VIRUS_ALLOWED + 1 else f"no. {VIRUS_ALLOWED + 1}"
            return f"{head}: RED LINE CROSSED by {by} ({rule})"
        if self.year_level == WARN_90:
            return f"{head}: WARNING one more crosses the red line ({rule})"
        return f"{head} ({rule} crosses the red line)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "number": self.number,
            "in_year": self.in_year,
            "allowed": VIRUS_ALLOWED,
            "level": self.level,
            "crossed": self.crossed,
            "year_level": self.year_level,
            "year_crossed": self.year_level == CROSSED,
        }


def _count_level(count: int) -> str:
    if count > VIRUS_ALLOWED:
        return CROSSED
    return WARN_90 if count == VIRUS_ALLOWED else OK


def clock(incident: Incident, now: datetime) -> Clock | None:
    """The incident's budget clock at ``now`` (None for a virus outbreak)."""
    if incident.budget is None:
        return None
    stopped = incident.recovered_at is not None
    read_at = incident.recovered_at if incident.recovered_at is not None else now
    return Clock(incident.budget, incident.reported_at, read_at, stopped)


def virus_count(incident: Incident, outbreaks: Iterable[Incident], zone: tzinfo) -> VirusCount:
    """``incident``'s place among the virus outbreaks of its calendar year in ``zone``."""
    year = incident.reported_at.astimezone(zone).year
    same = sorted(
        (o for o in outbreaks if o.reported_at.astimezone(zone).year == year),
        key=lambda o: (o.reported_at, o.number),
    )
    ids = [o.id for o in same]
    if incident.id not in ids:
        same.append(incident)
        ids.append(incident.id)
    return VirusCount(year, ids.index(incident.id) + 1, len(same))


def duration_text(span: timedelta) -> str:
    """A duration as a person says it.

    >>> duration_text(timedelta(minutes=65)), duration_text(timedelta(seconds=42))
    ('1 h 05 min', '42 s')
    >>> duration_text(timedelta(hours=2))
    '2 h'
    """
    seconds = int(abs(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if not hours:
        return f"{minutes} min" if minutes else f"{seconds} s"
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def local_time(moment: datetime, zone: tzinfo) -> str:
    """A time in ``zone``, to the second, its offset shown.

    >>> from zoneinfo import ZoneInfo
    >>> local_time(datetime(2026, 12, 7, 1, 30, tzinfo=UTC), ZoneInfo("Asia/Taipei"))
    '2026-12-07 09:30:00+08:00'
    """
    return moment.astimezone(zone).isoformat(sep=" ", timespec="seconds")


@dataclass(frozen=True)
class Reading:
    """What every command that touches an incident shows: its clock or its year's count."""

    incident: Incident
    clock: Clock | None
    virus: VirusCount | None

    @property
    def crossed(self) -> bool:
        return bool((self.clock and self.clock.crossed) or (self.virus and self.virus.crossed))

    @property
    def level(self) -> str:
        return self.clock.level if self.clock else self.virus.level if self.virus else OK

    @property
    def alarm(self) -> str:
        """The level a reader is shown: the clock's, or the outbreak's year's."""
        return self.virus.year_level if self.virus else self.level

    def short(self) -> str:
        """The clock in a few words (a list's column)."""
        if self.clock is not None:
            c = self.clock
            used = f"{c.share:.0%}".replace("%", " %")
            if c.stopped:
                return f"{used}, {'CROSSED' if c.crossed else 'not crossed'} (recovered)"
            if c.crossed:
                return f"{used}, CROSSED {duration_text(-c.left)} ago"
            return f"{used}, {duration_text(c.left)} left"
        assert self.virus is not None
        v = self.virus
        return f"outbreak no. {v.number} in {v.year}; {v.year_text()}"

    def line(self, zone: tzinfo) -> str:
        i = self.incident
        if self.clock is not None:
            budget = f"{i.kind}, budget {duration_text(self.clock.budget)}"
            return f"{i.id} ({budget}, {i.status}): {self.clock.line(zone)}"
        assert self.virus is not None
        return f"{i.id} ({i.kind}, {i.status}): {self.virus.line()}"


def record(reading: Reading, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """An incident's record as data (``--json``, the sheet): times in UTC, ISO 8601."""
    i = reading.incident
    return {
        "id": i.id,
        "number": i.number,
        "kind": i.kind,
        "red_line": KINDS[i.kind],
        "status": i.status,
        "reporter": i.reporter,
        "affected": list(i.affected),
        "netbox": None if i.objects is None else {k: list(v) for k, v in i.objects.items()},
        "affected_text": i.affected_text(),
        "summary": i.summary,
        "reported_at": i.reported_at.isoformat(),
        "opened_by": i.opened_by,
        "opened_by_source": i.opened_source or None,
        "opened_at": i.opened_at.isoformat(),
        "recovered_at": _iso(i.recovered_at),
        "recovered_by": i.recovered_by or None,
        "recovered_by_source": i.recovered_source or None,
        "recovery_note": i.recovery_note,
        "level": reading.level,
        "crossed": reading.crossed,
        "clock": reading.clock.to_dict() if reading.clock else None,
        "virus": reading.virus.to_dict() if reading.virus else None,
        "runs": runs,
        "signatures": [
            {"role": s.authority, "by": s.actor, "at": s.at, "note": s.note} for s in i.signatures
        ],
    }


class Incidents(Protocol):
    """Where the department's incidents are kept (the local store; NetBox can follow)."""

    def open(
        self,
        who: Identity,
        kind: str,
        reporter: str,
        affected: list[str],
        reported_at: datetime,
        summary: str = "",
        objects: Mapping[str, Iterable[str]] | None = None,
    ) -> Incident: ...

    def get(self, text: str) -> Incident: ...

    def all(self) -> list[Incident]: ...

    def attach(self, incident: Incident, who: Identity, run_id: str) -> Incident: ...

    def runs(self, incident: Incident) -> list[dict[str, Any]]:
        """The runs and changes it collected: attached, or naming it in their parameters."""
        ...

    def handlers(self, incident: Incident) -> set[str]:
        """Who handled it (opened, recovered, acted in its runs and changes): never its
        supervisor."""
        ...

    def recover(
        self, incident: Incident, who: Identity, at: datetime, note: str = ""
    ) -> Incident: ...

    def sign(self, incident: Incident, who: Identity, note: str = "") -> str:
        """Sign the record: the responsible person first, then a supervisor, another person.
        The second signature closes the incident. Returns the role signed."""
        ...

    def reading(self, incident: Incident, zone: tzinfo) -> Reading: ...


@dataclass
class IncidentBook:
    """Incidents in the local record store, one hash chain each; ``now`` is the clock and
    ``zone`` the department's time zone (a virus outbreak's year, in the closing verdict)."""

    store: RecordStore
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    zone: tzinfo = UTC

    def open(
        self,
        who: Identity,
        kind: str,
        reporter: str,
        affected: list[str],
        reported_at: datetime,
        summary: str = "",
        objects: Mapping[str, Iterable[str]] | None = None,
    ) -> Incident:
        """``objects``: what NetBox holds under each affected name (None: it was not asked)."""
        if kind not in KINDS:
            raise InputError(f"unknown incident kind {kind!r} (known: {', '.join(KINDS)})")
        if not reporter.strip():
            raise InputError("name who reported the fault (--reporter)")
        things = [a.strip() for a in affected if a.strip()]
        if not things:
            raise InputError("name what the fault affects (--affected)")
        now = self.now()
        _aware(reported_at, "the reported time")
        if reported_at > now:
            raise InputError(f"the reported time {reported_at.isoformat()} is in the future")
        payload = {
            "kind": kind,
            "budget_s": BUDGETS[kind].total_seconds() if kind in BUDGETS else None,
            "reporter": reporter.strip(),
            "affected": things,
            "summary": summary,
            "netbox": None
            if objects is None
            else {name: sorted(objects.get(name, ())) for name in things},
            "reported_at": reported_at.astimezone(UTC).isoformat(),
            "opened_at": now.astimezone(UTC).isoformat(),
            "identity_source": who.source,
        }
        number = self._last_number() + 1
        while (
            self.store.append_new(
                f"INC-{number}",
                "incident.opened",
                {**payload, "number": number},
                actor=who.username,
            )
            is None
        ):  # another process took the number a moment ago
            number += 1
        return self.get(str(number))

    def _last_number(self) -> int:
        opened = self.store.entries_of_kind("incident.opened")
        return max((int(e.payload.get("number", 0)) for e in opened), default=0)

    def get(self, text: str) -> Incident:
        chain = incident_id(text)
        entries = self.store.entries(chain)
        if not entries or entries[0].kind != "incident.opened":
            raise InputError(f"no incident {chain} in {self.store.path}")
        return _incident(entries)

    def all(self) -> list[Incident]:
        """Every incident, newest first."""
        chains = [e.run_id for e in self.store.entries_of_kind("incident.opened")]
        return [_incident(self.store.entries(c)) for c in reversed(chains)]

    def attach(self, incident: Incident, who: Identity, run_id: str) -> Incident:
        _not_closed(incident, "collect runs")
        full = self.store.resolve_run(run_id)
        first = self.store.entries(full)[0]
        if first.kind not in ("run.started", "change.planned"):
            raise InputError(f"{full} is not a run or a change: only those are collected")
        if full in incident.attached or full in {r["id"] for r in self.runs(incident)}:
            raise InputError(f"{incident.id} already collects {full}")
        self.store.append(
            incident.id,
            "incident.attached",
            {"run_id": full, "runbook": first.payload.get("runbook"), "at": self._stamp()},
            actor=who.username,
        )
        return self.get(incident.id)

    def runs(self, incident: Incident) -> list[dict[str, Any]]:
        found = [
            first
            for kind in ("run.started", "change.planned")
            for first in self.store.entries_of_kind(kind, f"$.params.{PARAM}")
            if _names(first.payload["params"][PARAM], incident.id)
        ]
        found += [self.store.entries(r)[0] for r in incident.attached]
        rows: dict[str, dict[str, Any]] = {}
        for first in sorted(found, key=lambda e: e.ts):
            kind = "change" if first.kind == "change.planned" else "run"
            finished = [e for e in self.store.entries(first.run_id) if e.kind == "run.finished"]
            rows[first.run_id] = {
                "id": first.run_id,
                "kind": kind,
                "runbook": first.payload.get("runbook"),
                "started": first.ts,
                "actor": first.actor,
                "status": str(finished[-1].payload.get("status")) if finished else "",
                "how": "attached" if first.run_id in incident.attached else "parameter",
            }
        return list(rows.values())

    def handlers(self, incident: Incident) -> set[str]:
        """Who handled it: whoever opened or recovered it, and whoever acted in a run or change
        it collects (prepared, reviewed, approved, ran or resumed it, answered its manual
        steps; not a refused attempt, nor the sign-off of a run's sheet). They sign as the
        responsible person, never as its supervisor."""
        names = set(incident.handlers)
        chains = [row["id"] for row in self.runs(incident)]
        seen: set[str] = set()
        while chains:
            chain = chains.pop()
            if chain in seen:
                continue
            seen.add(chain)
            for e in self.store.entries(chain):
                if e.kind.endswith(".refused") or e.kind == "record.signed":
                    continue
                names.add(e.actor)
                if e.kind == "change.ran":  # the change's run, whatever its parameters
                    chains.append(str(e.payload["run_id"]))
        return names

    def recover(self, incident: Incident, who: Identity, at: datetime, note: str = "") -> Incident:
        _not_closed(incident, "be recovered")
        if incident.recovered_at is not None:
            raise InputError(
                f"{incident.id} was recovered at {incident.recovered_at.isoformat()} already"
            )
        _aware(at, "the recovery time")
        if at < incident.reported_at:
            raise InputError(
                f"the recovery time {at.isoformat()} is before the fault was reported "
                f"({incident.reported_at.isoformat()})"
            )
        if at > self.now():
            raise InputError(f"the recovery time {at.isoformat()} is in the future")
        self.store.append(
            incident.id,
            "incident.recovered",
            {
                "recovered_at": at.astimezone(UTC).isoformat(),
                "note": note,
                "identity_source": who.source,
                "at": self._stamp(),
            },
            actor=who.username,
        )
        return self.get(incident.id)

    def sign(self, incident: Incident, who: Identity, note: str = "") -> str:
        if who.source == UNVERIFIED:
            raise ApprovalError(
                f"signing an incident needs NetBox to say who signs, and it does not answer: "
                f"{who.username} is unverified",
                actor=who.username,
            )
        authenticated(who, "signing an incident")
        try:
            role = _signing_role(incident, who, self.handlers(incident))
        except ApprovalError as exc:
            self.store.append(
                incident.id,
                "incident.refused",
                {"reason": str(exc), "at": self._stamp()},
                actor=who.username,
            )
            raise
        self.store.append(
            incident.id,
            "incident.signed",
            {
                "role": role,
                "note": note,
                "authorities": sorted(who.authorities),
                "identity_source": who.source,
                "at": self._stamp(),
            },
            actor=who.username,
        )
        if role == policy.SUPERVISOR:
            verdict = self.reading(self.get(incident.id), self.zone)
            self.store.append(
                incident.id,
                "incident.closed",
                {
                    "recovered_at": _iso(incident.recovered_at),
                    "crossed": verdict.crossed,
                    "clock": verdict.clock.to_dict() if verdict.clock else None,
                    "virus": verdict.virus.to_dict() if verdict.virus else None,
                    "at": self._stamp(),
                },
                actor=who.username,
            )
        return role

    def reading(self, incident: Incident, zone: tzinfo) -> Reading:
        if incident.kind != VIRUS:
            return Reading(incident, clock(incident, self.now()), None)
        outbreaks = [
            _incident(self.store.entries(e.run_id))
            for e in self.store.entries_of_kind("incident.opened", "$.kind", [VIRUS])
        ]
        return Reading(incident, None, virus_count(incident, outbreaks, zone))

    def _stamp(self) -> str:
        return self.now().astimezone(UTC).isoformat()


def _signing_role(incident: Incident, who: Identity, handlers: set[str]) -> str:
    """The manual's two signatures, as a run's record gets them: whoever handled the incident
    signs as the responsible person, then a supervisor who did not handle it."""
    if incident.status == "closed":
        raise ApprovalError(f"{incident.id} is closed: both have signed", actor=who.username)
    signed = [s.authority for s in incident.signatures]
    if who.username not in handlers and policy.RESPONSIBLE not in signed:
        raise ApprovalError(
            f"the responsible person signs {incident.id} first: one who handled it "
            f"({', '.join(sorted(handlers))})",
            actor=who.username,
        )
    if incident.recovered_at is None:
        raise ApprovalError(
            f"{incident.id} is not recovered: `runbook incident recover {incident.number}` "
            "first, then its record is signed",
            actor=who.username,
        )
    return policy.signoff_role(who, handlers, True, signed)


def _incident(entries: list[Entry]) -> Incident:
    head = entries[0].payload
    recovered = [e for e in entries if e.kind == "incident.recovered"]
    return Incident(
        id=entries[0].run_id,
        kind=str(head["kind"]),
        reporter=str(head["reporter"]),
        affected=tuple(head["affected"]),
        reported_at=datetime.fromisoformat(head["reported_at"]),
        opened_by=entries[0].actor,
        opened_at=datetime.fromisoformat(head["opened_at"]),
        summary=str(head.get("summary") or ""),
        objects=(
            None
            if head.get("netbox") is None
            else {str(k): tuple(v) for k, v in head["netbox"].items()}
        ),
        recovered_at=(
            datetime.fromisoformat(recovered[0].payload["recovered_at"]) if recovered else None
        ),
        recovered_by=recovered[0].actor if recovered else "",
        recovery_note=str(recovered[0].payload.get("note") or "") if recovered else "",
        opened_source=str(head.get("identity_source") or ""),
        recovered_source=str(recovered[0].payload.get("identity_source") or "")
        if recovered
        else "",
        attached=tuple(str(e.payload["run_id"]) for e in entries if e.kind == "incident.attached"),
        signatures=tuple(
            Signature(str(e.payload["role"]), e.actor, str(e.payload["at"]), "", e.payload["note"])
            for e in entries
            if e.kind == "incident.signed"
        ),
    )


def _names(given: object, incident: str) -> bool:
    """Does a parameter's value name the incident, however it was written (INC-7, 7, inc-07)?"""
    try:
        return incident_id(str(given)) == incident
    except InputError:
        return False


def _aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None:
        raise InputError(f"{what} needs a time zone")


def _not_closed(incident: Incident, doing: str) -> None:
    if incident.status == "closed":
        raise InputError(f"{incident.id} is closed and cannot {doing}")


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None
