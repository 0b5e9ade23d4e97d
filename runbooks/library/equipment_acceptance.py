"""16 IT 設備驗收與安裝、測試 — equipment acceptance, install and test.

The procedure, in order, for a delivered network device or server that NetBox already holds
(planned, staged or inventory):

1. What NetBox expects of it: its serial (the delivery note's, entered on receipt), its device
   type's model, the software version its config context names (``software_version``: NetBox
   has no field for it; a config context sets it for a whole platform, role or delivery at
   once and a device's local context can override it), and its interfaces (compared in
   netutils' canonical form, named as NetBox names them; virtual, LAG and bridge interfaces
   are the configuration's, not the box's, and are not asked for). Its hardware, where the
   config context names it (NetBox has no field either), under ``acceptance``::

       acceptance:
         memory_gb: 16          # GiB installed (as the delivery note counts DIMMs)
         disks: {sda: 480, nvme0n1: 960}   # each disk by its kernel name: GB (10^9 bytes)

2. What it reports of itself, read-only: a network device through NAPALM's getters
   (``get_facts``, ``get_interfaces``, ``get_interfaces_counters``, ``get_environment``) on
   one login behind the plan's read-only guard; a server (a host in NetBox's Ansible
   inventory) through Ansible's facts (``runbooks/playbooks/acceptance_facts.yml``: DMI
   serial and model, operating system, memory, disks, interfaces). A server whose firmware
   reports no serial (a virtual machine, a container: ``NA``) is read from its asset fact
   (``/etc/ansible/facts.d/asset.fact``, ``serial``) and the evidence says so. Every
   difference refuses the acceptance, one line each: a serial that differs or is missing on
   either side, a model that differs (a device that reports none: not checked, named), a
   version that differs, an interface NetBox holds that the device lacks, memory more than
   5 % below ``memory_gb`` (``MEMORY_TOLERANCE``: the operating system counts what firmware
   and the kernel reserve out of the installed RAM), a disk NetBox names that is missing or
   smaller than its size. What NetBox names none of (no ``software_version``, no
   ``acceptance`` memory or disks), or the device does not report (a network device's disks;
   its memory where the NAPALM driver's ``get_environment`` gives no ``available_ram`` in
   bytes; a disk's size the facts lack) is listed as not compared.
3. Burn-in, in the run (``burn_in`` long, a sample every ``sample_every``): each interface
   NetBox cables (and holds enabled) is up at every sample; no interface's error counters
   grow between the first sample and the last; no temperature the platform reports is in
   alert or critical. The plan records what the burn-in will check.
4. Only then NetBox's status becomes ``target_status`` (inventory or active), with the ETag
   NetBox had at plan time, and a journal entry on the device witnesses the run. A failure
   after the status was written puts it back.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

from netutils.interface import canonical_interface_name
from pydantic import Field, field_validator

from runbooks.core.context import RunContext
from runbooks.core.errors import InventoryError, UnsupportedError, VerificationError
from runbooks.core.results import Diff
from runbooks.core.runbook import Params
from runbooks.core.steps import change, check
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import NetworkGateway
from runbooks.library import network_common as nc
from runbooks.library import network_survey as ns
from runbooks.library.base import LibraryRunbook
from runbooks.library.fault_common import evidence_of
from runbooks.library.network_maintenance import read_only
from runbooks.library.witness import JournalWitness, Witnessed, journal_step

log = logging.getLogger(__name__)

TARGET = "{device}"
FACTS_PLAYBOOK = "acceptance_facts.yml"
VERSION_KEY = "software_version"  # the config context key NetBox's expectation is read from
HARDWARE_KEY = "acceptance"  # the config context key of its memory_gb and disks (GB each)
# how far below the installed RAM the operating system may report it (firmware, kernel)
MEMORY_TOLERANCE = 0.05
SERVER_PLATFORMS = ("linux",)  # inventory/netbox.yml: query_filters platform
ACCEPTABLE_FROM = ("planned", "staged", "inventory")
ERROR_COUNTERS = ("rx_errors", "tx_errors")
# interface types that are configuration, not hardware the box is delivered with
NOT_HARDWARE = ("virtual", "lag", "bridge")
# what firmware reports when it has no serial or model (DMI of VMs and white boxes)
PLACEHOLDERS = {
    "",
    "na",
    "n/a",
    "none",
    "0",
    "not specified",
    "not applicable",
    "to be filled by o.e.m.",
    "default string",
    "system serial number",
    "system product name",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def seconds(value: Any) -> float:
    """A duration given as seconds or with a unit (s, m, h).

    >>> seconds("30s"), seconds("2m"), seconds(90), seconds("1h")
    (30.0, 120.0, 90.0, 3600.0)
    """
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"{str(value)[:40]!r} is no duration: give e.g. 30s, 10m or 2h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


class AcceptanceParams(Params):
    device: str = Field(
        min_length=1, description="the delivered device or server, by its NetBox name"
    )
    burn_in: float = Field(
        default=300,
        ge=0,
        le=86400,
        description="how long the burn-in checks run (e.g. 30s, 10m, 2h; 0: one sample only)",
    )
    sample_every: float = Field(
        default=10, gt=0, le=3600, description="how often the burn-in samples (e.g. 10s, 1m)"
    )
    target_status: Literal["inventory", "active"] = Field(
        default="inventory", description="the NetBox status on acceptance: inventory or active"
    )

    @field_validator("burn_in", "sample_every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return seconds(value)


# ---- the comparison: plain functions on the recorded evidence ------------------------------


def placeholder(value: Any) -> bool:
    """Firmware's word for "none".

    >>> placeholder("NA"), placeholder("To Be Filled By O.E.M."), placeholder("SN123")
    (True, True, False)
    """
    return str(value or "").strip().casefold() in PLACEHOLDERS


def size(value: Any, what: str) -> float:
    """A positive size from the config context, else a one-line error naming where."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise InventoryError(
        f"config context {HARDWARE_KEY}.{what} is {str(value)[:40]!r}: give a positive number"
    )


