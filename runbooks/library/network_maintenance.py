"""2 網絡系統維護 network system maintenance: backup, compliance and evidence for the fleet.

The procedure, in order (read-only on the devices and in NetBox; the one write is the
configuration history on this machine). In runs as in plans each device is read through the
gateway in its plan mode (`read_only`): its driver behind the read-only guard, a compare that
leaves nothing on the device, and on drivers whose own compare writes there (NAPALM's IOS
and NX-OS copy the candidate to flash) a diff made locally instead:

1. The devices are selected from NetBox by site, role, tag and platform (each a list; none
   given: any), of the statuses asked for (``active`` by default). Each needs a platform, a
   management address, and a NAPALM driver installed for it; a device lacking one is named
   in the record as not covered, with why.
2. Each device is surveyed on one login, ``parallel`` devices at a time
   (`runbooks.library.network_survey`): its running configuration, sanitised (the backup,
   kept in the run's record; a plan records its digest only); the compliance diff against
   the configuration NetBox renders for it, as the device itself compares them; its facts
   and uptime, its BGP sessions against those NetBox implies, its LLDP neighbours against
   NetBox's connected cables, its interface errors. A device that cannot be reached is
   recorded unreachable, with why; a part of its evidence NetBox or the device could not
   give is recorded not checked, or as that part's error: it never stops the others.
   NetBox renders the fleet's configurations in a few requests while the devices log in
   (`NetBoxGateway.render_configs`: the netbox-runbooks plugin's render-configs, else
   render-config per device).
3. The compliance summary: the devices compliant, drifted (each with its diff), unreachable
   and not renderable (each with why), and those whose evidence is incomplete (what was not
   checked). Unreachable and not renderable devices, and incomplete evidence, are the
   review's warnings: their compliance or state could not be checked.
4. The backups are committed to the configuration history (setting ``config_history``): a
   git repository with one file per device (`runbooks.library.network_history`), one commit
   per run whose message names the run and sums up the compliance; a device not reached
   keeps its last backup. The commit is history: it is not undone.

Drifted devices are put back by remediation, a change of its own, reviewed and approved.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from runbooks import config
from runbooks.core.context import RunContext
from runbooks.core.errors import GatewayError, InventoryError
from runbooks.core.gateway import Mode
from runbooks.core.results import Diff
from runbooks.core.runbook import Params
from runbooks.core.steps import change, check
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_model import WORKING_SET_QUERY, DeviceWorkingSet
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.library import network_common as nc
from runbooks.library import network_survey as ns
from runbooks.library.base import LibraryRunbook
from runbooks.library.network_history import ConfigHistory, refuse_collisions

log = logging.getLogger(__name__)

# The working set of many devices in one GraphQL request: the rack runbooks' query for one
# device, asked for a list of names
FLEET_QUERY = WORKING_SET_QUERY.replace("($name: String!)", "($names: [String!]!)").replace(
    "{name: {exact: $name}}", "{name: {in_list: $names}}"
)
# The same for the state evidence only (cables, their peers, addresses, AS numbers: what BGP
# and LLDP are compared with): no config context, rack or tenant. NetBox computes a config
# context per device, and on a machine it shares with the devices that CPU is the fleet's.
STATE_QUERY = """
query FleetState($names: [String!]!) {
  device_list(filters: {name: {in_list: $names}}) {
    id name status custom_fields
    site { id name slug } role { id name slug } platform { id name slug }
    device_type { id model slug manufacturer { id name slug } }
    primary_ip4 { id address } oob_ip { id address }
    interfaces {
      id name
      ip_addresses { id address status role }
      cable { id status }
      link_peers {
        __typename
        ... on InterfaceType { id name device { id name status } }
        ... on FrontPortType { id name device { id name status } }
        ... on RearPortType { id name device { id name status } }
      }
    }
  }
}
"""
# The survey's state evidence compares only connected cables (`network_survey.judged`): the
# working sets of those interfaces alone. NetBox resolves each interface's addresses and link
# peers one by one, so an uncabled interface asked for costs NetBox's CPU and is never read.
CONNECTED_QUERY = STATE_QUERY.replace(
    "interfaces {", "interfaces(filters: {cable: {status: {exact: STATUS_CONNECTED}}}) {"
)
RENDERS_AT_ONCE = 4  # NetBox's rendering requests in flight (a few workers serve them)
# devices in one (`NetBoxGateway.render_configs`): a few seconds of NetBox's time at most, well
# inside the request's timeout even for slow templates
RENDERS_PER_REQUEST = 10
# What the selection reads of each device (REST ``fields``): enough to log in to it
DEVICE_FIELDS = "id,name,platform,primary_ip4,oob_ip,config_context"


class NetworkMaintenanceParams(Params):
    site: list[str] = Field(default_factory=list, description="NetBox site slugs (none: any)")
    role: list[str] = Field(default_factory=list, description="device role slugs (none: any)")
    tag: list[str] = Field(default_factory=list, description="tag slugs (none: any)")
    platform: list[str] = Field(default_factory=list, description="platform slugs (none: any)")
    status: list[str] = Field(
        default_factory=lambda: ["active"], min_length=1, description="device statuses"
    )
    parallel: int = Field(16, ge=1, le=64, description="devices surveyed at a time")

    @field_validator("site", "role", "tag", "platform", "status", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """``role=spine,leaf`` on the command line."""
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def filters(self) -> dict[str, list[str]]:
        """NetBox's REST filters for the selection (slugs; lists are or-ed)."""
        named = {
            "site": self.site,
            "role": self.role,
            "tag": self.tag,
            "platform": self.platform,
            "status": self.status,
        }
        return {key: values for key, values in named.items() if values}

    def selection(self) -> str:
        """The selection as a reviewer reads it.

        >>> NetworkMaintenanceParams(role=["core", "edge"]).selection()
        'NetBox devices role=core,edge status=active'
        """
        words = [f"{key}={','.join(values)}" for key, values in self.filters().items()]
        return "NetBox devices " + " ".join(words)


