"""The plan hash an approval binds to, computed from the plan document itself.

The hash covers everything a reviewer reads of a plan — the runbook, its instruction and
parameters, and each step's title, kind, status, targets, diffs, expected duration, whether it
can be undone — but not the evidence (counters and uptimes change between two reads; review
pages say so). Whoever holds the plan document
(the reviewer's page, NetBox) can recompute it, so a document cannot be shown under the hash
of another plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbooks_rules.chain import canonical, digest, json_safe

INTENT_KEYS = (
    "step",
    "kind",
    "status",
    "targets",
    "diffs",
    "title",
    "duration_s",
    "reversible",
    "error",
)


def intent(step: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a planned step the hash covers."""
    return {k: step.get(k) for k in INTENT_KEYS}


def plan_hash(plan: Mapping[str, Any]) -> str:
    """The content hash of a plan document (``Plan.to_dict()`` in runbooks.core.plan).

    >>> plan = {"runbook": "r", "params": {}, "refusal": None, "steps": [{"step": "s"}]}
    >>> plan_hash(plan) == plan_hash({**plan, "created": "later", "actor": "someone"})
    True
    >>> plan_hash(plan) == plan_hash({**plan, "steps": [{"step": "s", "reversible": False}]})
    False
    """
    body = {
        "runbook": plan["runbook"],
        "instruction": plan.get("instruction", ""),
        "params": plan["params"],
        "refusal": plan.get("refusal"),
        "steps": [intent(s) for s in plan.get("steps", [])],
    }
    return digest(canonical(json_safe(body)))
