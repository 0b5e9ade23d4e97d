"""Everything the CLI shows a person (Rich) or a script (JSON)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from runbooks_rules.lifecycle import MEANINGS

from runbooks.core import secrets
from runbooks.core.plan import Plan
from runbooks.core.results import Diff, RunResult, RunStatus, Status, StepResult
from runbooks.core.steps import Step

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_STATUS_STYLE = {
    Status.OK: "green",
    Status.CHANGED: "yellow",
    Status.NO_CHANGE: "dim",
    Status.PLANNED: "cyan",
    Status.FAILED: "bold red",
    Status.REFUSED: "bold red",
    Status.UNDONE: "magenta",
    Status.SKIPPED: "dim",
}


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(secrets.mask(data), indent=2, ensure_ascii=False, default=str))
    sys.stdout.write("\n")


def fail(message: str) -> None:
    """One clear line on stderr."""
    err.print(f"[bold red]runbook: error:[/] {escape(secrets.mask_text(message))}")


class Progress:
    """Live per-step progress on stderr (so --json output on stdout stays clean)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def step_started(self, step: Step, title: str, targets: tuple[str, ...]) -> None:
        if not self.quiet:
            on = f" [dim]on {escape(', '.join(targets))}[/]" if targets else ""
            err.print(f"  [bold]▶[/] {escape(title)}{on} [dim]({step.kind})[/]")

    def step_finished(self, result: StepResult) -> None:
        if self.quiet:
            return
        style = _STATUS_STYLE.get(result.status, "")
        took = f" in {result.duration_s:.2f} s" if result.duration_s is not None else ""
        why = f": {escape(result.error)}" if result.error else ""
        err.print(f"    [{style}]{result.status}[/]{took}{why}")

    def undo_finished(self, step: Step, ok: bool, error: str | None) -> None:
        if not self.quiet:
            state = (
                "[magenta]undone[/]" if ok else f"[bold red]undo failed[/]: {escape(error or '')}"
            )
            err.print(f"  [bold]↶[/] {escape(step.name)}: {state}")


def show_diff(diff: Diff) -> None:
    head = f"[bold]{escape(diff.target)}[/]"
    if diff.summary:
        head += f" — {escape(diff.summary)}"
    out.print(f"    {head}")
    if diff.fields:
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        table.add_column("field")
        table.add_column("before", style="red")
        table.add_column("after", style="green")
        for change in diff.fields:
            table.add_row(change.name, _fmt(change.before), _fmt(change.after))
        out.print(table)
    if diff.text:
        out.print(Syntax(diff.text, "diff", theme="ansi_dark", background_color="default"))


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def show_plan(plan: Plan) -> None:
    out.print(f"[bold]Plan[/] of [bold]{escape(plan.runbook)}[/] — {escape(plan.instruction)}")
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in plan.params.items())
    out.print(f"  parameters: {escape(params) or '—'}")
    out.print(
        f"  prepared by {escape(plan.actor)}; expected duration {plan.expected_duration_s:g} s"
    )
    for n, step in enumerate(plan.steps, 1):
        style = _STATUS_STYLE.get(step.status, "")
        out.print(
            f"  {n:>2}. [{style}]{step.status:<9}[/] {escape(step.title)} [dim]({step.kind}"
            f"{', not reversible' if not step.reversible else ''})[/]"
        )
        if step.error:
            out.print(f"      [red]{escape(step.error)}[/]")
        for key, value in step.evidence.items():
            out.print(f"      [dim]{escape(key)}:[/] {escape(_fmt(value))}")
        for diff in step.diffs:
            show_diff(diff)
    if plan.refusal:
        out.print(f"[bold red]Refused:[/] {escape(plan.refusal)}")
    else:
        out.print(f"  {plan.changes} change(s); plan hash [bold]{plan.content_hash}[/]")


def show_run(result: RunResult) -> None:
    stopped = result.status is RunStatus.STOPPED
    style = "green" if result.ok else "bold yellow" if stopped else "bold red"
    out.print(
        f"run [bold]{result.run_id}[/] of {escape(result.runbook)}: [{style}]{result.status}[/]"
    )
    if stopped:  # part of the change is in place: say so, and what comes next
        out.print(f"  {MEANINGS[result.status]}; plan a new change for the rest")
    if result.error:
        out.print(f"  cause: {escape(result.error)}")
    out.print(f"  record: runbook records show {result.run_id}")
