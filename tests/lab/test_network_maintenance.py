"""network-maintenance on the lab, as olivia runs it with the `runbook` command: drift made
on two devices (a vtysh change on leaf1 carrying a planted BGP password; a changed interface
description in NetBox for leaf2) and one device unreachable (spine2's address in NetBox moved
to one nothing answers). One plan and two runs serve every assertion: the summary names
exactly those (spine1 compliant), in the plan's JSON, the review page, the runs' JSON and the
record; the history holds one commit per run naming it, one file per device reached, and
the planted password is in no file, commit, record or output. `rack_lab` resets the lab
before and after.
"""

from __future__ import annotations

import html
import ipaddress
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pynetbox
import pytest
from cli_support import Machine, device_env
from dulwich.objects import Blob, Commit
from dulwich.repo import Repo

from runbooks.core.store import RecordStore
from runbooks.lab import frr, netbox

pytestmark = [pytest.mark.lab]

SELECTION = ("role=spine,leaf", "site=lab-dc1")
STEPS = ("select_devices", "survey_devices", "compliance_summary", "plan_history_commit")


def evidence(document: dict[str, Any], step: str) -> dict[str, Any]:
    return dict(next(s for s in document["steps"] if s["step"] == step)["evidence"])


def drift_on_the_device(lab: Any, secret: str) -> str:
    """leaf1: a BGP password on its session to spine1, typed in vtysh (NetBox renders none)."""
    leaf1 = lab.topology.device("leaf1")
    peer = next(
        a for a, name in frr.expected_peers(lab.topology, "leaf1").items() if name == "spine1"
    )
    frr.run_on_device(
        "leaf1",
        [
            "vtysh",
            "-c", "configure terminal",
            "-c", f"router bgp {leaf1.asn}",
            "-c", f"neighbor {peer} password {secret}",
        ],
        check=True,
    )  # fmt: skip
    return peer


def drift_in_netbox_and_one_unreachable(lab: Any) -> str:
    """leaf2's swp1 gets a new description in NetBox (its rendering changes); spine2's
    management address in NetBox moves to an address of the lab's range nothing answers."""
    api = pynetbox.api(*netbox.credentials("admin"))
    iface = api.dcim.interfaces.get(device="leaf2", name="swp1")
    iface.description = "uplink, described in NetBox only"
    iface.save()
    taken = {d.mgmt for d in lab.topology.devices} | {h.mgmt for h in lab.topology.hosts}
    management = lab.topology.addressing.management
    silent = next(a for a in reversed(list(management.hosts())) if a not in taken)
    spine2 = api.dcim.devices.get(name="spine2")
    ip = api.ipam.ip_addresses.get(spine2.primary_ip4.id)
    ip.address = f"{silent}/{management.prefixlen}"
    ip.save()
    assert ipaddress.ip_address(silent) in ipaddress.ip_network("198.18.0.0/15")
    return str(silent)


