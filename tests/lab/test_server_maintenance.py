"""server-maintenance against the lab: NetBox inventory, real hosts over SSH, the record.

One flow per test (each starts from a reset lab): plan (check-mode diffs in the plan), run,
a second run that changes nothing; and a host taken down mid-run. Both check that no secret
reaches any artifact, record or log, and that the real machine is unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_support import AnsibleLab, ansible_lab, fingerprint, taken_down_after
from lab_fixtures import LabHandle, ssh_run

from runbooks.core.results import RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.lab import netbox
from runbooks.library.server_maintenance import ServerMaintenance

pytestmark = pytest.mark.slow

# what the playbook writes on a host: on the real machine these must not change
WATCHED = [
    "/etc/motd",
    "/etc/ssh/sshd_config.d/50-it-baseline.conf",
    "/etc/default/baseline-agent",
    "/etc/init.d/baseline-agent",
    "/srv/baseline-agent",
    "/var/backups/runbooks",
    "/root/.ssh/known_hosts",
    "/root/.ansible",
]


@pytest.fixture
def setup(
    lab_reset: LabHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AnsibleLab]:
    before = fingerprint(WATCHED, ["pv"])
    lab = ansible_lab(tmp_path, monkeypatch)
    yield lab
    lab.store.close()
    assert fingerprint(WATCHED, ["pv"]) == before, "the real machine changed"


def runbook(hosts_: str) -> ServerMaintenance:
    return ServerMaintenance(
        ServerMaintenance.parse_params({"hosts": hosts_, "packages": "pv", "agent_port": 9100})
    )


def witnesses(store: RecordStore, run_id: str, host: str) -> tuple[list[str], str]:
    """The run's entries in the host's NetBox journal, and the record's head they must name
    (the hash of every record entry before the closing step)."""
    import requests

    url, token = netbox.credentials("operator")

    def get(path: str, **params: Any) -> list[dict[str, Any]]:
        reply = requests.get(
            f"{url}/api/{path}/",
            params={**params, "limit": 0},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        reply.raise_for_status()
        return list(reply.json()["results"])

    [device] = get("dcim/devices", name=host)
    journal = get(
        "extras/journal-entries",
        assigned_object_type="dcim.device",
        assigned_object_id=device["id"],
    )
    ours = [str(e["comments"]) for e in journal if f"run `{run_id}`" in str(e["comments"])]
    head = next(
        e.prev_hash
        for e in store.entries(run_id)
        if e.kind == "step.started" and e.step == "plan_completion"
    )
    return ours, head


def test_plan_run_and_second_run(
    setup: AnsibleLab, host_ssh: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    engine = setup.engine
    started = time.monotonic()
    plan = engine.plan(runbook("srv1,srv2"))
    plan_s = time.monotonic() - started
    assert plan.refusal is None, plan.refusal
    steps = {s.step: s for s in plan.steps}
    maintenance = steps["plan_maintenance"]
    targets = {d.target for d in maintenance.diffs}
    assert {"srv1:/etc/motd", "srv2:/etc/ssh/sshd_config.d/50-it-baseline.conf"} <= targets
    motd = next(d for d in maintenance.diffs if d.target == "srv1:/etc/motd")
    assert "+srv1 — IT Department" in motd.text
    assert steps["pre_checks"].evidence["hosts"]["srv1"]["failed_services"] == []
    assert len(steps["plan_announcement"].diffs) == 2
    client = host_ssh("srv1")
    assert ssh_run(client, "test -e /etc/init.d/baseline-agent")[0] != 0  # the plan changed nothing

    started = time.monotonic()
    result = engine.run(runbook("srv1,srv2"), plan_hash=plan.content_hash)
    run_s = time.monotonic() - started
    assert result.status is RunStatus.SUCCEEDED, result.error
    done = {s.step: s for s in result.steps}
    assert done["plan_maintenance"].status is Status.CHANGED
    tasks = done["plan_maintenance"].evidence["tasks"]
    assert {t["host"] for t in tasks} == {"srv1", "srv2"}
    assert all({"host", "task", "status", "changed", "duration_s"} <= set(t) for t in tasks)
    assert done["post_checks"].evidence["hosts"]["srv2"]["agent_status"]["host"] == "srv2"
    rc, out, _ = ssh_run(client, "cat /srv/baseline-agent/status.json; head -2 /etc/motd")
    assert rc == 0 and '"host": "srv1"' in out
    # each server's journal witnesses the run once: what it changed there, the record's head
    for host in ("srv1", "srv2"):
        ours, head = witnesses(setup.store, result.run_id, host)
        assert len(ours) == 1, (host, ours)
        assert f"Record head hash before this entry: `{head}`" in ours[0]
        assert "Maintenance finished" in ours[0] and f"- {host}:" in ours[0]

    started = time.monotonic()
    again = engine.plan(runbook("srv1,srv2"))
    assert {s.step: s for s in again.steps}["plan_maintenance"].status is Status.NO_CHANGE
    second = engine.run(runbook("srv1,srv2"), plan_hash=again.content_hash)
    second_s = time.monotonic() - started
    assert second.status is RunStatus.SUCCEEDED
    assert {s.step: s for s in second.steps}["plan_maintenance"].status is Status.NO_CHANGE
    assert setup.store.verify().ok
    files = setup.assert_no_secret(caplog.text)
    logging.getLogger(__name__).warning(
        "plan %.1f s, run %.1f s, second plan+run %.1f s, %d files scanned",
        plan_s,
        run_s,
        second_s,
        files,
    )


def test_host_down_mid_run_fails_cleanly_and_rolls_back(
    setup: AnsibleLab, lab_reset: LabHandle, host_ssh: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    engine = setup.engine
    original_motd = ssh_run(host_ssh("srv1"), "cat /etc/motd")[1]
    with taken_down_after(
        lab_reset.topology, "srv2", "/var/backups/runbooks/*/manifest.json"
    ) as stopped:
        result = engine.run(runbook("srv1,srv2"))
    assert stopped.is_set(), "srv2 was never taken down"
    # srv2 could not be restored while down: the run says so (exit 4), and how to finish
    assert result.status is RunStatus.ROLLBACK_FAILED, result.error
    assert result.error and "ConnectError" in result.error and "srv2" in result.error
    entries = setup.store.entries(result.run_id)
    [undo_failed] = [e for e in entries if e.kind == "undo.failed"]
    assert undo_failed.step == "plan_maintenance"
    said = undo_failed.payload["error"]
    assert "ran clean on srv1; unreachable: srv2 (not restored)" in said
    assert f"maintenance_id={result.run_id}" in said
    kinds = [(e.kind, e.step) for e in entries]
    assert ("step.failed", "plan_maintenance") in kinds
    assert ("undo.finished", "plan_announcement") in kinds
    assert kinds[-1][0] == "run.finished"
    assert setup.store.verify().ok
    assert ssh_run(host_ssh("srv1"), "cat /etc/motd")[1] == original_motd  # srv1 restored
    setup.assert_no_secret(caplog.text)
