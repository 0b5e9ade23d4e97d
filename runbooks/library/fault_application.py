"""11 應用系統故障處理 application fault handling: an application's evidence on its hosts, and
what differs from a healthy one.

The procedure, in order (read-only: Ansible in check mode, ``playbooks/app_triage.yml``, which
also runs on its own with plain ``ansible-playbook``):

1. The application's hosts: the devices with its NetBox service (its one TCP port is where it
   listens, on each host's primary address), each in NetBox's inventory.
2. Each host's evidence: whether it answers; the release in place; the service (its init
   script) and whether its process runs; the TCP ports that process listens on and every
   listener on the service's port; one GET of the health URL (status code, latency); the
   ERROR lines of its log in the last ``errors_since_s`` seconds (redacted:
   ``fault_common.redact_line``).
3. Diagnosis against a healthy application (running, listening on its NetBox port on the
   host's address, the health URL answering 200 within ``max_latency_ms``, no recent error
   line): each difference, per host, in one sentence.
4. Remedy, only when named (a change: reviewed and approved, or run at once under an
   emergency approval): ``remedy=restart-service`` restarts the application's service (the
   NetBox service's name: its init script or systemd unit) on each of its hosts
   (``playbooks/fault_restart_service.yml``), then each must be running and its health URL
   answer 200 (within ``health_timeout_s``). A restart has nothing to undo.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from runbooks.core.context import RunContext
from runbooks.core.errors import ConnectError, VerificationError
from runbooks.core.results import Diff
from runbooks.core.steps import check
from runbooks.library.app_common import (
    HEALTHY_CODE,
    AppParams,
    health_line,
    healthy,
    placement,
    play_vars,
)
from runbooks.library.base import LibraryRunbook
from runbooks.library.fault_common import (
    IncidentParams,
    diagnosis,
    evidence_of,
    redact_lines,
    remedy,
    restart_service,
)

log = logging.getLogger(__name__)

TRIAGE = "app_triage.yml"
KEY = "app_triage"


class FaultApplicationParams(AppParams, IncidentParams):
    max_latency_ms: float = Field(
        default=1000, gt=0, description="the health URL's answer slower than this is a finding"
    )
    errors_since_s: int = Field(
        default=3600, ge=1, le=7 * 86400, description="how far back the log's ERROR lines are read"
    )
    remedy: Literal["restart-service"] | None = Field(
        default=None,
        description="a change after the diagnosis (approved as any change): restart-service "
        "restarts the application's service on its hosts, then its health URL must answer 200",
    )
    health_timeout_s: int = Field(
        default=10, ge=1, le=600, description="how long a restarted service may take to answer 200"
    )


def wildcards(port: int) -> tuple[str, ...]:
    """A listener on every address, as the host's state script names it: IPv4's, and IPv6's
    (a dual-stack socket bound to ``[::]`` answers on the IPv4 address too).

    >>> wildcards(8080)
    ('0.0.0.0:8080', ':::8080', '[::]:8080')
    """
    return (f"0.0.0.0:{port}", f":::{port}", f"[::]:{port}")


def app_findings(
    app: str, host: str, address: str | None, port: int, state: dict[str, Any], p: Any
) -> list[str]:
    """What differs on ``host`` from a healthy application (see the module).

    >>> class P:
    ...     health_path, max_latency_ms = "/health", 1000
    >>> ok = {"reachable": True, "installed": True, "running": True, "version": "1.1",
    ...       "process_listens": ["192.0.2.10:8080"], "listening_on_port": ["192.0.2.10:8080"],
    ...       "health": {"code": 200, "latency_ms": 4.0}, "log_errors": []}
    >>> app_findings("shop", "web1", "192.0.2.10", 8080, ok, P())
    []
    """
    who = f"{app} on {host}"
    if not state.get("reachable", True):
        return [f"{host} cannot be reached: {state.get('why', 'no answer')}"]
    if not state.get("installed"):
        return [f"{who}: not installed (no init script; release {state.get('version')})"]
    out = []
    if not state.get("running"):
        out.append(f"{who}: its service is not running")
    where = f"{address}:{port}"
    answering = (where, *wildcards(port))  # the host's address, or every address
    listeners = list(state.get("listening_on_port") or [])
    if not any(w in listeners for w in answering):
        out.append(f"{app} not listening on {where} ({host})")
    elif state.get("running") and not any(
        w in (state.get("process_listens") or []) for w in answering
    ):
        out.append(f"{who}: {where} is held by another process, not the service's")
    health = state.get("health") or {}
    baseline = f"(healthy baseline {HEALTHY_CODE})"
    if health.get("code") is None:
        said = health.get("error", "no answer")
        out.append(f"{who}: {p.health_path} does not answer: {said} {baseline}")
    elif health["code"] != HEALTHY_CODE:
        out.append(f"{who}: {p.health_path} answers {health['code']} {baseline}")
    elif float(health.get("latency_ms") or 0) > p.max_latency_ms:
        out.append(
            f"{who}: {p.health_path} took {health['latency_ms']} ms "
            f"(healthy baseline ≤ {p.max_latency_ms:g} ms)"
        )
    errors = state.get("log_errors")
    if errors:
        out.append(f"{who}: {len(errors)} error line(s) in its log, the last: {errors[-1]}")
    return out


def redacted(state: dict[str, Any]) -> dict[str, Any]:
    """A host's state with its log lines redacted (`fault_common.redact_line`): what a record
    may carry."""
    out = dict(state)
    if "log_errors" in out:
        out["log_errors"] = redact_lines(out["log_errors"])
    return out


def unread(app: str, host: str, state: dict[str, Any]) -> list[str]:
    """What could not be checked on a host that answered."""
    if state.get("reachable", True) and state.get("log_errors") is None:
        return [f"{app} on {host}: log {state.get('log')} not readable"]
    return []


def _hosts(runbook: Any) -> list[str]:
    return list(runbook.params.hosts) or [f"{runbook.params.app} hosts"]


class FaultApplication(LibraryRunbook[FaultApplicationParams]):
    """Triage an application: service, ports, health, recent errors on each host; a diagnosis."""

    name = "fault-application"
    title = "Application fault handling: an application's evidence and a diagnosis"
    instruction = "11 應用系統故障處理 application fault handling"
    expected_duration = timedelta(minutes=2)
    Params = FaultApplicationParams

    @check("The application's hosts: its NetBox service, in the inventory", targets=_hosts)
    def app_hosts(self, ctx: RunContext) -> dict[str, Any]:
        return placement(self.netbox(ctx), self.ansible(ctx), self.p.app, self.p.hosts)

    @check(
        "Each host's evidence: service, listening ports, health URL, recent log errors",
        targets=_hosts,
        duration=timedelta(seconds=45),
    )
    def app_state(self, ctx: RunContext) -> dict[str, Any]:
        placed = evidence_of(ctx, "app_hosts")
        hosts = list(placed["hosts"])
        extravars = play_vars(placed, self.p.health_path, app_errors_since_s=self.p.errors_since_s)
        try:
            result = self.ansible(ctx).check(TRIAGE, limit=hosts, extravars=extravars)
        except ConnectError as exc:  # a host's silence is a finding; the others' evidence stays
            said = exc.context.get("result")
            evidence = said.evidence() if said is not None else {}
            return {
                h: redacted(evidence[h][KEY]) if KEY in evidence.get(h, {})
                else {"reachable": False, "why": str(exc)}
                for h in hosts
            }  # fmt: skip
        evidence = result.evidence()
        return {h: redacted(evidence.get(h, {}).get(KEY, {})) for h in hosts}

    @check("Diagnosis: what differs from a healthy application", targets=_hosts)
    def diagnosis(self, ctx: RunContext) -> dict[str, Any]:
        placed = evidence_of(ctx, "app_hosts")
        states = evidence_of(ctx, "app_state")
        findings, not_checked = [], []
        for host, where in placed["hosts"].items():
            state = states.get(host, {})
            findings += app_findings(
                self.p.app, host, where.get("address"), placed["port"], state, self.p
            )
            not_checked += unread(self.p.app, host, state)
        return diagnosis(findings, not_checked, self.p.incident)

    # ---- the remedy (a change: only when named)
    def hosts_of(self, ctx: RunContext) -> list[str]:
        return list(evidence_of(ctx, "app_hosts")["hosts"])

    @remedy("Remedy ({remedy}): restart the service {app}", targets=_hosts)
    def plan_remedy(self, ctx: RunContext) -> list[Diff]:
        if self.p.remedy is None:
            return []
        return restart_service(self.ansible(ctx), self.hosts_of(ctx), self.p.app, True).diffs

    @plan_remedy.apply
    def restart_app(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return restart_service(self.ansible(ctx), self.hosts_of(ctx), self.p.app, False).summary()

    @plan_remedy.verify
    def app_answers(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        """Each host running the application, its health URL answering 200, as the triage
        reads it (read again, once a second, for up to ``health_timeout_s``)."""
        placed = evidence_of(ctx, "app_hosts")
        hosts = list(placed["hosts"])
        extravars = play_vars(placed, self.p.health_path, app_errors_since_s=self.p.errors_since_s)
        deadline = time.monotonic() + self.p.health_timeout_s
        while True:
            evidence = self.ansible(ctx).check(TRIAGE, limit=hosts, extravars=extravars).evidence()
            states = {h: evidence.get(h, {}).get(KEY, {}) for h in hosts}
            wrong = [
                f"{h}: {'running' if s.get('running') else 'not running'}, {health_line(s)}"
                for h, s in states.items()
                if not healthy(s)
            ]
            if not wrong:
                return True
            if time.monotonic() >= deadline:
                raise VerificationError(f"{self.p.app} restarted but: {'; '.join(wrong)}")
            time.sleep(1)

    @plan_remedy.undo
    def nothing_to_undo(self, ctx: RunContext, diffs: list[Diff]) -> None:
        log.info("a restart has nothing to undo")
