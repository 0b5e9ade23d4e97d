"""Incidents and the red-line clock: budgets, warnings at 50 % and 90 %, the yearly virus count,
recovery, the two signatures, and a record as tamper-evident as a run's. Every clock here is
read at an injected moment: nothing sleeps."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from runbooks.core import policy
from runbooks.core.errors import ApprovalError, InputError
from runbooks.core.incidents import UNVERIFIED, IncidentBook, incident_id
from runbooks.core.policy import Identity
from runbooks.core.store import RecordStore
from runbooks.report import incident as sheet

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
TAIPEI = ZoneInfo("Asia/Taipei")
OLIVIA = Identity("olivia", frozenset({policy.HANDLE}))  # the engineer on duty
SAM = Identity("sam", frozenset({policy.SUPERVISE}))  # her supervisor
PAT = Identity("pat", frozenset({policy.HANDLE, policy.SUPERVISE}))  # a supervisor too


class Moment:
    """The injected clock: a test moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def store(store_path: Path) -> RecordStore:
    return RecordStore(store_path)


@pytest.fixture
def now() -> Moment:
    return Moment(T0)


@pytest.fixture
def book(store: RecordStore, now: Moment) -> IncidentBook:
    return IncidentBook(store, now=now)


def open_network(book: IncidentBook, kind: str = "network", at: datetime = T0) -> str:
    return book.open(OLIVIA, kind, "Mr Chan, ext 1234", ["leaf1", "OA system"], at).id


@pytest.mark.parametrize(
    ("kind", "minutes", "level", "crossed"),
    [
        ("network", 0, "ok", False),
        ("network", 59, "ok", False),
        ("network", 60, "warning-50", False),
        ("network", 107, "warning-50", False),
        ("network", 108, "warning-90", False),
        ("network", 120, "warning-90", False),  # exactly 2 h: "more than 2 hours" is not yet
        ("network", 121, "crossed", True),
        ("application", 121, "crossed", True),
        ("datacentre", 121, "crossed", True),
        ("backbone", 121, "warning-50", False),
        ("backbone", 216, "warning-90", False),
        ("backbone", 241, "crossed", True),
    ],
)
def test_the_budget_clock_warns_at_half_and_90_percent_and_crosses_past_the_budget(
    book: IncidentBook, now: Moment, kind: str, minutes: int, level: str, crossed: bool
) -> None:
    number = open_network(book, kind)
    now.at = T0 + timedelta(minutes=minutes)
    reading = book.reading(book.get(number), TAIPEI)
    assert reading.clock is not None
    assert (reading.level, reading.crossed) == (level, level == "crossed")
    assert reading.clock.elapsed == timedelta(minutes=minutes)
    line = reading.line(TAIPEI)
    assert "2026-12-07 14:00:00+08:00" in line  # the report time, in the department's zone
    assert ("WARNING half" in line) == (level == "warning-50")
    assert ("WARNING 90 %" in line) == (level == "warning-90")
    assert ("RED LINE CROSSED" in line) == (level == "crossed")


def test_the_clock_line_says_what_is_left_and_when_the_line_is_crossed(
    book: IncidentBook, now: Moment
) -> None:
    number = open_network(book)
    now.at = T0 + timedelta(minutes=70)
    assert book.reading(book.get(number), TAIPEI).line(TAIPEI) == (
        "INC-1 (network, budget 2 h, open): 1 h 10 min since 2026-12-07 14:00:00+08:00, "
        "58 % of 2 h: WARNING half the budget used, 50 min left, "
        "red line at 2026-12-07 16:00:00+08:00"
    )
    now.at = T0 + timedelta(minutes=135)
    assert (
        book.reading(book.get(number), TAIPEI)
        .line(TAIPEI)
        .endswith("RED LINE CROSSED at 2026-12-07 16:00:00+08:00, 15 min ago")
    )


