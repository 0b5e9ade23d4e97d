"""server-maintenance with stand-in gateways: the procedure's wiring, no lab, no Ansible run."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from runbooks.config import NetBoxSettings
from runbooks.core.engine import Engine
from runbooks.core.errors import ConnectError, InputError
from runbooks.core.gateway import reads, writes
from runbooks.core.results import Diff, RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.gateways.ansible import AnsibleGateway
from runbooks.gateways.ansible_events import PlaybookResult, TaskResult
from runbooks.gateways.ansible_settings import PLAYBOOKS
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.library.server_maintenance import ROLLBACK, ServerMaintenance
from tests.support.fake_ansible import FakeAnsible as SharedFakeAnsible
from tests.support.fake_ansible import Play, factory


class World:
    """What the stand-ins share: the state of the pretend hosts and NetBox."""

    def __init__(self, fail_apply: bool = False, fail_rollback: bool = False) -> None:
        self.applied = False
        self.fail_apply = fail_apply
        self.fail_rollback = fail_rollback
        self.extravars: list[dict[str, Any]] = []
        self.calls: list[tuple[str, bool, tuple[str, ...]]] = []
        self.journal: list[tuple[int, str, str]] = []


def task(host: str, name: str, changed: bool = False, **kw: Any) -> TaskResult:
    return TaskResult(host, name, "play", "changed" if changed else "ok", changed, **kw)


class FakeAnsible(SharedFakeAnsible[Any]):
    """``world``: a `World`, or another test's state."""

    def _fake_hosts(self) -> dict[str, dict[str, Any]]:
        return {"srv1": {"ansible_host": "198.18.0.31", "role": "server"}}

    def _fake_play(self, play: Play) -> PlaybookResult:
        playbook, check, _limit, extravars, tags = play
        self.world.calls.append((playbook, check, tuple(tags)))
        self.world.extravars.append(extravars)
        if playbook == ROLLBACK and self.world.fail_rollback:
            return PlaybookResult(playbook, check, "failed", 4, (), {"srv1": {"unreachable": 1}})
        if playbook == ROLLBACK:
            self.world.applied = False
            return PlaybookResult(playbook, check, "successful", 0, (), {"srv1": {"ok": 3}})
        if "precheck" in tags:
            ev = {"disk_free_pct": 80, "failed_services": []}
            return PlaybookResult(
                playbook, check, "successful", 0, (task("srv1", "ev", evidence=ev),)
            )
        if "postcheck" in tags:
            ev = {"agent_status": {"host": "srv1"}}
            return PlaybookResult(
                playbook, check, "successful", 0, (task("srv1", "ev", evidence=ev),)
            )
        if not check and self.world.fail_apply:
            self.world.applied = True  # half done, then the host went away
            down = TaskResult(
                "srv1", "Baseline | status document", "play", "unreachable", msg="gone"
            )
            return PlaybookResult(
                playbook, check, "failed", 4, (down,), {"srv1": {"unreachable": 1}}
            )
        if not check:
            self.world.applied = True
        motd = Diff.of_text("srv1:/etc/motd", "old\n", "new\n", "motd")
        t = task("srv1", "Baseline | motd", changed=not self.world.applied, diffs=(motd,))
        return PlaybookResult(playbook, check, "successful", 0, (t,))


class FakeNetBox(NetBoxGateway):
    world: World

    @reads
    def find(self, obj_type: str, **filters: Any) -> list[dict[str, Any]]:
        if obj_type == "dcim.device":
            return [{"name": "srv1", "id": 7}]
        return [
            {"comments": c} for i, c, _ in self.world.journal if i == filters["assigned_object_id"]
        ]

    @writes
    def journal(
        self,
        obj_type: str,
        obj_id: int,
        comments: str,
        kind: str = "info",
        *,
        marker: str | None = None,
    ) -> dict[str, Any]:
        found = self.journal_entry(obj_type, obj_id, marker or comments)
        if found is not None:
            return found
        self.world.journal.append((obj_id, comments, kind))
        return {"id": len(self.world.journal), "comments": comments}


def engine(
    tmp_path: Path,
    world: Any,
    ansible_class: type[FakeAnsible] = FakeAnsible,
    netbox_class: type[FakeNetBox] = FakeNetBox,
) -> Engine:
    """An engine whose gateways are the stand-ins, sharing ``world`` (a `World`, or another
    test's state with a ``journal`` list)."""

    def nb(ctx: Any, key: str) -> NetBoxGateway:
        settings = NetBoxSettings("http://127.0.0.1:9", "nbt_" + secrets.token_hex(8) + ".x")
        gw = netbox_class(settings, ctx.mode, run_id=ctx.run_id)
        gw.world = world
        return gw

    return Engine(
        RecordStore(tmp_path / "r.sqlite3"),
        "olivia",
        gateway_factories={AnsibleGateway: factory(ansible_class, world), NetBoxGateway: nb},
    )


