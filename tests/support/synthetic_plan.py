"""A plan document of any size, as `runbook plan` would post it to NetBox: a pre-check, then per
change step a NetBox field diff and a device configuration (a text diff of ``lines`` lines).
For the plugin's UI tests and bench/netbox_records.py."""

from __future__ import annotations

from typing import Any

from runbooks_rules.plan import plan_hash


def plan(target: str = "leaf1", steps: int = 1, lines: int = 6) -> dict[str, Any]:
    """The document, its hash included."""
    running = "".join(f"interface swp{i}\n description old{i}\n" for i in range(lines // 2))
    intended = running.replace(" description old1\n", " description uplink\n") + "ip forwarding\n"
    change_steps = [
        {
            "step": f"change_{n}",
            "kind": "change",
            "status": "planned",
            "targets": [target],
            "title": f"Configure {target} (part {n})",
            "duration_s": 4.0,
            "reversible": n != steps,
            "evidence": {},
            "error": None,
            "diffs": [
                {
                    "target": f"NetBox dcim.device {target}",
                    "kind": "fields",
                    "summary": "description",
                    "fields": [{"name": "description", "before": f"v{n}", "after": f"v{n + 1}"}],
                },
                {
                    "target": f"{target} configuration",
                    "kind": "text",
                    "summary": "rendered by NetBox",
                    "before": running,
                    "after": intended,
                    "text": "",
                    "fields": [],
                },
            ],
        }
        for n in range(1, steps + 1)
    ]
    check = {
        "step": "device_answers",
        "kind": "check",
        "status": "ok",
        "targets": [target],
        "title": f"{target} answers",
        "duration_s": 1.0,
        "reversible": True,
        "evidence": {"uptime": 4242, "hostname": target},
        "error": None,
        "diffs": [],
    }
    doc: dict[str, Any] = {
        "runbook": "ledger",
        "instruction": "99 Test instruction",
        "params": {"device": target},
        "refusal": None,
        "expected_duration_s": 1.0 + 4.0 * steps,
        "steps": [check, *change_steps],
    }
    doc["hash"] = plan_hash(doc)
    return doc
