"""rack-out's pure logic: who would be cut off, which sessions still carry routes from the
device; and its device steps on NetBox and devices in memory: the drain and the removal as
NetBox's "drain" and "bare" renderings (sanitised), the neighbours' BGP sessions and routes
through NAPALM's getters, the undo of the removal with the secrets NetBox renders, and a
management address no configuration may move. No lab."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from runbooks.core.errors import InventoryError, VerificationError
from runbooks.core.gateway import Mode
from runbooks.core.results import Status, StepKind, StepResult
from runbooks.library import network_common as nc
from runbooks.library import rack_steps as rs
from runbooks.library.rack_out import RackOut
from tests.unit.library.rack_data import (
    BIRD2_LACKS,
    LINKS,
    PASSWORD,
    MemoryDevice,
    RenderingNetBox,
    context,
    fn,
    rendering,
    working_set,
)


def neighbours(names: list[str], links: Sequence[tuple[str, ...]] = LINKS) -> dict[str, object]:
    return {n: working_set(n, links) for n in names}


def test_leaves_keep_the_other_spine_when_a_spine_goes() -> None:
    remaining = nc.lost_last_path("spine1", neighbours(["leaf1", "leaf2"]))  # type: ignore[arg-type]
    assert remaining == {"leaf1": ["swp2→spine2:swp1"], "leaf2": ["swp2→spine2:swp2"]}


def test_a_leaf_with_one_uplink_left_is_cut_off() -> None:
    # leaf1's link to spine2 is only planned: spine1 is its last path
    links = [
        (*link[:6], "planned") if link[:3] == ("spine2", "swp1", "leaf1") else link
        for link in LINKS
    ]
    remaining = nc.lost_last_path("spine1", neighbours(["leaf1", "leaf2"], links))  # type: ignore[arg-type]
    assert remaining["leaf1"] == []
    assert remaining["leaf2"] == ["swp2→spine2:swp2"]


def test_a_spine_keeps_its_other_leaves_when_a_leaf_goes() -> None:
    remaining = nc.lost_last_path("leaf1", neighbours(["spine1", "spine2"]))  # type: ignore[arg-type]
    # leaf3 is planned, so its cables are not paths
    assert remaining == {"spine1": ["swp2→leaf2:swp1"], "spine2": ["swp2→leaf2:swp2"]}


def test_links_to_devices_that_are_not_active_are_no_path() -> None:
    # only leaf1 and leaf3 on spine1; leaf3 is planned: spine1 would be cut off
    links = [link for link in LINKS if link[0] == "spine1" and link[2] != "leaf2"]
    links = [(*link[:6], "connected") for link in links]
    remaining = nc.lost_last_path("leaf1", neighbours(["spine1"], links))  # type: ignore[arg-type]
    assert remaining == {"spine1": []}


def bgp(address: str, up: bool, enabled: bool, received: int) -> dict[str, Any]:
    """get_bgp_neighbors() with one peer."""
    family = {"ipv4": {"received_prefixes": received, "accepted_prefixes": received}}
    peer = {"is_up": up, "is_enabled": enabled, "remote_as": 65101, "address_family": family}
    return {"global": {"router_id": "198.18.255.1", "peers": {address: peer}}}


@pytest.mark.parametrize(
    ("answer", "left"),
    [
        (bgp("198.18.1.1", True, True, 3), ["198.18.1.1: 3 prefixes received"]),
        (bgp("198.18.1.1", True, True, -1), ["198.18.1.1: ? prefixes received"]),
        (bgp("198.18.1.1", True, True, 0), []),  # up, but takes nothing from the device
        (bgp("198.18.1.1", False, False, 3), []),  # shut: the count is the last one seen
        (bgp("198.18.1.1", False, True, 3), []),
        (bgp("198.18.1.3", True, True, 3), []),  # another device's session
    ],
)
def test_sessions_that_still_carry_routes_from_the_device(
    answer: dict[str, Any], left: list[str]
) -> None:
    assert nc.still_received(answer, ["198.18.1.1", "198.18.1.7"]) == left


# ---- the device steps, on NetBox and devices in memory ---------------------------------------


def fabric(
    mode: Mode, missing: dict[str, set[str]] | None = None, bird2: tuple[str, ...] = ()
) -> dict[str, MemoryDevice]:
    """The active devices, each running what NetBox renders for it in service; those named
    in ``bird2`` with a driver shaped like napalm-bird2 (no commit-confirm, LLDP, routes)."""
    missing = missing or {}
    return {
        n: MemoryDevice(
            mode,
            n,
            rendering(n, "service"),
            set(missing.get(n, ())) | (BIRD2_LACKS if n in bird2 else set()),
            "bird2" if n in bird2 else "frr",
        )
        for n in ("spine1", "spine2", "leaf1", "leaf2")
    }


def rack_out(**params: Any) -> RackOut:
    return RackOut(RackOut.parse_params({"device": "leaf1", **params}))


def test_the_drain_and_the_removal_are_netbox_renderings_sanitised() -> None:
    devices, nb = fabric(Mode.PLAN), RenderingNetBox(Mode.PLAN)
    rb = rack_out()
    ctx = context(rb, Mode.PLAN, devices, nb)
    (drain,) = RackOut.plan_drain_bgp.plan(rb, ctx)
    assert drain.summary == "shut down BGP to 198.18.1.0, 198.18.1.6"
    assert "+ neighbor 198.18.1.0 shutdown" in drain.text
    assert " neighbor 198.18.1.0 password <removed>" in drain.after
    (removal,) = RackOut.plan_remove_configuration.plan(rb, ctx)
    assert removal.after == "hostname leaf1\n!\n"
    assert nb.rendered == [("leaf1", "drain"), ("leaf1", "bare")]
    for diff in (drain, removal):
        assert PASSWORD not in f"{diff.text}{diff.before}{diff.after}"
    # the drain is committed without a timer: only the removal waits for a confirmation
    assert rs.state(ctx).to_confirm == {"leaf1"}
    assert RackOut.plan_confirm_removal.plan(rb, ctx)[0].target == "leaf1 configuration"


def test_the_undo_after_the_removal_fills_the_password_from_netbox() -> None:
    devices, nb = fabric(Mode.RUN), RenderingNetBox(Mode.RUN)
    rb = rack_out()
    ctx = context(rb, Mode.RUN, devices, nb)
    leaf1 = devices["leaf1"]
    drain = RackOut.plan_drain_bgp.plan(rb, ctx)
    fn(RackOut.shut_bgp_sessions.apply_func)(rb, ctx, drain)
    assert leaf1.running == rendering("leaf1", "drain") and leaf1.commits[0][1] is None
    removal = RackOut.plan_remove_configuration.plan(rb, ctx)
    fn(RackOut.remove_configuration.apply_func)(rb, ctx, removal)
    leaf1.confirm()  # confirmed: no timer brings the drained configuration back
    assert PASSWORD not in leaf1.running and "password <removed>" in str(removal[0].before)
    nb.rendered.clear()
    fn(RackOut.restore_configuration.undo_func)(rb, ctx, removal)
    assert leaf1.running == rendering("leaf1", "drain")  # the password back, from NetBox
    assert nb.rendered == [("leaf1", "service")]
    assert leaf1.commits[-1][2] == (rendering("leaf1", "service"),)
    fn(RackOut.reopen_bgp_sessions.undo_func)(rb, ctx, drain)
    assert leaf1.running == rendering("leaf1", "service")


def test_the_neighbours_undone_after_their_confirmation_get_their_passwords_back() -> None:
    """Neither the neighbour's running configuration nor NetBox (the cables are
    decommissioning) holds the password of the session to leaf1 any more: the driver's
    rollback to before the run's commit brings it back."""
    leaving = [(*link[:6], "decommissioning") if "leaf1" in link else link for link in LINKS]
    devices, nb = fabric(Mode.RUN), RenderingNetBox(Mode.RUN, leaving)
    rb = rack_out()
    ctx = context(rb, Mode.RUN, devices, nb)
    diffs = RackOut.plan_neighbour_configs.plan(rb, ctx)
    assert [d.target for d in diffs] == ["spine1 configuration", "spine2 configuration"]
    fn(RackOut.commit_neighbour_configs.apply_func)(rb, ctx, diffs)
    for spine, leaf1 in (("spine1", "198.18.1.1"), ("spine2", "198.18.1.7")):
        devices[spine].confirm()
        assert f"neighbor {leaf1} " not in devices[spine].running
    fn(RackOut.restore_neighbour_configs.undo_func)(rb, ctx, diffs)
    for spine in ("spine1", "spine2"):
        assert devices[spine].running == rendering(spine, "service")
        assert len(devices[spine].commits) == 1  # rolled back, nothing committed over it


