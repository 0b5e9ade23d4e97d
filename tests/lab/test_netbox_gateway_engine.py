"""The NetBox gateway inside the engine: a runbook plans NetBox field diffs (with ETags), runs
them with NetBox's change records as evidence, and a failed post-check undoes them exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbooks.config import NetBoxSettings
from runbooks.core.context import RunContext, confirm_all
from runbooks.core.engine import Engine
from runbooks.core.errors import VerificationError
from runbooks.core.results import Diff, RunStatus
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import change, check
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_http import NetBoxHTTP
from runbooks.lab import netbox
from tests.support.netbox_cabled import netbox_held  # noqa: F401


class MarkActiveParams(Params):
    device: str
    fail_post_check: bool = False


class MarkActive(Runbook):
    """Test instruction: a planned device and its cables become active in NetBox."""

    name = "test-netbox-mark-active"
    title = "Mark a planned device active in NetBox (test runbook)"
    instruction = "test: NetBox gateway inside the engine"
    Params = MarkActiveParams

    @property
    def p(self) -> MarkActiveParams:
        assert isinstance(self.params, MarkActiveParams)
        return self.params

    @check("The device is in NetBox", targets="{device}")
    def device_known(self, ctx: RunContext) -> dict[str, Any]:
        ws = ctx.gateway(NetBoxGateway).working_set(self.p.device)
        return {"status": ws.status, "cabled": [i.name for i in ws.cabled]}

    @change("Mark the device and its cables active", targets="{device}")
    def plan_active(self, ctx: RunContext) -> list[Diff]:
        nb = ctx.gateway(NetBoxGateway)
        ws = nb.working_set(self.p.device)
        return [nb.plan_device_status(ws, "active"), *nb.plan_cable_status(ws, "connected")]

    @plan_active.apply
    def mark_active(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return ctx.gateway(NetBoxGateway).apply(diffs).evidence()

    @plan_active.undo
    def restore(self, ctx: RunContext, diffs: list[Diff]) -> None:
        ctx.gateway(NetBoxGateway).undo(diffs)

    @check("Post-check", targets="{device}")
    def post_check(self, ctx: RunContext) -> dict[str, Any]:
        if self.p.fail_post_check:
            raise VerificationError("injected post-check failure")
        return {"status": ctx.gateway(NetBoxGateway).working_set(self.p.device).status}


def engine(tmp_path: Path) -> tuple[Engine, RecordStore]:
    settings = NetBoxSettings(*netbox.credentials("operator"))

    def factory(ctx: RunContext, key: str) -> NetBoxGateway:
        return NetBoxGateway(settings, ctx.mode, run_id=ctx.run_id, runbook=ctx.runbook.name)

    store = RecordStore(tmp_path / "records.sqlite3")
    return Engine(
        store, "olivia", confirmer=confirm_all(), gateway_factories={NetBoxGateway: factory}
    ), store


def leaf3_state(admin: NetBoxHTTP) -> list[dict[str, Any]]:
    out = []
    for path in ("/api/dcim/devices/5/", "/api/dcim/cables/3/", "/api/dcim/cables/6/"):
        data = dict(admin.call("GET", path).data)
        data.pop("last_updated")
        out.append(data)
    return out


@pytest.fixture
def admin(netbox_held: str) -> NetBoxHTTP:  # noqa: F811
    return NetBoxHTTP(NetBoxSettings(*netbox.credentials("admin")), allow_writes=True)


def test_plan_run_records_netbox_changes(admin: NetBoxHTTP, tmp_path: Path) -> None:
    eng, store = engine(tmp_path)
    runbook = MarkActive(MarkActive.parse_params({"device": "leaf3"}))
    plan = eng.plan(runbook)
    step = next(s for s in plan.steps if s.step == "plan_active")
    assert [(d.target, [f.name for f in d.fields]) for d in step.diffs] == [
        ("NetBox dcim.device leaf3 #5", ["status"]),
        ("NetBox dcim.cable leaf3:swp1↔spine1:swp3 #3", ["status"]),
        ("NetBox dcim.cable leaf3:swp2↔spine2:swp3 #6", ["status"]),
    ]
    assert plan.content_hash == eng.plan(runbook).content_hash  # ETags are stable

    result = eng.run(runbook, plan_hash=plan.content_hash)
    assert result.status is RunStatus.SUCCEEDED, result.error
    evidence = next(s for s in result.steps if s.step == "plan_active").evidence
    changed = {c["object"]: c["changed"] for c in evidence["netbox_changes"]}
    assert changed["dcim.device #5 leaf3"]["status"] == {"before": "planned", "after": "active"}
    assert any(e.kind == "step.finished" for e in store.entries(result.run_id))


def test_failed_post_check_undoes_netbox_exactly(admin: NetBoxHTTP, tmp_path: Path) -> None:
    before = leaf3_state(admin)
    eng, _store = engine(tmp_path)
    runbook = MarkActive(MarkActive.parse_params({"device": "leaf3", "fail_post_check": True}))
    result = eng.run(runbook)
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert leaf3_state(admin) == before
