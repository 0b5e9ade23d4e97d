"""4 服務器維護 server maintenance: pre-checks, announcement, updates and baseline in canary
batches, post-checks.

The procedure, in order (the playbook ``playbooks/server_maintenance.yml`` does the host work,
one tag per part, and also runs on its own with plain ``ansible-playbook``):

1. The servers are in NetBox's inventory (netbox.netbox ``nb_inventory``), with an address.
2. Pre-checks on each server: free disk, available memory, load, failed services, pending
   package updates. A server not fit for maintenance stops the plan.
3. Announce the maintenance in each server's NetBox journal.
4. OS package updates and the department's baseline configuration (message of the day, SSH
   hardening, the status agent and its service); services restart where their configuration
   changed. In a plan this is Ansible's check mode: every file's diff is in the review, each
   under its batch. The servers with something to change roll in canary batches
   (`runbooks.core.batches`), in the order ``hosts`` names them: one server first, then
   batches of ``batch_size``, the servers of a batch maintained at once (Ansible's forks).
   For each batch:

   - its health is read (the ``health`` tag): the services running and the ports answering
     among those watched — the baseline's (the status agent; SSH and the agent's port) and
     those the maintenance declares (``services``, ``ports``);
   - the batch is maintained. A server where it fails is restored by the playbook
     (``rescue:``); while no more than ``max_failed_hosts`` servers of the run have failed,
     the rollback playbook runs on it too and the roll goes on without it (named in the
     batch's record, left out of the later checks and the closing journal entry); the one
     failure more fails the batch;
   - it is in place when the maintenance ran clean on each of its servers (every module
     converges and says so); a batch resumed after an interruption is checked in check mode;
   - its health is read again and compared, waiting up to ``settle_timeout_s``: a service
     that was running and is not, a port that answered and does not, or one of the
     baseline's own not running or answering after, is a regression. It fails the batch.

   A failed batch is rolled back (the rollback playbook restores each of its servers'
   snapshot) and the roll stops: the batches before stay done, the ones after are recorded
   as not run and untouched. A failure in the canary also withdraws the announcement.
   Package installs and upgrades are not rolled back.
5. Post-checks: the services are healthy and their ports listen.
6. Close the announcement in the NetBox journal: the maintenance is finished. The entry on
   each host witnesses the run (what it changed there and the record's head hash).

Every task's result (host, task, status, changed, diff, duration) is in the step's evidence.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from runbooks.core.batches import batched, parent_of
from runbooks.core.context import RunContext
from runbooks.core.errors import GatewayError, VerificationError
from runbooks.core.results import Diff, Status
from runbooks.core.runbook import Params
from runbooks.core.steps import change, check
from runbooks.gateways.ansible_events import PlaybookResult
from runbooks.gateways.ansible_settings import software_source
from runbooks.library import hosts_common
from runbooks.library.base import LibraryRunbook, comma_list
from runbooks.library.witness import HostJournalWitness, Witnessed, write_entries

log = logging.getLogger(__name__)

PLAYBOOK = "server_maintenance.yml"
ROLLBACK = "server_maintenance_rollback.yml"
MAINTAIN = ["packages", "baseline"]  # the playbook's tags that change a server
HEALTH = "health"  # its read-only tag: the services running and ports answering
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]*$")


class ServerMaintenanceParams(Params):
    hosts: list[str] = Field(
        min_length=1, description="servers by NetBox device name, in the order they roll"
    )
    packages: list[str] = Field(default_factory=list, description="packages that must be present")
    upgrade: bool = False  # apt "safe" upgrade of every installed package
    refresh_package_lists: bool = True  # tolerated when it fails (hosts without network)
    reason: str = "scheduled maintenance"
    agent_port: int | None = Field(
        default_factory=lambda: _setting_port("RUNBOOKS_BASELINE_AGENT_PORT"),
        validate_default=True,
        ge=1,
        le=65535,
        description="the port the baseline's status agent listens on (default: the setting "
        "baseline_agent_port, RUNBOOKS_BASELINE_AGENT_PORT)",
    )
    batch_size: int = Field(
        5, ge=1, le=100, description="servers per batch after the canary (the first batch: one)"
    )
    max_failed_hosts: int = Field(
        0,
        ge=0,
        le=1000,
        description="servers whose maintenance may fail (each restored alone) before the roll "
        "stops; 0: the first failure stops it",
    )
    services: list[str] = Field(
        default_factory=list,
        description="services each batch's health check watches besides the baseline's "
        "(one that was running must still run)",
    )
    ports: list[int] = Field(
        default_factory=list,
        description="TCP ports on each server's address the health check watches besides SSH "
        "and the status agent's (one that answered must still answer)",
    )
    settle_timeout_s: float = Field(
        30,
        ge=0,
        le=900,
        description="how long a batch's services and ports may take to come back before a "
        "missing one is a regression",
    )

    @field_validator("agent_port")
    @classmethod
    def _agent_port_named(cls, value: int | None) -> int:
        if value is None:
            raise ValueError(
                "give agent_port=<the status agent's port> or set the setting "
                "baseline_agent_port (RUNBOOKS_BASELINE_AGENT_PORT)"
            )
        return value

    _comma_list = field_validator("hosts", "packages", "services", "ports", mode="before")(
        comma_list
    )

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not SERVICE_NAME.match(v)]
        if bad:
            raise ValueError(f"not a service name: {', '.join(bad)}")
        return value

    @field_validator("ports")
    @classmethod
    def _port_numbers(cls, value: list[int]) -> list[int]:
        bad = [str(v) for v in value if not 1 <= v <= 65535]
        if bad:
            raise ValueError(f"not a TCP port: {', '.join(bad)}")
        return value


def _setting_port(variable: str) -> int | str | None:
    """A port from the settings (the file's value arrives as its variable); validated as the
    parameter is."""
    return os.environ.get(variable, "").strip() or None


def _hosts(runbook: Any) -> list[str]:
    return list(runbook.params.hosts)


def host_of(diff: Diff) -> str:
    """The server a playbook diff is on (its target is ``<host>:<file or task>``).

    >>> host_of(Diff.of_text("web1:/etc/motd", "a", "b"))
    'web1'
    """
    return diff.target.partition(":")[0]


def hosts_of(diffs: Iterable[Diff]) -> list[str]:
    return list(dict.fromkeys(host_of(d) for d in diffs))


def failed_hosts(result: PlaybookResult) -> dict[str, str]:
    """Each server the playbook failed on, and why (its first failed task)."""
    out = {h: "unreachable" for h in result.unreachable}
    for task in result.failures:
        out.setdefault(task.host, f"'{task.task}': {task.msg or task.status}")
    return out


def regressions(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """What ``after`` (host -> its health reading) lacks: a service that was running and is
    not, a port that answered and does not, or one the baseline requires.

    >>> was = {"s1": {"running": ["web"], "answering": ["tcp 10.0.0.1:80", "ssh 10.0.0.1:22"]}}
    >>> now = {"s1": {"running": [], "answering": ["ssh 10.0.0.1:22"], "must_run": ["agent"]}}
    >>> for problem in regressions(was, now):
    ...     print(problem)
    s1: service web was running, is not
    s1: service agent must run, is not
    s1: tcp 10.0.0.1:80 answered, does not
    """
    out: list[str] = []
    for host, now in after.items():
        was = before.get(host, {})
        for prefix, state, required, (did, must, lost) in (
            ("service ", "running", "must_run", ("was running", "must run", "is not")),
            ("", "answering", "must_answer", ("answered", "must answer", "does not")),
        ):
            present, earlier = set(now.get(state, [])), list(was.get(state, []))
            for name in dict.fromkeys([*earlier, *now.get(required, [])]):
                if name not in present:
                    said = did if name in earlier else must
                    out.append(f"{host}: {prefix}{name} {said}, {lost}")
    return out


@dataclass
class RollState:
    """One plan's or run's scratch: the batch applied clean in this process (its verify need
    not check again) and the servers failed and tolerated in the batch under way."""

    applied_clean: set[tuple[str, ...]] = field(default_factory=set)
    tolerated: dict[str, str] = field(default_factory=dict)


class ServerMaintenance(HostJournalWitness, LibraryRunbook[ServerMaintenanceParams]):
    """Maintain servers: pre-checks, announcement, updates and baseline, post-checks."""

    name = "server-maintenance"
    title = "Server maintenance: OS updates and the baseline configuration"
    instruction = "4 服務器維護 server maintenance"
    expected_duration = timedelta(minutes=20)
    Params = ServerMaintenanceParams
    journaled = ("plan_announcement", "plan_maintenance")
    journal_kind = "success"

    def new_state(self) -> RollState:
        return RollState()

    def extravars(self, ctx: RunContext, hosts: Iterable[str] | None = None) -> dict[str, Any]:
        return {
            "maintenance_targets": ",".join(self.p.hosts if hosts is None else hosts),
            "maintenance_id": ctx.run_id,
            "maintenance_services": self.p.services,
            "maintenance_ports": [{"name": "tcp", "port": p} for p in self.p.ports],
            "os_updates_packages": self.p.packages,
            "os_updates_upgrade": self.p.upgrade,
            "os_updates_refresh_cache": self.p.refresh_package_lists,
            "os_updates_source": software_source(),
            "baseline_agent_port": self.p.agent_port,
        }

    def play_check(
        self, ctx: RunContext, tags: list[str], hosts: list[str] | None = None
    ) -> PlaybookResult:
        limit = self.p.hosts if hosts is None else hosts
        return self.ansible(ctx).check(
            PLAYBOOK, limit=limit, tags=tags, extravars=self.extravars(ctx, limit)
        )

    def tolerated(self, ctx: RunContext) -> dict[str, str]:
        """The servers whose maintenance failed and was tolerated (``max_failed_hosts``), and
        why: from the record's batches (a resumed run reads them there) and the batch under
        way."""
        out: dict[str, str] = {}
        for name, result in ctx.results.items():
            if parent_of(name) == "plan_maintenance" and result.status is Status.CHANGED:
                applied = result.evidence.get("applied")
                if isinstance(applied, Mapping):
                    out |= dict(applied.get("failed_hosts") or {})
        if isinstance(ctx.state, RollState):
            out |= ctx.state.tolerated
        return out

    def maintained(self, ctx: RunContext) -> list[str]:
        """The servers the run goes on with: all but those failed and tolerated."""
        left_out = self.tolerated(ctx)
        return [h for h in self.p.hosts if h not in left_out]

    # ------------------------------------------------------------------ 1. inventory
    @check("The servers are in NetBox's inventory, with an address", targets=_hosts)
    def servers_in_inventory(self, ctx: RunContext) -> dict[str, Any]:
        return hosts_common.in_inventory(self.ansible(ctx), self.p.hosts)

    # ------------------------------------------------------------------ 2. pre-checks
    @check(
        "Pre-checks: free disk, memory, load, failed services, pending updates",
        targets=_hosts,
        duration=timedelta(minutes=1),
    )
    def pre_checks(self, ctx: RunContext) -> dict[str, Any]:
        result = self.play_check(ctx, ["precheck"])
        return {"hosts": result.evidence(), "duration_s": round(result.duration_s, 1)}

    # ------------------------------------------------------------------ 3. announcement
    def device_ids(self, ctx: RunContext, hosts: list[str] | None = None) -> dict[str, int]:
        return hosts_common.device_ids(self.netbox(ctx), self.p.hosts if hosts is None else hosts)

    def journal_marker(self, ctx: RunContext, what: str) -> str:
        return f"runbook {self.name} run {ctx.run_id}: {what}"

    def plan_notice(self, ctx: RunContext, what: str, text: str, kind: str) -> list[Diff]:
        """A notice in each server's journal, once per run (a resumed run finds it)."""
        nb, marker = self.netbox(ctx), self.journal_marker(ctx, what)
        diffs = [
            nb.plan_journal(
                "dcim.device",
                device_id,
                host,
                f"{text}\n\n_{marker}_",
                kind,
                marker=None if ctx.planning else marker,
                summary=f"maintenance {what} ({kind})",
            )
            for host, device_id in self.device_ids(ctx).items()
        ]
        return [d for d in diffs if d is not None]

    @change("Announce the maintenance in the servers' NetBox journal", targets=_hosts)
    def plan_announcement(self, ctx: RunContext) -> list[Diff]:
        text = (
            f"**Maintenance starts** ({self.p.reason}): OS package updates and the baseline "
            f"configuration on {', '.join(self.p.hosts)}; services restart where needed."
        )
        return self.plan_notice(ctx, "announced", text, "warning")

    @plan_announcement.apply
    def announce(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return write_entries(self.netbox(ctx), diffs)

    @plan_announcement.undo
    def announce_rollback(self, ctx: RunContext, diffs: list[Diff]) -> None:
        # the journal is an audit trail: the announcement stays, a second entry says why
        text = "**Maintenance rolled back**: a later step failed; see the run's record."
        write_entries(self.netbox(ctx), self.plan_notice(ctx, "rolled back", text, "danger"))

    # ------------------------------------------------------------------ 4. the maintenance
    @batched(
        "OS package updates and the baseline configuration, in canary batches of "
        "{batch_size}; restarts where needed",
        batch_size="batch_size",
        targets=_hosts,
        unit=host_of,
        duration=timedelta(minutes=10),
    )
    def plan_maintenance(self, ctx: RunContext) -> list[Diff]:
        """Check mode on every server; the diffs in the order ``hosts`` names the servers
        (the batches' layout follows it, whichever server Ansible answered first)."""
        order = {h: i for i, h in enumerate(self.p.hosts)}
        diffs = self.play_check(ctx, MAINTAIN).diffs
        return sorted(diffs, key=lambda d: order.get(host_of(d), len(order)))

    @plan_maintenance.baseline
    def read_health(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        """The batch's services running and ports answering, before it."""
        return {"health": self.health(ctx, hosts_of(diffs))}

    @plan_maintenance.apply
    def maintain(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        """The batch's servers at once. One that fails is tolerated while the run's failed
        servers are no more than ``max_failed_hosts``: restored by the rollback playbook and
        left out; else the batch fails (and is rolled back whole)."""
        hosts, state = hosts_of(diffs), self.roll_state(ctx)
        gateway = self.ansible(ctx)
        try:
            result = gateway.run(
                PLAYBOOK, limit=hosts, tags=MAINTAIN, extravars=self.extravars(ctx, hosts)
            )
        except GatewayError as exc:
            found = exc.context.get("result")
            failed = failed_hosts(found) if isinstance(found, PlaybookResult) else {}
            if not failed or len(self.tolerated(ctx)) + len(failed) > self.p.max_failed_hosts:
                raise
            assert isinstance(found, PlaybookResult)
            restored = gateway.run_unchecked(
                ROLLBACK, limit=list(failed), extravars=self.extravars(ctx, failed)
            )
            state.tolerated |= failed
            log.warning("maintenance failed on %s, tolerated: %s", ", ".join(failed), failed)
            return found.summary() | {
                "failed_hosts": failed,
                "failed_restored": restored.outcome(),
                "max_failed_hosts": self.p.max_failed_hosts,
            }
        state.applied_clean.add(tuple(hosts))
        return result.summary()

    @plan_maintenance.verify
    def maintenance_in_place(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        """Ran clean on each server in this process: in place (Ansible's modules converge and
        say so). Otherwise (a resumed batch, a server failed and tolerated): check mode on its
        servers but the tolerated ones finds nothing left to do."""
        hosts = hosts_of(diffs)
        if tuple(hosts) in self.roll_state(ctx).applied_clean:
            return True
        tolerated = self.tolerated(ctx)
        left = [h for h in hosts if h not in tolerated]
        return not left or not self.play_check(ctx, MAINTAIN, left).diffs

    @plan_maintenance.post_check
    def no_health_regression(
        self, ctx: RunContext, diffs: list[Diff], baseline: dict[str, Any]
    ) -> dict[str, Any]:
        """The batch's services and ports no worse than before it, waited for up to
        ``settle_timeout_s``; the servers failed and tolerated are left out."""
        tolerated = self.tolerated(ctx)
        hosts = [h for h in hosts_of(diffs) if h not in tolerated]
        before = dict(baseline.get("health") or {})
        deadline = time.monotonic() + self.p.settle_timeout_s
        while True:
            after = self.health(ctx, hosts) if hosts else {}
            worse = regressions(before, after)
            if not worse:
                return {"health": after}
            left = deadline - time.monotonic()
            if left <= 0:
                raise VerificationError(
                    f"health regression after the batch: {'; '.join(worse)}", regressions=worse
                )
            time.sleep(min(2.0, left))

    @plan_maintenance.undo
    def restore_baseline(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        hosts = hosts_of(diffs)
        result = hosts_common.run_restore(
            self.ansible(ctx), ROLLBACK, hosts, self.extravars(ctx, hosts),
            "rollback playbook", f"-e maintenance_id={ctx.run_id}",
        )  # fmt: skip
        return {"rollback": result.outcome()}

    def roll_state(self, ctx: RunContext) -> RollState:
        if not isinstance(ctx.state, RollState):
            ctx.state = RollState()
        return ctx.state

    def health(self, ctx: RunContext, hosts: list[str]) -> dict[str, dict[str, Any]]:
        """host -> its services running and ports answering (and those the baseline
        requires), read by the playbook's ``health`` tag."""
        readings = self.play_check(ctx, [HEALTH], hosts).evidence()
        return {h: dict(readings.get(h, {}).get("health") or {}) for h in hosts}

    # ------------------------------------------------------------------ 5. post-checks
    @check("Post-checks: services healthy, ports listening", targets=_hosts)
    def post_checks(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.planning:
            return {"planned": "runs after the maintenance: services, ports, status agent"}
        hosts = self.maintained(ctx)
        result = self.play_check(ctx, ["postcheck"], hosts)
        evidence = {"hosts": result.evidence(), "duration_s": round(result.duration_s, 1)}
        left_out = self.tolerated(ctx)
        return evidence | ({"failed_and_restored": left_out} if left_out else {})

    # ------------------------------------------------------------------ 6. close
    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        finished = f"**Maintenance finished** ({self.p.reason}); post-checks passed."
        hosts = self.maintained(ctx)
        return [
            Witnessed("dcim.device", i, host, finished)
            for host, i in self.device_ids(ctx, hosts).items()
        ]

    @change("Close the announcement in the servers' NetBox journal", targets=_hosts)
    def plan_completion(self, ctx: RunContext) -> list[Diff]:
        return self.journal_diffs(ctx)

    @plan_completion.apply
    def complete(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.write_journal(ctx, diffs)

    @plan_completion.verify
    def completion_written(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.journal_written(ctx, diffs)

    @plan_completion.undo
    def completion_withdrawn(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.remove_journal(ctx, diffs)
