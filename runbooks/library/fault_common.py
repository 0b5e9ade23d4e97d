"""What the fault-handling (triage) runbooks share: the incident they serve, the diagnosis they
end with, and the rule that they only read unless a remedy is named.

A triage runbook gathers the evidence an engineer would (each part a check step, into the
record), then its ``diagnosis`` step names what differs from NetBox's intent or from a healthy
baseline: ``findings`` (one short sentence each), ``healthy`` (no finding), and
``not_checked`` (evidence that could not be gathered, with why: never a silent pass). A
remedy (restart a service, bounce a BGP session) is a change step after the diagnosis, with
diffs only when the parameters name it: without one the plan has no change, and the runbook
runs without approval (``run --no-change-control``); with one the plan is a change like any
other, reviewed and approved, and run outside its window only with the emergency approval
of a second approver (``runbook approve <change> --emergency``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import Field

from runbooks.core.context import RunContext
from runbooks.core.errors import VerificationError
from runbooks.core.results import StepKind
from runbooks.core.runbook import Params
from runbooks.core.secrets import MASK, mask_text
from runbooks.core.steps import ChangeStep, StepFunc, Targets
from runbooks.gateways.ansible import AnsibleGateway
from runbooks.gateways.ansible_events import PlaybookResult

RESTART = "fault_restart_service.yml"  # the restart-service remedy's playbook
INCIDENT_HELP = (
    "the incident this triage serves (its id, as the incident record names it); recorded "
    "with the run so the incident collects it"
)


LINE_CHARS = 300  # a log line in a record: at most this long
_REDACTIONS = (
    # key=value, key: value (password, passwd, pwd, secret, token, api key ...)
    (re.compile(r"(?i)\b((?:password|passwd|pwd|passphrase|secret|token|api[_-]?key)\w*"
                r"[\"']?\s*[=:]\s*)(?:\"[^\"]*\"|'[^']*'|\S+)"), r"\1" + MASK),
    # an Authorization header: everything after it on the line
    (re.compile(r"(?i)\b(Authorization\s*[=:]\s*).+"), r"\1" + MASK),
    # sshd's "invalid user X": X is often a password typed at the login prompt
    (re.compile(r"(?i)\b(invalid user\s+)\S+"), r"\1" + MASK),
    # a URL's password (scheme://user:password@host)
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), r"\1" + MASK + "@"),
)  # fmt: skip


def redact_line(line: str) -> str:
    """A host's log or journal line as a record may carry it: the project's masking (secrets
    this process knows, token shapes), then what a log line may hold typed by someone —
    ``password=…``/``token: …`` values, an ``Authorization`` header, the name after sshd's
    ``invalid user`` (often a password typed as the login name; a known user's name stays,
    as does the source address) and a URL's password — and at most ``LINE_CHARS`` characters.

    >>> redact_line("sshd[9]: Failed password for invalid user hunter2! from 192.0.2.7 port 22")
    'sshd[9]: Failed password for invalid user ******** from 192.0.2.7 port 22'
    >>> redact_line("sshd[9]: Failed password for alice from 192.0.2.7 port 22 ssh2")
    'sshd[9]: Failed password for alice from 192.0.2.7 port 22 ssh2'
    >>> redact_line('app: login password="s3 cr3t" token:abc123 db=postgres://u:pw@db/x')
    'app: login password=******** token:******** db=postgres://u:********@db/x'
    >>> redact_line("GET /x Authorization: Basic dXNlcjpwYXNz")
    'GET /x Authorization: ********'
    >>> len(redact_line("x" * 1000))
    300
    """
    text = mask_text(str(line))
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"


def redact_lines(lines: Iterable[Any] | None) -> list[str] | None:
    """`redact_line` on each line; None (not read) stays None."""
    return None if lines is None else [redact_line(str(line)) for line in lines]


class IncidentParams(Params):
    """Every triage runbook's parameters start here."""

    incident: str | None = Field(default=None, max_length=100, description=INCIDENT_HELP)


def diagnosis(
    findings: Iterable[str], not_checked: Iterable[str] = (), incident: str | None = None
) -> dict[str, Any]:
    """The diagnosis section of a triage record.

    >>> diagnosis([])["summary"]
    'nothing found wrong'
    >>> d = diagnosis(["swp2 is down"], ["lldp: no getter"], incident="INC-7")
    >>> d["healthy"], d["summary"], d["incident"]
    (False, '1 finding: swp2 is down', 'INC-7')
    """
    found = list(dict.fromkeys(str(f) for f in findings))  # in order, each once
    missing = list(dict.fromkeys(str(n) for n in not_checked))
    if not found:
        summary = "nothing found wrong"
        if missing:
            summary += f" in what was checked ({len(missing)} part(s) not checked)"
    else:
        summary = f"{len(found)} finding{'s' if len(found) > 1 else ''}: " + "; ".join(found)
    out: dict[str, Any] = {
        "healthy": not found,
        "findings": found,
        "not_checked": missing,
        "summary": summary,
    }
    if incident:
        out["incident"] = incident
    return out


def evidence_of(ctx: RunContext, step: str) -> dict[str, Any]:
    """The evidence an earlier step of this plan or run recorded (a resumed run has it from
    the record)."""
    result = ctx.results.get(step)
    if result is None:
        raise VerificationError(f"the step {step!r} has not run: no evidence to diagnose")
    return dict(result.evidence)


def remedy_params(remedy: str | None, given: Mapping[str, Any], needs: Mapping[str, str]) -> None:
    """Refuse a remedy without what it needs, or what it needs without the remedy (a
    ``ValueError`` pydantic turns into one line). ``needs``: remedy -> the parameter it needs.

    >>> remedy_params("restart-service", {"service": None}, {"restart-service": "service"})
    Traceback (most recent call last):
    ...
    ValueError: remedy=restart-service needs service=<...>
    >>> remedy_params(None, {"service": "x"}, {"restart-service": "service"})
    Traceback (most recent call last):
    ...
    ValueError: service=x is for remedy=restart-service: name the remedy too
    """
    for name, param in needs.items():
        if remedy == name and not given.get(param):
            raise ValueError(f"remedy={name} needs {param}=<...>")
        if remedy != name and given.get(param):
            raise ValueError(f"{param}={given[param]} is for remedy={name}: name the remedy too")


@dataclass(eq=False)
class RemedyStep(ChangeStep):
    """A remedy's change step: its title reads ``—`` for a parameter not given (no remedy
    named: the step plans nothing), not ``None``."""

    def resolve_title(self, runbook: Any) -> str:
        values = {k: "—" if v is None else v for k, v in runbook.params.model_dump().items()}
        try:
            return self.title.format(**values)
        except (KeyError, IndexError, ValueError):
            return self.title


def remedy(
    title: str, *, targets: Targets = None, duration: timedelta = timedelta(minutes=2)
) -> Callable[[StepFunc], RemedyStep]:
    """``@change`` for a remedy (`RemedyStep`)."""
    return lambda f: RemedyStep(f, title, StepKind.CHANGE, targets, duration)


def restart_service(
    gateway: AnsibleGateway, hosts: Sequence[str], service: str, check_only: bool
) -> PlaybookResult:
    """The restart-service remedy: ``service`` restarted on ``hosts``
    (``playbooks/fault_restart_service.yml``: systemd or its init script; then it must run);
    in check mode (the plan) what it would restart."""
    play = gateway.check if check_only else gateway.run
    extravars = {"triage_targets": ",".join(hosts), "triage_service": service}
    return play(RESTART, limit=list(hosts), extravars=extravars)