def test_recovery_stops_the_clock_and_the_closed_record_says_not_crossed(
    book: IncidentBook, store: RecordStore, now: Moment
) -> None:
    number = open_network(book)
    now.at = T0 + timedelta(hours=5)  # recorded late: the service came back at 1 h 30
    incident = book.recover(book.get(number), OLIVIA, T0 + timedelta(minutes=90), "BGP up")
    reading = book.reading(incident, TAIPEI)
    assert reading.clock is not None and reading.clock.stopped
    assert reading.clock.elapsed == timedelta(minutes=90) and not reading.crossed
    assert reading.line(TAIPEI).endswith(
        "recovered at 2026-12-07 15:30:00+08:00 after 1 h 30 min (75 % of 2 h): "
        "red line not crossed"
    )
    assert book.sign(incident, netbox(OLIVIA), "fixed") == policy.RESPONSIBLE
    assert book.sign(book.get(number), netbox(SAM)) == policy.SUPERVISOR
    closed = store.entries(number)[-1]
    assert closed.kind == "incident.closed"
    assert closed.payload["crossed"] is False
    assert closed.payload["clock"]["elapsed_s"] == 5400
    assert book.get(number).status == "closed"


def test_a_recovery_past_the_budget_is_recorded_as_the_red_line_crossed(
    book: IncidentBook, store: RecordStore, now: Moment
) -> None:
    number = open_network(book, "datacentre")
    now.at = T0 + timedelta(hours=3)
    book.recover(book.get(number), OLIVIA, T0 + timedelta(minutes=125))
    book.sign(book.get(number), netbox(OLIVIA))
    book.sign(book.get(number), netbox(SAM))
    assert store.entries(number)[-1].payload["crossed"] is True
    assert "RED LINE CROSSED by 5 min" in book.reading(book.get(number), TAIPEI).line(TAIPEI)
    record = _record(book, number)
    head, ok = store.run_head(number), store.verify(number).ok
    text = sheet.markdown(record, head, ok, TAIPEI, "en")
    assert "# Incident record — INC-1" in text
    assert "| Red line crossed | **YES** |" in text
    assert "| Outage | 2 h 05 min / 2 h (104.2 %) |" in text
    assert "| olivia, 2026-12-07 17:00:00+08:00 | sam, 2026-12-07 17:00:00+08:00 |" in text
    assert "every time on this sheet is in Asia/Taipei" in text
    assert "chain verified" in text and "年" not in text
    both = sheet.markdown(record, head, ok, TAIPEI, "both")
    assert "| 觸及紅線 Red line crossed | **是 YES** |" in both
    assert "數據中心網絡中斷超過 2 小時 the data-centre network is down" in both
    assert "| 職位責任人簽字 Responsible person | 上級主管簽字 Supervisor |" in both
    assert "| 狀態 Status | 已結案 closed |" in both
    zh = sheet.markdown(record, head, ok, TAIPEI, "zh-Hant")
    assert "| 觸及紅線 | **是** |" in zh and "Red line" not in zh


def _record(book: IncidentBook, number: str) -> dict[str, object]:
    from runbooks.core.incidents import record

    incident = book.get(number)
    return record(book.reading(incident, TAIPEI), book.runs(incident))


def test_virus_outbreaks_count_by_calendar_year_in_the_departments_zone(
    book: IncidentBook, now: Moment
) -> None:
    """The third of a year warns, the fourth crosses; a new year starts at zero. 2026-12-31
    17:00 UTC is already 2027 in Taipei."""
    now.at = datetime(2027, 2, 1, tzinfo=UTC)
    days = [datetime(2026, m, 1, tzinfo=UTC) for m in (3, 6, 9, 11)]
    new_year = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)
    # recorded out of order: the count follows the reported times
    ids = [book.open(OLIVIA, "virus", "helpdesk", ["LAN"], at).id for at in (*days, new_year)]
    readings = [book.reading(book.get(i), TAIPEI) for i in ids]
    counts = [(r.virus.year, r.virus.number, r.level) for r in readings if r.virus]
    assert counts == [
        (2026, 1, "ok"),
        (2026, 2, "ok"),
        (2026, 3, "warning-90"),
        (2026, 4, "crossed"),
        (2027, 1, "ok"),
    ]
    assert [r.crossed for r in readings] == [False, False, False, True, False]
    assert readings[2].line(TAIPEI) == (
        "INC-3 (virus, open): virus outbreak no. 3 in 2026; 4 this year: RED LINE CROSSED by "
        "no. 4 (more than 3 a year)"
    )
    assert "RED LINE CROSSED" in readings[3].line(TAIPEI)
    # in UTC the last one is 2026's fifth
    last = book.reading(book.get(ids[-1]), UTC)
    assert last.virus is not None and (last.virus.year, last.virus.number) == (2026, 5)