def test_a_configuration_that_moves_the_management_address_is_refused() -> None:
    devices, nb = fabric(Mode.PLAN), RenderingNetBox(Mode.PLAN)
    nb.renders[("leaf1", "bare")] = "hostname leaf1\ninterface eth0\n ip address 198.18.0.3/24\n"
    rb = rack_out()
    with pytest.raises(InventoryError, match=r"would move its management address 198\.18\.0\.3/24"):
        RackOut.plan_remove_configuration.plan(rb, context(rb, Mode.PLAN, devices, nb))
    devices["leaf1"].running += "interface eth0\n ip address 198.18.0.3/24\n"  # a box holding it
    nb.renders.clear()
    with pytest.raises(InventoryError, match="management address"):
        RackOut.plan_remove_configuration.plan(rb, context(rb, Mode.PLAN, devices, nb))


def test_the_neighbours_drain_when_their_sessions_to_the_device_carry_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("runbooks.library.rack_out.time.sleep", lambda s: None)
    devices = fabric(Mode.RUN)
    devices["spine1"].bgp = [bgp("198.18.1.1", True, True, 3), bgp("198.18.1.1", False, False, 3)]
    devices["spine2"].bgp = [bgp("198.18.1.7", True, True, 0)]
    rb = rack_out(settle_timeout_s=30)
    ctx = context(rb, Mode.RUN, devices, RenderingNetBox(Mode.RUN))
    evidence = RackOut.wait_until_prefixes_moved_away.func(rb, ctx)
    assert evidence["sessions_to"] == ["198.18.1.1", "198.18.1.7"]
    assert "not_checked" not in evidence
    devices["spine1"].bgp = [bgp("198.18.1.1", True, True, 2)]
    rb = rack_out(settle_timeout_s=0.01)
    ctx = context(rb, Mode.RUN, devices, RenderingNetBox(Mode.RUN))
    with pytest.raises(VerificationError, match=r"spine1.*198.18.1.1: 2 prefixes received"):
        RackOut.wait_until_prefixes_moved_away.func(rb, ctx)


