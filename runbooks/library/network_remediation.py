"""2 網絡系統維護 network system maintenance — remediation: drifted devices back to what NetBox
renders, as an approved change, in canary batches.

The procedure, in order:

1. The devices are selected from NetBox by site, role, tag and platform, of the statuses asked
   for (``active`` by default), as network-maintenance selects them; a device no NAPALM driver
   reaches is named as not covered, with why.
2. Each device's running configuration is compared with the configuration NetBox renders for
   it, by the device itself (sanitised: no secret is shown or recorded). Compliant devices are
   named and left alone; a device unreachable or whose rendering it does not take is named
   too (a warning for the reviewer) and left alone. A device whose driver has no
   commit-confirm is named: its batch is committed without a device-side revert.
3. The drifted devices get NetBox's rendering in canary batches (`runbooks.core.batches`):
   one device first, then batches of ``batch_size``. For each batch: BGP sessions and LLDP
   neighbours are read (the baseline); the rendering is committed with commit-confirm where
   the platform has it; the post-checks wait up to ``settle_timeout_s`` for BGP and LLDP to
   be no worse than the baseline, device by device; then the commits are confirmed. On the
   first regression the batch goes back (a pending commit rolled back, the recorded
   configuration restored) and the run stops: the batches before stay done, the ones after
   are recorded as not run. Once confirmed, each device of the batch must run NetBox's
   rendering: one whose commit-confirm timer ran out before the confirmation went back by
   itself to its drifted configuration, and that fails the batch too. Parameters whose
   post-checks of a whole batch cannot finish inside the timer are refused.

A post-check that cannot fail is never a silent pass: before the batches, the devices whose
driver lacks a getter the post-checks read (BGP, LLDP) or commit-confirm, and those of which
NetBox expects nothing (no connected cable, no BGP session), are named in the plan's
warnings (the reviewer decides); each batch's record names, device by device, the checks
not run there.

The review document shows each drifted device's diff under its batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

from pydantic import Field, model_validator

from runbooks.core.batches import batched
from runbooks.core.context import RunContext
from runbooks.core.errors import UnsupportedError, VerificationError
from runbooks.core.results import Diff
from runbooks.core.steps import check
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.library import network_common as nc
from runbooks.library import network_survey as ns
from runbooks.library import rack_steps as rs
from runbooks.library.base import LibraryRunbook
from runbooks.library.network_common import Link, Session
from runbooks.library.network_maintenance import (
    RENDERS_AT_ONCE,
    NetworkMaintenanceParams,
    not_covered,
    working_sets,
)
from runbooks.library.witness import Witnessed

log = logging.getLogger(__name__)

SUMMARY = "configuration rendered by NetBox"

# What a batch takes besides ``settle_timeout_s`` before its first device's commit-confirm
# timer runs out: a margin for the confirmation itself, and for each device of the batch
# its commit and one reading of its BGP and LLDP (the post-checks' last round)
CONFIRM_MARGIN_S = 30
PER_DEVICE_S = 10


class NetworkRemediationParams(NetworkMaintenanceParams):
    parallel: int = Field(16, ge=1, le=64, description="devices compared at a time")
    batch_size: int = Field(2, ge=1, le=100, description="devices per batch after the canary")
    confirm_within_s: int = Field(
        300,
        ge=30,
        le=3600,
        description="commit-confirm (where the platform has it): a batch reverts unless "
        "confirmed in time",
    )
    settle_timeout_s: float = Field(
        60, gt=0, le=900, description="how long BGP and LLDP may take to be no worse"
    )

    @model_validator(mode="after")
    def _post_checks_fit_the_timer(self) -> NetworkRemediationParams:
        """A batch's post-checks end before its commit-confirm timer: else a device goes
        back by itself while they run."""
        needed = self.settle_timeout_s + CONFIRM_MARGIN_S + PER_DEVICE_S * self.batch_size
        if needed >= self.confirm_within_s:
            raise ValueError(
                f"settle_timeout_s {self.settle_timeout_s:g} + {CONFIRM_MARGIN_S} s + "
                f"{PER_DEVICE_S} s for each of batch_size {self.batch_size} devices is "
                f"{needed:g} s, not less than confirm_within_s {self.confirm_within_s}: a "
                "batch's post-checks must end before its commit-confirm reverts it (raise "
                "confirm_within_s, or lower settle_timeout_s or batch_size)"
            )
        return self


def _selection(runbook: Any) -> list[str]:
    return [runbook.params.selection()]


def regressions(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """The problems ``after`` has that ``before`` had not, device by device.

    >>> regressions({"a": ["x"]}, {"a": ["x", "y"], "b": []})
    ['a: y']
    """
    return [
        f"{name}: {problem}"
        for name, problems in after.items()
        for problem in problems
        if problem not in before.get(name, [])
    ]


class NetworkRemediation(rs.RackSteps, LibraryRunbook[NetworkRemediationParams]):
    """Put drifted network devices back to NetBox's rendering, in canary batches."""

    name = "network-remediation"
    title = "Network remediation: drifted devices back to NetBox's rendering, in canary batches"
    instruction = "2 網絡系統維護 network system maintenance (remediation)"
    expected_duration = timedelta(minutes=30)
    Params = NetworkRemediationParams
    checks_need = (
        rs.Needs("plan_remediation", "get_bgp_neighbors"),
        rs.Needs("plan_remediation", "get_lldp_neighbors"),
        rs.Needs("plan_remediation", rs.COMMIT_CONFIRM),
    )

    def fleet(self, ctx: RunContext) -> list[DeviceWorkingSet]:
        """The selected devices (their names from the record: a resumed run reads them again)."""
        names = list(ctx.results["select_devices"].evidence["devices"])
        missing = [n for n in names if n not in rs.state(ctx).seen]
        rs.state(ctx).seen.update(working_sets(self.netbox(ctx), missing))
        return [self.ws(ctx, name) for name in names]

    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        return [Witnessed("dcim.device", ws.id, ws.name) for ws in self.fleet(ctx)]

    # ---- 1. the devices ------------------------------------------------------------------------

    @check("Select the devices from NetBox that a NAPALM driver reaches", targets=_selection)
    def select_devices(self, ctx: RunContext) -> dict[str, Any]:
        nb = self.netbox(ctx)
        names = sorted({str(d["name"]) for d in nb.find("dcim.device", **self.p.filters())})
        found = working_sets(nb, names)
        why_not = {name: not_covered(ws) for name, ws in found.items()}
        covered = sorted(name for name, why in why_not.items() if why is None)
        if not covered:
            raise VerificationError(f"no device of {self.p.selection()} has a NAPALM driver")
        rs.state(ctx).seen.update({name: found[name] for name in covered})
        skipped = {name: why for name, why in why_not.items() if why is not None}
        evidence = {"selection": self.p.selection(), "devices": covered}
        return evidence | ({"not_covered": skipped} if skipped else {})

    # ---- 2. compliance ---------------------------------------------------------------------------

    @check("Compare each device with the configuration NetBox renders", targets=_selection)
    def compare_with_netbox(self, ctx: RunContext) -> dict[str, Any]:
        fleet = self.fleet(ctx)
        renders = threading.BoundedSemaphore(RENDERS_AT_ONCE)
        with ThreadPoolExecutor(min(self.p.parallel, len(fleet)), "device-compare") as pool:
            compared = list(pool.map(partial(self.compare_one, ctx, renders), fleet))
        found: dict[str, dict[str, str]] = {state: {} for state in ns.STATES}
        for ws, state, why in compared:
            found[state][ws.name] = why
        warnings = [f"{n} unreachable: {w}" for n, w in found[ns.UNREACHABLE].items()]
        warnings += [f"{n} not renderable: {w}" for n, w in found[ns.NOT_RENDERABLE].items()]
        evidence: dict[str, Any] = {
            "compliant": sorted(found[ns.COMPLIANT]),
            "drifted": sorted(found[ns.DRIFTED]),
            "unreachable": found[ns.UNREACHABLE],
            "not_renderable": found[ns.NOT_RENDERABLE],
        }
        return evidence | ({"warnings": warnings} if warnings else {})

    def compare_one(
        self, ctx: RunContext, renders: threading.BoundedSemaphore, ws: DeviceWorkingSet
    ) -> tuple[DeviceWorkingSet, str, str]:
        """One device: its state (`network_survey.STATES`) and why. What the reviewer should
        know of a drifted one (no commit-confirm, a diff made locally) the next step names."""
        gw = self.device(ctx, ws)
        try:
            gw.config()
        except Exception as exc:  # this device's failure only: named, left alone
            return ws, ns.UNREACHABLE, str(exc)

        def rendering() -> str:
            with renders:
                return self.rendering(ctx, ws.name, rs.SERVICE)

        result = ns.compliance(gw, rendering)
        return ws, str(result["state"]), str(result.get("why", ""))

    @check("Each device's driver can answer the post-checks", targets=_selection)
    def drivers_can_answer(self, ctx: RunContext) -> dict[str, Any]:
        """For each drifted device: the rack runbooks' pre-check (`RackSteps.drivers_answer`:
        a driver lacking the BGP or LLDP getter or commit-confirm, a diff made locally), and
        a post-check NetBox gives nothing to expect (no connected cable, no BGP session).
        Each is a warning: such a check cannot fail there, the reviewer decides."""
        drifted = set(ctx.results["compare_with_netbox"].evidence["drifted"])
        title = self.title_of("plan_remediation")
        drivers: dict[str, str] = {}
        cannot: list[dict[str, str]] = []
        warnings: list[str] = []
        for ws in (ws for ws in self.fleet(ctx) if ws.name in drifted):
            answer = self.drivers_answer(ctx, ws, {})
            drivers |= answer["drivers"]
            cannot += answer["cannot_check"]
            warnings += answer.get("warnings", [])
            gw = self.device(ctx, ws)
            for why in self.nothing_expected(*self.expected(ctx, ws)):
                cannot.append(
                    {
                        "check": title,
                        "device": ws.name,
                        "platform": gw.target.platform,
                        "driver": gw.driver_name,
                        "why": why,
                    }
                )
                warnings.append(f"{title}: cannot fail on {ws.name}: {why}")
        evidence: dict[str, Any] = {"drivers": drivers, "cannot_check": cannot}
        return evidence | ({"warnings": warnings} if warnings else {})

    # ---- 3. remediation in canary batches ------------------------------------------------------

    @batched(
        "Configure the drifted devices as NetBox renders them, in canary batches of "
        "{batch_size} (commit-confirm where the platform has it)",
        batch_size="batch_size",
        targets=_selection,
        unit=nc.device_of,
        duration=timedelta(minutes=3),
    )
    def plan_remediation(self, ctx: RunContext) -> list[Diff]:
        drifted = set(ctx.results["compare_with_netbox"].evidence["drifted"])
        devices = [ws for ws in self.fleet(ctx) if ws.name in drifted]
        return self.config_diffs(ctx, devices, rs.SERVICE, SUMMARY, confirm=False)

    @plan_remediation.baseline
    def read_health(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        problems, not_checked = self.health(ctx, [nc.device_of(d) for d in diffs])
        return {"problems": problems} | ({"not_checked": not_checked} if not_checked else {})

    @plan_remediation.apply
    def commit_rendering(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.commit_configs(ctx, diffs, rs.SERVICE, self.p.confirm_within_s)

    @plan_remediation.verify
    def rendering_in_place(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.configs_in_place(ctx, diffs)

    @plan_remediation.post_check
    def no_worse_than_before(
        self, ctx: RunContext, diffs: list[Diff], baseline: dict[str, Any]
    ) -> dict[str, Any]:
        """BGP sessions and LLDP neighbours no worse than the baseline, waited for."""
        before = baseline.get("problems", {})
        names = [nc.device_of(d) for d in diffs]
        deadline = time.monotonic() + self.p.settle_timeout_s
        while True:
            after, not_checked = self.health(ctx, names)
            worse = regressions(before, after)
            if not worse:
                return {"problems": after} | ({"not_checked": not_checked} if not_checked else {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise VerificationError(f"worse than before the batch: {'; '.join(worse)}")
            time.sleep(min(2.0, left))

    @plan_remediation.confirm
    def confirm_rendering(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        """Confirm each pending commit; then every device of the batch must run NetBox's
        rendering (`rack_steps.runs`, as the rack runbooks' confirmation checks): one with
        commit-confirm and nothing pending may have gone back by itself, its timer run out
        before the confirmation, to the drifted configuration. That fails the batch."""
        confirmed, without, reverted = [], [], []
        texts = [d for d in diffs if d.kind == "text"]
        for diff in texts:
            name = nc.device_of(diff)
            gw = self.gateway_named(ctx, name)
            if gw.commit_confirm_supported() and gw.has_pending_commit():
                gw.confirm()
                confirmed.append(name)
            else:
                without.append(name)
        for diff in texts:
            gw = self.gateway_named(ctx, nc.device_of(diff))
            if not rs.runs(gw, str(diff.after)):
                reverted.append(
                    f"{gw.target.name} went back to its earlier configuration (its "
                    "commit-confirm timer ran out before the confirmation)"
                    if gw.commit_confirm_supported()
                    else f"{gw.target.name} no longer runs what was committed (changed since)"
                )
        if reverted:
            raise VerificationError(
                f"{'; '.join(reverted)}: what the post-checks passed is not running"
            )
        return {"confirmed": confirmed} | ({"nothing_pending": without} if without else {})

    @plan_remediation.undo
    def restore_configuration(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.restore_configs(ctx, diffs)

    # -- the post-checks' reading
    def expected(self, ctx: RunContext, ws: DeviceWorkingSet) -> tuple[list[Link], list[Session]]:
        """The device's connected cables (LLDP's expectation) and the BGP sessions NetBox
        implies over them."""
        links = nc.links_of(ws, ["connected"])
        cabled = {link.interface for link in links}  # NetBox renders sessions over these
        if not links:
            return links, []
        expected = nc.expected_sessions(ws, self.peers(ctx, ws))
        return links, [s for s in expected if s.local_interface in cabled]

    @staticmethod
    def nothing_expected(links: list[Link], sessions: list[Session]) -> list[str]:
        """The post-checks that cannot fail on a device: NetBox expects nothing of it."""
        if not links:
            return ["BGP and LLDP: nothing expected (no connected cable in NetBox)"]
        if not sessions:
            return ["BGP: nothing expected (NetBox implies no session over its cables)"]
        return []

    def health(
        self, ctx: RunContext, names: Iterable[str]
    ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Each device's BGP problems (sessions NetBox implies over its connected cables:
        missing, down, wrong AS) and LLDP mismatches (those cables); and, device by device,
        the checks not run: a getter its driver lacks, nothing NetBox expects (never a
        regression, never a pass: named in the record)."""
        out: dict[str, list[str]] = {}
        not_run: dict[str, list[str]] = {}
        for name in names:
            ws = self.ws(ctx, name)
            gw = self.device(ctx, ws)
            problems: list[str] = []
            links, sessions = self.expected(ctx, ws)
            skipped = self.nothing_expected(links, sessions)
            if sessions:
                try:
                    problems += [f"BGP: {p}" for p in nc.bgp_problems(sessions, gw.bgp_neighbors())]
                except UnsupportedError as exc:
                    skipped.append(f"BGP {self.not_checked(gw, exc)}")
            if links:
                try:
                    lldp = gw.lldp_neighbors()
                    problems += [f"LLDP: {p}" for p in nc.lldp_mismatches(links, lldp)]
                except UnsupportedError as exc:
                    skipped.append(f"LLDP {self.not_checked(gw, exc)}")
            out[name] = problems
            if skipped:
                not_run[name] = skipped
        return out, not_run
