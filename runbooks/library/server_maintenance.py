"""4 服務器維護 server maintenance: pre-checks, announcement, updates and baseline, post-checks.

The procedure, in order (the playbook ``playbooks/server_maintenance.yml`` does the host work,
one tag per part, and also runs on its own with plain ``ansible-playbook``):

1. The servers are in NetBox's inventory (netbox.netbox ``nb_inventory``), with an address.
2. Pre-checks on each server: free disk, available memory, load, failed services, pending
   package updates. A server not fit for maintenance stops the plan.
3. Announce the maintenance in each server's NetBox journal.
4. OS package updates and the department's baseline configuration (message of the day, SSH
   hardening, the status agent and its service); services restart where their configuration
   changed. In a plan this is Ansible's check mode: every file's diff is in the review.
   If it fails, the playbook restores each host's snapshot (``rescue:``) and the rollback runs
   the rollback playbook on every host (``undo_on_failure``), as it does when a later step fails.
   Package installs and upgrades are not rolled back.
5. Post-checks: the services are healthy and their ports listen.
6. Close the announcement in the NetBox journal: the maintenance is finished. The entry on
   each host witnesses the run (what it changed there and the record's head hash).

Every task's result (host, task, status, changed, diff, duration) is in the step's evidence.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from runbooks.core.context import RunContext
from runbooks.core.errors import InventoryError, RollbackError
from runbooks.core.results import Diff
from runbooks.core.runbook import Params
from runbooks.core.steps import change, check
from runbooks.gateways.ansible_events import PlaybookResult
from runbooks.gateways.ansible_settings import software_source
from runbooks.library.base import LibraryRunbook
from runbooks.library.witness import JournalWitness, Witnessed, mentions, write_entries

log = logging.getLogger(__name__)

PLAYBOOK = "server_maintenance.yml"
ROLLBACK = "server_maintenance_rollback.yml"


class ServerMaintenanceParams(Params):
    hosts: list[str] = Field(min_length=1, description="servers by NetBox device name")
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

    @field_validator("agent_port")
    @classmethod
    def _agent_port_named(cls, value: int | None) -> int:
        if value is None:
            raise ValueError(
                "give agent_port=<the status agent's port> or set the setting "
                "baseline_agent_port (RUNBOOKS_BASELINE_AGENT_PORT)"
            )
        return value

    @field_validator("hosts", "packages", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """``hosts=app1,app2`` on the command line."""
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


def _setting_port(variable: str) -> int | str | None:
    """A port from the settings (the file's value arrives as its variable); validated as the
    parameter is."""
    return os.environ.get(variable, "").strip() or None


def _hosts(runbook: Any) -> list[str]:
    return list(runbook.params.hosts)


class ServerMaintenance(JournalWitness, LibraryRunbook[ServerMaintenanceParams]):
    """Maintain servers: pre-checks, announcement, updates and baseline, post-checks."""

    name = "server-maintenance"
    title = "Server maintenance: OS updates and the baseline configuration"
    instruction = "4 服務器維護 server maintenance"
    expected_duration = timedelta(minutes=20)
    Params = ServerMaintenanceParams
    journaled = ("plan_announcement", "plan_maintenance")
    journal_kind = "success"

    def extravars(self, ctx: RunContext) -> dict[str, Any]:
        return {
            "maintenance_targets": ",".join(self.p.hosts),
            "maintenance_id": ctx.run_id,
            "os_updates_packages": self.p.packages,
            "os_updates_upgrade": self.p.upgrade,
            "os_updates_refresh_cache": self.p.refresh_package_lists,
            "os_updates_source": software_source(),
            "baseline_agent_port": self.p.agent_port,
        }

    def play_check(self, ctx: RunContext, tags: list[str]) -> PlaybookResult:
        return self.ansible(ctx).check(
            PLAYBOOK, limit=self.p.hosts, tags=tags, extravars=self.extravars(ctx)
        )

    # ------------------------------------------------------------------ 1. inventory
    @check("The servers are in NetBox's inventory, with an address", targets=_hosts)
    def servers_in_inventory(self, ctx: RunContext) -> dict[str, Any]:
        inventory = self.ansible(ctx).inventory_hosts()
        missing = [h for h in self.p.hosts if h not in inventory]
        if missing:
            raise InventoryError(
                f"not in the NetBox inventory (Linux platform, primary IP): {', '.join(missing)}"
            )
        return {
            h: {"address": inventory[h].get("ansible_host"), "role": inventory[h].get("role")}
            for h in self.p.hosts
        }

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
    def device_ids(self, ctx: RunContext) -> dict[str, int]:
        found = self.netbox(ctx).find("dcim.device", name=self.p.hosts)
        ids = {str(d["name"]): int(d["id"]) for d in found}
        missing = [h for h in self.p.hosts if h not in ids]
        if missing:
            raise InventoryError(f"no NetBox device named {', '.join(missing)}")
        return ids

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
    @change(
        "OS package updates and the baseline configuration; restarts where needed",
        targets=_hosts,
        duration=timedelta(minutes=10),
        undo_on_failure=True,  # the rollback playbook restores each host's snapshot
    )
    def plan_maintenance(self, ctx: RunContext) -> list[Diff]:
        return self.play_check(ctx, ["packages", "baseline"]).diffs

    @plan_maintenance.apply
    def maintain(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        result = self.ansible(ctx).run(
            PLAYBOOK,
            limit=self.p.hosts,
            tags=["packages", "baseline"],
            extravars=self.extravars(ctx),
        )
        return result.summary()

    @plan_maintenance.undo
    def restore_baseline(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        gateway = self.ansible(ctx)
        result = gateway.run_unchecked(ROLLBACK, limit=self.p.hosts, extravars=self.extravars(ctx))
        if not result.clean:
            where = gateway.settings  # the installed playbooks and inventory, or the configured
            again = (
                f"ansible-playbook -i {where.inventory} {where.project_dir / ROLLBACK} "
                f"-l {','.join(self.p.hosts)} -e maintenance_id={ctx.run_id}"
            )
            raise RollbackError(f"rollback playbook: {result.outcome()}; when back: {again}")
        return {"rollback": result.outcome()}

    # ------------------------------------------------------------------ 5. post-checks
    @check("Post-checks: services healthy, ports listening", targets=_hosts)
    def post_checks(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.planning:
            return {"planned": "runs after the maintenance: services, ports, status agent"}
        result = self.play_check(ctx, ["postcheck"])
        return {"hosts": result.evidence(), "duration_s": round(result.duration_s, 1)}

    # ------------------------------------------------------------------ 6. close
    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        finished = f"**Maintenance finished** ({self.p.reason}); post-checks passed."
        return [
            Witnessed("dcim.device", i, host, finished) for host, i in self.device_ids(ctx).items()
        ]

    def journal_items(self, ctx: RunContext, target: Witnessed) -> list[str]:
        """What the run changed on this server (its announcement, its files and packages)."""
        return [
            f"{d.target}: {d.summary}"
            for d in self.journal_changes(ctx)
            if mentions(d.target, target.name)
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