def test_the_closing_verdict_counts_the_outbreak_in_the_departments_year(
    store: RecordStore, now: Moment
) -> None:
    """Three outbreaks in 2026; a fourth reported 2026-12-31 20:00 UTC is 2027-01-01 04:00 in
    Hong Kong: its permanent verdict is 2027's first, the red line not crossed (counted in UTC
    it read 2026's fourth, crossed)."""
    hong_kong = ZoneInfo("Asia/Hong_Kong")
    book = IncidentBook(store, now=now, zone=hong_kong)
    now.at = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)
    for month in (3, 6, 9):
        book.open(OLIVIA, "virus", "helpdesk", ["LAN"], datetime(2026, month, 1, tzinfo=UTC))
    number = book.open(OLIVIA, "virus", "helpdesk", ["LAN"], now.at).id
    book.recover(book.get(number), OLIVIA, now.at)
    book.sign(book.get(number), netbox(OLIVIA))
    book.sign(book.get(number), netbox(SAM))
    closed = store.entries(number)[-1]
    assert closed.kind == "incident.closed"
    assert closed.payload["crossed"] is False
    assert closed.payload["virus"] == {
        "year": 2027,
        "number": 1,
        "in_year": 1,
        "allowed": 3,
        "level": "ok",
        "crossed": False,
        "year_level": "ok",
        "year_crossed": False,
    }


def test_an_earlier_outbreak_recorded_later_takes_its_place_in_the_year(
    book: IncidentBook, now: Moment
) -> None:
    now.at = datetime(2026, 12, 1, tzinfo=UTC)
    late = book.open(OLIVIA, "virus", "helpdesk", ["LAN"], datetime(2026, 11, 1, tzinfo=UTC))
    early = book.open(OLIVIA, "virus", "helpdesk", ["LAN"], datetime(2026, 2, 1, tzinfo=UTC))
    assert book.reading(book.get(early.id), TAIPEI).virus.number == 1  # type: ignore[union-attr]
    assert book.reading(book.get(late.id), TAIPEI).virus.number == 2  # type: ignore[union-attr]


def netbox(who: Identity) -> Identity:
    """Who NetBox says the token's owner is."""
    return Identity(who.username, who.authorities, source="netbox")


def claimed(who: Identity) -> Identity:
    """The local user's name, which no server vouched for."""
    return Identity(who.username, who.authorities, source="local")


def test_signatures_need_the_responsible_person_first_then_another_supervisor(
    book: IncidentBook, store: RecordStore, now: Moment
) -> None:
    number = open_network(book)
    now.at = T0 + timedelta(minutes=30)
    with pytest.raises(ApprovalError, match="needs an authenticated identity"):
        book.sign(book.get(number), claimed(OLIVIA))  # a name merely claimed signs nothing
    with pytest.raises(ApprovalError, match="not recovered"):
        book.sign(book.get(number), netbox(OLIVIA))
    book.recover(book.get(number), OLIVIA, now.at)
    with pytest.raises(ApprovalError, match="the responsible person signs INC-1 first"):
        book.sign(book.get(number), netbox(SAM))
    assert book.sign(book.get(number), netbox(OLIVIA)) == policy.RESPONSIBLE
    with pytest.raises(ApprovalError, match="already carries the responsible"):
        book.sign(book.get(number), netbox(OLIVIA))
    nobody = Identity("nina", frozenset({policy.HANDLE}), source="netbox")
    with pytest.raises(ApprovalError, match="needs the 督導 supervise authority"):
        book.sign(book.get(number), nobody)
    assert book.get(number).status == "recovered"
    assert book.sign(book.get(number), netbox(SAM)) == policy.SUPERVISOR
    with pytest.raises(ApprovalError, match="is closed"):
        book.sign(book.get(number), netbox(PAT))
    # each refusal under an authenticated name is on record; the claimed name's is not
    refused = [e.actor for e in store.entries(number) if e.kind == "incident.refused"]
    assert refused == ["olivia", "sam", "olivia", "nina", "pat"]
    with pytest.raises(InputError, match="closed"):
        book.attach(book.get(number), OLIVIA, number)


