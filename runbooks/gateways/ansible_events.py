"""ansible-runner events turned into small frozen results: one ``TaskResult`` per host and task.

ansible-runner's own callback (``awx_display``) already puts everything a record needs into
its events: ``runner_on_ok/failed/skipped/unreachable`` carry host, task, play, ``duration``
and ``res`` (``changed``, ``diff``, ``msg``), so no callback plugin of ours is needed for the
record. A playbook hands evidence to the runbook by setting the fact ``runbook_evidence``
(``ansible.builtin.set_fact``), which works with plain ``ansible-playbook`` too.

Diffs come in three shapes: ``{"before": str, "after": str, "before_header", "after_header"}``
(files, templates), ``{"before": dict, "after": dict}`` (file state, services) and
``{"prepared": str}`` (package managers). Each becomes a ``runbooks.core.results.Diff``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runbooks.core import secrets
from runbooks.core.errors import VerificationError
from runbooks.core.results import Diff, FieldChange

log = logging.getLogger(__name__)

EVIDENCE_FACT = "runbook_evidence"

# event name -> task status; runner_item_on_* are left out: the task's final event
# carries every item's result under res["results"].
_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
    "runner_on_async_failed": "failed",
}
_MAX_MSG = 500


@dataclass(frozen=True)
class TaskResult:
    """What one task did (or, in check mode, would do) on one host."""

    host: str
    task: str
    play: str
    status: str  # ok | changed | failed | ignored | skipped | unreachable
    changed: bool = False
    diffs: tuple[Diff, ...] = ()
    duration_s: float | None = None
    msg: str = ""
    action: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "unreachable")

    def to_dict(self) -> dict[str, Any]:
        """The record's view: small, JSON-safe, diffs as unified text."""
        out: dict[str, Any] = {
            "host": self.host,
            "task": self.task,
            "status": self.status,
            "changed": self.changed,
            "duration_s": self.duration_s,
        }
        if self.msg:
            out["msg"] = self.msg
        if self.diffs:
            out["diff"] = [d.text or d.summary for d in self.diffs]
        return out


@dataclass(frozen=True)
class PlaybookResult:
    """One playbook run: its tasks, the recap per host, and how it ended."""

    playbook: str
    check: bool
    status: str  # ansible-runner's: successful | failed | canceled | timeout
    rc: int | None
    tasks: tuple[TaskResult, ...] = ()
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    duration_s: float = 0.0
    events: int = 0
    errors: tuple[str, ...] = ()  # ansible-playbook's own error output (syntax, inventory)

    @property
    def changed(self) -> bool:
        return any(t.changed for t in self.tasks)

    @property
    def diffs(self) -> list[Diff]:
        """Every change, in playbook order: a task's diffs, or one line for a changed task
        without any (a restart)."""
        out: list[Diff] = []
        for task in self.tasks:
            if task.changed:
                out.extend(task.diffs or [changed_without_diff(task)])
        return out

    @property
    def failures(self) -> list[TaskResult]:
        return [t for t in self.tasks if t.failed]

    @property
    def unreachable(self) -> list[str]:
        hosts = {t.host for t in self.tasks if t.status == "unreachable"}
        hosts |= {h for h, counts in self.recap.items() if counts.get("unreachable")}
        return sorted(hosts)

    @property
    def clean(self) -> bool:
        return self.status == "successful" and not self.failures and not self.unreachable

    def outcome(self) -> str:
        """Per host, how a run (a rollback, say) ended: ``ran clean on srv1; unreachable:
        srv2 (not restored)``."""
        down = self.unreachable
        failed = sorted({t.host for t in self.failures} - set(down))
        done = sorted(set(self.recap) - set(failed) - set(down))
        parts = [f"ran clean on {', '.join(done) or 'no host'}"]
        if down:
            parts.append(f"unreachable: {', '.join(down)} (not restored)")
        if failed:
            parts.append(f"FAILED on {', '.join(failed)} (not restored)")
        return "; ".join(parts)

    def evidence(self) -> dict[str, dict[str, Any]]:
        """host -> the ``runbook_evidence`` fact the playbook set (the last one wins)."""
        out: dict[str, dict[str, Any]] = {}
        for task in self.tasks:
            if task.evidence:
                out.setdefault(task.host, {}).update(task.evidence)
        return out

    def evidence_under(self, key: str, hosts: Sequence[str], what: str) -> dict[str, Any]:
        """Each host's evidence under ``key`` (host -> it), or a `VerificationError` naming
        the hosts the play read no ``what`` on.

        >>> r = PlaybookResult("p.yml", False, "successful", 0,
        ...     (TaskResult("web1", "State", "p", "ok", evidence={"before": {"v": 1}}),))
        >>> r.evidence_under("before", ["web1"], "state")
        {'web1': {'v': 1}}
        >>> r.evidence_under("before", ["web1", "web2"], "state")
        Traceback (most recent call last):
        ...
        runbooks.core.errors.VerificationError: p.yml: no state read on web2
        """
        evidence = self.evidence()
        missing = [h for h in hosts if key not in evidence.get(h, {})]
        if missing:
            raise VerificationError(f"{self.playbook}: no {what} read on {', '.join(missing)}")
        return {h: evidence[h][key] for h in hosts}

    def summary(self) -> dict[str, Any]:
        """For a record's evidence: the recap, each changed or failed task, timings."""
        return {
            "playbook": self.playbook,
            "check": self.check,
            "status": self.status,
            "rc": self.rc,
            "duration_s": round(self.duration_s, 3),
            "recap": self.recap,
            **({"errors": list(self.errors)} if self.errors else {}),
            "tasks": [t.to_dict() for t in self.tasks if t.status != "skipped"],
        }