def _selection(runbook: Any) -> list[str]:
    return [runbook.params.selection()]


@dataclass
class FleetState:
    """What one plan or run read from NetBox: the devices selected (REST records, name →
    record) and the working sets of them and their cable peers. A resumed run reads them
    again from the names its record holds."""

    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    around: dict[str, DeviceWorkingSet] = field(default_factory=dict)


def working_sets(
    nb: NetBoxGateway, names: list[str], query: str = FLEET_QUERY
) -> dict[str, DeviceWorkingSet]:
    """The working sets of the named devices, in one request (`STATE_QUERY`: without their
    config contexts)."""
    if not names:
        return {}
    data = nb.http.graphql(query, {"names": names}, f"working sets of {len(names)} devices")
    found = [DeviceWorkingSet.parse(d) for d in data.get("device_list") or []]
    return {ws.name: ws for ws in found}


def render_batches(names: list[str]) -> list[list[str]]:
    """The devices' renderings asked in `RENDERS_AT_ONCE` requests at a time, in the order
    the devices are surveyed: the fleet split evenly over the requests in flight (at most
    `RENDERS_PER_REQUEST` each), so the first devices' renderings come first.

    >>> [len(b) for b in render_batches([str(i) for i in range(20)])]
    [5, 5, 5, 5]
    >>> [len(b) for b in render_batches([str(i) for i in range(130)])][:2]
    [10, 10]
    """
    size = max(1, min(RENDERS_PER_REQUEST, math.ceil(len(names) / RENDERS_AT_ONCE)))
    return [names[i : i + size] for i in range(0, len(names), size)]


def rendered(batch: Future[dict[int, str | GatewayError]], device_id: int) -> str:
    """One device's rendering from its batch's answer (waits for it), or the error NetBox's
    render-config of it would raise."""
    answer = batch.result()[device_id]
    if isinstance(answer, GatewayError):
        raise answer
    return answer


