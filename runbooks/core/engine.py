"""The engine: plan a runbook in dry-run, run it with a record, roll back, resume.

Every state change of a run is an entry in the record store, written *before* the
engine moves on, so a run killed at any point can be continued from its record:
completed steps are not applied again, and a step that was in flight is verified
before it is retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runbooks_rules.ids import new_run_id

from runbooks.core import secrets
from runbooks.core.batches import (
    SEPARATOR,
    BatchedChangeStep,
    BatchStep,
    BatchStopped,
    batch_label,
    parent_of,
)
from runbooks.core.context import Confirmer, RunContext, refuse_all
from runbooks.core.errors import (
    ApprovalError,
    InputError,
    RunbookError,
    VerificationError,
    WindowError,
)
from runbooks.core.gateway import Gateway, Mode
from runbooks.core.plan import Plan
from runbooks.core.planning import Listener, as_evidence, params_record, plan_steps
from runbooks.core.results import Diff, RunResult, RunStatus, Status, StepResult
from runbooks.core.runbook import Runbook
from runbooks.core.steps import ChangeStep, CheckStep, ManualStep, Step, WaitStep
from runbooks.core.store import Claim, Entry, RecordStore
from runbooks.core.window import Window

log = logging.getLogger(__name__)

GatewayFactories = dict[type[Gateway], Callable[[RunContext, str], Gateway]]


class _Silent:
    def step_started(self, step: Step, title: str, targets: tuple[str, ...]) -> None:
        pass

    def step_finished(self, result: StepResult) -> None:
        pass

    def undo_finished(self, step: Step, ok: bool, error: str | None) -> None:
        pass


@dataclass
class _ChangeOutcome:
    diffs: list[Diff] = field(default_factory=list)
    undo_diffs: list[Diff] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    resumed: str | None = None


@dataclass
class _RunState:
    """What the record says about a run; rebuilt from entries on resume. ``results`` are the
    finished steps' results in order (what ``ctx.results`` starts from)."""

    done: set[str] = field(default_factory=set)
    completed: list[tuple[ChangeStep, list[Diff]]] = field(default_factory=list)
    undone: set[str] = field(default_factory=set)
    in_flight: Entry | None = None
    applying: tuple[ChangeStep, list[Diff]] | None = None  # a change step inside its apply
    failed: bool = False
    results: list[StepResult] = field(default_factory=list)
    window: Window | None = None
    # a batched step's batch in flight (its step.started entry), by the batched step's name
    batch_open: dict[str, Entry] = field(default_factory=dict)
    batch_started: set[str] = field(default_factory=set)  # batches begun (named in the record)
    batch_failed: set[str] = field(default_factory=set)  # batches recorded failed (to undo)
    # what run.finished says besides status and error (a batched step's kept and not run)
    outcome: dict[str, Any] = field(default_factory=dict)
    # the batches kept, by step name ("batch 1 of 3 (canary): d1"): a run that fails with any
    # still in place ends stopped, not rolled back
    kept: dict[str, str] = field(default_factory=dict)


