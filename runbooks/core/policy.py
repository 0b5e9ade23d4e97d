"""Separation of duties (權限分割、互相制約): who may prepare, review, approve, run and sign off.

Pure rules over identities and a change's approvals; each refusal is an ApprovalError that
says which rule was broken. The authorities are the manual's four:

    handle (經辦)  review (審核)  approve (批准)  supervise (督導)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from runbooks.core.errors import ApprovalError

HANDLE, REVIEW, APPROVE, SUPERVISE = "handle", "review", "approve", "supervise"
EMERGENCY = "emergency"  # the extra approval a run outside its window needs
AUTHORITY_NAMES = {
    HANDLE: "經辦 handle",
    REVIEW: "審核 review",
    APPROVE: "批准 approve",
    SUPERVISE: "督導 supervise",
    EMERGENCY: "emergency approval",
}
# NetBox groups that give the authorities (DESIGN: identity comes from NetBox)
GROUP_AUTHORITIES = {
    "runbook-operators": HANDLE,
    "runbook-reviewers": REVIEW,
    "runbook-approvers": APPROVE,
    "runbook-supervisors": SUPERVISE,
}


@dataclass(frozen=True)
class Identity:
    """An authenticated person: the owner of the API token in use, and their authorities."""

    username: str
    authorities: frozenset[str]
    source: str = "netbox"

    @classmethod
    def from_groups(cls, username: str, groups: Iterable[str], source: str = "netbox") -> Identity:
        return cls(
            username,
            frozenset(GROUP_AUTHORITIES[g] for g in groups if g in GROUP_AUTHORITIES),
            source,
        )

    def holds(self, authority: str) -> bool:
        return authority in self.authorities


class IdentityProvider(Protocol):
    def whoami(self) -> Identity: ...


@dataclass(frozen=True)
class Signature:
    """One person's signature on a change or a record, bound to a plan hash."""

    authority: str  # review | approve | emergency | supervise
    actor: str
    at: str
    plan_hash: str
    note: str = ""


def _require(who: Identity, authority: str, doing: str) -> None:
    if not who.holds(authority):
        held = ", ".join(sorted(who.authorities)) or "none"
        raise ApprovalError(
            f"{who.username} cannot {doing}: needs the {AUTHORITY_NAMES[authority]} authority "
            f"(holds: {held})",
            actor=who.username,
        )


def _signers(signatures: Iterable[Signature], authority: str, plan_hash: str) -> list[str]:
    return [s.actor for s in signatures if s.authority == authority and s.plan_hash == plan_hash]


def check_prepare(who: Identity) -> None:
    _require(who, HANDLE, "prepare a change")


def check_review(
    who: Identity, preparer: str, plan_hash: str, given_hash: str, signatures: Iterable[Signature]
) -> None:
    _require(who, REVIEW, "review a change")
    if who.username == preparer:
        raise ApprovalError(f"{who.username} prepared this change and cannot review it")
    _check_hash(plan_hash, given_hash)
    if who.username in _signers(signatures, REVIEW, plan_hash):
        raise ApprovalError(f"{who.username} has already reviewed this plan")


def check_approve(
    who: Identity,
    preparer: str,
    plan_hash: str,
    given_hash: str,
    signatures: Iterable[Signature],
    emergency: bool = False,
) -> None:
    sigs = list(signatures)
    _require(who, APPROVE, "approve a change")
    if who.username == preparer:
        raise ApprovalError(f"{who.username} prepared this change and cannot approve it")
    _check_hash(plan_hash, given_hash)
    reviewers = _signers(sigs, REVIEW, plan_hash)
    if not reviewers:
        raise ApprovalError("the change must be reviewed before it is approved")
    if who.username in reviewers:
        raise ApprovalError(f"{who.username} reviewed this change; another person must approve it")
    approvers = _signers(sigs, APPROVE, plan_hash)
    if emergency:
        if not approvers:
            raise ApprovalError("an emergency approval comes on top of a normal approval")
        if who.username in approvers:
            raise ApprovalError(
                f"{who.username} already approved; the emergency approval needs a second approver"
            )
    elif who.username in approvers:
        raise ApprovalError(f"{who.username} has already approved this plan")


def check_run(
    who: Identity, plan_hash: str, signatures: Iterable[Signature], in_window: bool
) -> bool:
    """May ``who`` run the change now? Returns True when it runs as an emergency."""
    sigs = list(signatures)
    _require(who, HANDLE, "run a change")
    if not _signers(sigs, REVIEW, plan_hash) or not _signers(sigs, APPROVE, plan_hash):
        raise ApprovalError(
            "the change is not approved for this plan: review and approval are needed"
        )
    if who.username in _signers(sigs, APPROVE, plan_hash) + _signers(sigs, REVIEW, plan_hash):
        raise ApprovalError(f"{who.username} reviewed or approved this change and cannot run it")
    if in_window:
        return False
    if not _signers(sigs, EMERGENCY, plan_hash):
        raise ApprovalError(
            "outside the change's maintenance window: an emergency run needs an extra approval "
            "(runbook approve <change> --emergency)"
        )
    return True


def check_signoff(who: Identity, operators: Iterable[str]) -> None:
    _require(who, SUPERVISE, "sign off a record")
    if who.username in set(operators):
        raise ApprovalError(f"{who.username} ran this change and cannot sign off its record")


def _check_hash(plan_hash: str, given_hash: str) -> None:
    if not given_hash or not plan_hash.startswith(given_hash) or len(given_hash) < 12:
        raise ApprovalError(
            "the signature must name the plan's hash (at least 12 characters of "
            f"{plan_hash[:12]}…); got {given_hash[:16] or 'none'}"
        )
