"""5 服務器故障處理 server fault handling and 1 客戶終端故障處理 client terminal fault handling: the
evidence of one host, and what differs from a healthy host.

The procedure, in order (read-only: Ansible in check mode, ``playbooks/fault_triage.yml``,
which also runs on its own with plain ``ansible-playbook``):

1. The host is in NetBox's inventory (netbox.netbox ``nb_inventory``), with an address.
2. The host's evidence: whether it answers (a host Ansible cannot reach is a finding, with
   why), load and CPUs, memory, every local filesystem's free share, the services systemd
   reports failed, the state of each named service (and of each baseline service installed
   there), the journal's error lines of the last hour (where systemd keeps one; redacted:
   ``fault_common.redact_line``).
3. Diagnosis: unreachable; a filesystem below ``min_disk_free_pct``; memory available below
   ``min_mem_available_mb``; load above ``max_load_per_cpu`` per CPU; each failed service;
   each named service not installed or not running, each baseline service installed and
   not running; error lines in the journal.
4. Remedy, only when named (a change: reviewed and approved, or run at once under an
   emergency approval): ``remedy=restart-service service=<name>`` restarts it
   (``playbooks/fault_restart_service.yml``: systemd or its init script), then it must run.
   A restart has nothing to undo.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from runbooks.core.context import RunContext
from runbooks.core.errors import ConnectError, InventoryError
from runbooks.core.results import Diff
from runbooks.core.steps import check
from runbooks.gateways.ansible_events import PlaybookResult
from runbooks.library.base import LibraryRunbook, comma_list
from runbooks.library.fault_common import (
    IncidentParams,
    diagnosis,
    evidence_of,
    redact_lines,
    remedy,
    remedy_params,
    restart_service,
)

log = logging.getLogger(__name__)

TRIAGE = "fault_triage.yml"
TARGET = "{host}"
REMEDIES = {"restart-service": "service"}


class FaultHostParams(IncidentParams):
    host: str = Field(min_length=1, description="the host, by its NetBox device name")
    services: list[str] = Field(
        default_factory=list,
        description="services that must be installed and running (comma-separated); the "
        "baseline's services are checked wherever they are installed",
    )
    remedy: Literal["restart-service"] | None = Field(
        default=None,
        description="a change after the diagnosis (approved as any change): restart-service "
        "restarts service=",
    )
    service: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9@._-]+$", description="the service to restart"
    )
    min_disk_free_pct: float = Field(
        default=10, ge=0, le=100, description="the free share (%) each filesystem must keep"
    )
    min_mem_available_mb: int = Field(
        default=128, ge=0, description="the memory (MB) that must stay available"
    )
    max_load_per_cpu: float = Field(
        default=4.0, gt=0, description="the highest healthy 1-minute load per CPU"
    )

    _comma_list = field_validator("services", mode="before")(comma_list)

    @field_validator("services")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not v.replace("-", "").replace("_", "").replace(".", "")
               .replace("@", "").isalnum()]  # fmt: skip
        if bad:
            raise ValueError(f"{bad[0][:40]!r} is no service name")
        return value

    @model_validator(mode="after")
    def _remedy_complete(self) -> FaultHostParams:
        remedy_params(self.remedy, {"service": self.service}, REMEDIES)
        return self


def host_findings(host: str, evidence: dict[str, Any], p: FaultHostParams) -> list[str]:
    """What differs from a healthy host, from the evidence the triage playbook gathered.

    >>> p = FaultHostParams(host="web1", services=["web"])
    >>> e = {"reachable": True, "load": [0.1], "cpus": 2,
    ...     "mem_available_mb": 900, "disks": [{"mount": "/var", "free_pct": 4.0}],
    ...     "failed_services": ["cron.service"], "journal_errors": [],
    ...     "services": {"web": {"installed": True, "running": False, "state": "stopped"}}}
    >>> host_findings("web1", e, p)  # doctest: +NORMALIZE_WHITESPACE
    ['web1 /var has 4.0% free (min 10%)', 'service cron.service failed on web1',
     'service web is not running on web1 (stopped)']
    """
    if not evidence.get("reachable"):
        return [f"{host} cannot be reached: {evidence.get('why', 'no answer')}"]
    out = [
        f"{host} {d['mount']} has {d['free_pct']}% free (min {p.min_disk_free_pct:g}%)"
        for d in evidence.get("disks", [])
        if float(d["free_pct"]) < p.min_disk_free_pct
    ]
    available = evidence.get("mem_available_mb")
    if available is not None and int(available) < p.min_mem_available_mb:
        out.append(f"{host} has {available} MB memory available (min {p.min_mem_available_mb} MB)")
    load, cpus = evidence.get("load") or [0.0], int(evidence.get("cpus") or 1)
    if float(load[0]) > p.max_load_per_cpu * cpus:
        out.append(f"{host} load {load[0]} on {cpus} CPUs (max {p.max_load_per_cpu:g} per CPU)")
    out += [f"service {s} failed on {host}" for s in evidence.get("failed_services", [])]
    for name, svc in sorted(evidence.get("services", {}).items()):
        if not svc.get("installed"):
            out.append(f"service {name} is not installed on {host}")
        elif not svc.get("running"):
            out.append(f"service {name} is not running on {host} ({svc.get('state')})")
    journal = evidence.get("journal_errors")
    if journal:
        out.append(f"{host} logged {len(journal)} error line(s) in the journal: {journal[-1]}")
    return out


def host_unread(evidence: dict[str, Any]) -> list[str]:
    """What the triage could not check on a host that answered."""
    if evidence.get("reachable") and evidence.get("journal_errors") is None:
        return ["journal: no systemd journal on this host"]
    return []


class FaultServer(LibraryRunbook[FaultHostParams]):
    """Triage a server: reachability, load, disk, memory, services, journal; a diagnosis."""

    name = "fault-server"
    title = "Server fault handling: a server's evidence and a diagnosis"
    instruction = "5 服務器故障處理 server fault handling"
    expected_duration = timedelta(minutes=2)
    Params = FaultHostParams

    def extravars(self) -> dict[str, Any]:
        return {
            "triage_targets": self.p.host,
            "triage_services": self.p.services,
            "triage_service": self.p.service or "",
        }

    @check("The host is in NetBox's inventory, with an address", targets=TARGET)
    def host_in_inventory(self, ctx: RunContext) -> dict[str, Any]:
        inventory = self.ansible(ctx).inventory_hosts()
        if self.p.host not in inventory:
            raise InventoryError(
                f"{self.p.host} is not in the NetBox inventory (Linux platform, primary IP)"
            )
        found = inventory[self.p.host]
        return {"address": found.get("ansible_host"), "role": found.get("role")}

    @check(
        "The host's evidence: reachability, load, memory, disks, services, journal errors",
        targets=TARGET,
        duration=timedelta(seconds=45),
    )
    def host_state(self, ctx: RunContext) -> dict[str, Any]:
        try:
            result = self.ansible(ctx).check(
                TRIAGE, limit=[self.p.host], extravars=self.extravars()
            )
        except ConnectError as exc:  # the host's silence is the first finding
            return {"reachable": False, "why": str(exc)}
        evidence = dict(result.evidence().get(self.p.host, {}))
        if "journal_errors" in evidence:  # typed secrets stay out of the record
            evidence["journal_errors"] = redact_lines(evidence["journal_errors"])
        return {**evidence, "duration_s": round(result.duration_s, 1)}

    @check("Diagnosis: what differs from a healthy host", targets=TARGET)
    def diagnosis(self, ctx: RunContext) -> dict[str, Any]:
        evidence = evidence_of(ctx, "host_state")
        findings = host_findings(self.p.host, evidence, self.p)
        return diagnosis(findings, host_unread(evidence), self.p.incident)

    # ---- the remedy (a change: only when named)
    def restart(self, ctx: RunContext, check_only: bool) -> PlaybookResult:
        return restart_service(self.ansible(ctx), [self.p.host], str(self.p.service), check_only)

    @remedy("Remedy: restart the service {service}", targets=TARGET)
    def plan_remedy(self, ctx: RunContext) -> list[Diff]:
        if self.p.remedy is None:
            return []
        return self.restart(ctx, check_only=True).diffs

    @plan_remedy.apply
    def restart_service(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.restart(ctx, check_only=False).summary()

    @plan_remedy.verify
    def service_runs(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        """The service runs now, as the triage reads it (a restart's plan would restart it
        again: it never comes out empty)."""
        extravars = {**self.extravars(), "triage_services": [self.p.service]}
        result = self.ansible(ctx).check(TRIAGE, limit=[self.p.host], extravars=extravars)
        services = result.evidence().get(self.p.host, {}).get("services", {})
        return bool(services.get(self.p.service, {}).get("running"))

    @plan_remedy.undo
    def nothing_to_undo(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("a restart has nothing to undo")


class FaultTerminal(FaultServer):
    """Triage a client terminal (PC): the same evidence and diagnosis as a server's."""

    name = "fault-terminal"
    title = "Client terminal fault handling: a PC's evidence and a diagnosis"
    instruction = "1 客戶終端故障處理 client terminal fault handling"
