"""How every operation on a change applies its rules: the work runs in one transaction with
the change locked; a broken rule (`runbooks_rules.policy.Refusal`) rolls all of it back, and
then, in a transaction of its own, the refusal is recorded in the change's chain
(``change.refused``: who tried what, and why not) before it is raised as `Refused` (403).

So a refused request leaves everything as it was, except the record that it was refused —
and, where the contract says so, the change's status (a run refused for drift, or a
scheduled run refused for any reason, leaves the change ``refused``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from runbooks_rules.policy import Refusal

from netbox_runbooks.errors import Refused
from netbox_runbooks.models import Change
from netbox_runbooks.records import append_change_entry

__all__ = ("Drift", "OutsideWindow", "guarded")

OnRefusal = Callable[[Change, Refusal], bool]


class Drift(Refusal):
    """The plan no longer holds: the world changed since it was planned (or approved)."""


class OutsideWindow(Refusal):
    """A run asked for outside the change's window, by a person who may otherwise run it;
    ``over``: the window has ended (it will not open again)."""

    def __init__(self, message: str, actor: str, over: bool) -> None:
        super().__init__(message, actor)
        self.over = over


def guarded[T](
    change_id: int,
    user: Any,
    action: str,
    work: Callable[[Change], T],
    on_refusal: OnRefusal | None = None,
) -> T:
    """Run ``work`` on the locked change; record and re-raise a refusal (see the module).

    ``on_refusal`` may update the (locked, fresh) change in the refusal's transaction; it
    returns True when it did, and the change is then saved."""
    try:
        with transaction.atomic():
            return work(_locked(change_id))
    except Refusal as exc:
        _record(change_id, user, action, exc, on_refusal)
        raise Refused(str(exc)) from exc


def _locked(change_id: int) -> Change:
    return (
        Change.objects.select_for_update(of=("self",)).select_related("preparer").get(pk=change_id)
    )


def _record(
    change_id: int, user: Any, action: str, exc: Refusal, on_refusal: OnRefusal | None
) -> None:
    with transaction.atomic():
        change = _locked(change_id)
        if on_refusal is not None:
            change.snapshot()
            if on_refusal(change, exc):
                change.save()
        append_change_entry(change, "change.refused", {"action": action, "reason": str(exc)}, user)
