"""Step kinds and the decorators that turn runbook methods into steps.

A runbook class body reads top to bottom as the work instruction::

    @check("The device is planned in NetBox", targets="{device}")
    def device_is_planned(self, ctx): ...

    @change("Mark the device active in NetBox", targets="{device}")
    def plan_device_active(self, ctx) -> list[Diff]: ...      # read-only: what would change

    @plan_device_active.apply
    def mark_device_active(self, ctx, diffs): ...             # the write

    @plan_device_active.undo
    def restore_device_status(self, ctx, diffs): ...          # back to each diff's ``before``

``@change(..., undo_on_failure=True)`` declares that the undo is also safe on a half-applied
step: when the apply fails, the rollback undoes this step's partial work first.

``@change(..., recurs=True)`` declares a change every run makes anew, such as a record of the
run (a commit to a configuration history): a plan whose only changes recur runs in every
window of a recurring schedule (`runbooks.recurring.plan_writes`), each window still only
when its plan is exactly the approved one. A step that writes to a device or NetBox never
recurs: applied, its diffs are gone from the next plan.

A change step's plan function runs in plans and runs alike and must only read; the
engine records its diffs *before* applying, so undo and resume work from the record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from runbooks.core.results import Diff, StepKind

if TYPE_CHECKING:
    from runbooks.core.context import RunContext

Targets = str | Sequence[str] | Callable[[Any], Sequence[str]] | None
StepFunc = Callable[..., Any]
# how long a step is expected to take: fixed, or from the runbook's parameters (a burn-in of
# ``burn_in`` seconds), so the window check never starts what cannot end inside the window
Duration = timedelta | Callable[[Any], timedelta]


@dataclass(eq=False)
class Step:
    """A step of a runbook. Identity is the object itself; ``name`` is its function name."""

    func: StepFunc
    title: str
    kind: StepKind
    targets: Targets = None
    duration: timedelta = timedelta(seconds=30)
    duration_of_params: Callable[[Any], timedelta] | None = field(default=None, kw_only=True)

    @property
    def name(self) -> str:
        return self.func.__name__

    def resolve_targets(self, runbook: Any) -> tuple[str, ...]:
        """Targets with the runbook's parameters filled in (``"{device}"`` -> ``"leaf3"``)."""
        params = runbook.params.model_dump()
        raw = self.targets
        if raw is None:
            return ()
        if callable(raw):
            return tuple(raw(runbook))
        items = [raw] if isinstance(raw, str) else list(raw)
        return tuple(str(item).format(**params) for item in items)

    def expected(self, runbook: Any) -> timedelta:
        """How long the step is expected to take with the runbook's parameters."""
        if self.duration_of_params is None:
            return self.duration
        return self.duration_of_params(runbook)

    def expected_s(self, runbook: Any, diffs: Sequence[Diff] = ()) -> float:
        """How long the step is expected to take, in seconds, for a plan of these diffs."""
        return self.expected(runbook).total_seconds()

    def resolve_title(self, runbook: Any) -> str:
        try:
            return self.title.format(**runbook.params.model_dump())
        except (KeyError, IndexError, ValueError):
            return self.title


@dataclass(eq=False)
class CheckStep(Step):
    """Read-only; returns evidence (a dict) or raises VerificationError to refuse."""


@dataclass(eq=False)
class ManualStep(Step):
    """Returns the instruction a person must confirm; the engine asks and records who and when."""


@dataclass(eq=False)
class WaitStep(Step):
    """Returns a truthy value (or evidence) once its condition holds; polled until timeout."""

    timeout: timedelta = timedelta(minutes=5)
    interval: timedelta = timedelta(seconds=2)


@dataclass(eq=False)
class ChangeStep(Step):
    """plan (read-only) -> diffs; apply(diffs); verify(diffs) -> bool; undo(diffs)."""

    apply_func: StepFunc | None = None
    undo_func: StepFunc | None = None
    verify_func: StepFunc | None = None
    # undo also cleans up this step's own partial work when its apply fails (the undo must be
    # safe on a half-applied step: a playbook's rollback that restores a snapshot is)
    undo_on_failure: bool = False
    # a change every run makes anew, such as a record of the run: a plan whose only changes
    # recur runs in every window of its recurring schedule (runbooks.recurring.plan_writes)
    recurs: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def apply(self, func: StepFunc) -> ChangeStep:
        self.apply_func = func
        return self

    def undo(self, func: StepFunc) -> ChangeStep:
        self.undo_func = func
        return self

    def verify(self, func: StepFunc) -> ChangeStep:
        self.verify_func = func
        return self

    @property
    def reversible(self) -> bool:
        return self.undo_func is not None

    def plan(self, runbook: Any, ctx: RunContext) -> list[Diff]:
        result = self.func(runbook, ctx)
        if result is None:
            return []
        diffs = [result] if isinstance(result, Diff) else list(result)
        return [d for d in diffs if not d.empty]


def _durations(duration: Duration) -> dict[str, Any]:
    """A decorator's ``duration``: fixed, or a function of the runbook (its parameters)."""
    if isinstance(duration, timedelta):
        return {"duration": duration}
    return {"duration_of_params": duration}


def check(
    title: str, *, targets: Targets = None, duration: Duration = timedelta(seconds=30)
) -> Callable[[StepFunc], CheckStep]:
    """A check step. ``duration`` may be a function of the runbook, e.g.
    ``lambda rb: timedelta(seconds=rb.p.burn_in + 60)``."""
    return lambda f: CheckStep(f, title, StepKind.CHECK, targets, **_durations(duration))


def change(
    title: str,
    *,
    targets: Targets = None,
    duration: timedelta = timedelta(minutes=1),
    undo_on_failure: bool = False,
    recurs: bool = False,
) -> Callable[[StepFunc], ChangeStep]:
    """A change step. ``undo_on_failure``: when its apply fails part-way, the rollback runs
    this step's undo too (first), not only the undo of the steps completed before it.
    ``recurs``: a change every run makes anew, such as a record of the run; a plan whose only
    changes recur runs in every window of its recurring schedule."""
    return lambda f: ChangeStep(
        f,
        title,
        StepKind.CHANGE,
        targets,
        duration,
        undo_on_failure=undo_on_failure,
        recurs=recurs,
    )


def manual(
    title: str, *, targets: Targets = None, duration: timedelta = timedelta(minutes=10)
) -> Callable[[StepFunc], ManualStep]:
    return lambda f: ManualStep(f, title, StepKind.MANUAL, targets, duration)


def wait(
    title: str,
    *,
    targets: Targets = None,
    timeout: timedelta = timedelta(minutes=5),
    interval: timedelta = timedelta(seconds=2),
) -> Callable[[StepFunc], WaitStep]:
    return lambda f: WaitStep(f, title, StepKind.WAIT, targets, timeout, timeout, interval)