def test_the_neighbours_reach_each_other_by_get_route_to_or_say_not_checked() -> None:
    devices = fabric(Mode.RUN, {"spine2": {"get_route_to"}})
    devices["spine1"].routes["198.18.255.2/32"] = {"198.18.255.2/32": [{"current_active": True}]}
    rb = rack_out()
    ctx = context(rb, Mode.RUN, devices, RenderingNetBox(Mode.RUN))
    assert RackOut.neighbours_still_reach_each_other.func(rb, ctx) == {
        "reached": ["spine1 → spine2 198.18.255.2"],
        "not_checked": ["spine2: not checked on frr: driver frr has no get_route_to"],
    }
    devices["spine1"].routes.clear()
    with pytest.raises(VerificationError, match="no route without leaf1: spine1 → spine2"):
        RackOut.neighbours_still_reach_each_other.func(rb, ctx)


def test_the_plan_names_the_checks_the_neighbours_drivers_cannot_answer() -> None:
    devices = fabric(Mode.PLAN, {"spine2": {"get_bgp_neighbors"}})
    rb = rack_out()
    evidence = RackOut.drivers_can_answer.func(
        rb, context(rb, Mode.PLAN, devices, RenderingNetBox(Mode.PLAN))
    )
    assert [(c["check"], c["device"]) for c in evidence["cannot_check"]] == [
        ("Wait until the neighbours route nothing through leaf1", "spine2"),
        ("Post-check: the neighbours' other BGP sessions are established", "spine2"),
    ]


