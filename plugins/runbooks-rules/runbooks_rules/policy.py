"""Separation of duties (權限分割、互相制約): who may prepare, review, approve, run and sign off.

Pure rules over identities and a change's signatures; each refusal is a `Refusal` whose
message is one sentence saying which rule was broken. The authorities are the manual's four:

    handle (經辦)  review (審核)  approve (批准)  supervise (督導)

The `runbook` command and the NetBox plugin both call these functions: the client to fail
fast, the server to decide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HANDLE, REVIEW, APPROVE, SUPERVISE = "handle", "review", "approve", "supervise"
EMERGENCY = "emergency"  # the extra approval a run outside its window needs
# the two signatures on a finished record (the manual's 職位責任人簽字 / 上級主管簽字)
RESPONSIBLE, SUPERVISOR = "responsible", "supervisor"
AUTHORITIES = (HANDLE, REVIEW, APPROVE, SUPERVISE)
AUTHORITY_NAMES = {
    HANDLE: "經辦 handle",
    REVIEW: "審核 review",
    APPROVE: "批准 approve",
    SUPERVISE: "督導 supervise",
    EMERGENCY: "emergency approval",
}
# NetBox groups that give the authorities (DESIGN: identity comes from NetBox). The default of
# a setting: the CLI's `netbox_groups` (RUNBOOKS_NETBOX_GROUPS) and the plugin's
# PLUGINS_CONFIG["netbox_runbooks"]["groups"]; both pass theirs through `group_authorities`.
GROUP_AUTHORITIES = {
    "runbook-operators": HANDLE,
    "runbook-reviewers": REVIEW,
    "runbook-approvers": APPROVE,
    "runbook-supervisors": SUPERVISE,
}
# each group's authorities, as `group_authorities` checks them (a group may give several)
GroupMap = Mapping[str, frozenset[str]]
MIN_HASH_PREFIX = 12


class Refusal(Exception):
    """A rule was broken. The message is one sentence a person can act on."""

    def __init__(self, message: str, actor: str = "") -> None:
        super().__init__(message)
        self.actor = actor


@dataclass(frozen=True)
class Identity:
    """An authenticated person: the owner of the API token (or web session) in use."""

    username: str
    authorities: frozenset[str]
    source: str = "netbox"

    @classmethod
    def from_groups(
        cls,
        username: str,
        groups: Iterable[str],
        source: str = "netbox",
        group_map: GroupMap | None = None,
    ) -> Identity:
        """``group_map`` is the department's (`group_authorities`); default: the default one."""
        return cls(username, authorities_from(groups, group_map=group_map), source)

    def holds(self, authority: str) -> bool:
        return authority in self.authorities


def group_authorities(given: object = None) -> dict[str, frozenset[str]]:
    """A department's groups and the authorities each gives, checked: a mapping of group name
    to an authority or a list of them, or that mapping as JSON text (the form of the variable
    ``RUNBOOKS_NETBOX_GROUPS``). None or an empty mapping: `GROUP_AUTHORITIES`. Anything else,
    or an authority not among handle/review/approve/supervise, is a `ValueError` naming it.

    >>> m = group_authorities('{"it-ops": "handle", "it-leads": ["review", "approve"]}')
    >>> {g: sorted(a) for g, a in m.items()}
    {'it-ops': ['handle'], 'it-leads': ['approve', 'review']}
    >>> try:
    ...     group_authorities({"it-ops": "operate"})
    ... except ValueError as exc:
    ...     print(exc)
    group 'it-ops' gives 'operate', not an authority (handle, review, approve, supervise)
    """
    if isinstance(given, str):
        text = given.strip()
        try:
            given = json.loads(text) if text else None
        except json.JSONDecodeError as exc:
            raise ValueError(
                'the groups must be a JSON object, {"group": "authority", …}: ' + exc.msg
            ) from None
    if not given:
        given = GROUP_AUTHORITIES
    if not isinstance(given, Mapping):
        raise ValueError(f"the groups must map group names to authorities, not {given!r:.60}")
    result: dict[str, frozenset[str]] = {}
    for group, value in given.items():
        names = [value] if isinstance(value, str) else value
        if not isinstance(group, str) or not group or not isinstance(names, list | tuple | set):
            raise ValueError(f"group {group!r}: give an authority or a list of them")
        for name in names:
            if name not in AUTHORITIES:
                raise ValueError(
                    f"group {group!r} gives {name!r}, not an authority ({', '.join(AUTHORITIES)})"
                )
        result[group] = frozenset(names)
    return result