def test_maintenance_names_the_drift_and_the_unreachable_and_keeps_a_history(
    rack_lab: Any, tmp_path: Path
) -> None:
    secret = f"pl4nted-{secrets.token_hex(6)}"
    history = tmp_path / "history"
    olivia = Machine(tmp_path / "olivia", RUNBOOKS_CONFIG_HISTORY=str(history), **device_env())
    peer = drift_on_the_device(rack_lab, secret)
    silent = drift_in_netbox_and_one_unreachable(rack_lab)

    # the plan: the review document carries the summary
    planned = json.loads(
        olivia("operator", "plan", "network-maintenance", *SELECTION, "--json").stdout
    )
    runs = [
        json.loads(
            olivia(
                "operator", "run", "network-maintenance", *SELECTION, "--no-change-control",
                "--yes", "--json",
            ).stdout
        )
        for _ in range(2)
    ]  # fmt: skip
    page = tmp_path / "review.html"
    olivia("operator", "review", planned["change"], "--html", str(page))
    outputs = [json.dumps(planned), *(json.dumps(r) for r in runs), page.read_text()]

    # exactly these, in the plan's JSON and in each run's
    for document in (planned, *runs):
        summary = evidence(document, "compliance_summary")
        assert summary["compliant"] == ["spine1"], summary
        assert sorted(summary["drifted"]) == ["leaf1", "leaf2"]
        assert list(summary["unreachable"]) == ["spine2"]
        assert summary["not_renderable"] == {}
        assert f"neighbor {peer} password <removed>" in summary["drifted"]["leaf1"]
        assert "uplink, described in NetBox only" in summary["drifted"]["leaf2"]
        assert silent in summary["unreachable"]["spine2"]
        surveyed = evidence(document, "survey_devices")["devices"]
        # one login per device reached: the plan's; each run (a change: it re-plans, then
        # runs) goes on on its re-plan's sessions and logs in to none
        reused = document is not planned
        assert {n: s["logins"] for n, s in surveyed.items()} == {
            "leaf1": 1 - reused, "leaf2": 1 - reused, "spine1": 1 - reused, "spine2": 0,
        }  # fmt: skip
        assert {n for n, s in surveyed.items() if s.get("replan_session")} == (
            {"leaf1", "leaf2", "spine1"} if reused else set()
        )
        assert surveyed["spine1"]["facts"]["hostname"] == "spine1"
        assert surveyed["leaf2"]["lldp"]["mismatches"] == []
        # NetBox's working sets of the connected cables only (CONNECTED_QUERY): leaf2's two
        # uplinks and their BGP sessions are there, nothing left not checked
        assert surveyed["leaf2"]["lldp"]["cables"] >= 2, surveyed["leaf2"]
        assert surveyed["leaf2"]["bgp"]["expected"] >= 2 and "not_checked" not in surveyed["leaf2"]
        assert "bgp" in surveyed["leaf2"] and "interface_errors" in surveyed["leaf2"]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert "config" not in evidence(planned, "survey_devices")["devices"]["leaf1"]
    # the review page: the unreachable device among the warnings, the drift in the evidence
    text = html.unescape(page.read_text())
    assert "spine2 unreachable: " in text and "leaf2" in text and "<removed>" in text

    # the record: the backup and the summary, as the local store holds them
    store = RecordStore(olivia.store)
    for run in runs:
        finished = {
            e.payload["step"]: e.payload
            for e in store.entries(run["run_id"])
            if e.kind == "step.finished"
        }
        assert set(STEPS) <= set(finished)
        recorded = finished["compliance_summary"]["evidence"]
        assert sorted(recorded["drifted"]) == ["leaf1", "leaf2"]
        backup = finished["survey_devices"]["evidence"]["devices"]["leaf1"]["config"]
        assert f"neighbor {peer} password <removed>" in backup

    # the history: one commit per run, naming it, one file per device reached
    log = subprocess.run(
        ["git", "-C", str(history), "log", "--format=%s"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(log) == 2
    for line, run in zip(log, reversed(runs), strict=True):
        assert line.startswith(f"network-maintenance run {run['run_id']}: 1 compliant, 2 drifted")
    with Repo(str(history)) as repo:
        head = repo[repo.head()]
        assert isinstance(head, Commit)
        names = sorted(e.path.decode() for e in repo[head.tree].items())  # type: ignore[attr-defined]
        assert names == ["leaf1.cfg", "leaf2.cfg", "spine1.cfg"]
        blobs = [
            repo[sha].as_raw_string()
            for sha in repo.object_store
            if isinstance(repo[sha], Blob | Commit)
        ]
    assert any(f"neighbor {peer} password <removed>".encode() in b for b in blobs)

    # the planted password: in no file, commit, record or output
    assert not [b for b in blobs if secret.encode() in b]
    for kept in olivia.store.parent.iterdir():  # the store, its journal and its log
        assert not kept.is_file() or secret.encode() not in kept.read_bytes(), kept
    assert not [o for o in outputs if secret in o]
    for path in history.iterdir():
        if path.is_file():
            assert secret.encode() not in path.read_bytes()
