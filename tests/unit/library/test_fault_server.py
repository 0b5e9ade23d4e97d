"""fault-server and fault-terminal without a lab: the diagnosis on recorded evidence, the
triage playbook's host-side script on this machine, and runs through the engine with Ansible
in memory: read-only (no playbook run, only check mode) unless a remedy is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbooks.core.engine import Engine
from runbooks.core.errors import ConnectError, InputError
from runbooks.core.results import RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.gateways.ansible import AnsibleGateway, AnsibleSettings
from runbooks.gateways.ansible_events import PlaybookResult, TaskResult
from runbooks.gateways.ansible_settings import PLAYBOOKS
from runbooks.library import fault_server
from runbooks.library.fault_common import RESTART
from runbooks.library.fault_server import (
    TRIAGE,
    FaultHostParams,
    FaultServer,
    FaultTerminal,
    host_findings,
)
from tests.support.fake_ansible import FakeAnsible as SharedFakeAnsible
from tests.support.fake_ansible import Play, factory

# srv1 of the lab as the triage playbook read it (no systemd there), healthy
HEALTHY: dict[str, Any] = {
    "reachable": True, "systemd": False, "load": [0.4, 0.3, 0.2], "cpus": 2,
    "mem_total_mb": 24105, "mem_available_mb": 22021, "swap_free_mb": 0,
    "disks": [{"mount": "/", "free_pct": 100.0, "free_mb": 4095, "size_mb": 4096},
              {"mount": "/tmp", "free_pct": 100.0, "free_mb": 1023, "size_mb": 1024}],
    "failed_services": [], "journal_errors": None, "uptime_s": 596.03,
    "services": {"baseline-agent": {"installed": True, "running": True, "state": "running",
                                    "named": False}},
}  # fmt: skip


def params(**given: Any) -> FaultHostParams:
    return FaultHostParams(host="srv1", **given)


def test_a_healthy_host_is_named_healthy() -> None:
    assert host_findings("srv1", HEALTHY, params()) == []
    assert fault_server.host_unread(HEALTHY) == ["journal: no systemd journal on this host"]


@pytest.mark.parametrize(
    ("change", "given", "finding"),
    [
        ({"reachable": False, "why": "timed out"}, {}, "srv1 cannot be reached: timed out"),
        ({"disks": [{"mount": "/var", "free_pct": 3.5}]}, {}, "srv1 /var has 3.5% free (min 10%)"),
        ({"mem_available_mb": 60}, {}, "srv1 has 60 MB memory available (min 128 MB)"),
        ({"load": [9.5, 1, 1]}, {}, "srv1 load 9.5 on 2 CPUs (max 4 per CPU)"),
        ({"failed_services": ["nginx.service"]}, {}, "service nginx.service failed on srv1"),
        ({"services": {"baseline-agent": {"installed": True, "running": False,
          "state": "stopped"}}}, {}, "service baseline-agent is not running on srv1 (stopped)"),
        ({"services": {"web": {"installed": False, "running": False, "state": "not installed"}}},
         {"services": ["web"]}, "service web is not installed on srv1"),
        ({"journal_errors": ["2026-12-07T17:00:00 srv1 kernel: I/O error"]}, {},
         "srv1 logged 1 error line(s) in the journal: 2026-12-07T17:00:00 srv1 kernel: I/O error"),
        ({"load": [9.5, 1, 1]}, {"max_load_per_cpu": 5}, None),  # the threshold is a parameter
    ],
)  # fmt: skip
def test_each_difference_from_a_healthy_host_is_named(
    change: dict[str, Any], given: dict[str, Any], finding: str | None
) -> None:
    assert host_findings("srv1", {**HEALTHY, **change}, params(**given)) == (
        [finding] if finding else []
    )


def test_the_triage_script_reads_this_machine_and_changes_nothing() -> None:
    """The playbook's host-side script, run here as Ansible runs it (python3 -c): JSON with
    every part the diagnosis reads; a named service that does not exist is not installed."""
    (play,) = yaml.safe_load((PLAYBOOKS / TRIAGE).read_text())
    (task, _) = play["tasks"]
    env = {
        **os.environ,
        "TRIAGE_SERVICES": "no-such-service-fault-test",
        "TRIAGE_BASELINE_SERVICES": "no-such-baseline-service",
        "TRIAGE_SINCE": "-1h",
        "TRIAGE_JOURNAL_LINES": "5",
    }
    script = task["ansible.builtin.shell"]
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["reachable"] and found["cpus"] >= 1 and found["mem_total_mb"] > 0
    assert any(d["mount"] == "/" for d in found["disks"])
    assert found["services"] == {
        "no-such-service-fault-test": {
            "installed": False,
            "running": False,
            "state": "not installed"
            if not found["systemd"]
            else found["services"]["no-such-service-fault-test"]["state"],
            "named": True,
        }
    }  # the baseline service not installed: not listed
    assert host_findings("here", found, params(services=["no-such-service-fault-test"]))[
        -1
    ].startswith("service no-such-service-fault-test is not ")


# ---- through the engine, Ansible in memory


class World:
    def __init__(self, evidence: dict[str, Any], unreachable: bool = False) -> None:
        self.evidence, self.unreachable = evidence, unreachable
        self.calls: list[tuple[str, bool]] = []  # (playbook, check mode)
        self.restarted = False


class FakeAnsible(SharedFakeAnsible[World]):
    def _fake_hosts(self) -> dict[str, dict[str, Any]]:
        return {"srv1": {"ansible_host": "198.18.0.31", "role": "server"}}

    def _fake_play(self, play: Play) -> PlaybookResult:
        playbook, check, _limit, extravars, _tags = play
        self.world.calls.append((playbook, check))
        vars_ = extravars
        assert vars_["triage_targets"] == "srv1"
        if self.world.unreachable:
            task = TaskResult("srv1", "Gathering", "Fault triage", "unreachable", msg="timed out")
            return PlaybookResult(playbook, check, "failed", 4, (task,))
        if playbook == RESTART:
            assert vars_["triage_service"] == "fault-probe"
            self.world.restarted = self.world.restarted or not check
            task = TaskResult(
                "srv1", "Remedy | restart the service (init script)", "Restart a service",
                "changed", changed=True, action="ansible.builtin.sysvinit",
            )  # fmt: skip
            return PlaybookResult(playbook, check, "successful", 0, (task,))
        evidence = dict(self.world.evidence)
        if self.world.restarted:
            evidence["services"] = {"fault-probe": {"installed": True, "running": True}}
        task = TaskResult("srv1", "Triage | evidence", "Fault triage", "ok", evidence=evidence)
        return PlaybookResult(playbook, check, "successful", 0, (task,), duration_s=0.4)


def engine(store: RecordStore, world: World) -> Engine:
    ansible = factory(FakeAnsible, world, AnsibleSettings())
    return Engine(store, "olivia", gateway_factories={AnsibleGateway: ansible})


STOPPED = {
    **HEALTHY,
    "services": {"fault-probe": {"installed": True, "running": False, "state": "stopped"}},
}


@pytest.mark.parametrize("kind", [FaultServer, FaultTerminal])
def test_a_triage_run_only_reads_and_names_the_stopped_service(
    tmp_path: Path, kind: type[FaultServer]
) -> None:
    world = World(STOPPED)
    store = RecordStore(tmp_path / "records.sqlite3")
    runbook = kind(kind.parse_params({"host": "srv1", "services": "fault-probe"}))
    plan = engine(store, world).plan(runbook)
    assert plan.refusal is None and plan.changes == 0
    result = engine(store, world).run(runbook)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert world.calls == [(TRIAGE, True), (TRIAGE, True)]  # check mode only: no write
    steps = {s.step: s for s in result.steps}
    assert steps["plan_remedy"].status is Status.NO_CHANGE
    assert steps["plan_remedy"].title == "Remedy: restart the service —"
    assert steps["diagnosis"].evidence["findings"] == [
        "service fault-probe is not running on srv1 (stopped)"
    ]
    assert not steps["diagnosis"].evidence["healthy"]
    store.close()


def test_an_unreachable_host_is_the_finding_not_a_failed_run(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "records.sqlite3")
    runbook = FaultServer(FaultServer.parse_params({"host": "srv1"}))
    result = engine(store, World(HEALTHY, unreachable=True)).run(runbook)
    assert result.status is RunStatus.SUCCEEDED, result.error
    (finding,) = {s.step: s for s in result.steps}["diagnosis"].evidence["findings"]
    assert finding.startswith("srv1 cannot be reached: ") and "unreachable: srv1" in finding
    store.close()


def test_the_restart_remedy_is_a_planned_change_then_the_service_runs(tmp_path: Path) -> None:
    world = World(STOPPED)
    store = RecordStore(tmp_path / "records.sqlite3")
    raw = {"host": "srv1", "services": "fault-probe", "remedy": "restart-service"}
    runbook = FaultServer(FaultServer.parse_params({**raw, "service": "fault-probe"}))
    plan = engine(store, world).plan(runbook)
    (planned,) = [s for s in plan.steps if s.step == "plan_remedy"]
    assert planned.title == "Remedy: restart the service fault-probe"
    (diff,) = planned.diffs
    assert diff.target == "srv1:Remedy | restart the service (init script)"
    assert (RESTART, False) not in world.calls  # the plan: check mode only
    result = engine(store, world).run(runbook)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert [s.step for s in result.steps if s.changed] == ["plan_remedy"]
    assert world.calls[-2:] == [(RESTART, False), (TRIAGE, True)]  # restarted, then verified
    store.close()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"remedy": "restart-service"}, "remedy=restart-service needs service=<...>"),
        ({"service": "nginx"}, "service=nginx is for remedy=restart-service"),
        ({"remedy": "restart-service", "service": "x; reboot"}, "service: String should match"),
        ({"services": "ok,bad name"}, "'bad name' is no service name"),
    ],
)
def test_bad_parameters_are_one_line(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        FaultServer.parse_params({"host": "srv1", **given})


def test_connect_error_is_what_an_unreachable_play_raises() -> None:
    """The triage catches what the gateway raises for an unreachable host (not a guess)."""
    gw = FakeAnsible.__new__(FakeAnsible)
    task = TaskResult("srv1", "x", "p", "unreachable", msg="timed out")
    with pytest.raises(ConnectError):
        AnsibleGateway._raise_for(gw, PlaybookResult(TRIAGE, True, "failed", 4, (task,)))


def test_journal_lines_reach_the_record_redacted(tmp_path: Path) -> None:
    """A password typed as a login name (sshd's "invalid user ...") or given as password=...
    on a journal line is not in the record, nor in the diagnosis' summary."""
    lines = [
        "srv1 app[7]: connect failed password=Tr0ub4dor&3 retrying",
        "srv1 sshd[9]: Failed password for invalid user CorrectHorse9 from 198.18.0.9 port 22",
    ]
    store = RecordStore(tmp_path / "records.sqlite3")
    runbook = FaultServer(FaultServer.parse_params({"host": "srv1"}))
    result = engine(store, World({**HEALTHY, "journal_errors": lines})).run(runbook)
    assert result.status is RunStatus.SUCCEEDED, result.error
    record = json.dumps([e.payload for e in store.entries(result.run_id)])
    assert "Tr0ub4dor" not in record and "CorrectHorse9" not in record
    summary = {s.step: s for s in result.steps}["diagnosis"].evidence["summary"]
    assert summary.endswith("Failed password for invalid user ******** from 198.18.0.9 port 22")
    store.close()
