"""Planning: every step of a runbook in dry-run, collected into a Plan.

Checks run and give evidence; change steps give their diffs; manual and wait steps say what
they will ask or wait for; a check that follows a planned change is a post-check and is only
listed. A refused check refuses the plan and the remaining steps are not planned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from runbooks.core import secrets
from runbooks.core.context import RunContext
from runbooks.core.errors import DryRunViolation, RunbookError
from runbooks.core.plan import Plan, PlannedStep
from runbooks.core.results import Diff, Status, StepResult
from runbooks.core.runbook import Runbook
from runbooks.core.steps import ChangeStep, ManualStep, Step, WaitStep


class Listener(Protocol):
    """Progress hooks (the CLI shows them live). They must not raise."""

    def step_started(self, step: Step, title: str, targets: tuple[str, ...]) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def undo_finished(self, step: Step, ok: bool, error: str | None) -> None: ...


def params_record(runbook: Runbook) -> dict[str, Any]:
    """Parameters as recorded: JSON-safe, SecretStr fields masked by pydantic and by us."""
    return dict(secrets.mask(runbook.params.model_dump(mode="json")))


def as_evidence(value: Any) -> dict[str, Any]:
    if value is None or value is True:
        return {}
    if isinstance(value, dict):
        return value
    return {"result": value}


def plan_steps(runbook: Runbook, ctx: RunContext, listener: Listener, actor: str) -> Plan:
    planned: list[PlannedStep] = []
    refusal: str | None = None
    after_changes = False
    for step in runbook.steps():
        if refusal is not None:
            planned.append(_planned(runbook, step, Status.SKIPPED))
            continue
        listener.step_started(step, step.resolve_title(runbook), step.resolve_targets(runbook))
        try:
            item = _plan_step(runbook, step, ctx, after_changes)
            after_changes = after_changes or bool(item.diffs)
        except DryRunViolation:
            raise
        except RunbookError as exc:
            refusal = f"{step.resolve_title(runbook)}: {exc}"
            item = _planned(runbook, step, Status.REFUSED, error=str(exc))
        except Exception as exc:
            raise RunbookError(
                f"step {step.name} failed while planning: {type(exc).__name__}: {exc}",
                step=step.name,
            ) from exc
        planned.append(item)
        result = StepResult(
            item.step,
            item.title,
            item.kind,
            item.status,
            item.targets,
            bool(item.diffs),
            item.diffs,
            item.evidence,
            item.error,
        )
        ctx.results[item.step] = result  # what later steps of the plan see
        listener.step_finished(result)
    return Plan(
        runbook.name,
        runbook.instruction,
        params_record(runbook),
        tuple(planned),
        datetime.now(UTC),
        actor,
        refusal,
    )


def _planned(
    runbook: Runbook,
    step: Step,
    status: Status,
    *,
    diffs: tuple[Diff, ...] = (),
    evidence: dict[str, Any] | None = None,
    error: str | None = None,
) -> PlannedStep:
    return PlannedStep(
        step.name,
        step.resolve_title(runbook),
        step.kind,
        status,
        step.resolve_targets(runbook),
        step.expected_s(runbook, diffs),
        not isinstance(step, ChangeStep) or step.reversible,
        tuple(Diff.from_dict(secrets.mask(d.to_dict())) for d in diffs),
        dict(secrets.mask(evidence or {})),
        error,
    )


def _plan_step(runbook: Runbook, step: Step, ctx: RunContext, after_changes: bool) -> PlannedStep:
    if isinstance(step, ChangeStep):
        diffs = tuple(step.plan(runbook, ctx))
        status = Status.PLANNED if diffs else Status.NO_CHANGE
        return _planned(runbook, step, status, diffs=diffs)
    if isinstance(step, ManualStep):
        text = str(step.func(runbook, ctx))
        return _planned(runbook, step, Status.PLANNED, evidence={"instruction": text})
    if isinstance(step, WaitStep):
        return _planned(
            runbook, step, Status.PLANNED, evidence={"timeout_s": step.timeout.total_seconds()}
        )
    if after_changes:
        # a post-check verifies what the changes above will have done: it cannot hold yet
        note = {"runs": "after the changes above (a post-check); not run in a plan"}
        return _planned(runbook, step, Status.PLANNED, evidence=note)
    return _planned(runbook, step, Status.OK, evidence=as_evidence(step.func(runbook, ctx)))
