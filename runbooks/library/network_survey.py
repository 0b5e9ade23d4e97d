"""One device's maintenance survey (instruction 2), on one session: its sanitised running
configuration (the backup), the compliance of that configuration with what NetBox renders
for it, and the state evidence — facts and uptime, BGP sessions against the ones NetBox
implies, LLDP neighbours against NetBox's cables, interface errors.

`survey` never raises for the device's sake: a device that cannot be reached is recorded
`UNREACHABLE` with the reason, a rendering NetBox cannot give (or the device refuses)
`NOT_RENDERABLE`, a getter the driver lacks "not checked", NetBox's working sets not read
"not checked" with why, a getter's answer that fails or cannot be read (a counter ``"n/a"``)
an ``error`` of that part — as nornir turns an exception at a task's boundary into a failed
result, one bad device never stops the fleet, and its backup is kept. `summary` names every
device whose evidence is incomplete: never a silent pass. The pure parts
(`interface_errors`, `summary`) are plain functions on NAPALM's shapes, unit-tested alone.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from runbooks.core.errors import RunbookError, UnsupportedError
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import NetworkGateway
from runbooks.library import network_common as nc

log = logging.getLogger(__name__)

COMPLIANT, DRIFTED, UNREACHABLE, NOT_RENDERABLE = (
    "compliant",
    "drifted",
    "unreachable",
    "not renderable",
)
STATES = (COMPLIANT, DRIFTED, UNREACHABLE, NOT_RENDERABLE)
ERROR_COUNTERS = ("rx_errors", "tx_errors", "rx_discards", "tx_discards")
FACTS = ("hostname", "vendor", "model", "os_version", "serial_number", "uptime")
EVIDENCE = ("facts", "interface_errors", "bgp", "lldp")  # the state evidence's parts


def interface_errors(counters: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """The interfaces with errors or discards, and those counters (NAPALM's
    ``get_interfaces_counters``; -1, "not supported", counts as none).

    >>> interface_errors({"eth1": {"rx_errors": 3, "tx_errors": 0, "rx_discards": -1},
    ...                   "eth2": {"rx_errors": 0, "tx_errors": 0}})
    {'eth1': {'rx_errors': 3}}
    """
    out = {}
    for name, values in sorted(counters.items()):
        bad = {k: int(values[k]) for k in ERROR_COUNTERS if int(values.get(k, 0) or 0) > 0}
        if bad:
            out[str(name)] = bad
    return out


def digest(text: str) -> str:
    """The SHA-256 of a (sanitised) configuration, as the record names it.

    >>> digest("hostname r1\\n")[:12]
    '7e139a0aa1a3'
    """
    return hashlib.sha256(text.encode()).hexdigest()


def summary(surveys: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The fleet's compliance from each device's survey: the devices compliant, drifted
    (with the diff), unreachable and not renderable (with why); every device in one, counted
    in ``counts``. Beside them, ``not_checked``: each device whose state evidence is
    incomplete, with what was not checked or failed (`incomplete`), whatever its compliance.

    >>> s = summary({"a": {"state": "compliant"}, "b": {"state": "drifted", "diff": "+x"},
    ...              "c": {"state": "unreachable", "why": "timed out"}})
    >>> s["compliant"], s["drifted"], s["unreachable"], s["not_renderable"], s["counts"]["drifted"]
    (['a'], {'b': '+x'}, {'c': 'timed out'}, {}, 1)
    >>> summary({"a": {"state": "compliant", "lldp": {"error": "timed out"}}})["not_checked"]
    {'a': 'lldp: timed out'}
    """
    out: dict[str, Any] = {"compliant": [], "drifted": {}, "unreachable": {}, "not_renderable": {}}
    not_checked: dict[str, str] = {}
    for name in sorted(surveys):
        survey_ = surveys[name]
        state = survey_.get("state")
        if state == COMPLIANT:
            out["compliant"].append(name)
        elif state == DRIFTED:
            out["drifted"][name] = str(survey_.get("diff", ""))
        elif state == NOT_RENDERABLE:
            out["not_renderable"][name] = str(survey_.get("why", ""))
        else:
            out["unreachable"][name] = str(survey_.get("why", "")) or "no survey"
        if state != UNREACHABLE and (missing := incomplete(survey_)):
            not_checked[name] = "; ".join(missing)
    out["counts"] = {key: len(value) for key, value in out.items()}
    return out | {"not_checked": not_checked}


