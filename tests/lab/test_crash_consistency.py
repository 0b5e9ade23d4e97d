"""Crash consistency: a run killed anywhere and resumed ends where an uninterrupted run of the
same change ends, and its record says what happened.

For each runbook one uninterrupted run is the baseline (NetBox's objects, every device's running
and startup configuration, BGP and LLDP, the journal, each step's recorded result). Then one run
of the same change through the `runbook` command is killed (SIGKILL of its whole process tree)
at every step boundary and inside every change step, in turn: each `runbook resume` continues
until the next point (crash_support). The end state and the record must equal the baseline's;
every point must have been reached; the chain verifies, here and in NetBox. Rack-in also runs
once with its commit-confirm timer run out during the kill.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from crash_support import (
    Operator,
    finished_steps,
    rack_world,
    run_id_of,
    server_env,
    server_world,
    status_of,
    wait_for_bgp,
)
from rack_support import DEVICES, differences, engine

from runbooks.core.results import RunStatus
from runbooks.core.runbook import Runbook
from runbooks.lab import lab as lab_ops
from runbooks.library.rack_in import RackIn
from runbooks.library.rack_out import RackOut
from runbooks.library.server_maintenance import ServerMaintenance

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("rack_lab")]


def boundaries(cls: type[Runbook]) -> list[str]:
    """After the record's first entry, and after every step's last."""
    return ["entry:run.started:-", *(f"entry:step.finished:{s.name}" for s in cls.steps())]


# Inside every change step that changes something: after its record says it started (nothing
# applied), between two writes, and after its last write (applied, not yet recorded). A resumed
# step applies only what is missing, so write counts after a kill count the resumed process's
# writes (a point may be listed twice: once per process that reaches it).
RACK_IN_INSIDE = [
    "replan:device_answers",  # the re-plan before the run
    "after:plan_cables_connected:1",
    "entry:step.started:plan_device_config",
    "after:plan_device_config:1",  # leaf3 committed, the spines not yet
    "after:plan_device_config:2",  # resumed: both spines committed, nothing recorded
    "after:plan_confirm_config:1",  # leaf3 confirmed
    "after:plan_confirm_config:2",  # resumed: both spines confirmed, nothing recorded
    "entry:step.started:plan_device_active",
    "after:plan_device_active:1",
    "after:plan_journal_entry:1",
]
SERVER_INSIDE = [
    "after:plan_announcement:1",  # srv1's announcement written, srv2's not yet
    # each canary batch is a record step of its own (srv1, then srv2)
    "task:plan_maintenance#1:message of the day",  # the canary's playbook half-way through
    "after:plan_maintenance#1:1",
    "task:plan_maintenance#2:message of the day",  # the second batch's
    "after:plan_maintenance#2:1",
    "after:plan_completion:1",
]
# the kills before the grant (run.started, the re-plan) are rack-in's: the same engine path
RACK_OUT_INSIDE = [
    "after:plan_device_decommissioning:1",
    "after:plan_drain_bgp:1",
    "after:plan_remove_configuration:1",
    "after:plan_confirm_removal:1",
    "after:plan_cables_decommissioning:1",
    "after:plan_neighbour_configs:1",  # spine1 committed, spine2 not yet
    "after:plan_neighbour_configs:1",  # resumed: spine2 committed, nothing recorded
    "after:plan_confirm_neighbours:1",
    "after:plan_confirm_neighbours:1",
    "after:plan_device_offline:1",
    "after:plan_addresses_released:1",
    "after:plan_journal_entry:1",
]


def uninterrupted(tmp_path: Path, runbook: Runbook, refused_again: str = "") -> dict[str, Any]:
    """The baseline, in this process: the same runbook object planned, run, and run again (the
    second run finds nothing to do and records so — or, as rack-out, is refused by its first
    pre-check, ``refused_again`` — nothing of the first run stays on the object)."""
    eng = engine(tmp_path / "baseline")
    assert eng.plan(runbook).refusal is None
    first = eng.run(runbook)
    assert first.status is RunStatus.SUCCEEDED, first.error
    again = eng.run(runbook)
    if refused_again:
        assert again.status is RunStatus.ROLLED_BACK and refused_again in str(again.error)
    else:
        assert again.status is RunStatus.SUCCEEDED, again.error
    changed = [s.step for s in again.steps if s.changed]
    assert changed == [], f"the second run of one object changed {changed}"
    assert vars(runbook) == {"params": runbook.params}, "per-run data left on the runbook"
    wait_for_bgp(DEVICES)
    return {
        "world": rack_world(),
        "steps": finished_steps(eng.store.path, first.run_id),
    }


def killed_everywhere(
    op: Operator,
    start: Sequence[str],
    points: Sequence[str],
    check: Callable[[str], None],
    check_at: Sequence[str] = (),
) -> str:
    """Run ``start``, killed at each of ``points`` in turn (each resume gets those not reached
    yet); ``check`` sees the run after the kills at ``check_at`` (two commands each: a few
    chosen points keep the suite's time down). Returns the run id once it has finished."""
    left = list(points)
    point, done = op.until_paused(start, left)
    run_id = ""
    while point:
        left.remove(point)
        run_id = run_id_of(op.store)
        if point in check_at:
            check(point)
        point, done = op.until_paused(["resume", run_id, "--yes", "--json"], left)
    assert done is not None
    assert left == [], f"never reached: {left}"
    log = (op.home / "stderr.log").read_text()[-3000:]
    assert status_of(done) == "succeeded", (status_of(done), log)
    return run_id


def interrupted_is_shown(op: Operator) -> Callable[[str], None]:
    """After each kill: the operator's `records list` and `changes` show the run interrupted."""

    def check(point: str) -> None:
        run_id = run_id_of(op.store)
        for where in (["--local"], []):  # this machine's record, and the team's in NetBox
            runs = json.loads(op.run("records", "list", *where, "--json").stdout)
            listed = {r["run_id"]: r["status"] for r in runs}
            assert listed.get(run_id) == "interrupted", (point, where, runs[:2])
        changes = json.loads(op.run("changes", "--json").stdout)
        assert changes[0]["status"] == "interrupted", (point, changes[0])

    return check


def reverted_by_themselves(names: Sequence[str], timeout: float = 120) -> None:
    """Wait until each device's commit-confirm timer has run out and its revert finished."""
    from rack_support import device_gateway

    from runbooks.core.gateway import Mode
    from runbooks.gateways.network import NetworkGateway

    deadline = time.monotonic() + timeout
    for name in names:
        gw = device_gateway(NetworkGateway, Mode.PLAN, name)
        try:
            while gw.has_pending_commit():
                assert time.monotonic() < deadline, f"{name} still has a commit pending"
                time.sleep(1)
        finally:
            gw.close()


def same_as_baseline(op: Operator, run_id: str, baseline: dict[str, Any]) -> None:
    wait_for_bgp(DEVICES)
    diff = differences(baseline["world"], rack_world())
    assert diff == [], diff
    assert finished_steps(op.store, run_id) == baseline["steps"]
    verified = op.run("records", "verify", run_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    home = tmp_path / "olivia"
    home.mkdir()
    yield Operator(home)


def test_rack_in_killed_at_every_step_ends_as_an_uninterrupted_run(
    tmp_path: Path, operator: Operator
) -> None:
    baseline = uninterrupted(tmp_path, RackIn(RackIn.parse_params({"device": "leaf3"})))
    lab_ops.reset()
    run_id = killed_everywhere(
        operator,
        ["run", "rack-in", "device=leaf3", "--no-change-control", "--yes", "--json"],
        [*boundaries(RackIn), *RACK_IN_INSIDE],
        interrupted_is_shown(operator),
        check_at=[
            "replan:device_answers",  # never granted: listed from this machine's record
            "entry:step.finished:plan_cables_connected",
            "after:plan_device_config:1",
        ],
    )
    same_as_baseline(operator, run_id, baseline)


def test_rack_in_resumed_after_the_commit_confirm_timer_ran_out(operator: Operator) -> None:
    """Killed while confirming, resumed after the devices went back by themselves: the resumed
    run must not claim the configuration is in place; it rolls back and says why."""
    before = rack_world()
    point, _ = operator.until_paused(
        ["run", "rack-in", "device=leaf3", "confirm_within_s=30", "--no-change-control", "--yes"],
        ["entry:step.started:plan_confirm_config"],
    )
    assert point
    run_id = run_id_of(operator.store)
    reverted_by_themselves(["leaf3", "spine1", "spine2"])
    done = operator.run("resume", run_id, "--yes", "--json")
    result = json.loads(done.stdout)
    assert result["status"] == str(RunStatus.ROLLED_BACK), result
    assert "went back to its earlier configuration" in result["error"], result["error"]
    wait_for_bgp(DEVICES)
    assert differences(before, rack_world()) == []
    verified = operator.run("records", "verify", run_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_rack_out_killed_at_every_step_ends_as_an_uninterrupted_run(
    tmp_path: Path, operator: Operator
) -> None:
    rack_out = RackOut(RackOut.parse_params({"device": "leaf1"}))
    baseline = uninterrupted(tmp_path, rack_out, refused_again="leaf1 is offline in NetBox")
    lab_ops.reset()
    run_id = killed_everywhere(
        operator,
        ["run", "rack-out", "device=leaf1", "--no-change-control", "--yes", "--json"],
        [*boundaries(RackOut)[1:], *RACK_OUT_INSIDE],
        interrupted_is_shown(operator),
        check_at=["after:plan_drain_bgp:1"],
    )
    same_as_baseline(operator, run_id, baseline)


def test_server_maintenance_killed_at_every_step_ends_as_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in server_env().items():
        monkeypatch.setenv(name, value)
    maintenance = ServerMaintenance(
        ServerMaintenance.parse_params({"hosts": "srv1,srv2", "packages": "pv"})
    )
    eng = engine(tmp_path / "baseline")
    first = eng.run(maintenance)
    assert first.status is RunStatus.SUCCEEDED, first.error
    assert vars(maintenance) == {"params": maintenance.params}
    baseline = {
        "world": server_world(["srv1", "srv2"]),
        "steps": finished_steps(eng.store.path, first.run_id),
    }
    lab_ops.reset()
    op = Operator(tmp_path / "olivia", server_env())
    op.home.mkdir()
    start = ["run", "server-maintenance", "hosts=srv1,srv2", "packages=pv"]
    run_id = killed_everywhere(
        op,
        [*start, "--no-change-control", "--yes", "--json"],
        [*boundaries(ServerMaintenance)[1:], *SERVER_INSIDE],
        interrupted_is_shown(op),
        check_at=["task:plan_maintenance#1:message of the day"],
    )
    assert server_world(["srv1", "srv2"]) == baseline["world"]
    assert finished_steps(op.store, run_id) == baseline["steps"]
    verified = op.run("records", "verify", run_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
