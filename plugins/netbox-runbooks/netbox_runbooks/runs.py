"""The server-side operations on runs: start a run of a change, append its record, sign the
finished record off. Same terms as `netbox_runbooks.changes`: the authenticated user acts,
the rules of `runbooks_rules` decide, every refusal is recorded on the change."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.utils import timezone
from runbooks_rules import lifecycle, policy
from runbooks_rules.ids import new_run_id

from netbox_runbooks import notifications
from netbox_runbooks.changes import drift_sentence, signatures_of
from netbox_runbooks.errors import Taken
from netbox_runbooks.identity import identity_of
from netbox_runbooks.models import Change, Run, Signature
from netbox_runbooks.records import Posted, append_change_entry, append_run_entries
from netbox_runbooks.refusals import Drift, OutsideWindow, guarded

__all__ = ("check_start", "post_entries", "sign_off", "start_run")


def _may_start(change: Change, user: Any, scheduled: bool) -> bool:
    """The person's authority and duties, then the change's state, then the window (judged
    by the server's clock: outside it, an emergency approval is needed); True when the run
    would be an emergency. The window comes last so that its refusal (`OutsideWindow`) speaks
    only of a person who may otherwise run the change."""
    who = identity_of(user, change)
    sigs = [] if change.unreviewed else signatures_of(change)

    def check(in_window: bool) -> bool:
        if change.unreviewed:
            policy.check_run_unreviewed(who, change.preparer.username, in_window)
            return False
        return policy.check_run(who, change.plan_hash, sigs, in_window)

    check(in_window=True)
    lifecycle.check_startable(change.name, change.status, change.stale, scheduled)
    now = timezone.now()
    if change.in_window(now):
        return False
    try:
        return check(in_window=False)
    except policy.Refusal as exc:
        over = change.window_end is not None and now > change.window_end
        raise OutsideWindow(str(exc), who.username, over) from None


def _refused_run(scheduled: bool) -> Callable[[Change, policy.Refusal], bool]:
    """What a refused run does to the change: drift makes it refused and stale (never runs
    again); a scheduled run refused because its window is over leaves it refused. Any other
    refusal — a person who may not run it, a window not yet open — leaves it as it was, so
    nobody cancels a change by asking to run it."""

    def refused(change: Change, exc: policy.Refusal) -> bool:
        drifted = isinstance(exc, Drift)
        over = isinstance(exc, OutsideWindow) and exc.over
        if not (drifted or (over and scheduled and change.status == lifecycle.SCHEDULED)):
            return False
        change.status, change.refusal = lifecycle.REFUSED, str(exc)
        change.stale = change.stale or drifted
        notifications.after_refusal(change)
        return True

    return refused


def check_start(user: Any, change_id: int, scheduled: bool = False) -> bool:
    """May ``user`` start a run of the change now? The checks of `start_run` before the plan
    hash, so a client asks before its slow re-plan; a refusal is recorded as any other.
    Writes nothing else. True when the run would be an emergency."""
    return guarded(
        change_id,
        user,
        "run",
        lambda change: _may_start(change, user, scheduled),
        _refused_run(scheduled),
    )


def start_run(
    user: Any,
    change_id: int,
    plan_hash: str,
    drift: Sequence[str] = (),
    scheduled: bool = False,
    worker: str = "",
    run_id: str = "",
) -> Run:
    """Start a run of a change, in this order: the person's authority and duties (with the
    window judged by the server's clock), the change's state, then the plan its client
    recomputed: a different hash means the world drifted, and the change never runs again.
    ``run_id`` is the id the client began the run's record under (its record starts before
    its re-plan); the server chooses one when none is given.

    A refused run for drift leaves the change ``refused`` and stale; a refused scheduled run
    leaves a scheduled change ``refused``, whatever the reason."""

    def work(change: Change) -> Run:
        emergency = _may_start(change, user, scheduled)
        if plan_hash != change.plan_hash:
            raise Drift(
                "the world changed since the plan was approved: "
                f"{drift_sentence(drift, plan_hash, change.plan_hash)}; plan again"
            )
        if run_id and Run.objects.filter(run_id=run_id).exists():
            raise Taken(f"run {run_id} exists already: a run id starts one run only")
        run = Run.objects.create(
            run_id=run_id or new_run_id(),
            change=change,
            operator=user,
            emergency=emergency,
            scheduled=scheduled,
            worker=worker[:100],
        )
        change.snapshot()
        change.status = lifecycle.RUNNING
        change.save()
        payload = {
            "run_id": run.run_id,
            "emergency": emergency,
            "scheduled": scheduled,
            "worker": run.worker,
            "plan_hash": change.plan_hash,
        }
        append_change_entry(change, "change.ran", payload, user)
        return run

    return guarded(change_id, user, "run", work, _refused_run(scheduled))


def post_entries(user: Any, run_id: int, entries: Sequence[Mapping[str, Any]]) -> Posted:
    """Append entries to a run's record (only its operator may; all or nothing, see
    `records.append_run_entries`). A run.finished entry sets the run's and the change's
    status, and asks for the record's sign-offs."""
    change_id = Run.objects.values_list("change_id", flat=True).get(pk=run_id)

    def work(change: Change) -> Posted:
        run = Run.objects.select_for_update(of=("self",)).select_related("operator").get(pk=run_id)
        if run.operator_id != user.pk:
            raise policy.Refusal(
                f"{user.username} did not start run {run.run_id}: only its operator "
                f"{run.operator.username} adds to its record",
                user.username,
            )
        posted = append_run_entries(run, entries, user, change)
        if posted.finished:
            _finish(run, change, posted.finished)
        return posted

    return guarded(change_id, user, "record", work)


def _finish(run: Run, change: Change, status: str) -> None:
    run.snapshot()
    run.status, run.finished = status, timezone.now()
    run.save()
    change.snapshot()
    change.status = status
    change.save()
    notifications.after_finish(run)


def sign_off(user: Any, run_id: int, note: str = "") -> Signature:
    """Sign a finished run's record: its operator as the responsible person (職位責任人) — for a
    scheduled run, also the person who scheduled it (a worker's service account signs for
    nobody) — and a supervisor who did neither as supervisor (上級主管); each once. The
    signature binds to the record's head, which the change's chain keeps (record.signed)."""
    change_id = Run.objects.values_list("change_id", flat=True).get(pk=run_id)

    def work(change: Change) -> Signature:
        run = Run.objects.select_for_update(of=("self",)).select_related("operator").get(pk=run_id)
        who = identity_of(user, change)
        signed = run.signatures.values_list("authority", flat=True)
        finished = run.status != lifecycle.RUNNING
        ran = [run.operator.username]
        if run.scheduled and change.scheduled_by is not None:
            ran.append(change.scheduled_by.username)
        role = policy.signoff_role(who, ran, finished, list(signed))
        signature = Signature.objects.create(
            change=change, run=run, authority=role, user=user, plan_hash=change.plan_hash, note=note
        )
        payload = {
            "run_id": run.run_id,
            "signature": signature.pk,
            "authority": role,
            "role": role,
            "note": note,
            "length": run.length,
            "head": run.head,
        }
        append_change_entry(change, "record.signed", payload, user)
        return signature

    return guarded(change_id, user, "signoff", work)
