"""rack-in's pure logic: cables that can come up, LLDP against cables, the sessions NetBox
implies and the BGP check; and its device steps on NetBox and devices in memory: NetBox's
"service" rendering as the candidate (sanitised in the plan, re-rendered and checked at the
commit), the loopbacks through get_route_to, a check a driver cannot answer named. No lab."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.errors import DriftError, InventoryError, VerificationError
from runbooks.core.gateway import Mode
from runbooks.core.results import Diff, Status, StepKind, StepResult
from runbooks.library import network_common as nc
from runbooks.library import rack_steps as rs
from runbooks.library.rack_in import RackIn
from tests.unit.library.rack_data import (
    BIRD2_LACKS,
    LINKS,
    NO_COMMIT_CONFIRM,
    PASSWORD,
    MemoryDevice,
    RenderingNetBox,
    context,
    fn,
    rendering,
    working_set,
)


def test_the_steps_read_as_the_work_instruction() -> None:
    names = [s.name for s in RackIn.steps()]
    assert names[:5] == [
        "device_is_planned",
        "rack_position_is_set_and_free",
        "platform_and_type_are_known",
        "planned_cables_end_on_existing_interfaces",
        "addresses_are_assigned",
    ]
    order = [
        "confirm_mounted_and_cabled",
        "device_answers",
        "drivers_can_answer",
        "plan_cables_connected",
        "plan_device_config",
        "verify_lldp_matches_cables",
        "plan_confirm_config",
        "plan_device_active",
        "plan_journal_entry",
    ]
    assert [n for n in names if n in order] == order
    assert RackIn.instruction.startswith("7 網絡設備上架")


def test_planned_cables_to_active_devices_can_come_up() -> None:
    assert nc.cable_problems(working_set("leaf3")) == []


def test_a_cable_to_a_device_that_is_not_active_is_a_problem() -> None:
    ws = working_set("leaf1", [("spine1", "swp1", "leaf1", "swp1", "a", "b", "connected")])
    peerless = working_set("leaf3", [("leaf3", "swp1", "leaf1", "swp3", "a", "b", "planned")])
    assert nc.cable_problems(ws) == []
    assert nc.cable_problems(peerless) == []
    blocked = working_set("leaf2", [("leaf2", "swp1", "leaf3", "swp3", "a", "b", "planned")])
    assert nc.cable_problems(blocked) == ["leaf2:swp1 (cable #1) ends on leaf3, which is planned"]


def test_no_cables_is_a_problem() -> None:
    assert nc.cable_problems(working_set("leaf3", [])) == ["leaf3 has no cables in NetBox"]


@pytest.mark.parametrize(
    ("lldp", "problems"),
    [
        (
            {
                "swp1": [{"hostname": "spine1", "port": "swp3"}],
                "swp2": [{"hostname": "spine2", "port": "swp3"}],
            },
            [],
        ),
        (
            {
                "swp1": [{"hostname": "spine1", "port": "swp3"}],
                "swp2": [{"hostname": "spine1", "port": "swp4"}],
            },
            ["swp2: NetBox cables it to spine2:swp3, LLDP sees spine1:swp4"],
        ),
        (
            {"swp1": [{"hostname": "spine1", "port": "swp3"}]},
            ["swp2: NetBox cables it to spine2:swp3, LLDP sees no neighbour"],
        ),
        (  # two neighbours on one port: the cabled one among them is enough
            {
                "swp1": [{"hostname": "x", "port": "y"}, {"hostname": "spine1", "port": "swp3"}],
                "swp2": [{"hostname": "spine2", "port": "swp3"}],
            },
            [],
        ),
    ],
)
def test_lldp_is_compared_with_the_cables_interface_by_interface(
    lldp: dict[str, list[dict[str, str]]], problems: list[str]
) -> None:
    assert nc.lldp_mismatches(nc.links_of(working_set("leaf3")), lldp) == problems


def test_the_peers_as_number_comes_from_the_custom_field_the_settings_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leaf3 = working_set("leaf3")
    spine1 = working_set("spine1")
    renamed = replace(spine1, custom_fields={"as_number": 64999})
    monkeypatch.setenv("RUNBOOKS_NETBOX_ASN_FIELD", "as_number")
    [session] = nc.expected_sessions(leaf3, {"spine1": renamed})
    assert (session.peer_device, session.peer_asn) == ("spine1", 64999)
    monkeypatch.delenv("RUNBOOKS_NETBOX_ASN_FIELD")
    [session] = nc.expected_sessions(leaf3, {"spine1": renamed})
    assert session.peer_asn is None  # the default field, bgp_asn, is not set on it


def test_the_sessions_netbox_implies_and_the_bgp_check() -> None:
    leaf3 = working_set("leaf3")
    peers = {n: working_set(n) for n in ("spine1", "spine2")}
    sessions = nc.expected_sessions(leaf3, peers)
    assert [(s.peer_device, s.peer_address, s.peer_asn) for s in sessions] == [
        ("spine1", "198.18.1.4", 65001),
        ("spine2", "198.18.1.10", 65002),
    ]
    up = {
        "global": {
            "peers": {
                "198.18.1.4": {"is_up": True, "remote_as": 65001},
                "198.18.1.10": {"is_up": True, "remote_as": 65002},
            }
        }
    }
    assert nc.bgp_problems(sessions, up) == []
    wrong = {
        "global": {
            "peers": {
                "198.18.1.4": {"is_up": False, "remote_as": 65001},
                "198.18.1.10": {"is_up": True, "remote_as": 64999},
            }
        }
    }
    assert nc.bgp_problems(sessions, wrong) == [
        "BGP session to spine1 (198.18.1.4) is not established",
        "BGP peer spine2 (198.18.1.10) is AS64999, NetBox says AS65002",
    ]
    assert nc.bgp_problems(sessions, {}) == [
        "no BGP session to spine1 (198.18.1.4)",
        "no BGP session to spine2 (198.18.1.10)",
    ]


def test_the_plan_lists_the_sessions_both_sides_gain() -> None:
    leaf3 = working_set("leaf3")
    peers = {n: working_set(n) for n in ("spine1", "spine2")}
    note = nc.sessions_note(leaf3, peers, adding=True)
    assert {(f.name, f.before, f.after) for f in note.fields} == {
        ("leaf3: neighbor 198.18.1.4", None, "AS65001 spine1:swp3"),
        ("leaf3: neighbor 198.18.1.10", None, "AS65002 spine2:swp3"),
        ("spine1: neighbor 198.18.1.5", None, "AS65103 leaf3:swp1"),
        ("spine2: neighbor 198.18.1.11", None, "AS65103 leaf3:swp2"),
    }


def test_a_device_is_reached_on_its_primary_address_with_its_platform() -> None:
    target = nc.device_target(working_set("leaf3"))
    assert (target.name, target.host, target.platform) == ("leaf3", "198.18.0.5", "frr")


def test_parameters_are_strict() -> None:
    with pytest.raises(Exception, match="unknown parameter"):
        RackIn.parse_params({"device": "leaf3", "colour": "red"})
    assert len(LINKS) == 6


def test_a_device_without_an_address_cannot_be_reached() -> None:
    with pytest.raises(InventoryError):
        nc.device_target(
            working_set("leaf3").__class__(
                **{**working_set("leaf3").__dict__, "primary_ip4": None, "oob_ip": None}
            )
        )


def test_the_loopback_is_the_address_netbox_marks_loopback_else_the_one_on_lo() -> None:
    ws = working_set("leaf3")
    assert nc.loopback_of(ws) == "198.18.255.5"  # on "lo", no role
    lo = ws.interfaces[0]
    marked = replace(
        lo, name="Loopback0", ip_addresses=(replace(lo.ip_addresses[0], role="loopback"),)
    )
    swp1 = replace(
        ws.interfaces[1], ip_addresses=(replace(lo.ip_addresses[0], address="198.18.9.9/32"),)
    )
    assert nc.loopback_of(replace(ws, interfaces=(swp1, marked))) == "198.18.255.5"
    assert nc.loopback_of(replace(ws, interfaces=(swp1, replace(lo, name="Loopback0")))) is None


def test_an_installed_route_is_a_current_active_entry_of_get_route_to() -> None:
    active = {"198.18.255.13/32": [{"current_active": False}, {"current_active": True}]}
    assert nc.route_installed(active, "198.18.255.13")
    assert not nc.route_installed(
        {"198.18.255.13/32": [{"current_active": False}]}, "198.18.255.13"
    )
    assert not nc.route_installed({"198.18.255.0/24": [{"current_active": True}]}, "198.18.254.1")
    assert not nc.route_installed({}, "198.18.255.13")


# ---- the device steps, on NetBox and devices in memory ---------------------------------------

CONNECTED = [(*link[:6], "connected") for link in LINKS]  # leaf3's cables, once the run wrote them
FACTORY = "hostname leaf3\n!\n"


def fabric(
    mode: Mode, missing: dict[str, set[str]] | None = None, bird2: Iterable[str] = ()
) -> dict[str, MemoryDevice]:
    """leaf3 with its factory configuration; the spines running what NetBox rendered before
    leaf3's cables were connected. The devices named in ``bird2`` have a driver shaped like
    napalm-bird2 (no commit-confirm, no LLDP, no get_route_to)."""
    missing = {n: set(m) for n, m in (missing or {}).items()}
    for name in bird2:
        missing[name] = missing.get(name, set()) | BIRD2_LACKS
    running = {"leaf3": FACTORY} | {n: rendering(n, "service") for n in ("spine1", "spine2")}
    return {
        n: MemoryDevice(mode, n, text, missing.get(n, ()), "bird2" if n in bird2 else "frr")
        for n, text in running.items()
    }


def without_password(text: str) -> str:
    return text.replace(PASSWORD, "<removed>")


def rack_in(**params: Any) -> RackIn:
    return RackIn(RackIn.parse_params({"device": "leaf3", **params}))


def test_the_plan_configures_what_netbox_renders_in_service_sanitised() -> None:
    devices, nb = fabric(Mode.PLAN), RenderingNetBox(Mode.PLAN, CONNECTED)
    rb = rack_in()
    diffs = RackIn.plan_device_config.plan(rb, context(rb, Mode.PLAN, devices, nb))
    assert nb.rendered == [("leaf3", "service"), ("spine1", "service"), ("spine2", "service")]
    assert [d.target for d in diffs] == [
        f"{n} configuration" for n in ("leaf3", "spine1", "spine2")
    ]
    leaf3 = diffs[0]
    assert "+ neighbor 198.18.1.4 password <removed>" in leaf3.text
    assert (leaf3.before, leaf3.after) == (
        FACTORY,
        without_password(rendering("leaf3", "service", CONNECTED)),
    )
    for diff in diffs:  # the plan holds no secret: the record and the review will not either
        assert PASSWORD not in f"{diff.text}{diff.before}{diff.after}"
    # nothing was written, and no device was sent a command (MemoryDevice.cli fails the test)
    assert all(not d.commits for d in devices.values())


def test_the_commit_sends_netbox_rendering_with_its_secrets_or_refuses_a_drift() -> None:
    devices, nb = fabric(Mode.RUN), RenderingNetBox(Mode.RUN, CONNECTED)
    rb = rack_in(confirm_within_s=120)
    ctx = context(rb, Mode.RUN, devices, nb)
    diffs = RackIn.plan_device_config.plan(rb, ctx)
    evidence = fn(RackIn.commit_device_config.apply_func)(rb, ctx, diffs)
    assert evidence == {"committed": ["leaf3", "spine1", "spine2"], "revert_in_s": 120}
    committed, revert_in, _ = devices["leaf3"].commits[0]
    assert committed == rendering("leaf3", "service", CONNECTED) and revert_in == 120
    assert PASSWORD in committed  # the device gets the real rendering
    assert fn(RackIn.commit_device_config.verify_func)(rb, ctx, diffs)

    # NetBox renders spine2 otherwise by the time of the commit: refused, leaf3 and spine1 back
    devices, nb = fabric(Mode.RUN), RenderingNetBox(Mode.RUN, CONNECTED)
    ctx = context(rb, Mode.RUN, devices, nb)
    diffs = RackIn.plan_device_config.plan(rb, ctx)
    nb.renders[("spine2", "service")] = rendering("spine2", "service", CONNECTED) + "log x\n"
    with pytest.raises(DriftError, match="spine2: NetBox now renders another configuration"):
        fn(RackIn.commit_device_config.apply_func)(rb, ctx, diffs)
    assert devices["leaf3"].running == FACTORY
    assert devices["spine1"].running == rendering("spine1", "service")
    assert not devices["spine2"].commits


def test_the_loopbacks_are_checked_with_get_route_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runbooks.library.rack_steps.time.sleep", lambda s: None)
    devices = fabric(Mode.RUN)
    routes = {"leaf3": ["198.18.255.1", "198.18.255.2"], "spine1": ["198.18.255.5"]}
    routes["spine2"] = ["198.18.255.5"]
    for name, addresses in routes.items():
        for address in addresses:
            devices[name].routes[f"{address}/32"] = {
                f"{address}/32": [{"protocol": "bgp", "current_active": True}]
            }
    rb = rack_in(settle_timeout_s=0.05)
    ctx = context(rb, Mode.RUN, devices, RenderingNetBox(Mode.RUN, CONNECTED))
    evidence = RackIn.verify_loopbacks_answer.func(rb, ctx)
    assert evidence == {
        "routed": [
            "leaf3 → spine1 198.18.255.1",
            "leaf3 → spine2 198.18.255.2",
            "spine1 → leaf3 198.18.255.5",
            "spine2 → leaf3 198.18.255.5",
        ]
    }
    devices["spine2"].routes["198.18.255.5/32"]["198.18.255.5/32"][0]["current_active"] = False
    with pytest.raises(VerificationError, match="spine2 has no route to leaf3's loopback"):
        RackIn.verify_loopbacks_answer.func(rb, ctx)


def test_a_check_a_driver_cannot_answer_is_named_in_the_plan_and_not_passed_in_the_run() -> None:
    missing = {"leaf3": {"get_route_to", "get_lldp_neighbors"}}
    rb = rack_in()
    plan = context(rb, Mode.PLAN, fabric(Mode.PLAN, missing), RenderingNetBox(Mode.PLAN))
    evidence = RackIn.drivers_can_answer.func(rb, plan)
    assert evidence["cannot_check"] == [
        {
            "check": "Post-check: LLDP matches the NetBox cables, interface by interface",
            "device": "leaf3",
            "platform": "frr",
            "driver": "frr",
            "why": "driver frr has no get_lldp_neighbors",
        },
        {
            "check": "Post-check: the loopbacks are routed both ways",
            "device": "leaf3",
            "platform": "frr",
            "driver": "frr",
            "why": "driver frr has no get_route_to",
        },
    ]
    assert evidence["warnings"][0].startswith("Post-check: LLDP matches the NetBox cables")
    assert "cannot check on frr (leaf3)" in evidence["warnings"][1]
    full = context(rb, Mode.PLAN, fabric(Mode.PLAN), RenderingNetBox(Mode.PLAN))
    assert RackIn.drivers_can_answer.func(rb, full)["cannot_check"] == []

    run = context(rb, Mode.RUN, fabric(Mode.RUN, missing), RenderingNetBox(Mode.RUN))
    lldp = RackIn.verify_lldp_matches_cables.func(rb, run)
    assert lldp == {
        "not_checked": ["leaf3: not checked on frr: driver frr has no get_lldp_neighbors"]
    }
    devices = fabric(Mode.RUN, missing)
    for spine in ("spine1", "spine2"):
        devices[spine].routes["198.18.255.5/32"] = {"198.18.255.5/32": [{"current_active": True}]}
    run = context(rb, Mode.RUN, devices, RenderingNetBox(Mode.RUN))
    routed = RackIn.verify_loopbacks_answer.func(rb, run)
    assert routed["not_checked"] == ["leaf3: not checked on frr: driver frr has no get_route_to"]
    assert routed["routed"] == ["spine1 → leaf3 198.18.255.5", "spine2 → leaf3 198.18.255.5"]


# ---- a device whose driver has no commit-confirm (napalm-bird2's shape) ----------------------

CONFIGURE = "Configure leaf3 and its cable peers as NetBox renders them"


def test_a_device_without_commit_confirm_is_named_in_the_plan_and_not_confirmed() -> None:
    rb = rack_in()
    devices, nb = fabric(Mode.PLAN, bird2=["leaf3"]), RenderingNetBox(Mode.PLAN, CONNECTED)
    ctx = context(rb, Mode.PLAN, devices, nb)
    evidence = RackIn.drivers_can_answer.func(rb, ctx)
    (entry,) = [c for c in evidence["cannot_check"] if c["check"].startswith(CONFIGURE)]
    assert (entry["device"], entry["platform"], entry["driver"]) == ("leaf3", "bird2", "bird2")
    assert entry["why"].startswith(
        "driver bird2 has no has_pending_commit/confirm_commit (NAPALM's commit-confirm): "
        "committed without revert_in"
    )
    assert "only the run's undo puts its configuration back" in entry["why"]
    warnings = [w for w in evidence["warnings"] if w.startswith(CONFIGURE)]
    assert len(warnings) == 1 and "no commit-confirm on bird2 (leaf3): driver bird2" in warnings[0]
    assert not any("spine" in w for w in evidence["warnings"])  # FRR has commit-confirm

    diffs = RackIn.plan_device_config.plan(rb, ctx)
    assert [nc.device_of(d) for d in diffs] == ["leaf3", "spine1", "spine2"]
    assert rs.state(ctx).to_confirm == {"spine1", "spine2"}
    confirms = RackIn.plan_confirm_config.plan(rb, ctx)
    assert [d.target for d in confirms] == ["spine1 configuration", "spine2 configuration"]


def test_a_cable_peer_without_commit_confirm_is_not_waited_for_either() -> None:
    """The peers' sessions change only at run time (their cables are connected then): the
    plan names those to confirm from their drivers."""
    rb = rack_in()
    devices = fabric(Mode.PLAN, bird2=["spine2"])
    devices["spine1"].running = devices["spine2"].running = "hostname x\n"
    ctx = context(rb, Mode.PLAN, devices, RenderingNetBox(Mode.PLAN))
    cables = Diff(target="cable #3", summary="planned → connected")
    ctx.results["plan_cables_connected"] = StepResult(
        "plan_cables_connected", "", StepKind.CHANGE, Status.PLANNED, diffs=(cables,)
    )
    RackIn.plan_device_config.plan(rb, ctx)
    assert rs.state(ctx).to_confirm == {"leaf3", "spine1"}
    evidence = RackIn.drivers_can_answer.func(rb, ctx)
    named = [c["device"] for c in evidence["cannot_check"] if c["check"].startswith(CONFIGURE)]
    assert named == ["spine2"]


def test_a_device_without_commit_confirm_is_committed_without_a_timer_and_undone_by_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Committed without revert_in (the gateway refuses one), the others with it; the run's
    confirmation waits for those only; a failing post-check, and the undo puts it back."""
    monkeypatch.setattr("runbooks.library.rack_in.time.sleep", lambda s: None)
    devices, nb = fabric(Mode.RUN, bird2=["leaf3"]), RenderingNetBox(Mode.RUN, CONNECTED)
    assert devices["leaf3"].missing >= NO_COMMIT_CONFIRM
    rb = rack_in(confirm_within_s=120, settle_timeout_s=0.01)
    ctx = context(rb, Mode.RUN, devices, nb)
    diffs = RackIn.plan_device_config.plan(rb, ctx)
    evidence = fn(RackIn.commit_device_config.apply_func)(rb, ctx, diffs)
    assert evidence == {
        "committed": ["leaf3", "spine1", "spine2"],
        "revert_in_s": 120,
        "without_commit_confirm": ["leaf3"],
    }
    assert [c[1] for c in devices["leaf3"].commits] == [None]
    assert [c[1] for n in ("spine1", "spine2") for c in devices[n].commits] == [120, 120]
    assert devices["leaf3"].running == rendering("leaf3", "service", CONNECTED)
    assert fn(RackIn.device_config_in_place.verify_func)(rb, ctx, diffs)

    ctx.results["plan_device_config"] = StepResult(
        "plan_device_config", "", StepKind.CHANGE, Status.CHANGED, diffs=tuple(diffs)
    )
    confirms = RackIn.plan_confirm_config.plan(rb, ctx)
    assert [d.target for d in confirms] == ["spine1 configuration", "spine2 configuration"]
    assert not fn(RackIn.configs_confirmed.verify_func)(rb, ctx, confirms)  # the spines pending

    # the post-check fails (no BGP session comes up): the run undoes the configuration step
    with pytest.raises(VerificationError, match="leaf3: no BGP session to spine1"):
        RackIn.verify_bgp_established.func(rb, ctx)
    fn(RackIn.restore_device_config.undo_func)(rb, ctx, diffs)
    assert devices["leaf3"].running == FACTORY
    assert devices["leaf3"].commits[-1] == (FACTORY, None, ())  # the recorded one, committed
    for spine in ("spine1", "spine2"):  # rolled back: their commit-confirm cancelled
        assert devices[spine].running == rendering(spine, "service")
        assert not devices[spine].pending and len(devices[spine].commits) == 1