def incomplete(survey_: Mapping[str, Any]) -> list[str]:
    """What of a device's state evidence was not checked, or failed, with why.

    >>> incomplete({"not_checked": ["lldp: no getter"], "bgp": {"error": "ValueError: x"},
    ...             "facts": {"hostname": "r1"}})
    ['lldp: no getter', 'bgp: ValueError: x']
    """
    out = [str(item) for item in survey_.get("not_checked") or ()]
    for key in EVIDENCE:
        part = survey_.get(key)
        if isinstance(part, Mapping) and isinstance(part.get("error"), str):
            out.append(f"{key}: {part['error']}")
    return out


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RunbookError):
        return str(exc)
    # a bug, not the device's state: keep the traceback
    log.error("unexpected failure: %s", type(exc).__name__, exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


def interface_counters(gw: NetworkGateway) -> dict[str, Any]:
    """NAPALM's ``get_interfaces_counters`` through the gateway. The gateway has no public
    method for it yet; its ``_get`` is what its public getters are made of (the driver's
    support checked, the plan's read-only guard, errors translated)."""
    return dict(gw._get("get_interfaces_counters", "reading interface counters"))


Rendering = Callable[[], str]  # NetBox's rendering of the device (raw: never recorded)
# The working sets of the fleet and its cable peers, by name (read while devices log in)
WorkingSets = Callable[[], Mapping[str, DeviceWorkingSet]]


def survey(
    gw: NetworkGateway, around: WorkingSets, rendering: Rendering, keep_config: bool = True
) -> dict[str, Any]:
    """The device's survey as evidence: ``state`` (one of `STATES`), ``why`` or ``diff``,
    the backup (``config`` when ``keep_config``, its ``sha256`` and line count), and the state
    evidence (``facts``, ``bgp``, ``lldp``, ``interface_errors``, ``not_checked``)."""
    out: dict[str, Any] = {"platform": gw.target.platform, "driver": gw.driver_name}
    try:
        running = gw.config()
    except Exception as exc:  # the device's boundary: recorded, never raised
        return {**out, "state": UNREACHABLE, "why": _reason(exc)}
    out |= {"sha256": digest(running), "lines": len(running.splitlines())}
    if keep_config:
        out["config"] = running
    answers = read_state(gw)  # the device first, NetBox's working sets when needed
    out |= compliance(gw, rendering)
    return out | judged(answers, gw.target.name, around)


def compliance(gw: NetworkGateway, rendering: Rendering) -> dict[str, Any]:
    """Compliant or drifted (the device's own diff to NetBox's rendering, sanitised), or
    not renderable: NetBox renders nothing for it, or the device refuses what it renders."""
    try:
        rendered = rendering()
    except Exception as exc:
        return {"state": NOT_RENDERABLE, "why": f"NetBox renders no configuration: {_reason(exc)}"}
    if not rendered.strip():
        return {"state": NOT_RENDERABLE, "why": "NetBox's rendering is empty"}
    try:
        diff = gw.compare(rendered)
    except Exception as exc:
        why = f"the device does not take NetBox's rendering: {_reason(exc)}"
        return {"state": NOT_RENDERABLE, "why": why}
    if diff.strip():
        return {"state": DRIFTED, "diff": diff}
    return {"state": COMPLIANT}


def read_state(gw: NetworkGateway) -> dict[str, Any]:
    """The getters' answers, by evidence key: an answer, or the `UnsupportedError` or other
    exception the getter raised (the device is read before NetBox's working sets are needed:
    they may still be on their way)."""
    getters: dict[str, Callable[[], Any]] = {
        "facts": gw.facts,
        "interface_errors": lambda: interface_counters(gw),
        "bgp": gw.bgp_neighbors,
        "lldp": gw.lldp_neighbors,
    }
    answers: dict[str, Any] = {}
    for key, getter in getters.items():
        try:
            answers[key] = getter()
        except Exception as exc:  # judged below: not checked, or an error of that part
            answers[key] = exc
    return answers


def judged(answers: Mapping[str, Any], name: str, around: WorkingSets) -> dict[str, Any]:
    """The state evidence from the getters' answers (`read_state`) and NetBox. Never raises:
    NetBox's working sets not read (or not usable) leave BGP and LLDP not checked, with why;
    an answer the evidence cannot read (a counter ``"n/a"``) is an ``error`` of that part."""
    shapes: dict[str, Callable[[Any], Any]] = {
        "facts": lambda facts: {k: facts.get(k) for k in FACTS if k in facts},
        "interface_errors": interface_errors,
    }
    not_checked: list[str] = []
    try:
        peers = around()
        ws = peers.get(name)
        if ws is None:  # gone from NetBox since it was selected
            not_checked.append("bgp, lldp: NetBox no longer holds the device")
        else:
            links = nc.links_of(ws, ["connected"])
            connected = {link.interface for link in links}  # NetBox renders sessions over these
            sessions = [
                s for s in nc.expected_sessions(ws, peers) if s.local_interface in connected
            ]
            shapes["bgp"] = lambda bgp: bgp_evidence(sessions, bgp)
            shapes["lldp"] = lambda lldp: lldp_evidence(links, lldp)
    except Exception as exc:  # NetBox's hiccup is this part's, not the fleet's
        not_checked.append(f"bgp, lldp: NetBox's working sets were not read: {_reason(exc)}")
    out: dict[str, Any] = {}
    for key, shape in shapes.items():
        answer = answers.get(key)
        if isinstance(answer, UnsupportedError):
            not_checked.append(f"{key}: {answer}")
        elif isinstance(answer, BaseException):
            out[key] = {"error": _reason(answer)}
        else:
            try:
                out[key] = shape(answer)
            except Exception as exc:  # the device's odd answer: this part's error
                out[key] = {"error": f"the device's answer was not understood: {_reason(exc)}"}
    if not_checked:
        out["not_checked"] = not_checked
    return out


def bgp_evidence(sessions: list[nc.Session], bgp: Mapping[str, Any]) -> dict[str, Any]:
    """The sessions NetBox implies, how many are established, and what is wrong with the
    others (`network_common.bgp_problems`)."""
    problems = nc.bgp_problems(sessions, bgp)
    return {"expected": len(sessions), "problems": problems}


def lldp_evidence(links: list[nc.Link], lldp: Mapping[str, Any]) -> dict[str, Any]:
    """The connected cables NetBox holds and those LLDP does not confirm."""
    return {"cables": len(links), "mismatches": nc.lldp_mismatches(links, lldp)}