def test_a_supervisor_who_handled_the_incident_cannot_be_its_second_signature(
    book: IncidentBook, now: Moment
) -> None:
    number = book.open(PAT, "network", "NOC", ["core1"], T0).id  # pat opened it
    now.at = T0 + timedelta(minutes=10)
    book.recover(book.get(number), OLIVIA, now.at)  # olivia brought it back
    assert book.sign(book.get(number), netbox(PAT)) == policy.RESPONSIBLE
    with pytest.raises(ApprovalError, match="already carries the responsible"):
        book.sign(book.get(number), netbox(OLIVIA))  # a handler is never the supervisor
    assert book.get(number).status == "recovered"


def test_who_acted_in_its_runs_and_changes_handled_it_and_cannot_be_its_supervisor(
    book: IncidentBook, store: RecordStore, now: Moment
) -> None:
    """Pat ran the remedy run that names the incident, Ray resumed an attached triage run,
    Vic approved a remedy change (and Quinn ran it): none of them signs as the supervisor;
    Sam, who only watched, does. A refused attempt is no handling."""
    number = open_network(book)
    store.append(
        "RUN-x",
        "run.started",
        {"runbook": "fault-network", "params": {"incident": number}},
        actor="pat",
    )
    store.append("RUN-t", "run.started", {"runbook": "fault-server", "params": {}}, actor="olivia")
    store.append("RUN-t", "run.resumed", {}, actor="ray")
    store.append(
        "CHG-r",
        "change.planned",
        {"runbook": "fault-network", "params": {"incident": "1"}},
        actor="olivia",
    )
    store.append("CHG-r", "change.signed", {"authority": "approve"}, actor="vic")
    store.append("CHG-r", "change.refused", {"action": "approve"}, actor="sam")
    store.append("CHG-r", "change.ran", {"run_id": "RUN-q"}, actor="quinn")
    store.append("RUN-q", "run.started", {"runbook": "fault-network", "params": {}}, actor="quinn")
    book.attach(book.get(number), OLIVIA, "RUN-t")
    now.at = T0 + timedelta(minutes=30)
    book.recover(book.get(number), OLIVIA, now.at)
    assert book.handlers(book.get(number)) == {"olivia", "pat", "ray", "vic", "quinn"}
    assert book.sign(book.get(number), netbox(OLIVIA)) == policy.RESPONSIBLE
    for name in ("pat", "ray", "vic", "quinn"):
        with pytest.raises(ApprovalError, match="already carries the responsible"):
            book.sign(book.get(number), Identity(name, SAM.authorities, source="netbox"))
    assert book.get(number).status == "recovered"
    assert book.sign(book.get(number), netbox(SAM)) == policy.SUPERVISOR


def test_runs_naming_the_incident_are_collected_and_others_can_be_attached(
    book: IncidentBook, store: RecordStore
) -> None:
    number = open_network(book)
    store.append(
        "RUN-a",
        "run.started",
        {"runbook": "fault-network", "params": {"incident": "INC-1", "device": "leaf1"}},
        actor="olivia",
    )
    store.append("RUN-a", "run.finished", {"status": "succeeded"}, actor="olivia")
    store.append(
        "CHG-b",
        "change.planned",
        {"runbook": "fault-network", "params": {"incident": "inc-01"}},
        actor="olivia",
    )
    store.append(
        "RUN-c", "run.started", {"runbook": "network-survey", "params": {}}, actor="olivia"
    )
    store.append(
        "RUN-d",
        "run.started",
        {"runbook": "fault-server", "params": {"incident": "INC-12"}},
        actor="olivia",
    )
    incident = book.attach(book.get(number), OLIVIA, "RUN-c")
    runs = {r["id"]: (r["kind"], r["status"], r["how"]) for r in book.runs(incident)}
    assert runs == {
        "RUN-a": ("run", "succeeded", "parameter"),
        "CHG-b": ("change", "", "parameter"),
        "RUN-c": ("run", "", "attached"),
    }
    with pytest.raises(InputError, match="already collects RUN-a"):
        book.attach(incident, OLIVIA, "RUN-a")
    with pytest.raises(InputError, match="not a run or a change"):
        book.attach(incident, OLIVIA, "INC-1")
    with pytest.raises(InputError, match="no run 'RUN-zz'"):
        book.attach(incident, OLIVIA, "RUN-zz")


