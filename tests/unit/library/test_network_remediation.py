"""network-remediation without a lab: NetBox's reads and renderings in memory
(`rack_data.RenderingNetBox`), each device a `rack_data.MemoryDevice` (its raw running
configuration holds a planted BGP password), the real engine and record store.

The fleet: spine1 compliant; leaf1, leaf2 and spine2 drifted (a line NetBox does not render).
With a batch size of 1 the batches are leaf1 (the canary), leaf2, spine2.
"""

from __future__ import annotations

import doctest
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runbooks.core import policy
from runbooks.core.changes import ChangeBook
from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.errors import InputError
from runbooks.core.gateway import Gateway, reads
from runbooks.core.results import RunStatus
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import NetworkGateway
from runbooks.library import network_remediation
from runbooks.library.network_remediation import NetworkRemediation
from runbooks.report import review
from tests.unit.library.rack_data import (
    ASN,
    IDS,
    LINKS,
    PASSWORD,
    MemoryDevice,
    RenderingNetBox,
    rendering,
    working_set,
)

FLEET = ("leaf1", "leaf2", "spine1", "spine2")
DRIFT = "ip route 203.0.113.0/24 Null0"


class FleetNetBox(RenderingNetBox):
    @reads
    def find(self, obj_type: str, **filters: Any) -> list[dict[str, Any]]:
        assert obj_type == "dcim.device"
        return [{"name": name} for name in FLEET]


def sessions(name: str, up: bool = True) -> dict[str, Any]:
    """get_bgp_neighbors' answer: a session over each connected cable, up or down."""
    peers = {}
    for a, _, b, _, a_ip, b_ip, cable in LINKS:
        if name in (a, b) and cable == "connected":
            peer, address = (b, b_ip) if name == a else (a, a_ip)
            peers[address] = {"is_up": up, "is_enabled": True, "remote_as": ASN[peer]}
    return {"global": {"peers": peers}}


@pytest.fixture(autouse=True)
def fleet_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    def sets(nb: NetBoxGateway, names: list[str]) -> dict[str, DeviceWorkingSet]:
        return {name: working_set(name) for name in names if name in IDS}

    monkeypatch.setattr(network_remediation, "working_sets", sets)


Factories = dict[type[Gateway], Callable[[RunContext, str], Gateway]]


class TimesOut(MemoryDevice):
    """Its commit-confirm timer runs out during the post-checks: at the first BGP reading
    after its commit it goes back by itself to what it ran before (nothing pending)."""

    @reads
    def bgp_neighbors(self) -> dict[str, Any]:
        if self.pending:
            self.running, self.pending = self.before_commit, False
        return super().bgp_neighbors()


def factories(
    devices: dict[str, MemoryDevice],
    regress: str | None = None,
    kind: dict[str, type[MemoryDevice]] | None = None,
    missing: dict[str, set[str]] | None = None,
) -> Factories:
    """The run's devices (kept in ``devices``); ``regress``'s BGP sessions go down once it
    has committed (its baseline sees them up); ``kind``: a device's class; ``missing``:
    what a device's driver lacks."""

    def device(ctx: RunContext, key: str) -> Gateway:
        raw = rendering(key, "service")
        made = (kind or {}).get(key, MemoryDevice)(
            ctx.mode,
            key,
            raw if key == "spine1" else raw + DRIFT + "\n",
            missing=(missing or {}).get(key, ()),
        )
        made.bgp = [sessions(key)]
        if key == regress:
            made.bgp = [sessions(key), sessions(key, up=False)]
        devices[key] = made
        return made

    return {NetBoxGateway: lambda ctx, key: FleetNetBox(ctx.mode), NetworkGateway: device}


def remediation(**params: Any) -> NetworkRemediation:
    return NetworkRemediation(NetworkRemediation.parse_params({"batch_size": 1, **params}))


def test_regressions_doctest() -> None:
    assert doctest.testmod(network_remediation).failed == 0


def test_the_plan_names_compliant_devices_and_puts_each_drifted_one_in_its_batch(
    store_path: Path,
) -> None:
    engine = Engine(RecordStore(store_path), "olivia", gateway_factories=factories({}))
    plan = engine.plan(remediation(role="spine,leaf"))

    assert plan.refusal is None
    compared = next(s for s in plan.steps if s.step == "compare_with_netbox").evidence
    assert compared["compliant"] == ["spine1"]
    assert compared["drifted"] == ["leaf1", "leaf2", "spine2"]
    step = next(s for s in plan.steps if s.step == "plan_remediation")
    assert [(d.target, d.summary.split(":")[0]) for d in step.diffs] == [
        ("leaf1 configuration", "batch 1 of 3 (canary)"),
        ("leaf2 configuration", "batch 2 of 3"),
        ("spine2 configuration", "batch 3 of 3"),
    ]
    assert all(f"-{DRIFT}" in d.text for d in step.diffs)
    assert PASSWORD not in json.dumps(plan.to_dict())


def test_the_run_remediates_batch_by_batch_and_confirms_each(store_path: Path) -> None:
    devices: dict[str, MemoryDevice] = {}
    engine = Engine(RecordStore(store_path), "olivia", gateway_factories=factories(devices))
    result = engine.run(remediation(confirm_within_s=120))

    assert result.ok, result.error
    for name in ("leaf1", "leaf2", "spine2"):
        assert devices[name].running == rendering(name, "service")
        assert [revert for _, revert, _ in devices[name].commits] == [120]
        assert not devices[name].pending  # confirmed after its batch's post-checks
    assert devices["spine1"].commits == []  # compliant: left alone