def target_of(device: dict[str, Any]) -> DeviceTarget:
    """How to reach a device, from its NetBox REST record (`DEVICE_FIELDS`): its primary
    IPv4 (else out-of-band) address, its platform, its config context's NAPALM options.

    >>> target_of({"name": "r1", "primary_ip4": {"address": "203.0.113.7/24"},
    ...            "platform": {"slug": "eos"}, "config_context": {}}).host
    '203.0.113.7'
    """
    name = str(device["name"])
    address = (device.get("primary_ip4") or device.get("oob_ip") or {}).get("address")
    if not address:
        raise InventoryError(f"{name} has no primary or out-of-band IPv4 address in NetBox")
    platform = device.get("platform") or {}
    slug = platform.get("slug") or platform.get("name")
    if not slug:
        raise InventoryError(f"{name} has no platform in NetBox: which driver would talk to it?")
    host = str(address).split("/", maxsplit=1)[0]
    return DeviceTarget.from_netbox(name, host, str(slug), device.get("config_context") or {})


def read_only(ctx: RunContext) -> RunContext:
    """The context a device is surveyed through: a plan's, in runs too, so the gateway it
    opens is in plan mode (`runbooks.gateways.network_guard`: the driver behind the read-only
    guard, a compare leaving nothing on the device or diffed locally). A run's gets a gateway
    cache of its own (the survey closes the one it opens); the rest is the run's."""
    if ctx.planning:
        return ctx
    return dataclasses.replace(ctx, mode=Mode.PLAN, _gateways={})


def not_covered(device: DeviceWorkingSet | dict[str, Any]) -> str | None:
    """Why no NAPALM driver can survey the device, given as its working set or its REST
    record (None: one can). Asks no device."""
    try:
        target = (
            nc.device_target(device)
            if isinstance(device, DeviceWorkingSet)
            else (target_of(device))
        )
        # a gateway made only to ask its driver class (no credentials: it never opens)
        probe = NetworkGateway(Mode.PLAN, target, Credentials(""))
        if not probe.supports("get_config"):
            return f"the {probe.driver_name} driver has no get_config"
    except InventoryError as exc:
        return str(exc)
    return None


