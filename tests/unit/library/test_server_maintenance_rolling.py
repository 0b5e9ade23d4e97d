"""server-maintenance over many servers in canary batches, with stand-in gateways: the layout in
the order the servers are named, a health regression stopping the roll (its batch undone, the
later ones not run), the failure threshold, waiting for a service to settle."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.engine import Engine
from runbooks.core.errors import InputError
from runbooks.core.gateway import reads
from runbooks.core.results import Diff, RunStatus, Status
from runbooks.gateways.ansible_events import PlaybookResult, TaskResult
from runbooks.library.server_maintenance import PLAYBOOK, ROLLBACK, ServerMaintenance
from tests.support.fake_ansible import Play
from tests.unit.library.test_server_maintenance import FakeAnsible, FakeNetBox
from tests.unit.library.test_server_maintenance import engine as single_host_engine

SERVERS = ["srv1", "srv2", "srv3", "srv4", "srv5"]


@dataclass
class Fleet:
    """The pretend servers: which are maintained, which services run on each, and faults."""

    applied: set[str] = field(default_factory=set)
    running: dict[str, set[str]] = field(default_factory=lambda: {h: {"web"} for h in SERVERS})
    stops_on_apply: dict[str, str] = field(default_factory=dict)  # host -> service it stops
    back_after_reads: int = 0  # a stopped service runs again after this many health reads
    unreachable: set[str] = field(default_factory=set)  # the maintenance fails there
    calls: list[tuple[str, bool, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    journal: list[tuple[int, str, str]] = field(default_factory=list)
    health_reads: int = 0

    def runs(self, playbook: str, check: bool, tags: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        """The hosts of each call of ``playbook`` in that mode (and those tags)."""
        return [
            limit
            for p, c, t, limit in self.calls
            if p == playbook and c is check and (not tags or t == tags)
        ]


def evidence(host: str, name: str, ev: dict[str, Any]) -> TaskResult:
    return TaskResult(host, name, "play", "ok", evidence=ev)


def motd(host: str) -> TaskResult:
    diff = Diff.of_text(f"{host}:/etc/motd", "old\n", "new\n", "motd")
    return TaskResult(host, "Baseline | motd", "play", "changed", True, (diff,))


def health(fleet: Fleet, host: str) -> TaskResult:
    agent = host in fleet.applied
    reading = {
        "running": sorted(fleet.running[host] | ({"baseline-agent"} if agent else set())),
        "answering": [f"ssh {host}:22", *([f"baseline-agent {host}:9180"] if agent else [])],
        "must_run": ["baseline-agent"],
        "must_answer": [f"ssh {host}:22", f"baseline-agent {host}:9180"],
    }
    return evidence(host, "Health | evidence", {"health": reading})


class FleetAnsible(FakeAnsible):
    world: Fleet

    def _fake_hosts(self) -> dict[str, dict[str, Any]]:
        return {h: {"ansible_host": f"10.0.0.{i}", "role": "server"} for i, h in enumerate(SERVERS)}

    def _fake_play(self, play: Play) -> PlaybookResult:
        playbook, check, limit, extravars, tags = play
        fleet = self.world
        fleet.calls.append((playbook, check, tuple(tags), tuple(limit)))
        assert extravars["maintenance_targets"] == ",".join(limit)
        if playbook == ROLLBACK:
            fleet.applied -= set(limit)
            recap = {h: {"ok": 3} for h in limit}
            return PlaybookResult(playbook, check, "successful", 0, (), recap)
        if tags == ["health"]:
            fleet.health_reads += 1
            if fleet.back_after_reads and fleet.health_reads > fleet.back_after_reads:
                for host, service in fleet.stops_on_apply.items():
                    fleet.running[host].add(service)
            return PlaybookResult(
                playbook, check, "successful", 0, tuple(health(fleet, h) for h in limit)
            )
        if tags != ["packages", "baseline"]:  # precheck, postcheck
            tasks = tuple(evidence(h, "ev", {"failed_services": []}) for h in limit)
            return PlaybookResult(playbook, check, "successful", 0, tasks)
        if check:  # Ansible answers in its own order: here the last server first
            tasks = tuple(motd(h) for h in reversed(limit) if h not in fleet.applied)
            return PlaybookResult(playbook, check, "successful", 0, tasks)
        down = [h for h in limit if h in fleet.unreachable]
        for host in limit:
            if host not in down:
                fleet.applied.add(host)
                fleet.running[host].discard(fleet.stops_on_apply.get(host, ""))
        tasks = tuple(
            TaskResult(h, "Baseline | message of the day", "play", "unreachable", msg="gone")
            for h in down
        )
        recap = {h: {"unreachable": 1} if h in down else {"changed": 1} for h in limit}
        return PlaybookResult(playbook, check, "failed" if down else "successful", 0, tasks, recap)


class FleetNetBox(FakeNetBox):
    @reads
    def find(self, obj_type: str, **filters: Any) -> list[dict[str, Any]]:
        if obj_type == "dcim.device":
            return [{"name": h, "id": 10 + i} for i, h in enumerate(SERVERS)]
        return super().find(obj_type, **filters)


def engine(tmp_path: Path, fleet: Fleet) -> Engine:
    return single_host_engine(tmp_path, fleet, FleetAnsible, FleetNetBox)


def rolling(**params: Any) -> ServerMaintenance:
    given = {"hosts": ",".join(SERVERS), "agent_port": 9180, "batch_size": 2, "services": "web"}
    return ServerMaintenance(ServerMaintenance.parse_params(given | params))


def batches(result: Any) -> list[tuple[str, Status, tuple[str, ...]]]:
    """Each batch as it ended (its undo is a result of its own, listed after)."""
    return [(s.step, s.status, s.targets) for s in result.steps if "#" in s.step]


def test_the_plan_lays_the_batches_out_in_the_order_the_servers_are_named(tmp_path: Path) -> None:
    plan = engine(tmp_path, Fleet()).plan(rolling(hosts="srv3,srv1,srv5,srv2,srv4"))
    assert plan.refusal is None, plan.refusal
    (step,) = [s for s in plan.steps if s.step == "plan_maintenance"]
    assert [(d.target, d.summary) for d in step.diffs] == [
        ("srv3:/etc/motd", "batch 1 of 3 (canary): motd"),
        ("srv1:/etc/motd", "batch 2 of 3: motd"),
        ("srv5:/etc/motd", "batch 2 of 3: motd"),
        ("srv2:/etc/motd", "batch 3 of 3: motd"),
        ("srv4:/etc/motd", "batch 3 of 3: motd"),
    ]
    assert "in canary batches of 2" in step.title


def test_a_roll_in_batches_then_a_second_run_changes_nothing(tmp_path: Path) -> None:
    fleet = Fleet()
    eng = engine(tmp_path, fleet)
    result = eng.run(rolling())
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert batches(result) == [
        ("plan_maintenance#1", Status.CHANGED, ("srv1",)),
        ("plan_maintenance#2", Status.CHANGED, ("srv2", "srv3")),
        ("plan_maintenance#3", Status.CHANGED, ("srv4", "srv5")),
    ]
    # each batch maintained at once; its health read before and after it, on its servers only
    assert fleet.runs(PLAYBOOK, False) == [("srv1",), ("srv2", "srv3"), ("srv4", "srv5")]
    assert fleet.runs(PLAYBOOK, True, ("health",)) == [
        ("srv1",),
        ("srv1",),
        ("srv2", "srv3"),
        ("srv2", "srv3"),
        ("srv4", "srv5"),
        ("srv4", "srv5"),
    ]
    second = {s.step: s for s in result.steps}["plan_maintenance#2"]
    assert second.evidence["baseline"]["health"]["srv3"]["running"] == ["web"]
    assert second.evidence["post_check"]["health"]["srv3"]["running"] == ["baseline-agent", "web"]
    # ran clean in this process: in place without a second check-mode run of the batch
    assert fleet.runs(PLAYBOOK, True, ("packages", "baseline")) == [tuple(SERVERS)]
    again = eng.run(rolling())
    assert again.status is RunStatus.SUCCEEDED, again.error
    assert {s.step: s for s in again.steps}["plan_maintenance"].status is Status.NO_CHANGE
    assert batches(again) == []


def test_a_regression_in_the_second_batch_stops_the_roll_and_undoes_that_batch(
    tmp_path: Path,
) -> None:
    fleet = Fleet(stops_on_apply={"srv3": "web"})
    eng = engine(tmp_path, fleet)
    result = eng.run(rolling(settle_timeout_s=0))
    assert result.status is RunStatus.STOPPED, result.error
    assert result.error is not None
    assert "batch 2 of 3 (srv2, srv3) failed, undone" in result.error
    assert "srv3: service web was running, is not" in result.error
    assert "srv2:" not in result.error.split("kept:")[0]  # srv2 kept its services
    assert batches(result) == [
        ("plan_maintenance#1", Status.CHANGED, ("srv1",)),
        ("plan_maintenance#2", Status.FAILED, ("srv2", "srv3")),
        ("plan_maintenance#3", Status.SKIPPED, ("srv4", "srv5")),
        ("plan_maintenance#2", Status.UNDONE, ("srv2", "srv3")),
    ]
    # the second batch rolled back on its servers only; the third never touched
    assert fleet.runs(ROLLBACK, False) == [("srv2", "srv3")]
    assert fleet.applied == {"srv1"}
    assert not any({"srv4", "srv5"} & set(limit) for limit in fleet.runs(PLAYBOOK, False))
    entries = eng.store.entries(result.run_id)
    assert entries[-1].payload["batches"] == {
        "kept": ["batch 1 of 3 (canary): srv1"],
        "failed": ["batch 2 of 3: srv2, srv3"],
        "not_run": ["batch 3 of 3: srv4, srv5"],
    }
    kinds = [(e.kind, e.step) for e in entries]
    assert ("undo.finished", "plan_maintenance#2") in kinds
    assert ("undo.started", "plan_maintenance#1") not in kinds
    assert ("undo.started", "plan_announcement") not in kinds  # the canary kept: it stays
    assert not any(step in ("post_checks", "plan_completion") for _, step in kinds)


def test_a_service_back_within_the_settle_time_is_no_regression(tmp_path: Path) -> None:
    # srv1 (the canary) stops web when maintained; it runs again at the third reading
    fleet = Fleet(stops_on_apply={"srv1": "web"}, back_after_reads=2)
    result = engine(tmp_path, fleet).run(rolling(hosts="srv1,srv2", settle_timeout_s=10))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert fleet.runs(PLAYBOOK, True, ("health",))[:3] == [("srv1",)] * 3


def test_failed_servers_up_to_the_threshold_are_restored_and_the_roll_goes_on(
    tmp_path: Path,
) -> None:
    fleet = Fleet(unreachable={"srv2", "srv5"})
    eng = engine(tmp_path, fleet)
    result = eng.run(rolling(max_failed_hosts=1, settle_timeout_s=0))
    # srv2 failed (one tolerated): restored alone, batch 2 kept with srv3; srv5 is one too many
    assert result.status is RunStatus.STOPPED, result.error
    assert batches(result) == [
        ("plan_maintenance#1", Status.CHANGED, ("srv1",)),
        ("plan_maintenance#2", Status.CHANGED, ("srv2", "srv3")),
        ("plan_maintenance#3", Status.FAILED, ("srv4", "srv5")),
        ("plan_maintenance#3", Status.UNDONE, ("srv4", "srv5")),
    ]
    assert fleet.runs(ROLLBACK, False) == [("srv2",), ("srv4", "srv5")]
    second = {s.step: s for s in result.steps}["plan_maintenance#2"]
    assert second.evidence["applied"]["failed_hosts"] == {"srv2": "unreachable"}
    assert second.evidence["applied"]["failed_restored"] == "ran clean on srv2"
    # the tolerated server is left out of its batch's checks: verified (check mode) on srv3 only
    assert ("srv3",) in fleet.runs(PLAYBOOK, True, ("packages", "baseline"))
    assert ("srv3",) in fleet.runs(PLAYBOOK, True, ("health",))
    assert "ConnectError" in str(result.error) and "srv5" in str(result.error)
    assert fleet.applied == {"srv1", "srv3"}


def test_a_failure_within_the_threshold_leaves_the_server_out_of_the_close(
    tmp_path: Path,
) -> None:
    fleet = Fleet(unreachable={"srv2"})
    result = engine(tmp_path, fleet).run(rolling(hosts="srv1,srv2,srv3", max_failed_hosts=1))
    assert result.status is RunStatus.SUCCEEDED, result.error
    steps = {s.step: s for s in result.steps}
    assert steps["post_checks"].evidence["failed_and_restored"] == {"srv2": "unreachable"}
    assert set(steps["post_checks"].evidence["hosts"]) == {"srv1", "srv3"}
    closing = [c for i, c, kind in fleet.journal if kind == "success"]
    assert len(closing) == 2 and not any("srv2:" in c for c in closing)


def test_the_watched_services_and_ports_reach_the_playbook_and_bad_ones_are_refused() -> None:
    rb = rolling(services="web, cron", ports="8080,5432")
    assert rb.p.services == ["web", "cron"] and rb.p.ports == [8080, 5432]
    for bad in ({"services": "web;reboot"}, {"ports": "70000"}, {"batch_size": 0}):
        with pytest.raises(InputError):
            rolling(**bad)
    with pytest.raises(InputError, match="max_failed_hosts"):
        rolling(max_failed_hosts=-1)
