"""A plan: every step's intent, computed in dry-run, with a content hash approvals bind to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runbooks_rules.plan import plan_hash

from runbooks.core.results import Diff, Status, StepKind


@dataclass(frozen=True)
class PlannedStep:
    step: str
    title: str
    kind: StepKind
    status: Status
    targets: tuple[str, ...] = ()
    duration_s: float = 0.0
    reversible: bool = True
    diffs: tuple[Diff, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def intent(self) -> dict[str, Any]:
        """What the hash covers: everything a reviewer reads of the step (`runbooks_rules.plan`)
        but its evidence, which (counters, uptimes) varies from one read to the next and is
        shown as such."""
        return {
            "step": self.step,
            "kind": str(self.kind),
            "status": str(self.status),
            "targets": list(self.targets),
            "diffs": [d.to_dict() for d in self.diffs],
            "title": self.title,
            "duration_s": self.duration_s,
            "reversible": self.reversible,
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.intent(), "evidence": self.evidence}


@dataclass(frozen=True)
class Plan:
    runbook: str
    instruction: str
    params: dict[str, Any]
    steps: tuple[PlannedStep, ...]
    created: datetime
    actor: str
    refusal: str | None = None

    @property
    def changes(self) -> int:
        return sum(len(s.diffs) for s in self.steps)

    @property
    def expected_duration_s(self) -> float:
        return sum(s.duration_s for s in self.steps)

    @property
    def content_hash(self) -> str:
        """The hash approvals sign: `runbooks_rules.plan.plan_hash`, which NetBox recomputes
        from the plan document it is given."""
        return plan_hash(
            {
                "runbook": self.runbook,
                "instruction": self.instruction,
                "params": self.params,
                "refusal": self.refusal,
                "steps": [s.intent() for s in self.steps],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook,
            "instruction": self.instruction,
            "params": self.params,
            "actor": self.actor,
            "created": self.created.isoformat(),
            "refusal": self.refusal,
            "changes": self.changes,
            "expected_duration_s": self.expected_duration_s,
            "hash": self.content_hash,
            "steps": [s.to_dict() for s in self.steps],
        }
