"""Many targets: a change applied in batches, a canary first.

A batched change step plans one change over many targets (units: by default each diff's
target). The run applies it batch by batch — the first batch one unit (the canary), then
batches of the configured size — and after each batch runs its post-checks against what
was observed just before it, then confirms it::

    @batched("Configure the drifted devices", batch_size="batch_size")
    def plan_configs(self, ctx) -> list[Diff]: ...      # read-only, as any change step

    @plan_configs.apply          # (ctx, batch's diffs): e.g. commit with commit-confirm
    @plan_configs.baseline       # (ctx, batch's diffs) -> evidence before the batch
    @plan_configs.post_check     # (ctx, diffs, baseline) -> evidence; raises on a regression
    @plan_configs.confirm        # (ctx, batch's diffs): once the post-checks passed
    @plan_configs.undo           # (ctx, batch's diffs): the batch back as it was

The policy is stop-and-keep-earlier: on the first failure (apply, post-check, confirm) the
current batch is undone and the run stops; the batches before it stay done — a batch
kept is a barrier the run's rollback does not cross, so neither they nor the steps they
stand on are undone — and the batches after it are recorded as not run.

In the record each batch is a step of its own, named ``<step>#<n>`` (step.started with
its diffs and baseline, then step.finished or step.failed), so a run killed mid-way resumes
like any run: batches kept are not applied again, a batch in flight is verified before it is
retried. In a plan, each diff's summary names its batch; the layout follows from the diffs'
order and the batch size, which the plan hash both covers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from runbooks.core.errors import InputError, VerificationError
from runbooks.core.results import Diff, StepKind
from runbooks.core.steps import ChangeStep, StepFunc, Targets

if TYPE_CHECKING:
    from runbooks.core.context import RunContext

SEPARATOR = "#"


class BatchStopped(VerificationError):
    """A batch failed: it is undone, the run stops; earlier batches stay done.

    Raised before the rollback, so its message says the failed batch is *to be* undone;
    `after_rollback` says what became of it (the run's last entry is written after the
    rollback). ``batch`` is the failed batch's step name, None when the batch that stopped
    the run was not started (nothing of it to undo)::

        >>> stop = BatchStopped("batch 2 of 3 (d2) failed", "VerificationError: x", "s#2")
        >>> str(stop)
        'batch 2 of 3 (d2) failed, to be undone: VerificationError: x'
        >>> stop.after_rollback(undone=False)
        'batch 2 of 3 (d2) failed, not undone: VerificationError: x'
    """

    def __init__(self, what: str, why: str, batch: str | None = None) -> None:
        self.what, self.why, self.batch = what, why, batch
        super().__init__(self._text("to be undone"))

    def after_rollback(self, undone: bool) -> str:
        return self._text("undone" if undone else "not undone")

    def _text(self, undo: str) -> str:
        return f"{self.what}, {undo}: {self.why}" if self.batch else f"{self.what}: {self.why}"


def layout(units: Sequence[str], size: int, canary: int = 1) -> list[tuple[str, ...]]:
    """The batches, in order: the first ``canary`` units, then batches of ``size``.

    >>> layout(["a", "b", "c", "d", "e"], 2)
    [('a',), ('b', 'c'), ('d', 'e')]
    >>> layout(["a", "b"], 5)
    [('a',), ('b',)]
    >>> layout([], 3)
    []
    """
    units = list(dict.fromkeys(units))
    out = [tuple(units[:canary])] if units else []
    rest = units[canary:]
    out += [tuple(rest[i : i + size]) for i in range(0, len(rest), size)]
    return out


def batch_label(index: int, count: int) -> str:
    """How a plan and a record name a batch.

    >>> batch_label(1, 3), batch_label(2, 3)
    ('batch 1 of 3 (canary)', 'batch 2 of 3')
    """
    return f"batch {index} of {count}" + (" (canary)" if index == 1 else "")


def parent_of(name: str) -> str | None:
    """The batched step a record's step name is a batch of (None: an ordinary step).

    >>> parent_of("plan_configs#2"), parent_of("plan_configs")
    ('plan_configs', None)
    """
    parent, sep, index = name.rpartition(SEPARATOR)
    return parent if sep and index.isdigit() else None


@dataclass(eq=False)
class BatchedChangeStep(ChangeStep):
    """A change step applied in canary batches (see the module's docstring). ``batch_size``
    is a number or the name of the runbook's parameter that holds it; ``duration`` is one
    batch's (a window refuses to start a batch that cannot finish in it)."""

    batch_size: int | str = 1
    unit: Callable[[Diff], str] | None = None
    baseline_func: StepFunc | None = None
    post_check_func: StepFunc | None = None
    confirm_func: StepFunc | None = None

    def baseline(self, func: StepFunc) -> BatchedChangeStep:
        self.baseline_func = func
        return self

    def post_check(self, func: StepFunc) -> BatchedChangeStep:
        self.post_check_func = func
        return self

    def confirm(self, func: StepFunc) -> BatchedChangeStep:
        self.confirm_func = func
        return self

    def unit_of(self, diff: Diff) -> str:
        return self.unit(diff) if self.unit else diff.target

    def size(self, runbook: Any) -> int:
        size = self.batch_size
        if isinstance(size, str):
            size = getattr(runbook.params, size)
        if not isinstance(size, int) or size < 1:
            raise InputError(f"{self.name}: batch size must be a whole number ≥ 1, not {size!r}")
        return size

    def layout(self, runbook: Any, diffs: Sequence[Diff]) -> list[tuple[str, ...]]:
        return layout([self.unit_of(d) for d in diffs], self.size(runbook))

    def expected_s(self, runbook: Any, diffs: Sequence[Diff] = ()) -> float:
        """One batch's duration for each batch (a window's fit is judged on the whole)."""
        return self.duration.total_seconds() * max(1, len(self.layout(runbook, diffs)))

    def plan(self, runbook: Any, ctx: RunContext) -> list[Diff]:
        """The diffs, each summary naming its batch (what the review document shows)."""
        diffs = super().plan(runbook, ctx)
        batches = self.layout(runbook, diffs)
        where = {unit: i for i, units in enumerate(batches, 1) for unit in units}
        labelled = []
        for diff in diffs:
            label = batch_label(where[self.unit_of(diff)], len(batches))
            labelled.append(replace(diff, summary=f"{label}: {diff.summary}".rstrip(": ")))
        return labelled

    def batches(self, layout: Sequence[Sequence[str]]) -> list[BatchStep]:
        return [self.batch(i, len(layout), units) for i, units in enumerate(layout, 1)]

    def batch(self, index: int, count: int, units: Sequence[str]) -> BatchStep:
        return BatchStep(
            self.func,
            self.title,
            StepKind.CHANGE,
            duration=self.duration,
            undo_func=self.undo_func,
            parent=self,
            index=index,
            count=count,
            units=tuple(units),
        )

    def of_batch(self, diffs: Sequence[Diff], batch: BatchStep) -> list[Diff]:
        return [d for d in diffs if self.unit_of(d) in batch.units]


@dataclass(eq=False)
class BatchStep(ChangeStep):
    """One batch of a batched step, as the record and the rollback see it."""

    parent: BatchedChangeStep | None = None
    index: int = 0
    count: int = 0
    units: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        assert self.parent is not None
        return f"{self.parent.name}{SEPARATOR}{self.index}"

    @property
    def label(self) -> str:
        return batch_label(self.index, self.count)

    def resolve_targets(self, runbook: Any) -> tuple[str, ...]:
        return self.units

    def resolve_title(self, runbook: Any) -> str:
        assert self.parent is not None
        title = self.parent.resolve_title(runbook)
        return f"{title} — {self.label}: {', '.join(self.units)}"


def batched(
    title: str,
    *,
    batch_size: int | str,
    targets: Targets = None,
    duration: timedelta = timedelta(minutes=2),
    unit: Callable[[Diff], str] | None = None,
) -> Callable[[StepFunc], BatchedChangeStep]:
    """A change step applied in canary batches of ``batch_size`` (a number, or the name of
    the runbook's parameter holding it); ``unit`` groups diffs (default: their target)."""
    return lambda f: BatchedChangeStep(
        f, title, StepKind.CHANGE, targets, duration, batch_size=batch_size, unit=unit
    )