def book(**params: Any) -> ServerMaintenance:
    return ServerMaintenance(
        ServerMaintenance.parse_params({"hosts": "srv1", "agent_port": 9180, **params})
    )


def test_params_take_comma_lists() -> None:
    assert book(packages="pv, jq").p.packages == ["pv", "jq"]
    with pytest.raises(InputError):
        ServerMaintenance.parse_params({"hosts": ""})


def test_plan_holds_check_mode_diffs_and_changes_nothing(tmp_path: Path) -> None:
    world = World()
    plan = engine(tmp_path, world).plan(book())
    assert plan.refusal is None
    steps = {s.step: s for s in plan.steps}
    assert [d.target for d in steps["plan_maintenance"].diffs] == ["srv1:/etc/motd"]
    assert steps["pre_checks"].evidence["hosts"]["srv1"]["disk_free_pct"] == 80
    assert steps["plan_announcement"].diffs[0].kind == "create"
    assert all(check for _, check, _ in world.calls)  # only check mode in a plan
    assert not world.journal and not world.applied


def test_run_then_nothing_left_to_change(tmp_path: Path) -> None:
    world = World()
    eng = engine(tmp_path, world)
    result = eng.run(book())
    assert result.status is RunStatus.SUCCEEDED, result.error
    steps = {s.step: s for s in result.steps}
    assert steps["plan_maintenance"].status is Status.CHANGED
    assert [kind for _, _, kind in world.journal] == ["warning", "success"]
    # the closing entry witnesses the run: what it changed on the host, the record's head
    (_, witness, _) = world.journal[-1]
    started = next(
        e
        for e in eng.store.entries(result.run_id)
        if e.kind == "step.started" and e.step == "plan_completion"
    )
    assert f"Record head hash before this entry: `{started.prev_hash}`" in witness
    assert f"runbook `server-maintenance`, run `{result.run_id}` by olivia" in witness
    # each change under its batch (the canary here: one server)
    assert "Maintenance finished" in witness
    assert "- srv1:/etc/motd: batch 1 of 1 (canary): motd" in witness
    again = engine(tmp_path, world).plan(book())
    assert {s.step: s for s in again.steps}["plan_maintenance"].status is Status.NO_CHANGE


def test_unreachable_host_rolls_back_the_step_and_the_announcement(tmp_path: Path) -> None:
    world = World(fail_apply=True)
    eng = engine(tmp_path, world)
    result = eng.run(book())
    assert result.status is RunStatus.ROLLED_BACK
    assert result.error is not None
    # the canary batch (srv1) failed: it is undone, then the announcement
    assert result.error.startswith("BatchStopped: batch 1 of 1 (canary) (srv1) failed, undone")
    assert f"{ConnectError.__name__}: " in result.error and "unreachable: srv1" in result.error
    undone = [e for e in eng.store.entries(result.run_id) if e.kind == "undo.finished"]
    assert [e.step for e in undone] == ["plan_maintenance#1", "plan_announcement"]
    assert undone[0].payload["evidence"] == {"rollback": "ran clean on srv1"}
    assert (ROLLBACK, False, ()) in world.calls and not world.applied
    assert [kind for _, _, kind in world.journal] == ["warning", "danger"]


def test_the_agent_port_is_named_by_a_parameter_or_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No default port (9100 is node_exporter's): the parameter, else the setting."""
    monkeypatch.delenv("RUNBOOKS_BASELINE_AGENT_PORT", raising=False)
    with pytest.raises(InputError, match="agent_port"):
        ServerMaintenance.parse_params({"hosts": "srv1"})
    monkeypatch.setenv("RUNBOOKS_BASELINE_AGENT_PORT", "9180")
    rb = ServerMaintenance(ServerMaintenance.parse_params({"hosts": "srv1"}))
    assert rb.p.agent_port == 9180
    assert rb.p.model_dump()["agent_port"] == 9180  # recorded with the plan: a resume keeps it
    with pytest.raises(InputError):
        ServerMaintenance.parse_params({"hosts": "srv1", "agent_port": 70000})


def test_the_agent_port_reaches_every_playbook_and_a_failed_rollback_names_the_installed_one(
    tmp_path: Path,
) -> None:
    world = World(fail_apply=True, fail_rollback=True)
    result = engine(tmp_path, world).run(book())
    assert result.status is RunStatus.ROLLBACK_FAILED
    assert {v["baseline_agent_port"] for v in world.extravars} == {9180}
    installed = PLAYBOOKS / ROLLBACK
    assert installed.is_file()
    failed = [e for e in engine(tmp_path, world).store.entries(result.run_id) if "failed" in e.kind]
    assert any(f"-i localhost {installed} -l srv1" in json.dumps(e.payload) for e in failed), [
        e.payload for e in failed
    ]
