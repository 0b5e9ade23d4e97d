"""Small frozen results: what a step intends (Diff), what it did (StepResult), a run's outcome."""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class StepKind(enum.StrEnum):
    CHECK = "check"  # read-only, gathers evidence
    CHANGE = "change"  # plan -> diff, apply, verify, undo
    MANUAL = "manual"  # a person confirms; who and when are recorded
    WAIT = "wait"  # until a condition holds, with a timeout


class Status(enum.StrEnum):
    PLANNED = "planned"
    OK = "ok"
    NO_CHANGE = "no-change"
    CHANGED = "changed"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNDONE = "undone"
    UNDO_FAILED = "undo-failed"
    REFUSED = "refused"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"
    # stopped part-way: batches of a batched step kept, the failing one undone, later ones not run
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    REFUSED = "refused"  # never granted: its re-plan drifted, or the rules refused it
    ABANDONED = "abandoned"  # killed before it was granted, then given up


@dataclass(frozen=True)
class FieldChange:
    """One field of one object: before and after."""

    name: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Diff:
    """An intended change on one target.

    ``fields`` describes object changes (e.g. a NetBox device's status), ``text`` a
    unified diff of a configuration. ``before`` is what undo needs to restore; it is
    recorded before the change is applied, so undo works after a crash too.
    """

    target: str
    kind: str = "fields"  # "fields" | "text" | "create" | "delete"
    summary: str = ""
    fields: tuple[FieldChange, ...] = ()
    text: str = ""
    before: Any = None
    after: Any = None

    @property
    def empty(self) -> bool:
        return not self.fields and not self.text.strip() and self.kind in ("fields", "text")

    @classmethod
    def of_fields(
        cls, target: str, before: dict[str, Any], after: dict[str, Any], summary: str = ""
    ) -> Diff:
        """A field diff holding only the fields whose value changes."""
        changes = tuple(
            FieldChange(k, before.get(k), v) for k, v in after.items() if before.get(k) != v
        )
        return cls(
            target=target,
            kind="fields",
            summary=summary,
            fields=changes,
            before={c.name: c.before for c in changes},
            after={c.name: c.after for c in changes},
        )

    @classmethod
    def of_text(cls, target: str, before: str, after: str, summary: str = "") -> Diff:
        """A unified diff between two texts (configurations, files)."""
        text = "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"{target} (now)",
                tofile=f"{target} (intended)",
            )
        )
        return cls(
            target=target, kind="text", summary=summary, text=text, before=before, after=after
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "summary": self.summary,
            "fields": [f.to_dict() for f in self.fields],
            "text": self.text,
            "before": self.before,
            "after": self.after,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diff:
        return cls(
            target=data["target"],
            kind=data.get("kind", "fields"),
            summary=data.get("summary", ""),
            fields=tuple(FieldChange(**f) for f in data.get("fields", [])),
            text=data.get("text", ""),
            before=data.get("before"),
            after=data.get("after"),
        )


@dataclass(frozen=True)
class StepResult:
    """What one step did (in a run) or intends (in a plan)."""

    step: str
    title: str
    kind: StepKind
    status: Status
    targets: tuple[str, ...] = ()
    changed: bool = False
    diffs: tuple[Diff, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    actor: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return (self.ended - self.started).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "title": self.title,
            "kind": str(self.kind),
            "status": str(self.status),
            "targets": list(self.targets),
            "changed": self.changed,
            "diffs": [d.to_dict() for d in self.diffs],
            "evidence": self.evidence,
            "error": self.error,
            "started": self.started.isoformat() if self.started else None,
            "ended": self.ended.isoformat() if self.ended else None,
            "actor": self.actor,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        """A result as the record keeps it (a step.finished entry's payload)."""
        started, ended = data.get("started"), data.get("ended")
        return cls(
            step=data["step"],
            title=data.get("title", data["step"]),
            kind=StepKind(data["kind"]),
            status=Status(data["status"]),
            targets=tuple(data.get("targets", ())),
            changed=bool(data.get("changed")),
            diffs=tuple(Diff.from_dict(d) for d in data.get("diffs", ())),
            evidence=dict(data.get("evidence") or {}),
            error=data.get("error"),
            started=datetime.fromisoformat(started) if started else None,
            ended=datetime.fromisoformat(ended) if ended else None,
            actor=data.get("actor"),
        )


@dataclass(frozen=True)
class RunResult:
    run_id: str
    runbook: str
    status: RunStatus
    steps: tuple[StepResult, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "runbook": self.runbook,
            "status": str(self.status),
            "error": self.error,
            "steps": [s.to_dict() for s in self.steps],
        }