def test_the_record_is_a_hash_chain_that_shows_an_edit(
    book: IncidentBook, store: RecordStore, store_path: Path
) -> None:
    """Moving the reported time later (to shorten an outage) breaks the chain."""
    number = open_network(book)
    assert store.verify(number).ok
    store.close()
    db = sqlite3.connect(store_path)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute(
        "UPDATE entries SET payload = replace(payload, '06:00:00', '07:30:00') WHERE run_id = ?",
        (number,),
    )
    db.commit()
    db.close()
    with RecordStore(store_path) as reopened:
        report = reopened.verify(number)
        assert not report.ok
        assert IncidentBook(reopened).get(number).reported_at == T0 + timedelta(minutes=90)


def test_numbers_are_never_given_twice(book: IncidentBook, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes opening at once both see INC-1 as the last: the second takes INC-3."""
    open_network(book)
    open_network(book)
    monkeypatch.setattr(book, "_last_number", lambda: 1)
    assert open_network(book) == "INC-3"
    assert [i.id for i in book.all()] == ["INC-3", "INC-2", "INC-1"]


@pytest.mark.parametrize(
    ("kind", "reporter", "affected", "at", "message"),
    [
        ("power", "NOC", ["core1"], T0, "unknown incident kind 'power'"),
        ("network", " ", ["core1"], T0, "name who reported the fault"),
        ("network", "NOC", [" "], T0, "name what the fault affects"),
        ("network", "NOC", ["core1"], T0 + timedelta(minutes=1), "is in the future"),
        ("network", "NOC", ["core1"], datetime(2026, 12, 7, 6), "needs a time zone"),
    ],
)
def test_bad_input_opens_nothing(
    book: IncidentBook,
    store: RecordStore,
    kind: str,
    reporter: str,
    affected: list[str],
    at: datetime,
    message: str,
) -> None:
    with pytest.raises(InputError, match=message):
        book.open(OLIVIA, kind, reporter, affected, at)
    assert store.entries() == []


def test_a_recovery_time_must_lie_between_the_report_and_now(
    book: IncidentBook, store: RecordStore, now: Moment
) -> None:
    number = open_network(book)
    now.at = T0 + timedelta(hours=1)
    for at, message in (
        (T0 - timedelta(seconds=1), "before the fault was reported"),
        (now.at + timedelta(seconds=1), "is in the future"),
    ):
        with pytest.raises(InputError, match=message):
            book.recover(book.get(number), OLIVIA, at)
    book.recover(book.get(number), OLIVIA, now.at)
    with pytest.raises(InputError, match=r"recovered at .* already"):
        book.recover(book.get(number), OLIVIA, now.at)
    assert [e.kind for e in store.entries(number)] == ["incident.opened", "incident.recovered"]


def test_incident_ids_as_people_write_them() -> None:
    assert [incident_id(t) for t in ("7", "INC-7", "inc-007", " 12 ")] == [
        "INC-7",
        "INC-7",
        "INC-7",
        "INC-12",
    ]
    for bad in ("0", "INC-", "CHG-7", "seven"):
        with pytest.raises(InputError, match="is not an incident"):
            incident_id(bad)


def test_secrets_in_what_was_reported_are_masked(book: IncidentBook, store: RecordStore) -> None:
    book.open(
        OLIVIA, "application", "NOC", ["erp"], T0, summary="pasted nbt_AbC123.xYz789 by mistake"
    )
    assert "xYz789" not in str([e.payload for e in store.entries()])


def test_sheet_cells_are_escaped() -> None:
    assert sheet.cell("a | b\nc") == "a \\| b<br>c"
    assert sheet.cell(None) == "—"


def test_a_name_recorded_while_netbox_did_not_answer_never_signs(
    book: IncidentBook, store: RecordStore, now: Moment
) -> None:
    unverified = Identity("olivia", frozenset({policy.HANDLE}), source=UNVERIFIED)
    number = book.open(unverified, "network", "NOC", ["core1"], T0).id
    now.at = T0 + timedelta(minutes=5)
    book.recover(book.get(number), unverified, now.at)
    with pytest.raises(ApprovalError, match="olivia is unverified"):
        book.sign(book.get(number), unverified)
    assert [(e.kind, e.payload["identity_source"]) for e in store.entries(number)] == [
        ("incident.opened", "unverified: NetBox unreachable"),
        ("incident.recovered", "unverified: NetBox unreachable"),
    ]  # the refusal of a name no server vouched for is not recorded (as a claimed one's)
