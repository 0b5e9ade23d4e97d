"""What a reviewer reads first, computed once for every page that shows a change.

`summary` gives the targets, the intended changes counted by system and kind, the expected
duration against the window, and how each system's changes are rolled back; `sections` sorts
the diffs into the review document's parts; `unified` turns a configuration change into a
unified diff of the recorded running configuration against the intended one, and `diff_lines`
classifies its lines for colouring.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

NETBOX, DEVICE, HOST, OTHER = "netbox", "device", "host", "other"
SYSTEM_NAMES = {
    NETBOX: "NetBox objects",
    DEVICE: "device configurations",
    HOST: "hosts (Ansible)",
    OTHER: "servers and other systems",
}
ROLLBACK = {
    NETBOX: "each object back to the before-state recorded ahead of the write "
    "(NetBox's own change records)",
    DEVICE: "commit-confirm: a device reverts by itself unless the change is confirmed after "
    "the post-checks; undo loads the running configuration recorded before",
    HOST: "the runbook's rollback playbook restores the snapshot taken before the change",
    OTHER: "each step's own undo, from the state it recorded first",
}


def system_of(target: str) -> str:
    """Which system a diff's target is on, from the target names the gateways give.

    >>> [system_of(t) for t in ("NetBox dcim.cable #3", "netbox:dcim.device:pc1:journal",
    ...  "NetBox journal of leaf3", "leaf3 configuration", "srv1:/etc/motd", "db1")]
    ['netbox', 'netbox', 'netbox', 'device', 'host', 'other']
    """
    if target.startswith(("NetBox ", "netbox:")):
        return NETBOX
    if target.endswith(" configuration"):
        return DEVICE
    if ":" in target:
        return HOST
    return OTHER


def _kind(diff: Mapping[str, Any]) -> str:
    kind = str(diff.get("kind", "fields"))
    return {"fields": "update", "text": "edit"}.get(kind, kind)


def summary(
    plan: Mapping[str, Any], window: tuple[datetime, datetime] | None = None
) -> dict[str, Any]:
    """The opening of a review: targets, changes by system and kind, duration vs window,
    rollback per system, steps by kind, what cannot be undone, what cannot be checked."""
    steps = list(plan.get("steps", []))
    targets = list(dict.fromkeys(t for s in steps for t in s.get("targets", [])))
    by_system: dict[str, Counter[str]] = {}
    for s in steps:
        for d in s.get("diffs", []):
            by_system.setdefault(system_of(str(d.get("target", ""))), Counter())[_kind(d)] += 1
    expected = float(
        plan.get("expected_duration_s") or sum(float(s.get("duration_s", 0)) for s in steps)
    )
    window_s = (window[1] - window[0]).total_seconds() if window else None
    return {
        "targets": targets,
        "changes": sum(sum(c.values()) for c in by_system.values()),
        "systems": [
            {
                "system": system,
                "name": SYSTEM_NAMES[system],
                "count": sum(counts.values()),
                "kinds": dict(sorted(counts.items())),
                "rollback": ROLLBACK[system],
            }
            for system, counts in sorted(by_system.items())
        ],
        "steps": dict(Counter(str(s.get("kind", "")) for s in steps)),
        "expected_s": expected,
        "window_s": window_s,
        "fits_window": None if window_s is None else expected <= window_s,
        "irreversible": [
            str(s.get("title", s.get("step")))
            for s in steps
            if s.get("diffs") and not s.get("reversible", True)
        ],
        "refusal": plan.get("refusal"),
        # what a check says cannot be verified (e.g. a getter a device's driver lacks): the
        # reviewer decides whether the change may go ahead without it
        "warnings": [
            str(w)
            for s in steps
            if s.get("kind") == "check"
            for w in (s.get("evidence") or {}).get("warnings", [])
        ],
    }


def sections(plan: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The review document's parts: the pre-check evidence, then the diffs of each system
    (``netbox``, ``device``, ``host``, ``other``, in that order) as (step, diff, text), where
    ``text`` is the unified diff of a configuration or file change and '' for field changes."""
    steps = list(plan.get("steps", []))
    parts: dict[str, list[Any]] = {"checks": [s for s in steps if s.get("kind") == "check"]}
    for system in SYSTEM_NAMES:
        parts[system] = []
    for step in steps:
        for diff in step.get("diffs", []):
            textual = bool(diff.get("text")) or (
                diff.get("kind") == "text" and isinstance(diff.get("before"), str)
            )
            item = (step, diff, unified(diff) if textual else "")
            parts[system_of(str(diff.get("target", "")))].append(item)
    return parts


def unified(diff: Mapping[str, Any], context: int = 3) -> str:
    """A configuration change as a unified diff: the running configuration recorded in the
    plan (``before``) against the intended one (``after``); the diff's own text otherwise.

    >>> print(unified({"target": "r1 configuration", "kind": "text",
    ...     "before": "hostname r1\\n", "after": "hostname r1\\nip forwarding\\n"}), end="")
    --- r1 configuration (running)
    +++ r1 configuration (intended)
    @@ -1 +1,2 @@
     hostname r1
    +ip forwarding
    """
    before, after = diff.get("before"), diff.get("after")
    if isinstance(before, str) and isinstance(after, str):
        target = str(diff.get("target", ""))
        return "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"{target} (running)",
                tofile=f"{target} (intended)",
                n=context,
            )
        )
    return str(diff.get("text", ""))


def diff_lines(text: str) -> list[tuple[str, str]]:
    """Each line of a unified diff with its class: add, del, hunk, file or ctx.

    >>> [cls for cls, _ in diff_lines("--- a\\n+++ b\\n@@ -1 +1 @@\\n-x\\n+y\\n z")]
    ['file', 'file', 'hunk', 'del', 'add', 'ctx']
    """
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            cls = "file"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        elif line.startswith("@@"):
            cls = "hunk"
        else:
            cls = "ctx"
        out.append((cls, line))
    return out