def hardware_of(context: Mapping[str, Any]) -> dict[str, Any]:
    """The memory (MiB) and disks (GB) a config context's ``acceptance`` names.

    >>> hardware_of({"acceptance": {"memory_gb": 16, "disks": {"sda": 480}}})
    {'memory_mb': 16384, 'disks': {'sda': 480.0}}
    >>> hardware_of({})
    {'memory_mb': None, 'disks': {}}
    """
    named = context.get(HARDWARE_KEY) or {}
    if not isinstance(named, Mapping):
        raise InventoryError(
            f"config context {HARDWARE_KEY} is {str(named)[:40]!r}: give memory_gb and disks"
        )
    memory = named.get("memory_gb")
    disks = named.get("disks") or {}
    if not isinstance(disks, Mapping):
        raise InventoryError(
            f"config context {HARDWARE_KEY}.disks is {str(disks)[:40]!r}: "
            "give each disk's name and size in GB, e.g. {sda: 480}"
        )
    return {
        "memory_mb": None if memory is None else round(size(memory, "memory_gb") * 1024),
        "disks": {str(k): size(v, f"disks.{k}") for k, v in sorted(disks.items())},
    }


def expected_of(ws: DeviceWorkingSet) -> dict[str, Any]:
    """What NetBox expects the delivered device to report."""
    version = ws.config_context.get(VERSION_KEY)
    hardware = [i for i in ws.interfaces if i.type not in NOT_HARDWARE]
    return {
        **hardware_of(ws.config_context),
        "status": ws.status,
        "serial": ws.serial.strip(),
        "model": ws.device_type.name,
        "manufacturer": ws.manufacturer.name,
        "version": str(version).strip() if version else None,
        "interfaces": sorted(i.name for i in hardware),
        "up": sorted(i.name for i in hardware if i.enabled and i.cable is not None),
    }


def version_matches(expected: str, reported: str) -> bool:
    """Whether the reported version is the expected one (or a release of it: 8.4 → 8.4.4).

    >>> version_matches("FRRouting 8.4", "FRRouting 8.4.4"), version_matches("8.4", "8.41")
    (True, False)
    """
    want, have = expected.strip().casefold(), reported.strip().casefold()
    return have == want or (have.startswith(want) and not have[len(want)].isdigit())


