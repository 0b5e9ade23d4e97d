"""The server-side operations on a change: plan it, sign it, schedule it.

Each takes the authenticated user (who acts is never read from a request body) and applies
the rules of `runbooks_rules` (`policy` for the person, `lifecycle` for the change's state)
inside one transaction; a refusal is recorded on the change and raised as `Refused` (see
`netbox_runbooks.refusals`). Times are the server's clock. The API and the web UI both call
these functions; neither decides anything itself.

The change's own chain (entries whose chain id is its name): change.planned, change.signed,
change.refused, change.scheduled, change.ran (`netbox_runbooks.runs`), record.signed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dcim.models import Device
from django.db import transaction
from django.utils import timezone
from runbooks_rules import lifecycle, policy
from runbooks_rules.ids import new_change_id
from runbooks_rules.plan import plan_hash
from virtualization.models import VirtualMachine

from netbox_runbooks import notifications
from netbox_runbooks.errors import Invalid, Refused
from netbox_runbooks.identity import identity_of
from netbox_runbooks.models import Change, RecordEntry, Signature
from netbox_runbooks.records import append_change_entry, server_ts
from netbox_runbooks.refusals import Drift, guarded

__all__ = ("ChangeSpec", "create_change", "drift_sentence", "schedule", "sign", "signatures_of")


@dataclass(frozen=True)
class ChangeSpec:
    """What a preparer submits: a plan document and its window (no user, no time, no hash:
    those are the server's)."""

    runbook: str
    plan: Mapping[str, Any]
    instruction: str = ""
    params: Mapping[str, Any] | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    unreviewed: bool = False


def signatures_of(change: Change) -> list[policy.Signature]:
    """The change's signatures (not its runs' sign-offs) as the rules see them: only those its
    own chain witnesses (a ``change.signed`` entry naming the same row, person, authority and
    hash), so a row put into the table by other means counts for nothing."""
    witnessed = witnessed_signatures(change)
    return [
        policy.Signature(s.authority, s.user.username, s.created.isoformat(), s.plan_hash, s.note)
        for s in change.signatures.filter(run__isnull=True).select_related("user")
        if witnessed.get(s.pk) == (s.user.username, s.authority, s.plan_hash)
    ]


def witnessed_signatures(change: Change) -> dict[int, tuple[str, str, str]]:
    """Signature row -> (person, authority, hash) as the change's chain recorded it."""
    out: dict[int, tuple[str, str, str]] = {}
    for e in RecordEntry.objects.filter(chain=change.name, kind="change.signed"):
        data = e.data
        if isinstance(data.get("signature"), int):
            out[data["signature"]] = (e.actor, str(data["authority"]), str(data["plan_hash"]))
    return out


def drift_sentence(drift: Sequence[str], now_hash: str, then_hash: str) -> str:
    """What changed, from the client's account of it, or from the two hashes."""
    lines = [str(d) for d in drift if str(d).strip()]
    return "; ".join(lines) or f"the plan now hashes to {now_hash[:12]}…, not {then_hash[:12]}…"


# -- plan ----------------------------------------------------------------------------------------


def create_change(user: Any, spec: ChangeSpec) -> Change:
    """Store a plan as a change: the user must hold handle; its hash is computed here."""
    who = identity_of(user)  # no change exists yet to judge a constrained permission by
    try:
        policy.check_prepare(who)
    except policy.Refusal as exc:  # no change exists yet to record it on
        raise Refused(str(exc)) from exc
    plan, digest = _validated_plan(spec)
    targets = list(dict.fromkeys(_targets(plan)))
    plan = {**plan, "hash": digest, "actor": user.username, "created": server_ts()}
    with transaction.atomic():
        change = Change(
            name=new_change_id(),
            runbook=spec.runbook,
            instruction=spec.instruction or str(plan.get("instruction", ""))[:200],
            params=plan["params"],
            plan=plan,
            plan_hash=digest,
            window_start=spec.window_start,
            window_end=spec.window_end,
            status=lifecycle.UNREVIEWED if spec.unreviewed else lifecycle.PLANNED,
            unreviewed=spec.unreviewed,
            preparer=user,
            targets=targets,
        )
        change.save()
        change.devices.set(Device.objects.filter(name__in=targets))
        change.virtual_machines.set(VirtualMachine.objects.filter(name__in=targets))
        window = (
            {"start": spec.window_start.isoformat(), "end": spec.window_end.isoformat()}
            if spec.window_start and spec.window_end
            else None
        )
        payload = {
            "runbook": change.runbook,
            "params": change.params,
            "plan_hash": digest,
            "window": window,
            "targets": targets,
            "unreviewed": spec.unreviewed,
            "authorities": sorted(who.authorities),
        }
        append_change_entry(change, "change.planned", payload, user)
        notifications.after_plan(change)
    return change


def _validated_plan(spec: ChangeSpec) -> tuple[dict[str, Any], str]:
    plan = dict(spec.plan)
    if not isinstance(plan.get("params"), dict) or not isinstance(plan.get("steps", []), list):
        raise Invalid("the plan document needs its runbook, params and steps")
    if plan.get("runbook") != spec.runbook:
        raise Invalid(f"the plan is of runbook {plan.get('runbook')!r}, not {spec.runbook!r}")
    if spec.params is not None and dict(spec.params) != plan["params"]:
        raise Invalid("the change's params differ from its plan's params")
    if plan.get("refusal"):
        raise Invalid(f"a refused plan cannot become a change: {plan['refusal']}")
    if not all(isinstance(s, dict) for s in plan.get("steps", [])):
        raise Invalid("each step of the plan must be an object")
    digest = plan_hash(plan)
    if plan.get("hash") and plan["hash"] != digest:
        raise Invalid(
            f"the plan says its hash is {str(plan['hash'])[:12]}…, but its content hashes to "
            f"{digest[:12]}…"
        )
    if (spec.window_start is None) != (spec.window_end is None):
        raise Invalid("a window needs both its start and its end")
    if spec.window_start and spec.window_end and spec.window_end <= spec.window_start:
        raise Invalid("the window ends before it starts")
    return plan, digest


def _targets(plan: Mapping[str, Any]) -> list[str]:
    return [str(t) for s in plan.get("steps", []) for t in s.get("targets", []) or []]


# -- sign ----------------------------------------------------------------------------------------


def sign(
    user: Any,
    change_id: int,
    authority: str,
    given_hash: str,
    note: str = "",
    current_hash: str | None = None,
    drift: Sequence[str] = (),
    check_only: bool = False,
) -> Change:
    """Review, approve or emergency-approve a change, naming its plan hash.

    Who is acting comes first: the change's state and the signer's authority and duties, then
    ``current_hash``, the plan as the signer's client recomputed it just now: a plan that no
    longer holds cannot be signed (the signer would sign what is no longer true). With
    ``check_only`` only the first checks are made (a client asks them before its re-plan);
    a refusal is recorded either way, nothing else is written."""

    def work(change: Change) -> Change:
        who = identity_of(user, change)
        lifecycle.check_signable(change.name, change.status, change.stale, change.unreviewed)
        sigs = signatures_of(change)
        policy.check_sign(
            who, authority, change.preparer.username, change.plan_hash, given_hash, sigs
        )
        if check_only:
            return change
        if current_hash and current_hash != change.plan_hash:
            raise Drift(
                "the plan no longer holds: " + drift_sentence(drift, current_hash, change.plan_hash)
            )
        created = Signature.objects.create(
            change=change, authority=authority, user=user, plan_hash=change.plan_hash, note=note
        )
        signed = policy.Signature(authority, user.username, "", change.plan_hash, note)
        change.snapshot()
        change.status = lifecycle.after_signature(
            change.status, policy.status(change.plan_hash, [*sigs, signed])
        )
        change.save()
        payload = {
            "authority": authority,
            "plan_hash": change.plan_hash,
            "note": note,
            "signature": created.pk,
            "authorities": sorted(who.authorities),
        }
        append_change_entry(change, "change.signed", payload, user)
        notifications.after_signature(change, authority)
        return change

    return guarded(change_id, user, authority, work)


# -- schedule ------------------------------------------------------------------------------------


def schedule(user: Any, change_id: int, confirm_manual: bool = False) -> Change:
    """Queue an approved change for its window; the scheduler is the one who runs it, so the
    run rules apply to them now. With ``confirm_manual`` they confirm the manual steps in
    advance, in their own name."""

    def work(change: Change) -> Change:
        who = identity_of(user, change)
        lifecycle.check_schedulable(change.name, change.status, change.stale, change.unreviewed)
        # a window still to come counts as inside it; one that is over needs an emergency
        ahead = change.window_end is None or timezone.now() <= change.window_end
        policy.check_run(who, change.plan_hash, signatures_of(change), in_window=ahead)
        change.snapshot()
        change.status = lifecycle.SCHEDULED
        change.scheduled_by = user
        change.confirm_manual = confirm_manual
        change.save()
        payload = {"confirm_manual": confirm_manual, "plan_hash": change.plan_hash}
        append_change_entry(change, "change.scheduled", payload, user)
        return change

    return guarded(change_id, user, "schedule", work)