class NetworkMaintenance(LibraryRunbook[NetworkMaintenanceParams]):
    """Back up, check compliance and gather evidence on every network device of a selection."""

    name = "network-maintenance"
    title = "Network maintenance: configuration backup, compliance and evidence"
    instruction = "2 網絡系統維護 network system maintenance"
    expected_duration = timedelta(minutes=10)
    Params = NetworkMaintenanceParams

    def new_state(self) -> FleetState:
        return FleetState()

    @staticmethod
    def state(ctx: RunContext) -> FleetState:
        assert isinstance(ctx.state, FleetState), "network-maintenance's context holds a FleetState"
        return ctx.state

    def devices(self, ctx: RunContext) -> dict[str, dict[str, Any]]:
        """The devices the selection covers, as NetBox's REST records (read again in a
        resumed run, by the names its record holds)."""
        state = self.state(ctx)
        if not state.devices:
            names = list(ctx.results["select_devices"].evidence["devices"])
            found = self.netbox(ctx).find("dcim.device", name=names, fields=DEVICE_FIELDS)
            state.devices = {str(d["name"]): d for d in found}
        return state.devices

    def around(self, ctx: RunContext) -> dict[str, DeviceWorkingSet]:
        """The working sets of the fleet and of every peer across a connected cable (the BGP
        sessions NetBox implies need the peers' addresses and AS numbers), their connected
        interfaces only (`CONNECTED_QUERY`): two requests at most."""
        state = self.state(ctx)
        if not state.around:
            nb = self.netbox(ctx)
            fleet = working_sets(nb, sorted(self.devices(ctx)), CONNECTED_QUERY)
            peers = {link.peer_device for ws in fleet.values() for link in nc.links_of(ws)}
            more = working_sets(nb, sorted(peers - set(fleet)), CONNECTED_QUERY)
            state.around = {**fleet, **more}
        return state.around

    # ---- 1. the devices ------------------------------------------------------------------

    @check("Select the devices from NetBox that a NAPALM driver reaches", targets=_selection)
    def select_devices(self, ctx: RunContext) -> dict[str, Any]:
        found = self.netbox(ctx).find("dcim.device", **self.p.filters(), fields=DEVICE_FIELDS)
        if not found:
            raise InventoryError(f"no device matches: {self.p.selection()}")
        covered, skipped = {}, {}
        for device in sorted(found, key=lambda d: str(d["name"])):
            why = not_covered(device)
            if why is None:
                covered[str(device["name"])] = device
            else:
                skipped[str(device["name"])] = why
        if not covered:
            raise InventoryError(f"no device of {self.p.selection()} has a NAPALM driver")
        refuse_collisions(covered)  # before any login: one backup would overwrite another
        self.state(ctx).devices = covered
        devices = {
            name: {"platform": target.platform, "address": target.host}
            for name, target in ((n, target_of(d)) for n, d in covered.items())
        }
        return {"selection": self.p.selection(), "devices": devices} | (
            {"not_covered": skipped} if skipped else {}
        )

    # ---- 2. one login per device -------------------------------------------------------------

    @check(
        "Back up each device's configuration, compare it with NetBox's rendering, gather "
        "facts, BGP, LLDP and interface errors (one login per device, {parallel} at a time)",
        targets=_selection,
        duration=timedelta(minutes=5),
    )
    def survey_devices(self, ctx: RunContext) -> dict[str, Any]:
        fleet, nb = self.devices(ctx), self.netbox(ctx)
        started = time.monotonic()
        workers = min(self.p.parallel, len(fleet))
        # NetBox's reads go on while the devices log in: the working sets on a thread of their
        # own (the state evidence, needed last, waits for them), the renderings in batches on
        # the render pool from the start (a device's compare waits for its batch)
        ids = {name: int(device["id"]) for name, device in fleet.items()}
        with (
            ThreadPoolExecutor(1, "netbox-state") as state,
            ThreadPoolExecutor(min(RENDERS_AT_ONCE, len(fleet)), "netbox-render") as reads,
            ThreadPoolExecutor(workers, "device-survey") as devices,
        ):
            around = state.submit(self.around, ctx)
            renders: dict[str, Future[dict[int, str | GatewayError]]] = {}
            for names in render_batches(list(fleet)):
                batch = reads.submit(nb.render_configs, [ids[name] for name in names])
                renders |= dict.fromkeys(names, batch)
            jobs = {
                name: devices.submit(
                    self.survey_one,
                    ctx,
                    device,
                    around.result,
                    partial(rendered, renders[name], ids[name]),
                )
                for name, device in fleet.items()
            }
            surveys = {name: jobs[name].result() for name in sorted(jobs)}
        took = round(time.monotonic() - started, 2)
        return {"devices": surveys, "took_s": took, "parallel": workers}

    def survey_one(
        self,
        ctx: RunContext,
        device: dict[str, Any],
        around: ns.WorkingSets,
        rendering: ns.Rendering,
    ) -> dict[str, Any]:
        """One device on the run's one session to it, read-only (`read_only`). A run closes
        it when done (nothing later in the run needs the device); a plan keeps it, so the run
        of a change, which re-plans just before it runs, goes on on it (`Engine.replan`):
        the run takes the session its re-plan opened, behind the read-only guard again
        (`NetworkGateway.reopen`): its ``logins`` then counts none, and ``replan_session``
        says so. Whatever fails is this device's only: recorded, never raised."""
        try:
            gw, reused = self.session_to(ctx, target_of(device))
        except Exception as exc:  # its credentials, say: this device's failure only
            return {"state": ns.UNREACHABLE, "why": str(exc)}
        try:
            surveyed = ns.survey(gw, around, rendering, keep_config=not ctx.planning)
            return surveyed | {"logins": gw.logins} | ({"replan_session": True} if reused else {})
        except Exception as exc:  # a bug in the survey: still this device's only
            log.exception("%s: the survey failed", device.get("name"))
            why = f"the survey failed: {type(exc).__name__}: {exc}"
            return {"state": ns.UNREACHABLE, "why": why}
        finally:
            if not ctx.planning:
                try:
                    gw.close()
                except Exception as exc:  # the survey is done: a failed logout loses nothing
                    log.warning("%s: closing the session failed: %s", device.get("name"), exc)

    @staticmethod
    def session_to(ctx: RunContext, target: DeviceTarget) -> tuple[NetworkGateway, bool]:
        """The device's read-only gateway: in a plan, the plan's; in a run, the session its
        re-plan handed over (`RunContext.take_over`) if any, else a new one. True: the
        re-plan's."""
        reading = read_only(ctx)
        kept = None if ctx.planning else ctx.release(NetworkGateway, target.name)
        if kept is not None:
            moved = kept.reopen(reading)
            if moved is not None:
                return moved, True
            kept.close()
        return NetworkGateway.for_device(reading, target), False

    # ---- 3. the summary ------------------------------------------------------------------------

    @check("Compliance summary: compliant, drifted, unreachable, not renderable")
    def compliance_summary(self, ctx: RunContext) -> dict[str, Any]:
        summary = ns.summary(ctx.results["survey_devices"].evidence["devices"])
        warnings = [f"{name} unreachable: {why}" for name, why in summary["unreachable"].items()]
        warnings += [
            f"{name} not renderable: {why}" for name, why in summary["not_renderable"].items()
        ]
        warnings += [f"{name} not checked: {why}" for name, why in summary["not_checked"].items()]
        return summary | ({"warnings": warnings} if warnings else {})

    # ---- 4. the configuration history ------------------------------------------------------------

    @change(
        "Commit the backups to the configuration history, one commit naming the run", recurs=True
    )
    def plan_history_commit(self, ctx: RunContext) -> Diff:
        where = config.config_history()
        return Diff(
            target=f"configuration history {where}",
            kind="create",
            summary="one git commit naming the run: each device reached, its sanitised "
            "running configuration in <device>.cfg",
            after=str(where),
        )

    @plan_history_commit.apply
    def commit_history(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        surveys = ctx.results["survey_devices"].evidence["devices"]
        configs = {name: str(s["config"]) for name, s in surveys.items() if "config" in s}
        summary = ctx.results["compliance_summary"].evidence
        message = commit_message(self.name, ctx.run_id, summary)
        return self.history(diffs).commit(configs, message, ctx.actor).evidence()

    @plan_history_commit.verify
    def history_holds_the_run(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.history(diffs).commit_naming(f"run {ctx.run_id}") is not None

    @staticmethod
    def history(diffs: list[Diff]) -> ConfigHistory:
        return ConfigHistory(Path(str(diffs[0].after)))


def commit_message(runbook: str, run_id: str, summary: dict[str, Any]) -> str:
    """The commit's message: the run on its first line, then the compliance summary.

    >>> print(commit_message("network-maintenance", "r-1", {"compliant": ["a"],
    ...     "drifted": {"b": "+x"}, "unreachable": {"c": "timed out"}, "not_renderable": {}}))
    network-maintenance run r-1: 1 compliant, 1 drifted, 1 unreachable, 0 not renderable
    <BLANKLINE>
    compliant: a
    drifted: b
    unreachable: c (timed out)
    >>> commit_message("n", "r-2", {"not_checked": {"a": "lldp: x"}}).splitlines()[-1]
    'evidence not checked: a'
    """
    keys = ("compliant", "drifted", "unreachable", "not_renderable")
    counts = ", ".join(f"{len(summary.get(k) or ())} {k.replace('_', ' ')}" for k in keys)
    lines = [f"{runbook} run {run_id}: {counts}", ""]
    for key in keys:
        found = summary.get(key) or {}
        if not found:
            continue
        names = [
            f"{name} ({found[name]})" if key in ("unreachable", "not_renderable") else name
            for name in found
        ]
        lines.append(f"{key.replace('_', ' ')}: {', '.join(names)}")
    if summary.get("not_checked"):
        lines.append(f"evidence not checked: {', '.join(summary['not_checked'])}")
    return "\n".join(lines)