def differences(device: str, expected: Mapping[str, Any], reported: Mapping[str, Any]) -> list[str]:
    """Each way the device differs from what NetBox expects, one line each.

    >>> differences("sw9", {"serial": "SN1", "model": "Edge-48", "interfaces": ["swp1"]},
    ...             {"serial": "SN2", "model": "", "interfaces": {}})
    ['serial: NetBox holds SN1, sw9 reports SN2', 'interface swp1: in NetBox, sw9 has none']
    """
    out = []
    want, have = str(expected.get("serial") or ""), str(reported.get("serial") or "")
    if not want:
        out.append(f"serial: NetBox holds none for {device} (enter the delivery's serial first)")
    elif placeholder(have):
        out.append(f"serial: NetBox holds {want}, {device} reports none")
    elif want.casefold() != have.strip().casefold():
        out.append(f"serial: NetBox holds {want}, {device} reports {have.strip()}")
    model = str(reported.get("model") or "")
    if not placeholder(model) and model.strip().casefold() != str(expected["model"]).casefold():
        out.append(f"model: NetBox holds {expected['model']}, {device} reports {model.strip()}")
    version = expected.get("version")
    have_version = str(reported.get("version") or "")
    if version and not version_matches(version, have_version):
        out.append(
            f"software version: NetBox's config context expects {version}, "
            f"{device} reports {have_version or 'none'}"
        )
    have_ifaces = {canonical_interface_name(name) for name in reported.get("interfaces") or {}}
    for name in expected.get("interfaces") or ():
        if canonical_interface_name(name) not in have_ifaces:
            out.append(f"interface {name}: in NetBox, {device} has none")
    return out + hardware_differences(device, expected, reported)


def memory_short(expected_mb: int, reported_mb: int) -> bool:
    """Whether the reported memory is more than ``MEMORY_TOLERANCE`` below the expected.

    >>> memory_short(16384, 15565), memory_short(16384, 15564)
    (False, True)
    """
    return reported_mb < expected_mb * (1 - MEMORY_TOLERANCE)


def hardware_differences(
    device: str, expected: Mapping[str, Any], reported: Mapping[str, Any]
) -> list[str]:
    """Memory short of NetBox's by more than the tolerance; a disk NetBox names that is
    missing or smaller, one line each (what either side does not name: ``not_compared``)."""
    out = []
    want_mb, have_mb = expected.get("memory_mb"), int(reported.get("memory_mb") or 0)
    if want_mb and have_mb and memory_short(want_mb, have_mb):
        out.append(
            f"memory: NetBox's config context expects {want_mb} MiB, {device} reports "
            f"{have_mb} MiB (more than {MEMORY_TOLERANCE:.0%} less)"
        )
    if "disks" in reported:
        have = reported["disks"]
        for name, gb in (expected.get("disks") or {}).items():
            if name not in have:
                out.append(
                    f"disk {name}: NetBox's config context expects {gb:g} GB, {device} has none"
                )
            elif have[name] is not None and have[name] < gb:
                out.append(
                    f"disk {name}: NetBox's config context expects {gb:g} GB, "
                    f"{device} reports {have[name]:g} GB"
                )
    return out


def refusal(headline: str, lines: Sequence[str]) -> VerificationError:
    """The error naming each finding on a line of its own.

    >>> str(refusal("sw9 does not match NetBox", ["serial: …", "model: …"]))
    'sw9 does not match NetBox:\\n- serial: …\\n- model: …'
    """
    return VerificationError(headline + ":\n" + "\n".join(f"- {line}" for line in lines))