def test_a_regression_rolls_back_that_batch_only_and_stops(store_path: Path) -> None:
    devices: dict[str, MemoryDevice] = {}
    store = RecordStore(store_path)
    engine = Engine(store, "olivia", gateway_factories=factories(devices, regress="leaf2"))
    result = engine.run(remediation(settle_timeout_s=0.1))

    assert result.status is RunStatus.STOPPED  # the canary kept: stopped part-way
    assert "BGP session to spine1 (198.18.1.2) is not established" in (result.error or "")
    assert devices["leaf1"].running == rendering("leaf1", "service")  # the canary kept
    assert not devices["leaf1"].pending
    assert devices["leaf2"].running == rendering("leaf2", "service") + DRIFT + "\n"
    assert not devices["leaf2"].pending  # its commit rolled back
    assert devices["spine2"].commits == []  # batch 3 not run
    assert store.entries(result.run_id)[-1].payload["batches"] == {
        "kept": ["batch 1 of 3 (canary): leaf1"],
        "failed": ["batch 2 of 3: leaf2"],
        "not_run": ["batch 3 of 3: spine2"],
    }


class Meeting(MemoryDevice):
    """Its first read waits until every device of the fleet is reading at once: a fleet
    compared one device after another never gets there (the barrier breaks: unreachable)."""

    barrier = threading.Barrier(len(FLEET), timeout=5)
    met = False

    @reads
    def config(self, retrieve: str = "running") -> str:
        if not self.met:
            self.met = True
            self.barrier.wait()
        return super().config(retrieve)


def test_the_devices_are_compared_at_the_same_time(store_path: Path) -> None:
    def device(ctx: RunContext, key: str) -> Gateway:
        return Meeting(ctx.mode, key, rendering(key, "service"))

    net = {**factories({}), NetworkGateway: device}
    plan = Engine(RecordStore(store_path), "olivia", gateway_factories=net).plan(
        remediation(parallel=4)
    )
    compared = next(s for s in plan.steps if s.step == "compare_with_netbox").evidence
    assert compared["compliant"] == list(FLEET)


def test_a_device_whose_timer_ran_out_during_the_post_checks_fails_its_batch(
    store_path: Path,
) -> None:
    """leaf2 goes back by itself to its drifted configuration while its batch's post-checks
    run (they pass: its sessions stay up); the confirmation finds nothing pending there, and
    the batch fails, undone: the run does not say succeeded with leaf2 still drifted."""
    devices: dict[str, MemoryDevice] = {}
    store = RecordStore(store_path)
    net = factories(devices, kind={"leaf2": TimesOut})
    result = Engine(store, "olivia", gateway_factories=net).run(remediation())

    assert result.status is RunStatus.STOPPED, result.error  # the canary kept
    assert "leaf2 went back to its earlier configuration" in (result.error or "")
    assert devices["leaf1"].running == rendering("leaf1", "service")
    assert devices["leaf2"].running == rendering("leaf2", "service") + DRIFT + "\n"
    assert not devices["leaf2"].pending
    assert devices["spine2"].commits == []
    assert store.entries(result.run_id)[-1].payload["batches"] == {
        "kept": ["batch 1 of 3 (canary): leaf1"],
        "failed": ["batch 2 of 3: leaf2"],
        "not_run": ["batch 3 of 3: spine2"],
    }


@pytest.mark.parametrize(
    "params",
    [
        {"settle_timeout_s": 290, "confirm_within_s": 300},
        {"settle_timeout_s": 60, "confirm_within_s": 120, "batch_size": 4},
    ],
)
def test_post_checks_that_cannot_end_inside_the_timer_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(InputError) as refused:
        remediation(**params)
    assert "\n" not in str(refused.value)
    assert "must end before its commit-confirm reverts it" in str(refused.value)
    remediation(**{**params, "confirm_within_s": 600})  # a longer timer is taken


def test_post_checks_that_cannot_fail_are_warned_of_and_recorded_device_by_device(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """leaf2's driver has no LLDP getter; NetBox has no connected cable of spine2's: the plan
    warns of both, and each batch's record names the checks not run on its device."""

    def sets(nb: NetBoxGateway, names: list[str]) -> dict[str, DeviceWorkingSet]:
        return {n: working_set(n, [] if n == "spine2" else None) for n in names if n in IDS}

    monkeypatch.setattr(network_remediation, "working_sets", sets)
    store = RecordStore(store_path)
    net = factories({}, missing={"leaf2": {"get_lldp_neighbors"}})
    engine = Engine(store, "olivia", gateway_factories=net)
    plan = engine.plan(remediation())

    assert plan.refusal is None, plan.refusal
    warnings = next(s for s in plan.steps if s.step == "drivers_can_answer").evidence["warnings"]
    assert any("(leaf2): driver frr has no get_lldp_neighbors" in w for w in warnings)
    assert any(
        w.endswith(
            "cannot fail on spine2: BGP and LLDP: nothing expected (no connected cable in NetBox)"
        )
        for w in warnings
    )
    assert not any("leaf1" in w for w in warnings)
    change = ChangeBook(store).create(
        plan, policy.Identity("olivia", frozenset({policy.HANDLE})), None
    )
    page = review.markdown(change)
    assert "**Warnings**" in page and "cannot fail on spine2" in page

    result = engine.run(remediation())
    assert result.ok, result.error
    checked = {r.step: r.evidence["post_check"] for r in result.steps if "#" in r.step}
    assert "not_checked" not in checked["plan_remediation#1"]  # leaf1: everything checked
    assert checked["plan_remediation#2"]["not_checked"] == {
        "leaf2": ["LLDP leaf2: not checked on frr: driver frr has no get_lldp_neighbors"]
    }
    assert checked["plan_remediation#3"]["not_checked"] == {
        "spine2": ["BGP and LLDP: nothing expected (no connected cable in NetBox)"]
    }
