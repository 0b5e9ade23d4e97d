"""The plan hash an approval binds to, computed from the plan document itself.

The hash covers what a plan intends (each step, its status, targets and diffs) and not the
evidence (counters and uptimes change between two reads). Whoever holds the plan document
(the reviewer's page, NetBox) can recompute it, so a document cannot be shown under the hash
of another plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbooks_rules.chain import canonical, digest

INTENT_KEYS = ("step", "kind", "status", "targets", "diffs")


def intent(step: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a planned step the hash covers."""
    return {k: step.get(k) for k in INTENT_KEYS}


def plan_hash(plan: Mapping[str, Any]) -> str:
    """The content hash of a plan document (``Plan.to_dict()`` in runbooks.core.plan).

    >>> plan = {"runbook": "r", "params": {}, "refusal": None, "steps": []}
    >>> plan_hash(plan) == plan_hash({**plan, "created": "later", "actor": "someone"})
    True
    """
    body = {
        "runbook": plan["runbook"],
        "params": plan["params"],
        "refusal": plan.get("refusal"),
        "steps": [intent(s) for s in plan.get("steps", [])],
    }
    return digest(canonical(body))