def not_compared(expected: Mapping[str, Any], reported: Mapping[str, Any]) -> list[str]:
    """What could not be compared, and why (never a silent pass)."""
    out = []
    if placeholder(reported.get("model")):
        out.append("model: the device reports none")
    if not expected.get("version"):
        out.append(f"software version: NetBox's config context names none ({VERSION_KEY})")
    if not expected.get("memory_mb"):
        out.append(f"memory: NetBox's config context names none ({HARDWARE_KEY}.memory_gb)")
    elif not reported.get("memory_mb"):
        out.append("memory: the device reports none")
    disks = expected.get("disks") or {}
    if not disks:
        out.append(f"disks: NetBox's config context names none ({HARDWARE_KEY}.disks)")
    elif "disks" not in reported:
        out.append(f"disks: {reported.get('through') or 'the device'} reports none")
    else:
        have = reported["disks"]
        out += [
            f"disk {n}: the device reports no size" for n in disks if n in have and have[n] is None
        ]
    return out


def burn_in_findings(device: str, up: list[str], samples: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the burn-in's samples show wrong: an interface NetBox cables that is down at a
    sample, an error counter that grew from the first sample to the last, a temperature in
    alert or critical.

    >>> s1 = {"interfaces": {"swp1": {"is_up": True}}, "counters": {"swp1": {"rx_errors": 0}}}
    >>> s2 = {"interfaces": {"swp1": {"is_up": False}}, "counters": {"swp1": {"rx_errors": 4}},
    ...       "temperatures": {"cpu": {"temperature": 91.0, "is_critical": True}}}
    >>> burn_in_findings("sw9", ["swp1"], [s1, s2])  # doctest: +NORMALIZE_WHITESPACE
    ['sw9 swp1 is down at sample 2 of 2 (NetBox cables it)',
     'sw9 swp1 rx_errors grew from 0 to 4 during the burn-in',
     'sw9 temperature cpu 91.0 °C is critical']
    """
    out = []
    for n, sample in enumerate(samples, 1):
        interfaces = {canonical_interface_name(k): v for k, v in sample["interfaces"].items()}
        for name in up:
            state = interfaces.get(canonical_interface_name(name)) or {}
            if not state.get("is_up"):
                out.append(
                    f"{device} {name} is down at sample {n} of {len(samples)} (NetBox cables it)"
                )
    if samples:
        first, last = samples[0].get("counters") or {}, samples[-1].get("counters") or {}
        for name, counters in sorted(last.items()):
            for key in ERROR_COUNTERS:
                start, end = int((first.get(name) or {}).get(key, 0)), int(counters.get(key, 0))
                if start >= 0 and end > start:
                    out.append(
                        f"{device} {name} {key} grew from {start} to {end} during the burn-in"
                    )
    seen: set[str] = set()
    for sample in samples:
        for where, t in sorted((sample.get("temperatures") or {}).items()):
            level = "critical" if t.get("is_critical") else "in alert" if t.get("is_alert") else ""
            if level and where not in seen:
                seen.add(where)
                out.append(f"{device} temperature {where} {t.get('temperature')} °C is {level}")
    return out


# ---- what the device reports ---------------------------------------------------------------


def network_sample(gw: NetworkGateway) -> dict[str, Any]:
    """One burn-in sample of a network device: interfaces, error counters, temperatures."""
    interfaces = {
        name: {"is_up": bool(v.get("is_up")), "is_enabled": bool(v.get("is_enabled"))}
        for name, v in gw.interfaces().items()
    }
    counters = {
        name: {k: int(v.get(k, -1)) for k in ERROR_COUNTERS}
        for name, v in ns.interface_counters(gw).items()
    }
    try:
        environment = dict(gw._get("get_environment", "reading the environment"))
    except UnsupportedError as exc:
        environment = {}
        log.info("%s: no temperatures (%s)", gw.target.name, exc)
    return {
        "interfaces": interfaces,
        "counters": counters,
        "temperatures": dict(environment.get("temperature") or {}),
        "memory_mb": memory_mb(environment.get("memory") or {}),
    }


def memory_mb(memory: Mapping[str, Any]) -> int | None:
    """NAPALM's ``get_environment`` memory in MiB: ``available_ram`` is the RAM installed, in
    bytes (most drivers); a value under 1 MiB is no byte count (Junos's driver gives MB)
    and is not compared.

    >>> memory_mb({"available_ram": 2 * 2**30}), memory_mb({"available_ram": 2048}), memory_mb({})
    (2048, None, None)
    """
    total = memory.get("available_ram")
    if not isinstance(total, int | float) or total < 2**20:
        return None
    return int(total // 2**20)


def network_reported(gw: NetworkGateway) -> dict[str, Any]:
    """What a network device reports of itself, and a first burn-in sample."""
    facts = gw.facts()
    return {
        "through": f"NAPALM ({gw.driver_name})",
        "serial": str(facts.get("serial_number") or "").strip(),
        "model": str(facts.get("model") or "").strip(),
        "vendor": facts.get("vendor"),
        "version": str(facts.get("os_version") or "").strip(),
        **network_sample(gw),
    }


def disks_of(reported: Any) -> dict[str, float | None]:
    """The server's disks by name with their size in GB (10^9 bytes) where the facts give
    it in bytes (``{name: bytes}``), ``None`` where they name the disk only (a list).

    >>> disks_of({"sda": 480103981056, "sdb": None}), disks_of(["sda"])
    ({'sda': 480.1, 'sdb': None}, {'sda': None})
    """
    if isinstance(reported, Mapping):
        return {
            str(k): round(int(v) / 1e9, 2) if v not in (None, "") else None
            for k, v in reported.items()
        }
    return {str(name): None for name in reported or ()}


def server_reported(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """What a server reports of itself (``acceptance_facts.yml``'s evidence) with its first
    sample: the firmware's serial, else (firmware with none) its asset fact's, named."""
    serial, source = str(evidence.get("serial") or "").strip(), "firmware (DMI)"
    if placeholder(serial) and str(evidence.get("asset_serial") or "").strip():
        serial = str(evidence["asset_serial"]).strip()
        source = "asset fact (/etc/ansible/facts.d/asset.fact; the firmware reports none)"
    samples = list(evidence.get("samples") or [{}])
    return {
        "through": "Ansible facts",
        "serial": serial,
        "serial_source": source,
        "model": str(evidence.get("model") or "").strip(),
        "version": str(evidence.get("version") or "").strip(),
        "memory_mb": int(evidence.get("memory_mb") or 0),
        "disks": disks_of(evidence.get("disks")),
        "interfaces": dict(samples[0].get("interfaces") or {}),
        "counters": dict(samples[0].get("counters") or {}),
        "temperatures": dict(samples[0].get("temperatures") or {}),
    }


# ---- the runbook ---------------------------------------------------------------------------


class EquipmentAcceptance(JournalWitness, LibraryRunbook[AcceptanceParams]):
    """Accept a delivered device or server: what it reports against NetBox, a burn-in, then
    its NetBox status."""

    name = "equipment-acceptance"
    title = "Equipment acceptance: what a delivered device reports against NetBox, a burn-in"
    instruction = "16 IT 設備驗收與安裝、測試 equipment acceptance, install and test"
    expected_duration = timedelta(minutes=15)
    Params = AcceptanceParams
    journaled = ("plan_status",)

    def new_state(self) -> dict[str, Any]:
        return {}

    def ws(self, ctx: RunContext, fresh: bool = False) -> DeviceWorkingSet:
        state: dict[str, Any] = ctx.state
        if fresh or "ws" not in state:
            state["ws"] = self.netbox(ctx).working_set(self.p.device)
        ws: DeviceWorkingSet = state["ws"]
        return ws

    def is_server(self, ctx: RunContext) -> bool:
        """A server is read through Ansible: its platform is the one NetBox's Ansible
        inventory takes (``inventory/netbox.yml``); any other platform through NAPALM."""
        ws = self.ws(ctx)
        return ws.platform is not None and ws.platform.slug in SERVER_PLATFORMS

    def server_facts(self, ctx: RunContext, samples: int = 1) -> dict[str, Any]:
        """The server's facts and ``samples`` samples, taken on the host in one play."""
        extravars = {
            "acceptance_targets": self.p.device,
            "acceptance_samples": samples,
            "acceptance_every": self.p.sample_every,
        }
        result = self.ansible(ctx).check(FACTS_PLAYBOOK, limit=[self.p.device], extravars=extravars)
        return dict(result.evidence().get(self.p.device, {}))

    def read(
        self, ctx: RunContext, samples: int = 0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """What the device reports, and ``samples`` burn-in samples after it, one
        ``sample_every`` apart (a server: one play; a network device: one login, read-only
        in runs too)."""
        if self.is_server(ctx):
            evidence = self.server_facts(ctx, 1 + samples)
            taken = list(evidence.get("samples") or [])[1:]
            return server_reported(evidence), taken
        reading = read_only(ctx)
        try:
            gw = NetworkGateway.for_device(reading, nc.device_target(self.ws(ctx)))
            reported = network_reported(gw)
            taken = []
            for _ in range(samples):
                time.sleep(self.p.sample_every)
                taken.append(network_sample(gw))
        finally:
            if reading is not ctx:
                reading.close()
        return reported, taken

    # ---- 1. NetBox

    @check("What NetBox expects of {device}: serial, model, version, interfaces", targets=TARGET)
    def netbox_expects(self, ctx: RunContext) -> dict[str, Any]:
        ws = self.ws(ctx, fresh=True)
        if ws.status not in (*ACCEPTABLE_FROM, self.p.target_status):
            raise InventoryError(
                f"{ws.name} is {ws.status} in NetBox; acceptance takes a delivered device "
                f"({', '.join(ACCEPTABLE_FROM)})"
            )
        return {**expected_of(ws), "kind": "server" if self.is_server(ctx) else "network device"}

    # ---- 2. the device

    @check(
        "What {device} reports, against NetBox (every difference refuses it)",
        targets=TARGET,
        duration=timedelta(seconds=45),
    )
    def device_matches_netbox(self, ctx: RunContext) -> dict[str, Any]:
        expected = evidence_of(ctx, "netbox_expects")
        reported, _ = self.read(ctx)
        found = differences(self.p.device, expected, reported)
        if found:
            raise refusal(f"{self.p.device} does not match NetBox, not accepted", found)
        return {"reported": reported, "not_compared": not_compared(expected, reported)}

    # ---- 3. burn-in

    @check(
        "Burn-in of {device}: interfaces up, errors not growing, temperatures",
        targets=TARGET,
        # the burn-in itself, a last sample's interval, and a minute to log in and read
        duration=lambda rb: timedelta(seconds=rb.p.burn_in + rb.p.sample_every + 60),
    )
    def burn_in(self, ctx: RunContext) -> dict[str, Any]:
        expected = evidence_of(ctx, "netbox_expects")
        plan = {
            "burn_in_s": self.p.burn_in,
            "sample_every_s": self.p.sample_every,
            "up": expected["up"],
        }
        if ctx.planning:
            return {**plan, "note": "the burn-in runs in the run"}
        count = math.ceil(self.p.burn_in / self.p.sample_every)  # burn_in=0: the first only
        started = time.monotonic()
        first, later = self.read(ctx, samples=count)
        samples = [first, *later]
        findings = burn_in_findings(self.p.device, expected["up"], samples)
        if findings:
            raise refusal(f"{self.p.device} failed its burn-in", findings)
        return {
            **plan,
            "samples": len(samples),
            "took_s": round(time.monotonic() - started, 1),
            "counters_end": samples[-1].get("counters"),
            "temperatures": samples[-1].get("temperatures"),
        }

    # ---- 4. NetBox: accepted

    @change("Mark {device} {target_status} in NetBox (accepted)", targets=TARGET)
    def plan_status(self, ctx: RunContext) -> list[Diff]:
        ws = self.ws(ctx, fresh=True)
        if ws.status == self.p.target_status:
            return []
        return [self.netbox(ctx).plan_device_status(ws, self.p.target_status)]

    @plan_status.apply
    def write_status(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.netbox(ctx).apply(diffs).evidence()

    @plan_status.undo
    def restore_status(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.netbox(ctx).undo(diffs)

    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        ws = self.ws(ctx)
        return [
            Witnessed("dcim.device", ws.id, ws.name, "Accepted: matches NetBox, burn-in passed")
        ]

    plan_journal_entry = journal_step(
        "Witness the run in the NetBox journal of {device}", targets=TARGET
    )
