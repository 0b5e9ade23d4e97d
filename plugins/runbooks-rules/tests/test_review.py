"""The review summary names what a check says cannot be verified (issue 15: a getter a
device's driver lacks is named for the reviewer, never a silent pass)."""

from __future__ import annotations

from runbooks_rules.review import summary

WARNING = (
    "Post-check: LLDP matches the NetBox cables, interface by interface: cannot check on "
    "bird2 (border1): driver bird2 has no get_lldp_neighbors"
)


def plan(*evidence: dict[str, object]) -> dict[str, object]:
    steps: list[dict[str, object]] = [
        {"name": f"check{i}", "kind": "check", "targets": ["border1"], "evidence": e}
        for i, e in enumerate(evidence)
    ]
    steps.append(
        {
            "name": "configure",
            "kind": "change",
            "targets": ["border1"],
            "evidence": {"warnings": ["a change step's evidence is not a check's warning"]},
            "diffs": [{"target": "border1 configuration", "kind": "text"}],
        }
    )
    return {"steps": steps}


def test_a_checks_warnings_reach_the_summary_in_order() -> None:
    got = summary(plan({"drivers": {}}, {"warnings": [WARNING, "second"]}))
    assert got["warnings"] == [WARNING, "second"]


def test_no_warning_when_every_check_can_run() -> None:
    assert summary(plan({"drivers": {"leaf3": "frr"}}, {}))["warnings"] == []