DEFAULT_GROUP_MAP = group_authorities(GROUP_AUTHORITIES)


def groups_giving(authority: str, group_map: GroupMap | None = None) -> list[str]:
    """The groups that give ``authority`` (who is told of a change waiting for it).

    >>> groups_giving(REVIEW)
    ['runbook-reviewers']
    """
    return sorted(g for g, a in (group_map or DEFAULT_GROUP_MAP).items() if authority in a)


def authorities_from(
    groups: Iterable[str], permitted: Iterable[str] = (), group_map: GroupMap | None = None
) -> frozenset[str]:
    """The authorities a person holds: from their groups, through the department's
    ``group_map`` (`group_authorities`; default `GROUP_AUTHORITIES`), plus any granted directly
    (NetBox object permissions with the actions ``handle``/``review``/``approve``/``supervise``).

    >>> sorted(authorities_from(["runbook-reviewers", "staff"], ["approve", "delete"]))
    ['approve', 'review']
    >>> leads = group_authorities({"it-leads": ["review", "approve"]})
    >>> sorted(authorities_from(["it-leads", "runbook-reviewers"], group_map=leads))
    ['approve', 'review']
    """
    mapping = DEFAULT_GROUP_MAP if group_map is None else group_map
    held = {a for g in groups for a in mapping.get(g, ())}
    held |= {a for a in permitted if a in AUTHORITIES}
    return frozenset(held)


@dataclass(frozen=True)
class Signature:
    """One person's signature on a change or a record, bound to a plan hash."""

    authority: str  # review | approve | emergency | responsible | supervisor
    actor: str
    at: str
    plan_hash: str
    note: str = ""


def signers(signatures: Iterable[Signature], authority: str, plan_hash: str) -> list[str]:
    """Who signed with ``authority`` for exactly this plan hash (a signature of an older plan
    does not count)."""
    return [s.actor for s in signatures if s.authority == authority and s.plan_hash == plan_hash]


def status(plan_hash: str, signatures: Iterable[Signature]) -> str:
    """A change's status from its signatures alone: planned, reviewed or approved."""
    sigs = list(signatures)
    if signers(sigs, APPROVE, plan_hash):
        return "approved"
    if signers(sigs, REVIEW, plan_hash):
        return "reviewed"
    return "planned"


def _require(who: Identity, authority: str, doing: str) -> None:
    if not who.holds(authority):
        held = ", ".join(sorted(who.authorities)) or "none"
        raise Refusal(
            f"{who.username} cannot {doing}: needs the {AUTHORITY_NAMES[authority]} authority "
            f"(holds: {held})",
            who.username,
        )


def check_prepare(who: Identity) -> None:
    _require(who, HANDLE, "prepare a change")


def check_review(
    who: Identity, preparer: str, plan_hash: str, given_hash: str, signatures: Iterable[Signature]
) -> None:
    _require(who, REVIEW, "review a change")
    if who.username == preparer:
        raise Refusal(f"{who.username} prepared this change and cannot review it", who.username)
    check_hash(plan_hash, given_hash)
    if who.username in signers(signatures, REVIEW, plan_hash):
        raise Refusal(f"{who.username} has already reviewed this plan", who.username)


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
        raise Refusal(f"{who.username} prepared this change and cannot approve it", who.username)
    check_hash(plan_hash, given_hash)
    reviewers = signers(sigs, REVIEW, plan_hash)
    if not reviewers:
        raise Refusal("the change must be reviewed before it is approved", who.username)
    if who.username in reviewers:
        raise Refusal(
            f"{who.username} reviewed this change; another person must approve it", who.username
        )
    approvers = signers(sigs, APPROVE, plan_hash)
    if emergency:
        if not approvers:
            raise Refusal("an emergency approval comes on top of a normal approval", who.username)
        if who.username in approvers:
            raise Refusal(
                f"{who.username} already approved; the emergency approval needs a second approver",
                who.username,
            )
    elif who.username in approvers:
        raise Refusal(f"{who.username} has already approved this plan", who.username)


