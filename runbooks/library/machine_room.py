"""Instructions 6 (機房進出管理 machine-room access) and 9 (內部機房維修與維護 machine-room
repair and upkeep): checklists of manual steps, each confirmation recorded with who and when,
and the record sheet signed by the responsible person and the supervisor (`runbook signoff`).

**machine-room-access** — a visit to a machine room. Planned as the visit request (visitor,
company, escort, purpose, room, expected time) and approved like any change, it is run at
the door: the visitor's identity checked, the escort assigned, the time in (the entry
confirmation's time), the work done, the time out (the exit confirmation's time); the last
step puts the times in and out in the record.

**machine-room-upkeep** — the routine upkeep round of a room: power (UPS and PDU load),
cooling (temperature and humidity read on the room's own meters), fire (extinguishers, the
alarm panel), cabling and cleanliness, one manual step each. The readings are parameters of
the run; one outside its range (a parameter too) fails its step with the finding, so the
record shows it. Nothing is changed anywhere: it is run directly (``--no-change-control``)
and its record signed.

Both read NetBox only: the room is a NetBox site or location, the escort a NetBox user.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from runbooks.core.context import RunContext
from runbooks.core.errors import InputError, VerificationError
from runbooks.core.runbook import Params
from runbooks.core.steps import check, manual
from runbooks.library.base import LibraryRunbook, netbox

_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|\.\.)\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_range(text: str) -> tuple[float, float]:
    """A range given as ``low-high`` (``18-27``, ``-5..10``).

    >>> parse_range("18-27"), parse_range(" -5..10 ")
    ((18.0, 27.0), (-5.0, 10.0))
    >>> parse_range("27-18")
    Traceback (most recent call last):
    ...
    runbooks.core.errors.InputError: range '27-18': its low end is above its high end
    """
    found = _RANGE.match(text)
    if not found:
        raise InputError(f"range {text!r} is not low-high, e.g. 18-27")
    low, high = float(found.group(1)), float(found.group(2))
    if low > high:
        raise InputError(f"range {text!r}: its low end is above its high end")
    return low, high


def out_of_range(name: str, value: float, allowed: str, unit: str) -> str:
    """The finding for a reading outside its range ("" when it is inside).

    >>> out_of_range("temperature", 31.5, "18-27", " °C")
    'temperature 31.5 °C is outside 18 to 27 °C'
    >>> out_of_range("temperature", 22, "18-27", " °C")
    ''
    """
    low, high = parse_range(allowed)
    if low <= value <= high:
        return ""
    return f"{name} {value:g}{unit} is outside {low:g} to {high:g}{unit}"


def find_room(ctx: RunContext, room: str) -> dict[str, Any]:
    """The NetBox site or location named ``room`` (by name or slug)."""
    nb = netbox(ctx)
    for obj_type in ("dcim.site", "dcim.location"):
        for key in ("name", "slug"):
            found = nb.find(obj_type, **{key: room})
            if found:
                return {
                    "kind": obj_type.split(".")[1],
                    "id": found[0]["id"],
                    "name": found[0]["name"],
                }
    raise VerificationError(f"NetBox has no site or location named {room!r}")


class AccessParams(Params):
    visitor: str = Field(description="The visitor's full name, as on their identity document.")
    company: str = Field(description="The visitor's company (or department).")
    escort: str = Field(description="The NetBox user who escorts the visitor the whole time.")
    purpose: str = Field(description="What the visitor comes to do, as the request says.")
    room: str = Field(description="The machine room: a NetBox site or location (name or slug).")
    expected: str = Field(
        description="The expected time in and how long, e.g. '2026-12-08 09:00, 2 h' "
        "(the department's time zone)."
    )


class MachineRoomAccess(LibraryRunbook[AccessParams]):
    """Instruction 6: a visitor's entry to and exit from a machine room, escorted."""

    name = "machine-room-access"
    title = "Machine-room access: a visitor in and out, escorted, each step confirmed"
    instruction = "6 機房進出管理 machine-room access"
    expected_duration = timedelta(hours=2)
    Params = AccessParams

    @check("NetBox knows the room and the escort", targets="{room}")
    def room_and_escort_known(self, ctx: RunContext) -> dict[str, Any]:
        room = find_room(ctx, self.p.room)
        # NetBox's users are the department's staff (identity comes from NetBox)
        reply = netbox(ctx).http.call(
            "GET",
            "/api/users/users/",
            params=[("username", self.p.escort), ("limit", 0)],
            what="list users",
        )
        users = reply.data.get("results", [])
        if not users:
            raise VerificationError(f"{self.p.escort!r} is not a NetBox user: no one escorts")
        user = users[0]
        named = " ".join(filter(None, (user.get("first_name"), user.get("last_name"))))
        return {"room": room, "escort": self.p.escort, "escort_name": named or self.p.escort}

    @manual("Check the identity of {visitor} ({company})", targets="{room}")
    def identity_checked(self, ctx: RunContext) -> str:
        return (
            f"Check {self.p.visitor}'s identity document against the request: "
            f"{self.p.company}, to {self.p.purpose}, expected {self.p.expected}."
        )

    @manual("Assign {escort} as escort", targets="{room}")
    def escort_assigned(self, ctx: RunContext) -> str:
        return f"{self.p.escort} escorts {self.p.visitor} from entry to exit of {self.p.room}."

    @manual("Entry: the time in", targets="{room}", duration=timedelta(minutes=1))
    def entry_time(self, ctx: RunContext) -> str:
        return (
            f"{self.p.visitor} enters {self.p.room} with {self.p.escort}. Confirm at the door: "
            "this confirmation's time is the time in."
        )

    @manual("Work done: {purpose}", targets="{room}", duration=timedelta(hours=2))
    def work_done(self, ctx: RunContext) -> str:
        return (
            f"{self.p.escort} confirms the work was done as requested ({self.p.purpose}) and "
            "nothing else was touched."
        )

    @manual("Exit: the time out", targets="{room}", duration=timedelta(minutes=1))
    def exit_time(self, ctx: RunContext) -> str:
        return (
            f"{self.p.visitor} leaves {self.p.room}; {self.p.escort} sees them out. Confirm at "
            "the door: this confirmation's time is the time out."
        )

    @check("The visit's times in and out", targets="{room}", duration=timedelta(seconds=1))
    def visit_times(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.planning:
            return {"time_in": "the entry's confirmation", "time_out": "the exit's confirmation"}
        entry = ctx.results["entry_time"].evidence
        leave = ctx.results["exit_time"].evidence
        return {
            "time_in": entry["confirmed_at"],
            "time_in_by": entry["confirmed_by"],
            "time_out": leave["confirmed_at"],
            "time_out_by": leave["confirmed_by"],
        }


class UpkeepParams(Params):
    room: str = Field(description="The machine room: a NetBox site or location (name or slug).")
    ups_load_pct: float = Field(description="The UPS load read on its panel, in %.")
    pdu_load_pct: float = Field(description="The highest PDU load read, in % of its rating.")
    max_load_pct: float = Field(80.0, description="The highest UPS or PDU load allowed, in %.")
    temperature_c: float = Field(description="The room's temperature read, in °C.")
    humidity_pct: float = Field(description="The room's relative humidity read, in %.")
    temperature_range: str = Field(
        "18-27", description="The temperatures allowed, low-high in °C (ASHRAE's 18-27)."
    )
    humidity_range: str = Field(
        "40-60", description="The relative humidity allowed, low-high in %."
    )

    @field_validator("temperature_range", "humidity_range")
    @classmethod
    def _range(cls, value: str) -> str:
        try:
            parse_range(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value


class MachineRoomUpkeep(LibraryRunbook[UpkeepParams]):
    """Instruction 9: the upkeep round of a machine room, item by item."""

    name = "machine-room-upkeep"
    title = "Machine-room upkeep: power, cooling, fire, cabling, cleanliness"
    instruction = "9 內部機房維修與維護 machine-room repair and upkeep"
    expected_duration = timedelta(hours=1)
    Params = UpkeepParams

    @check("NetBox knows the room", targets="{room}")
    def room_known(self, ctx: RunContext) -> dict[str, Any]:
        return {"room": find_room(ctx, self.p.room)}

    def _readings(self, ctx: RunContext, *findings: str) -> None:
        """A run refuses to confirm an item whose reading is out of its range: the step fails
        with the finding. A plan only says what will be read."""
        found = [f for f in findings if f]
        if found and not ctx.planning:
            raise VerificationError("; ".join(found))

    @manual("Power: UPS and PDU load", targets="{room}")
    def power(self, ctx: RunContext) -> str:
        limit = f"0-{self.p.max_load_pct:g}"
        self._readings(
            ctx,
            out_of_range("UPS load", self.p.ups_load_pct, limit, " %"),
            out_of_range("PDU load", self.p.pdu_load_pct, limit, " %"),
        )
        return (
            f"The UPS runs on mains with no alarm, load {self.p.ups_load_pct:g} %; the highest "
            f"PDU load is {self.p.pdu_load_pct:g} % (at most {self.p.max_load_pct:g} %)."
        )

    @manual("Cooling: temperature and humidity", targets="{room}")
    def cooling(self, ctx: RunContext) -> str:
        self._readings(
            ctx,
            out_of_range("temperature", self.p.temperature_c, self.p.temperature_range, " °C"),
            out_of_range("humidity", self.p.humidity_pct, self.p.humidity_range, " %"),
        )
        return (
            f"The air conditioners run with no alarm; the room reads {self.p.temperature_c:g} °C "
            f"(allowed {self.p.temperature_range}) and {self.p.humidity_pct:g} % relative "
            f"humidity (allowed {self.p.humidity_range})."
        )

    @manual("Fire: extinguishers and the alarm panel", targets="{room}")
    def fire(self, ctx: RunContext) -> str:
        return (
            "Every extinguisher is in place, sealed, in pressure and within its inspection "
            "date; the fire alarm panel shows no fault or alarm."
        )

    @manual("Cabling: tidy, labelled, nothing loose", targets="{room}")
    def cabling(self, ctx: RunContext) -> str:
        return (
            "Cables are in their trays and managers, labelled at both ends, none loose or "
            "strained; no cable blocks an airflow path."
        )

    @manual("Cleanliness: clean, nothing stored", targets="{room}")
    def cleanliness(self, ctx: RunContext) -> str:
        return (
            "The floor, racks and air inlets are clean; no boxes, packaging or other "
            "materials are stored in the room."
        )