def task_result(event: Mapping[str, Any]) -> TaskResult | None:
    """One runner event -> a TaskResult, or None for events that are not a task's result."""
    status = _RESULT_EVENTS.get(str(event.get("event", "")))
    if status is None:
        return None
    data: Mapping[str, Any] = event.get("event_data") or {}
    res: Mapping[str, Any] = data.get("res") or {}
    if not isinstance(res, Mapping):
        res = {}
    host = str(data.get("host") or "?")
    task = str(data.get("task") or data.get("task_action") or "?")
    changed = bool(res.get("changed", False))
    if status == "ok" and changed:
        status = "changed"
    if status == "failed" and data.get("ignore_errors"):
        status = "ignored"
    raw_duration = data.get("duration")
    evidence = (res.get("ansible_facts") or {}).get(EVIDENCE_FACT)
    return TaskResult(
        host=host,
        task=task,
        play=str(data.get("play") or ""),
        status=status,
        changed=changed,
        diffs=tuple(diffs_of(host, task, res, _dest_arg(data.get("task_args")))),
        duration_s=float(raw_duration) if isinstance(raw_duration, int | float) else None,
        msg=_message(res) if status in ("failed", "unreachable", "ignored") else "",
        action=str(data.get("task_action") or ""),
        evidence=dict(secrets.mask(evidence)) if isinstance(evidence, Mapping) else {},
    )


def _dest_arg(task_args: Any) -> str | None:
    """``dest``/``path`` from the task's arguments (ANSIBLE_DISPLAY_ARGS_TO_STDOUT puts them in
    the event as ``"src=motd.j2, dest=/etc/motd"``): names the file a template would create."""
    if not isinstance(task_args, str):
        return None
    for part in task_args.split(", "):
        key, _, value = part.partition("=")
        if key.strip() in ("dest", "path") and value and "{{" not in value:
            return value.strip()
    return None


def diffs_of(host: str, task: str, res: Mapping[str, Any], dest: str | None = None) -> list[Diff]:
    """Every diff in a task result, loop items included."""
    raw: list[Any] = []
    for source in [res, *(r for r in res.get("results") or [] if isinstance(r, Mapping))]:
        value = source.get("diff")
        if isinstance(value, Mapping):
            raw.append(value)
        elif isinstance(value, list):
            raw.extend(v for v in value if isinstance(v, Mapping))
    where = res.get("dest") or res.get("path") or dest
    out = [_diff(host, task, d, str(where) if where else None) for d in raw]
    return [d for d in out if d is not None and not d.empty]


def changed_without_diff(task: TaskResult) -> Diff:
    """A task that changes (or would change) something without a diff (a service restart, a
    command): the plan still shows it, as one field."""
    return Diff(
        target=f"{task.host}:{task.task}",
        kind="fields",
        summary=task.task,
        fields=(FieldChange("state", "as found", f"changed by {task.action or 'task'}"),),
    )


def _diff(host: str, task: str, raw: Mapping[str, Any], where: str | None) -> Diff | None:
    if "prepared" in raw:
        text = str(raw["prepared"] or "")
        return Diff(target=f"{host}:{task}", kind="text", summary=task, text=text)
    if "before" not in raw and "after" not in raw:
        return None
    before, after = raw.get("before"), raw.get("after")
    # template/copy diffs name a controller-side temp file in after_header: prefer the dest
    header = where or raw.get("before_header") or raw.get("after_header") or task
    target = f"{host}:{header}"
    if isinstance(before, Mapping) or isinstance(after, Mapping):
        return Diff.of_fields(target, dict(before or {}), dict(after or {}), summary=task)
    return Diff.of_text(target, _text(before), _text(after), summary=task)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"


def _message(res: Mapping[str, Any]) -> str:
    parts = [str(res.get("msg") or "").strip()]
    for key in ("stderr", "stdout"):
        value = str(res.get(key) or "").strip()
        if value and value not in parts[0]:
            parts.append(f"{key}: {value}")
    text = " | ".join(p for p in parts if p)
    return secrets.mask_text(text[:_MAX_MSG])


def recap(event: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of a ``playbook_on_stats`` event: host -> counts."""
    data: Mapping[str, Any] = event.get("event_data") or {}
    out: dict[str, dict[str, int]] = {}
    for key, name in (
        ("ok", "ok"),
        ("changed", "changed"),
        ("failures", "failed"),
        ("dark", "unreachable"),
        ("skipped", "skipped"),
        ("rescued", "rescued"),
        ("ignored", "ignored"),
    ):
        for host, count in (data.get(key) or {}).items():
            out.setdefault(str(host), {})[name] = int(count)
    return out


def error_lines(event: Mapping[str, Any]) -> list[str]:
    """ansible-playbook's own error output in a ``verbose``/``error`` event (not task output)."""
    if event.get("event") not in ("verbose", "error"):
        return []
    text = secrets.mask_text(str(event.get("stdout") or ""))
    return [line for line in text.splitlines() if line.strip()][:20]


def mask_event(event: dict[str, Any]) -> None:
    """Mask secrets inside an event *in place*: ansible-runner writes this same dict to disk
    after the handler returns, so the job_events files never hold a secret either."""
    masked = secrets.mask(event)
    event.clear()
    event.update(masked)


def results_of(events: Iterable[Mapping[str, Any]]) -> list[TaskResult]:
    return [r for r in (task_result(e) for e in events) if r is not None]