def check_sign(
    who: Identity,
    authority: str,
    preparer: str,
    plan_hash: str,
    given_hash: str,
    signatures: Iterable[Signature],
) -> None:
    """The rule for one signature on a change: review, approve or emergency."""
    if authority == REVIEW:
        check_review(who, preparer, plan_hash, given_hash, signatures)
    elif authority in (APPROVE, EMERGENCY):
        check_approve(
            who, preparer, plan_hash, given_hash, signatures, emergency=authority == EMERGENCY
        )
    else:
        raise Refusal(f"unknown authority {authority!r} (review, approve or emergency)")


def check_run(
    who: Identity, plan_hash: str, signatures: Iterable[Signature], in_window: bool
) -> bool:
    """May ``who`` run the change now? Returns True when it runs as an emergency."""
    sigs = list(signatures)
    _require(who, HANDLE, "run a change")
    if not signers(sigs, REVIEW, plan_hash) or not signers(sigs, APPROVE, plan_hash):
        raise Refusal(
            "the change is not approved for this plan: review and approval are needed",
            who.username,
        )
    signed = [signers(sigs, a, plan_hash) for a in (REVIEW, APPROVE, EMERGENCY)]
    if who.username in {name for names in signed for name in names}:
        raise Refusal(
            f"{who.username} reviewed or approved this change and cannot run it", who.username
        )
    if in_window:
        return False
    if not signers(sigs, EMERGENCY, plan_hash):
        raise Refusal(
            "outside the change's maintenance window: an emergency run needs an extra approval "
            "(runbook approve <change> --emergency)",
            who.username,
        )
    return True


def check_run_unreviewed(who: Identity, preparer: str, in_window: bool) -> None:
    """May ``who`` run an unreviewed change (one its preparer asked to run without signatures)?
    Only its preparer, holding handle, and only inside its window: no one approved an
    emergency run.

    >>> olivia = Identity("olivia", frozenset({HANDLE}))
    >>> check_run_unreviewed(olivia, "olivia", in_window=True)
    >>> try:
    ...     check_run_unreviewed(olivia, "rachel", in_window=True)
    ... except Refusal as exc:
    ...     print(exc)
    olivia did not prepare this unreviewed change: only its preparer rachel runs it
    """
    _require(who, HANDLE, "run a change")
    if who.username != preparer:
        raise Refusal(
            f"{who.username} did not prepare this unreviewed change: only its preparer "
            f"{preparer} runs it",
            who.username,
        )
    if not in_window:
        raise Refusal(
            "outside the change's maintenance window: an unreviewed change runs only inside it",
            who.username,
        )


def check_signoff(who: Identity, operators: Iterable[str]) -> None:
    _require(who, SUPERVISE, "sign off a record")
    if who.username in set(operators):
        raise Refusal(
            f"{who.username} ran this change and cannot sign off its record", who.username
        )


def signoff_role(
    who: Identity, operators: Iterable[str], finished: bool, signed_roles: Iterable[str]
) -> str:
    """Which signature ``who`` may put on a run's record: the operator signs as the responsible
    person (職位責任人), a supervisor who did not run it as supervisor (上級主管); each once."""
    if not finished:
        raise Refusal("the run has not finished: its record cannot be signed yet", who.username)
    ran = set(operators)
    if who.username in ran:
        role = RESPONSIBLE
    else:
        check_signoff(who, ran)
        role = SUPERVISOR
    if role in set(signed_roles):
        label = "responsible person's" if role == RESPONSIBLE else "supervisor's"
        raise Refusal(f"the record already carries the {label} signature", who.username)
    return role


def check_hash(plan_hash: str, given_hash: str) -> None:
    """A signature names the hash of the plan it signs: at least 12 characters of it.

    What was given is echoed only when it looks like a hash (a token pasted by mistake must not
    reach the record).

    >>> try:
    ...     check_hash("ab" * 32, "nbt_secret.secret")
    ... except Refusal as exc:
    ...     print(str(exc).split("; ")[1])
    got something that is not a hash
    """
    if not given_hash or not plan_hash.startswith(given_hash) or len(given_hash) < MIN_HASH_PREFIX:
        shown = given_hash[:16] if all(c in "0123456789abcdef" for c in given_hash) else ""
        got = shown or ("none" if not given_hash else "something that is not a hash")
        raise Refusal(
            "the signature must name the plan's hash (at least 12 characters of "
            f"{plan_hash[:12]}…); got {got}"
        )
