"""Separation of duties (權限分割、互相制約), as the runbooks enforce it locally.

The rules themselves live in `runbooks_rules.policy`, the one definition the NetBox plugin
enforces on the server too. This module gives them to the rest of runbooks with its own
error: a broken rule is an `ApprovalError` (exit code 3) saying which rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from runbooks_rules import policy as _rules
from runbooks_rules.policy import (
    APPROVE,
    AUTHORITY_NAMES,
    EMERGENCY,
    GROUP_AUTHORITIES,
    HANDLE,
    RESPONSIBLE,
    REVIEW,
    SUPERVISE,
    SUPERVISOR,
    Identity,
    Signature,
    signers,
    status,
)

from runbooks.core.errors import ApprovalError

__all__ = [
    "APPROVE",
    "AUTHORITY_NAMES",
    "EMERGENCY",
    "GROUP_AUTHORITIES",
    "HANDLE",
    "RESPONSIBLE",
    "REVIEW",
    "SUPERVISE",
    "SUPERVISOR",
    "Identity",
    "Signature",
    "check_approve",
    "check_prepare",
    "check_review",
    "check_run",
    "check_sign",
    "signers",
    "signoff_role",
    "status",
]


def _enforced[**P, R](rule: Callable[P, R]) -> Callable[P, R]:
    @wraps(rule)
    def check(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return rule(*args, **kwargs)
        except _rules.Refusal as exc:
            raise ApprovalError(str(exc), actor=exc.actor) from None

    return check


check_prepare = _enforced(_rules.check_prepare)
check_review = _enforced(_rules.check_review)
check_approve = _enforced(_rules.check_approve)
check_sign = _enforced(_rules.check_sign)
check_run = _enforced(_rules.check_run)
signoff_role = _enforced(_rules.signoff_role)
