"""A change's life: its statuses, and what each status still allows.

`policy` decides *who* may act; this module decides whether the change itself can still take
the action, whoever asks. Both sides use it: the NetBox plugin to decide, the `runbook`
command to fail fast. Each refusal is a `policy.Refusal` with one sentence.

    planned → reviewed → approved → [scheduled] → running → succeeded
                                                         ↘ rolled-back | rollback-failed
                                                         ↘ stopped
    unreviewed (its preparer runs it, no signatures)        refused (a run was refused)

A run that fails is rolled back — except the batches of a batched change it kept (canary
batches: `runbooks.core.batches`). A run that stops with batches kept ends *stopped*: stopped
part-way, batches 1..k kept, batch k+1 rolled back, later ones not run. Part of the change is
in place, so, like a change that succeeded, a stopped change never runs again as it is: a new
plan covers the rest. (When no batch was kept — the canary failed — the run is rolled-back.)

A change whose plan drifted at a run is *stale*: the world no longer matches what was
approved, and it never runs again (plan a new change).
"""

from __future__ import annotations

from runbooks_rules.policy import Refusal

PLANNED, REVIEWED, APPROVED, SCHEDULED = "planned", "reviewed", "approved", "scheduled"
RUNNING, SUCCEEDED, ROLLED_BACK, ROLLBACK_FAILED, STOPPED = (
    "running",
    "succeeded",
    "rolled-back",
    "rollback-failed",
    "stopped",
)
REFUSED, UNREVIEWED = "refused", "unreviewed"
CHANGE_STATUSES = (
    PLANNED,
    REVIEWED,
    APPROVED,
    SCHEDULED,
    RUNNING,
    SUCCEEDED,
    ROLLED_BACK,
    ROLLBACK_FAILED,
    STOPPED,
    REFUSED,
    UNREVIEWED,
)
RUN_STATUSES = (RUNNING, SUCCEEDED, ROLLED_BACK, ROLLBACK_FAILED, STOPPED)
# how a run can end: the `status` of its run.finished entry
FINISHED_STATUSES = (SUCCEEDED, ROLLED_BACK, ROLLBACK_FAILED, STOPPED)
# what each end means, in one sentence (the pages and the record sheet show it)
MEANINGS = {
    SUCCEEDED: "succeeded: every step done",
    ROLLED_BACK: "rolled back: what the run changed was undone",
    ROLLBACK_FAILED: "rollback failed: something the run changed could not be undone",
    STOPPED: (
        "stopped part-way: the batches kept stay in place, what failed was rolled back, "
        "what came after it was not run"
    ),
}
# the statuses a signature recomputes (policy.status); later ones a signature leaves alone
SIGNED_STATUSES = (PLANNED, REVIEWED, APPROVED, REFUSED)


def check_open(change: str, status: str, stale: bool) -> None:
    """A change that is stale, running, already succeeded or stopped part-way takes no
    signature, schedule or run.

    >>> check_open("CHG-1", "approved", False)
    >>> check_open("CHG-1", "rolled-back", False)
    >>> check_open("CHG-1", "succeeded", False)
    Traceback (most recent call last):
    ...
    runbooks_rules.policy.Refusal: CHG-1 has already succeeded: plan a new change
    >>> try:
    ...     check_open("CHG-1", "stopped", False)
    ... except Refusal as exc:
    ...     print(exc)
    CHG-1 stopped part-way with batches kept: it never runs again; plan a new change for the rest
    """
    if stale:
        raise Refusal(
            f"{change} is stale: the world changed since it was planned, so it never runs; "
            "plan again"
        )
    if status == RUNNING:
        raise Refusal(f"{change} is running now")
    if status == SUCCEEDED:
        raise Refusal(f"{change} has already succeeded: plan a new change")
    if status == STOPPED:
        raise Refusal(
            f"{change} stopped part-way with batches kept: it never runs again; "
            "plan a new change for the rest"
        )


def check_signable(change: str, status: str, stale: bool, unreviewed: bool) -> None:
    """May the change take a review, approval or emergency approval at all?

    >>> check_signable("CHG-1", "unreviewed", False, True)
    Traceback (most recent call last):
    ...
    runbooks_rules.policy.Refusal: CHG-1 is unreviewed: it takes no review or approval
    """
    check_open(change, status, stale)
    if unreviewed:
        raise Refusal(f"{change} is unreviewed: it takes no review or approval")


def check_schedulable(change: str, status: str, stale: bool, unreviewed: bool) -> None:
    """May the change be queued for its window? (Whether the person may: `policy.check_run`.)

    >>> check_schedulable("CHG-1", "unreviewed", False, True)
    Traceback (most recent call last):
    ...
    runbooks_rules.policy.Refusal: CHG-1 is unreviewed: only its preparer runs it, by hand
    """
    check_open(change, status, stale)
    if unreviewed:
        raise Refusal(f"{change} is unreviewed: only its preparer runs it, by hand")


def check_startable(change: str, status: str, stale: bool, scheduled: bool) -> None:
    """May a run of the change start now? A scheduled run needs a scheduled change.

    >>> try:
    ...     check_startable("CHG-1", "approved", False, scheduled=True)
    ... except Refusal as exc:
    ...     print(exc)
    CHG-1 is not scheduled (approved): a worker runs only scheduled changes
    """
    check_open(change, status, stale)
    if scheduled and status != SCHEDULED:
        raise Refusal(f"{change} is not scheduled ({status}): a worker runs only scheduled changes")


def finished_status(status: object) -> str:
    """The status a run.finished entry gives its run (and change); ValueError when it is none.

    >>> finished_status("rolled-back"), finished_status("stopped")
    ('rolled-back', 'stopped')
    >>> finished_status("running")
    Traceback (most recent call last):
    ...
    ValueError: a run finishes succeeded, rolled-back, rollback-failed or stopped, not 'running'
    """
    if status not in FINISHED_STATUSES:
        raise ValueError(
            f"a run finishes {', '.join(FINISHED_STATUSES[:-1])} or {FINISHED_STATUSES[-1]}, "
            f"not {status!r}"
        )
    return str(status)


def after_signature(status: str, signed: str) -> str:
    """A change's status once a signature is added: ``signed`` is `policy.status` of its
    signatures; a scheduled or finished change keeps its status.

    >>> after_signature("reviewed", "approved"), after_signature("scheduled", "approved")
    ('approved', 'scheduled')
    """
    return signed if status in SIGNED_STATUSES else status