def test_a_device_without_commit_confirm_is_named_removed_without_a_timer_and_undone() -> None:
    """leaf1's driver has no commit-confirm: the plan names it for the removal (not the
    drain, committed without a timer anyway), and has no confirmation for it; the run removes
    its configuration without revert_in, confirms nothing, and the undo puts it back (the
    password from NetBox's rendering)."""
    rb = rack_out(confirm_within_s=60)
    plan = context(rb, Mode.PLAN, fabric(Mode.PLAN, bird2=("leaf1",)), RenderingNetBox(Mode.PLAN))
    evidence = RackOut.drivers_can_answer.func(rb, plan)
    named = [(c["check"], c["device"]) for c in evidence["cannot_check"] if "commit" in c["why"]]
    assert named == [
        ("Remove the configuration of leaf1 (commit-confirm where the platform has it)", "leaf1")
    ]
    assert any("no commit-confirm on bird2 (leaf1)" in w for w in evidence["warnings"])
    assert RackOut.plan_remove_configuration.plan(rb, plan)
    assert rs.state(plan).to_confirm == set()
    assert RackOut.plan_confirm_removal.plan(rb, plan) == []

    devices, nb = fabric(Mode.RUN, bird2=("leaf1",)), RenderingNetBox(Mode.RUN)
    ctx = context(rb, Mode.RUN, devices, nb)
    leaf1 = devices["leaf1"]
    removal = RackOut.plan_remove_configuration.plan(rb, ctx)
    assert fn(RackOut.remove_configuration.apply_func)(rb, ctx, removal) == {
        "committed": ["leaf1"],
        "revert_in_s": 60,
        "without_commit_confirm": ["leaf1"],
    }
    assert leaf1.running == "hostname leaf1\n!\n" and leaf1.commits[-1][1] is None
    ctx.results["plan_remove_configuration"] = StepResult(
        "plan_remove_configuration", "", StepKind.CHANGE, Status.CHANGED, diffs=tuple(removal)
    )
    assert RackOut.plan_confirm_removal.plan(rb, ctx) == []  # nothing waits for it
    fn(RackOut.restore_configuration.undo_func)(rb, ctx, removal)
    assert leaf1.running == rendering("leaf1", "service")  # with its password, from NetBox


def test_neighbours_without_commit_confirm_are_named_and_not_waited_for() -> None:
    leaving = [(*link[:6], "decommissioning") if "leaf1" in link else link for link in LINKS]
    rb = rack_out(confirm_within_s=60)
    devices = fabric(Mode.PLAN, bird2=("spine2",))
    evidence = RackOut.drivers_can_answer.func(
        rb, context(rb, Mode.PLAN, devices, RenderingNetBox(Mode.PLAN))
    )
    named = [(c["check"], c["device"]) for c in evidence["cannot_check"] if "commit" in c["why"]]
    assert named == [
        (
            "Configure the neighbours as NetBox now renders them "
            "(commit-confirm where the platform has it)",
            "spine2",
        )
    ]
    plan = context(rb, Mode.PLAN, devices, RenderingNetBox(Mode.PLAN, leaving))
    assert len(RackOut.plan_neighbour_configs.plan(rb, plan)) == 2
    assert rs.state(plan).to_confirm == {"spine1"}

    devices = fabric(Mode.RUN, bird2=("spine2",))
    ctx = context(rb, Mode.RUN, devices, RenderingNetBox(Mode.RUN, leaving))
    diffs = RackOut.plan_neighbour_configs.plan(rb, ctx)
    evidence = fn(RackOut.commit_neighbour_configs.apply_func)(rb, ctx, diffs)
    assert evidence["without_commit_confirm"] == ["spine2"]
    assert [devices[n].commits[-1][1] for n in ("spine1", "spine2")] == [60, None]
    ctx.results["plan_neighbour_configs"] = StepResult(
        "plan_neighbour_configs", "", StepKind.CHANGE, Status.CHANGED, diffs=tuple(diffs)
    )
    confirms = RackOut.plan_confirm_neighbours.plan(rb, ctx)
    assert [d.target for d in confirms] == ["spine1 configuration"]
    fn(RackOut.confirm_neighbours.apply_func)(rb, ctx, confirms)
    assert fn(RackOut.neighbours_confirmed.verify_func)(rb, ctx, confirms)


def test_the_steps_read_as_the_work_instruction() -> None:
    names = [s.name for s in RackOut.steps()]
    order = [
        "device_is_active",
        "neighbours_keep_another_path",
        "device_answers",
        "drivers_can_answer",
        "keep_running_config_as_backup",
        "plan_drain_bgp",
        "wait_until_prefixes_moved_away",
        "neighbours_still_reach_each_other",
        "plan_remove_configuration",
        "plan_cables_decommissioning",
        "plan_device_offline",
        "plan_addresses_released",
        "confirm_physical_removal",
        "plan_journal_entry",
    ]
    assert [n for n in names if n in order] == order
    assert RackOut.instruction.startswith("8 網絡設備下架")
