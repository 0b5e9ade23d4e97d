"""NetBox notifications (the bell) for the people who can act next on a change or a run:
reviewers once a change is planned, approvers once it is reviewed, its preparer once it is
approved or refused, the operator and the supervisors once a run has finished.

Sent after the transaction commits: a refused (rolled-back) request notifies no one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from extras.models import Notification
from runbooks_rules.policy import APPROVE, REVIEW, SUPERVISE

from netbox_runbooks import events
from netbox_runbooks.identity import holders

__all__ = ("after_finish", "after_plan", "after_refusal", "after_signature")


def _notify(obj: Any, users: Iterable[Any], event_type: str) -> None:
    """One notification per person and object (NetBox keeps one: a repeat marks it unread)."""
    people = list(users)

    def send() -> None:
        object_type = ContentType.objects.get_for_model(obj)
        for user in people:
            Notification.objects.update_or_create(
                object_type=object_type,
                object_id=obj.pk,
                user=user,
                defaults={"event_type": event_type, "object_repr": str(obj)[:200], "read": None},
            )

    transaction.on_commit(send)


def after_plan(change: Any) -> None:
    if not change.unreviewed:
        reviewers = holders(REVIEW).exclude(pk=change.preparer_id)
        _notify(change, reviewers, events.REVIEW_REQUESTED)


def after_signature(change: Any, authority: str) -> None:
    signed = change.signatures.filter(run__isnull=True)
    if authority == REVIEW:
        done = signed.values_list("user_id", flat=True)
        approvers = holders(APPROVE).exclude(pk=change.preparer_id).exclude(pk__in=done)
        _notify(change, approvers, events.APPROVAL_REQUESTED)
    else:  # an approval or an emergency approval: the preparer can run it now
        _notify(change, [change.preparer], events.CHANGE_APPROVED)


def after_refusal(change: Any) -> None:
    """A run was refused and the change's status says so: its preparer plans again."""
    _notify(change, [change.preparer], events.CHANGE_REFUSED)


def after_finish(run: Any) -> None:
    """The record can be signed: by its operator (responsible) and a supervisor."""
    supervisors = holders(SUPERVISE).exclude(pk=run.operator_id)
    _notify(run, [run.operator, *supervisors], events.SIGNOFF_REQUESTED)