class Engine:
    def __init__(
        self,
        store: RecordStore,
        actor: str,
        *,
        confirmer: Confirmer = refuse_all,
        gateway_factories: GatewayFactories | None = None,
        listener: Listener | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.clock = clock
        self.store = store
        self.actor = actor
        self.confirmer = confirmer
        self.gateway_factories = gateway_factories or {}
        self.listener: Listener = listener or _Silent()
        self._held: dict[str, int] = {}
        self._claims: dict[str, Claim] = {}
        # a begun run's re-plan, its gateways kept open for the run (`replan`, `_steps`)
        self._replanned: dict[str, RunContext] = {}
        self._keep_for: str | None = None  # the run the plan under way re-plans

    def _context(
        self, runbook: Runbook, mode: Mode, run_id: str, done: list[StepResult] | None = None
    ) -> RunContext:
        """A fresh context for one plan or run: its own state, the results recorded so far."""
        secrets.register_model(runbook.params)

        def head() -> str:
            return self.store.run_head(run_id) if mode is Mode.RUN else ""

        return RunContext(
            mode,
            run_id,
            self.actor,
            runbook,
            self.confirmer,
            dict(self.gateway_factories),
            head,
            results={r.step: r for r in done or []},
            state=runbook.new_state(),
        )

    # ---------------------------------------------------------------- plan
    def plan(self, runbook: Runbook) -> Plan:
        """Run every step in dry-run. Gateways refuse writes; nothing is recorded."""
        ctx = self._context(runbook, Mode.PLAN, "plan")
        keep_for, self._keep_for = self._keep_for, None  # a re-plan's (`replan`)
        try:
            planned = plan_steps(runbook, ctx, self.listener, self.actor)
        except BaseException:
            ctx.close()
            raise
        if keep_for is None:
            ctx.close()
        else:
            self._replanned[keep_for] = ctx
        return planned

    # ---------------------------------------------------------------- run
    def run(
        self,
        runbook: Runbook,
        *,
        plan_hash: str | None = None,
        run_id: str | None = None,
        window: Window | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RunResult:
        """Execute the steps, recording each; roll back completed changes on failure.

        With a window, the run refuses to start outside it, and before every step refuses to
        start one whose expected duration would cross the window's end: it stops and rolls
        back instead."""
        if window is not None:
            window.check_start(self.clock())
        run_id = self.begin(runbook, plan_hash=plan_hash, run_id=run_id, window=window, extra=extra)
        return self._continue(runbook, run_id, _RunState(window=window))

    def begin(
        self,
        runbook: Runbook,
        *,
        plan_hash: str | None = None,
        run_id: str | None = None,
        window: Window | None = None,
        extra: dict[str, Any] | None = None,
        awaiting_grant: bool = False,
    ) -> str:
        """The run's record starts (run.started). A run of a change starts it before its
        re-plan (``awaiting_grant``): killed at any later point, the run is on record and
        `resume` or `abandon` takes it from there; `granted` or `refuse` follows."""
        run_id = run_id or new_run_id()
        payload: dict[str, Any] = {
            "runbook": runbook.name,
            "instruction": runbook.instruction,
            "params": params_record(runbook),
            "targets": list(runbook.targets()),
            "steps": [s.name for s in runbook.steps()],
            "plan_hash": plan_hash,
            "window": window.to_dict() if window else None,
            **(extra or {}),
        }
        if awaiting_grant:
            payload["awaiting_grant"] = True
        self._append(run_id, "run.started", payload)
        return run_id

    def awaiting_grant(self, run_id: str) -> bool:
        """Was the run begun for a change and never granted (killed during its re-plan)?"""
        entries = self.store.entries(run_id)
        kinds = {e.kind for e in entries}
        return bool(
            entries
            and entries[0].payload.get("awaiting_grant")
            and "run.granted" not in kinds
            and "run.finished" not in kinds
        )

    def replan(self, runbook: Runbook, run_id: str) -> Plan:
        """The plan recomputed for a begun run; a plan that fails ends the run refused.

        Its context stays open: the run granted next takes its gateways over
        (`RunContext.take_over`, `Gateway.reopen`), so the devices the re-plan logged in to
        are not logged in to again. A run refused, or not run before this process lets go of
        it (`holding`), closes them."""
        self._append(run_id, "run.replanning", {})
        self._let_go(run_id)
        self._keep_for = run_id
        try:
            return self.plan(runbook)
        except RunbookError as exc:
            self.refuse(run_id, exc)
            raise
        finally:
            self._keep_for = None

    def _let_go(self, run_id: str) -> None:
        """Close the gateways a re-plan of the run kept for it, if any."""
        kept = self._replanned.pop(run_id, None)
        if kept is not None:
            kept.close()

    def refuse(self, run_id: str, exc: Exception) -> None:
        """A begun run that will not run (its re-plan drifted, the rules refused it)."""
        self._let_go(run_id)
        self._append(
            run_id, "run.finished", {"status": str(RunStatus.REFUSED), "error": _describe(exc)}
        )

    def granted(
        self,
        runbook: Runbook,
        run_id: str,
        *,
        plan_hash: str,
        emergency: bool,
        window: Window | None,
    ) -> RunResult:
        """The book granted the begun run for ``plan_hash``: record it, then run inside
        ``window`` (none for an emergency run), which it refuses to start outside."""
        self._append(
            run_id,
            "run.granted",
            {
                "plan_hash": plan_hash,
                "emergency": emergency,
                "window": window.to_dict() if window else None,
            },
        )
        if window is not None:
            try:
                window.check_start(self.clock())
            except WindowError as exc:
                self.refuse(run_id, exc)
                raise
        return self._continue(runbook, run_id, self._replay(runbook, self.store.entries(run_id)))

    def note(self, run_id: str, kind: str, payload: dict[str, Any]) -> None:
        """An entry of the run's own (e.g. run.resumed before a resumed re-plan)."""
        self._append(run_id, kind, payload)

    def resume(
        self,
        run_id: str,
        runbook_factory: Callable[[dict[str, Any]], Runbook],
        overrides: dict[str, Any] | None = None,
    ) -> RunResult:
        """Continue a run that was killed, from its record.

        ``overrides`` are parameters given again (secrets the record could not keep); the
        factory applies them and the record names them."""
        entries = self._unfinished(run_id)
        if self.awaiting_grant(run_id):
            raise InputError(f"run {run_id} was never granted: resume it through its change")
        runbook = runbook_factory(entries[0].payload)
        with self.holding(run_id):  # before anything is written: one process resumes it
            state = self._replay(runbook, self._unfinished(run_id))
            self._append(
                run_id,
                "run.resumed",
                {
                    "in_flight": state.in_flight.step if state.in_flight else None,
                    "done": sorted(state.done),
                    "overrides": secrets.mask(overrides or {}),
                },
            )
            return self._continue(runbook, run_id, state)

    def abandon(
        self, run_id: str, runbook_factory: Callable[[dict[str, Any]], Runbook], why: str
    ) -> RunResult:
        """Give up an interrupted run: a run never granted just ends (nothing was done); a
        granted one rolls back what its record says it completed, then ends."""
        entries = self._unfinished(run_id)
        runbook = runbook_factory(entries[0].payload)
        with self.holding(run_id):
            if self.awaiting_grant(run_id):
                error = f"abandoned before it was granted: {why}"
                self._append(
                    run_id, "run.finished", {"status": str(RunStatus.ABANDONED), "error": error}
                )
                return RunResult(run_id, runbook.name, RunStatus.ABANDONED, (), error)
            state = self._replay(runbook, self._unfinished(run_id))
            step = next(
                (s for s in runbook.steps() if state.in_flight and s.name == state.in_flight.step),
                None,
            )
            if isinstance(step, BatchedChangeStep):
                # killed inside a batch: that batch is undone; the batches kept stay
                batch = state.batch_open.get(step.name)
                if batch is not None:
                    state.completed.append(_batch_of(step, batch))
            elif state.in_flight is not None and isinstance(step, ChangeStep) and step.reversible:
                # killed inside it: its undo restores the before-state it recorded on starting
                diffs = [Diff.from_dict(d) for d in state.in_flight.payload.get("diffs", [])]
                state.completed.append((step, diffs))
            self._append(run_id, "run.abandoned", {"reason": why})
            ctx = self._context(runbook, Mode.RUN, run_id, state.results)
            try:
                return self._rollback(ctx, state, list(state.results), f"abandoned: {why}")
            finally:
                ctx.close()

    def _unfinished(self, run_id: str) -> list[Entry]:
        entries = self.store.entries(run_id)
        if not entries or entries[0].kind != "run.started":
            raise InputError(f"no run {run_id!r} to resume")
        finished = [e for e in entries if e.kind == "run.finished"]
        if finished:
            status = finished[-1].payload.get("status")
            raise InputError(f"run {run_id} already finished ({status}); nothing to resume")
        return entries

    @contextmanager
    def holding(self, run_id: str) -> Iterator[None]:
        """This process works on the run: another `resume` of it is refused meanwhile, and
        once this process is gone (even killed) the run shows as interrupted."""
        if run_id in self._held:
            self._held[run_id] += 1
        else:
            self._claims[run_id] = self.store.claim(run_id)
            self._held[run_id] = 1
        try:
            yield
        finally:
            self._held[run_id] -= 1
            if not self._held[run_id]:
                del self._held[run_id]
                self._let_go(run_id)
                self._claims.pop(run_id).release()

    def _replay(self, runbook: Runbook, entries: list[Entry]) -> _RunState:
        steps = {s.name: s for s in runbook.steps()}
        granted = [e for e in entries if e.kind == "run.granted"]
        head = granted[-1].payload if granted else entries[0].payload
        window = head.get("window")
        state = _RunState(window=Window.parse(window["start"], window["end"]) if window else None)
        results: dict[str, StepResult] = {}
        open_entry: Entry | None = None
        for entry in entries:
            if entry.step and parent_of(entry.step) and entry.kind.startswith("step."):
                _replay_batch(steps, entry, state, results)
            elif entry.kind == "step.started":
                open_entry = entry
            elif entry.kind in ("step.finished", "step.failed", "step.refused") and entry.step:
                started, open_entry = open_entry, None
                if entry.kind != "step.finished":
                    state.failed = True
                    step = steps.get(entry.step)
                    if (
                        entry.payload.get("partial_undo")
                        and started
                        and isinstance(step, ChangeStep)
                    ):
                        diffs = [Diff.from_dict(d) for d in started.payload.get("diffs", [])]
                        state.completed.append((step, diffs))
                    continue
                state.done.add(entry.step)
                step = steps.get(entry.step)
                kind = str(step.kind) if step else "check"
                results[entry.step] = StepResult.from_dict(
                    {"step": entry.step, "kind": kind, **entry.payload}
                )
                if isinstance(step, BatchedChangeStep):
                    state.completed.clear()  # its batches kept: a barrier (`runbooks.core.batches`)
                elif isinstance(step, ChangeStep) and entry.payload.get("changed"):
                    diffs = [Diff.from_dict(d) for d in entry.payload.get("undo_diffs", [])]
                    state.completed.append((step, diffs))
            elif entry.kind in ("undo.finished", "undo.skipped") and entry.step:
                state.undone.add(entry.step)
        state.in_flight = open_entry
        state.results = list(results.values())
        state.outcome = _replayed_outcome(steps, entries, state)
        return state

    def _continue(self, runbook: Runbook, run_id: str, state: _RunState) -> RunResult:
        with self.holding(run_id):
            return self._steps(runbook, run_id, state)

    def _steps(self, runbook: Runbook, run_id: str, state: _RunState) -> RunResult:
        ctx = self._context(runbook, Mode.RUN, run_id, state.results)
        replanned = self._replanned.pop(run_id, None)
        if replanned is not None:  # the re-plan's connections go on to the run
            taken = ctx.take_over(replanned)
            replanned.close()
            log.debug("run %s took over the re-plan's gateways: %s", run_id, taken)
        results = state.results  # a batched step adds its batches' results as it goes
        try:
            if state.failed:  # killed during rollback: finish it
                return self._rollback(ctx, state, results, "resumed an interrupted rollback")
            for step in runbook.steps():
                if step.name in state.done:
                    continue
                in_flight = (
                    state.in_flight
                    if (state.in_flight and state.in_flight.step == step.name)
                    else None
                )
                try:
                    if state.window is not None and in_flight is None:
                        state.window.check_step(
                            self.clock(), step.expected(runbook), step.resolve_title(runbook)
                        )
                except WindowError as exc:
                    return self._stop(ctx, state, results, step, exc, "step.refused")
                try:
                    result = self._execute(runbook, step, ctx, state, in_flight)
                except Exception as exc:
                    return self._stop(ctx, state, results, step, exc, "step.failed")
                finally:
                    state.applying = None
                results.append(result)
                ctx.results[step.name] = result
                state.done.add(step.name)
                self._notify_finished(runbook, ctx, result)
            self._append(run_id, "run.finished", {"status": str(RunStatus.SUCCEEDED)})
            return RunResult(run_id, runbook.name, RunStatus.SUCCEEDED, tuple(results))
        finally:
            ctx.close()

    def _stop(
        self,
        ctx: RunContext,
        state: _RunState,
        results: list[StepResult],
        step: Step,
        exc: Exception,
        kind: str,
    ) -> RunResult:
        """A step failed (or the window refused it): record why, then roll back."""
        runbook = ctx.runbook
        error = _describe(exc)
        payload: dict[str, Any] = {"error": error}
        partial = state.applying
        if partial is not None and partial[0] is step and partial[0].undo_on_failure:
            state.completed.append(partial)  # undone first: the rollback goes newest first
            payload["partial_undo"] = True
        self._append(ctx.run_id, kind, payload, step=step.name)
        status = Status.REFUSED if kind == "step.refused" else Status.FAILED
        failed = StepResult(
            step.name,
            step.resolve_title(runbook),
            step.kind,
            status,
            step.resolve_targets(runbook),
            error=error,
        )
        results.append(failed)
        self._notify_finished(runbook, ctx, failed)
        log.warning("step %s %s: %s", step.name, status, error)
        stopped = exc if isinstance(exc, BatchStopped) else None
        return self._rollback(ctx, state, results, error, stopped)

    def _notify_finished(self, runbook: Runbook, ctx: RunContext, result: StepResult) -> None:
        self.listener.step_finished(result)
        try:
            runbook.on_step_finished(ctx, result)
        except Exception:
            log.exception("on_step_finished hook of %s failed", runbook.name)

    def _execute(
        self,
        runbook: Runbook,
        step: Step,
        ctx: RunContext,
        state: _RunState,
        in_flight: Entry | None,
    ) -> StepResult:
        title, targets = step.resolve_title(runbook), step.resolve_targets(runbook)
        self.listener.step_started(step, title, targets)
        started = datetime.now(UTC)
        outcome = _ChangeOutcome()
        if isinstance(step, BatchedChangeStep):
            outcome = self._execute_batches(runbook, step, ctx, state, in_flight, title, targets)
            status = Status.CHANGED if outcome.diffs else Status.NO_CHANGE
        elif isinstance(step, ChangeStep):
            outcome = self._execute_change(runbook, step, ctx, state, in_flight, title, targets)
            if outcome.diffs:
                state.completed.append((step, outcome.undo_diffs))
            status = Status.CHANGED if outcome.diffs else Status.NO_CHANGE
        else:
            self._started(ctx, step, title, targets)
            outcome.evidence = self._execute_other(runbook, step, ctx, title)
            status = Status.OK
        result = StepResult(
            step.name,
            title,
            step.kind,
            status,
            targets,
            bool(outcome.diffs),
            tuple(outcome.diffs),
            outcome.evidence,
            None,
            started,
            datetime.now(UTC),
            self.actor,
        )
        payload = result.to_dict()
        payload["undo_diffs"] = [d.to_dict() for d in outcome.undo_diffs]
        if outcome.resumed:
            payload["resumed"] = outcome.resumed
        self._append(ctx.run_id, "step.finished", payload, step=step.name)
        return result

    def _started(
        self, ctx: RunContext, step: Step, title: str, targets: tuple[str, ...], **extra: Any
    ) -> None:
        self._append(
            ctx.run_id,
            "step.started",
            {"kind": str(step.kind), "title": title, "targets": list(targets), **extra},
            step=step.name,
        )

    def _execute_change(
        self,
        runbook: Runbook,
        step: ChangeStep,
        ctx: RunContext,
        state: _RunState,
        in_flight: Entry | None,
        title: str,
        targets: tuple[str, ...],
    ) -> _ChangeOutcome:
        """Plan, record the diffs (the before-state undo needs), apply, verify.

        A step that was in flight when the run died is verified first: in place, it is not
        applied again; not in place, it is applied with the diffs recorded the first time."""
        outcome = _ChangeOutcome()
        recorded: list[Diff] = []
        todo: list[Diff] | None = None
        if in_flight is not None:
            recorded = [Diff.from_dict(d) for d in in_flight.payload.get("diffs", [])]
            if step.verify_func is None:  # in place means: a re-plan finds nothing left to do
                todo = step.plan(runbook, ctx)
                in_place = not todo
            else:
                in_place = self._in_place(runbook, step, ctx, recorded)
            if in_place:
                outcome.resumed = "verified in place after interruption; not applied again"
                outcome.diffs = outcome.undo_diffs = recorded
                return outcome
            outcome.resumed = "not in place after interruption; what is missing applied again"
        if todo is None:
            todo = step.plan(runbook, ctx)
        # the step's result is what it was recorded to do, whichever process did which part
        outcome.diffs = outcome.undo_diffs = recorded or todo
        self._started(
            ctx,
            step,
            title,
            targets,
            diffs=[d.to_dict() for d in outcome.undo_diffs],
            retry=in_flight is not None,
        )
        if todo:
            if step.apply_func is None:
                raise RunbookError(f"change step {step.name} has no apply function")
            state.applying = (step, outcome.undo_diffs)
            outcome.evidence = as_evidence(step.apply_func(runbook, ctx, todo))
            if not self._in_place(runbook, step, ctx, outcome.diffs):
                raise VerificationError(f"{title}: the change is not in place after applying")
        return outcome

    def _in_place(
        self, runbook: Runbook, step: ChangeStep, ctx: RunContext, diffs: list[Diff]
    ) -> bool:
        if step.verify_func is not None:
            return bool(step.verify_func(runbook, ctx, diffs))
        return not step.plan(runbook, ctx)

    # ---------------------------------------------------------------- batches
    def _execute_batches(
        self,
        runbook: Runbook,
        step: BatchedChangeStep,
        ctx: RunContext,
        state: _RunState,
        in_flight: Entry | None,
        title: str,
        targets: tuple[str, ...],
    ) -> _ChangeOutcome:
        """Batch after batch (`runbooks.core.batches`). The diffs and the layout are recorded
        when the step starts; a resumed run takes both from there, skips the batches its
        record kept and verifies the one in flight before it retries it."""
        outcome = _ChangeOutcome()
        if in_flight is None:
            diffs = step.plan(runbook, ctx)
            layout = step.layout(runbook, diffs)
            self._started(
                ctx,
                step,
                title,
                targets,
                diffs=[d.to_dict() for d in diffs],
                batches=[list(units) for units in layout],
            )
        else:
            diffs = [Diff.from_dict(d) for d in in_flight.payload.get("diffs", [])]
            layout = [tuple(units) for units in in_flight.payload.get("batches", [])]
            outcome.resumed = "continued from its record: batches kept are not applied again"
        batches = step.batches(layout)
        done: list[BatchStep] = []
        for batch in batches:
            if batch.name in state.done:
                done.append(batch)
                continue
            try:
                if state.window is not None and batch.name not in state.batch_started:
                    state.window.check_step(
                        self.clock(), step.duration, batch.resolve_title(runbook)
                    )
                self._run_batch(runbook, step, batch, ctx, state, step.of_batch(diffs, batch))
            except Exception as exc:
                raise self._batches_stopped(ctx, state, batch, batches, done, exc) from exc
            state.completed.clear()  # kept: the run's rollback stops here
            state.kept[batch.name] = f"{batch.label}: {', '.join(batch.units)}"
            done.append(batch)
        outcome.diffs = outcome.undo_diffs = diffs
        outcome.evidence = {"batches": [f"{b.label}: {', '.join(b.units)}" for b in batches]}
        return outcome

    def _run_batch(
        self,
        runbook: Runbook,
        step: BatchedChangeStep,
        batch: BatchStep,
        ctx: RunContext,
        state: _RunState,
        diffs: list[Diff],
    ) -> None:
        """One batch: its baseline, apply, verify, post-checks, confirm; recorded as a step.
        A batch in flight when the run died keeps its recorded baseline; in place, it is not
        applied again (its post-checks and confirmation are done again)."""
        title = batch.resolve_title(runbook)
        self.listener.step_started(batch, title, batch.units)
        started = datetime.now(UTC)
        in_flight = state.batch_open.pop(step.name, None)
        resumed: str | None = None
        todo = diffs
        if in_flight is None:
            baseline = as_evidence(_call(step.baseline_func, runbook, ctx, diffs))
        else:
            baseline = dict(in_flight.payload.get("baseline") or {})
        state.batch_started.add(batch.name)
        self._started(
            ctx,
            batch,
            title,
            batch.units,
            diffs=[d.to_dict() for d in diffs],
            baseline=baseline,
            batch=batch.index,
            of=batch.count,
            retry=in_flight is not None,
        )
        evidence: dict[str, Any] = {}
        try:
            if in_flight is not None:  # it may be half-applied: a failure here undoes it too
                todo, resumed = self._batch_retry(runbook, step, batch, ctx, diffs)
            if todo:
                if step.apply_func is None:
                    raise RunbookError(f"change step {step.name} has no apply function")
                evidence["applied"] = as_evidence(step.apply_func(runbook, ctx, todo))
                if not self._batch_in_place(runbook, step, batch, ctx, diffs):
                    raise VerificationError(f"{title}: the change is not in place after applying")
            checked = _call(step.post_check_func, runbook, ctx, diffs, baseline)
            evidence["post_check"] = as_evidence(checked)
            evidence["confirmed"] = as_evidence(_call(step.confirm_func, runbook, ctx, diffs))
        except Exception as exc:
            self._batch_failed(ctx, state, batch, diffs, exc)
            raise
        result = StepResult(
            batch.name,
            title,
            batch.kind,
            Status.CHANGED,
            batch.units,
            True,
            tuple(diffs),
            {**evidence, "baseline": baseline},
            None,
            started,
            datetime.now(UTC),
            self.actor,
        )
        payload = {**result.to_dict(), "undo_diffs": [d.to_dict() for d in diffs]}
        if resumed:
            payload["resumed"] = resumed
        self._append(ctx.run_id, "step.finished", payload, step=batch.name)
        ctx.results[batch.name] = result
        state.results.append(result)
        state.done.add(batch.name)
        self._notify_finished(runbook, ctx, result)

    def _batch_retry(
        self,
        runbook: Runbook,
        step: BatchedChangeStep,
        batch: BatchStep,
        ctx: RunContext,
        diffs: list[Diff],
    ) -> tuple[list[Diff], str]:
        """A batch in flight when the run died: what is left to apply, and why. It reads the
        devices (verify, or a re-plan): run inside the batch's failure handling, as what
        raises here leaves a batch that may be half-applied."""
        if self._batch_in_place(runbook, step, batch, ctx, diffs):
            return [], "verified in place after interruption; not applied again"
        todo = step.of_batch(step.plan(runbook, ctx), batch)
        return todo, "not in place after interruption; what is missing applied again"

    def _batch_failed(
        self,
        ctx: RunContext,
        state: _RunState,
        batch: BatchStep,
        diffs: list[Diff],
        exc: Exception,
    ) -> None:
        """Recorded failed; undone first by the rollback (safe on a half-applied batch)."""
        error = _describe(exc)
        self._append(
            ctx.run_id, "step.failed", {"error": error, "partial_undo": True}, step=batch.name
        )
        state.completed.append((batch, diffs))
        state.batch_failed.add(batch.name)
        title = batch.resolve_title(ctx.runbook)
        failed = StepResult(batch.name, title, batch.kind, Status.FAILED, batch.units, error=error)
        state.results.append(failed)
        self._notify_finished(ctx.runbook, ctx, failed)

    def _batch_in_place(
        self,
        runbook: Runbook,
        step: BatchedChangeStep,
        batch: BatchStep,
        ctx: RunContext,
        diffs: list[Diff],
    ) -> bool:
        if step.verify_func is not None:
            return bool(step.verify_func(runbook, ctx, diffs))
        return not step.of_batch(step.plan(runbook, ctx), batch)

    def _batches_stopped(
        self,
        ctx: RunContext,
        state: _RunState,
        failed: BatchStep,
        batches: list[BatchStep],
        kept: list[BatchStep],
        exc: Exception,
    ) -> BatchStopped:
        """A batch failed: the later batches are recorded as not run; the run's outcome
        names what is kept and what was not run; the error that stops the run."""
        runbook = ctx.runbook
        begun = failed.name in state.batch_started
        later = batches[batches.index(failed) + (1 if begun else 0) :]
        why = (
            f"not run: {failed.label} failed and stopped the run"
            if begun
            else f"not run: {_describe(exc)}"
        )
        for batch in later:
            skipped = StepResult(
                batch.name,
                batch.resolve_title(runbook),
                batch.kind,
                Status.SKIPPED,
                batch.units,
                evidence={"not_run": why},
            )
            self._append(ctx.run_id, "step.finished", skipped.to_dict(), step=batch.name)
            state.results.append(skipped)
            state.done.add(batch.name)
            self._notify_finished(runbook, ctx, skipped)

        def named(items: list[BatchStep]) -> list[str]:
            return [f"{b.label}: {', '.join(b.units)}" for b in items]

        state.outcome = {
            "batches": {
                "kept": named(kept),
                "failed": named([failed]) if begun else [],
                "not_run": named(later),
            }
        }
        what = f"{failed.label} ({', '.join(failed.units)}) " + (
            "failed" if begun else "not started"
        )
        kept_text, later_text = "; ".join(named(kept)) or "none", "; ".join(named(later)) or "none"
        reason = f"{_describe(exc)}; kept: {kept_text}; not run: {later_text}"
        # an undo is said of a batch recorded failed (so rolled back), and after the rollback
        undo = failed.name if failed.name in state.batch_failed else None
        return BatchStopped(what, reason, undo)

    def _execute_other(
        self, runbook: Runbook, step: Step, ctx: RunContext, title: str
    ) -> dict[str, Any]:
        if isinstance(step, ManualStep):
            instruction = str(step.func(runbook, ctx))
            answer = self.confirmer(title, instruction, self.actor)
            evidence = {
                "instruction": instruction,
                "confirmed": answer.confirmed,
                "confirmed_by": answer.actor,
                "confirmed_at": answer.at.isoformat(),
                "note": answer.note,
            }
            self._append(
                ctx.run_id, "manual.answered", evidence, step=step.name, actor=answer.actor
            )
            if not answer.confirmed:
                raise ApprovalError(f"{title}: not confirmed ({answer.note or 'declined'})")
            return evidence
        if isinstance(step, WaitStep):
            deadline = time.monotonic() + step.timeout.total_seconds()
            polls = 0
            while True:
                polls += 1
                value = step.func(runbook, ctx)
                if value:
                    return {**as_evidence(value), "polls": polls}
                if time.monotonic() >= deadline:
                    raise VerificationError(
                        f"{title}: still not true after {step.timeout.total_seconds():g} s"
                    )
                time.sleep(step.interval.total_seconds())
        assert isinstance(step, CheckStep)
        return as_evidence(step.func(runbook, ctx))

    # ---------------------------------------------------------------- rollback
    def _rollback(
        self,
        ctx: RunContext,
        state: _RunState,
        results: list[StepResult],
        error: str,
        stopped: BatchStopped | None = None,
    ) -> RunResult:
        """Undo what ``state`` holds to undo, newest first, then end the run. ``stopped``: a
        failed batch stopped it; the run's end says whether that batch was undone."""
        runbook, run_id = ctx.runbook, ctx.run_id
        failed_undo = False
        for step, diffs in reversed(state.completed):
            if step.name in state.undone:
                continue
            if step.undo_func is None:
                self._append(
                    run_id, "undo.skipped", {"reason": "step is not reversible"}, step=step.name
                )
                failed_undo = True
                self.listener.undo_finished(step, False, "not reversible")
                continue
            self._append(
                run_id, "undo.started", {"diffs": [d.to_dict() for d in diffs]}, step=step.name
            )
            try:
                undone = step.undo_func(runbook, ctx, diffs)
            except Exception as exc:
                failed_undo = True
                self._append(run_id, "undo.failed", {"error": _describe(exc)}, step=step.name)
                self.listener.undo_finished(step, False, _describe(exc))
                log.error("undo of %s failed: %s", step.name, _describe(exc))
                continue
            evidence = {"evidence": as_evidence(undone)} if undone is not None else {}
            self._append(run_id, "undo.finished", evidence, step=step.name)
            state.undone.add(step.name)
            self.listener.undo_finished(step, True, None)
            results.append(
                StepResult(
                    step.name,
                    step.resolve_title(runbook),
                    step.kind,
                    Status.UNDONE,
                    step.resolve_targets(runbook),
                    True,
                    tuple(diffs),
                    actor=self.actor,
                )
            )
        if stopped is not None and stopped.batch is not None:
            undone = stopped.batch in state.undone
            error = f"{type(stopped).__name__}: {stopped.after_rollback(undone)}"
        # batches kept stay in place: the run stopped part-way (nothing kept: rolled back)
        kept = [named for name, named in state.kept.items() if name not in state.undone]
        status = RunStatus.STOPPED if kept else RunStatus.ROLLED_BACK
        if failed_undo:
            status = RunStatus.ROLLBACK_FAILED
        outcome = dict(state.outcome)
        if kept and "batches" not in outcome:  # e.g. a later step failed, or abandoned
            outcome["batches"] = {"kept": kept}
        finished = {"status": str(status), "error": error, **outcome}
        self._append(run_id, "run.finished", finished)
        return RunResult(run_id, runbook.name, status, tuple(results), error)

    def _append(
        self,
        run_id: str,
        kind: str,
        payload: dict[str, Any],
        *,
        step: str | None = None,
        actor: str | None = None,
    ) -> Entry:
        return self.store.append(run_id, kind, payload, actor=actor or self.actor, step=step)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _call(func: Callable[..., Any] | None, *args: Any) -> Any:
    return func(*args) if func is not None else None


def _batch_of(step: BatchedChangeStep, started: Entry) -> tuple[ChangeStep, list[Diff]]:
    """A batch as its step.started entry recorded it, with its diffs (for its undo)."""
    p = started.payload
    batch = step.batch(int(p["batch"]), int(p["of"]), p.get("targets", []))
    return batch, [Diff.from_dict(d) for d in p.get("diffs", [])]


def _batch_named(started: Entry | None, name: str) -> str:
    """A batch as run.finished names it ("batch 2 of 3: d2, d3"), from its step.started."""
    if started is None or "batch" not in started.payload:
        return name
    p = started.payload
    label = batch_label(int(p["batch"]), int(p["of"]))
    return f"{label}: {', '.join(map(str, p.get('targets', [])))}"


def _replay_batch(
    steps: dict[str, Step], entry: Entry, state: _RunState, results: dict[str, StepResult]
) -> None:
    """A batch's step entry (``<step>#<n>``) read back: in flight, kept, failed or not run.
    A batch recorded failed or not run stopped its batched step, which fails right after:
    the run is rolled back from there, not continued."""
    assert entry.step is not None
    parent = steps.get(parent_of(entry.step) or "")
    if not isinstance(parent, BatchedChangeStep):
        return
    if entry.kind == "step.started":
        state.batch_open[parent.name] = entry
        state.batch_started.add(entry.step)
        return
    started = state.batch_open.pop(parent.name, None)
    if entry.kind == "step.finished":
        state.done.add(entry.step)
        results[entry.step] = StepResult.from_dict({"step": entry.step, **entry.payload})
        if entry.payload.get("changed"):
            state.completed.clear()  # kept: the run's rollback stops here
            state.kept[entry.step] = _batch_named(started, entry.step)
        else:  # not run: killed before its batched step was recorded failed
            state.failed = True
    elif entry.kind == "step.failed":
        state.failed = True
        state.batch_failed.add(entry.step)
        if entry.payload.get("partial_undo") and started is not None:
            state.completed.append(_batch_of(parent, started))


def _replayed_outcome(
    steps: dict[str, Step], entries: list[Entry], state: _RunState
) -> dict[str, Any]:
    """What run.finished says of a batched step whose batches stopped (one failed, or was not
    started), rebuilt from the record as `Engine._batches_stopped` said it: its batches kept,
    failed, and not run (not started: recorded not run, or killed before that). {}: none."""
    for entry in entries:
        step = steps.get(entry.step or "")
        if entry.kind != "step.started" or not isinstance(step, BatchedChangeStep):
            continue
        layout = list(entry.payload.get("batches", []))
        named = [
            (f"{step.name}{SEPARATOR}{i}", f"{batch_label(i, len(layout))}: {', '.join(units)}")
            for i, units in enumerate(layout, 1)
        ]
        not_kept = {b for b, _ in named if b in state.done and b not in state.kept}  # not run
        if not_kept or state.batch_failed.intersection(b for b, _ in named):
            return {
                "batches": {
                    "kept": [text for b, text in named if b in state.kept],
                    "failed": [text for b, text in named if b in state.batch_failed],
                    "not_run": [text for b, text in named if b not in state.batch_started],
                }
            }
    return {}
