"""What a viewer could do on a page, asked of the rules without writing anything.

The web UI shows a Review, Approve, Emergency-approve or Sign-off button only when the same
rules the server applies (`runbooks_rules.policy` for the person, `lifecycle` for the change's
state) would let the viewer through now. It decides nothing: the button posts to a view that
calls the server operation, which checks again and records a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import Q
from runbooks_rules import lifecycle, policy
from runbooks_rules.policy import Identity

from netbox_runbooks.models import Change, Run

__all__ = (
    "CHANGE_AUTHORITIES",
    "change_signatures",
    "run_signoff_role",
    "sign_authorities",
    "signable",
)

# the signatures a change takes, in the order a reviewer meets them
CHANGE_AUTHORITIES = (policy.REVIEW, policy.APPROVE, policy.EMERGENCY)


def _passes(check: Callable[..., Any], *args: Any) -> bool:
    try:
        check(*args)
    except policy.Refusal:
        return False
    return True


def change_signatures(change: Change) -> list[policy.Signature]:
    """The change's own signatures (not its runs' sign-offs) as the rules see them, read from
    ``change.signatures.all()`` so that a prefetched list costs no query per change."""
    return [
        policy.Signature(s.authority, s.user.username, s.created.isoformat(), s.plan_hash, s.note)
        for s in change.signatures.all()
        if s.run_id is None
    ]


def sign_authorities(
    who: Identity, change: Change, signatures: Iterable[policy.Signature]
) -> list[str]:
    """The signatures ``who`` may put on ``change`` now: review, approve, emergency. The hash
    they would name is taken as the right one: a wrong hash is for the server to refuse."""
    if not _passes(
        lifecycle.check_signable, change.name, change.status, change.stale, change.unreviewed
    ):
        return []
    sigs = list(signatures)
    preparer = change.preparer.username
    return [
        authority
        for authority in CHANGE_AUTHORITIES
        if _passes(
            policy.check_sign, who, authority, preparer, change.plan_hash, change.plan_hash, sigs
        )
    ]


def run_signoff_role(who: Identity, run: Run, signed_roles: Iterable[str]) -> str | None:
    """The role ``who`` would sign ``run``'s record in (responsible or supervisor), or None.
    Finished means what `netbox_runbooks.runs.sign_off` takes it to mean: no longer running."""
    finished = run.status != lifecycle.RUNNING
    try:
        return policy.signoff_role(who, [run.operator.username], finished, list(signed_roles))
    except policy.Refusal:
        return None


def signable() -> Q:
    """The changes whose state lets them take a signature at all, as a query: the lifecycle's
    own check evaluated over its whole (finite) domain, so the query cannot drift from it."""
    query = Q(pk__in=[])
    for status in lifecycle.CHANGE_STATUSES:
        for stale in (False, True):
            for unreviewed in (False, True):
                if _passes(lifecycle.check_signable, "", status, stale, unreviewed):
                    query |= Q(status=status, stale=stale, unreviewed=unreviewed)
    return query