def test_the_library_sends_no_vendor_command_and_edits_no_vendor_text() -> None:
    """The runbooks speak NAPALM's API and NetBox's renderings only: what differs by platform
    is in the drivers and the templates."""
    library = Path(rs.__file__).parent
    vendor = re.compile(r"\bshow (ip|bgp|run|interfaces?|lldp|route)|vtysh|\bfrr\b|\.cli\(", re.I)
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(library.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if vendor.search(line)
    ]
    assert found == []


def test_the_doctests_of_the_shared_module() -> None:
    import doctest

    assert doctest.testmod(nc).failed == 0


def test_both_runbooks_are_found_through_runbooks_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    from runbooks.core import registry

    monkeypatch.setenv("RUNBOOKS_MODULES", "runbooks.library.rack_in,runbooks.library.rack_out")
    found = registry.discover()
    assert found["rack-in"] is RackIn
    assert found["rack-out"].instruction.startswith("8 ")


def test_a_device_whose_compare_would_write_is_named_for_its_local_diff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plan diffs an IOS-like device locally (its driver's compare writes to flash and
    sets 'file prompt quiet'): the pre-check says so for the reviewer."""
    reason = "NAPALM's ios driver copies the candidate to flash and sets 'file prompt quiet'"
    rb = rack_in()
    devices, nb = fabric(Mode.PLAN), RenderingNetBox(Mode.PLAN, CONNECTED)
    monkeypatch.setattr(
        type(devices["spine1"]),
        "compared_locally",
        lambda self: reason if self.target.name == "spine1" else "",
    )
    evidence = RackIn.drivers_can_answer.func(rb, context(rb, Mode.PLAN, devices, nb))
    local = [w for w in evidence.get("warnings", []) if "made locally" in w]
    assert local == [
        "spine1: configuration diff made locally from the running configuration, not by the "
        f"device ({reason})"
    ]
