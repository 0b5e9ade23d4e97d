"""network-maintenance without a lab: NetBox's reads and renderings in memory
(`rack_data.RenderingNetBox`), each device a `rack_data.MemoryDevice` holding its raw running
configuration (a BGP password planted in every one), the real engine and record store, and
the configuration history a real git repository in a temporary directory.

The fleet: spine1 compliant, leaf1 drifted (a line NetBox does not render), spine2
unreachable, leaf2 not renderable (NetBox refuses its rendering).
"""

from __future__ import annotations

import doctest
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.errors import ConnectError, GatewayTimeout, RejectedError, UnsupportedError
from runbooks.core.gateway import Gateway, Mode, reads
from runbooks.core.results import RunStatus
from runbooks.core.store import RecordStore
from runbooks.gateways import network
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import DeviceTarget, NetworkGateway
from runbooks.gateways.network_guard import ReadOnlyDriver
from runbooks.library import network_history, network_maintenance, network_survey
from runbooks.library.network_history import ConfigHistory
from runbooks.library.network_maintenance import FLEET_QUERY, NetworkMaintenance
from tests.unit.gateways.network_fake import CREDS, RecordingDriver
from tests.unit.library.rack_data import (
    IDS,
    PASSWORD,
    MemoryDevice,
    RenderingNetBox,
    rendering,
    working_set,
)

FLEET = ("leaf1", "leaf2", "spine1", "spine2")
DRIFT = "ip route 203.0.113.0/24 Null0"
COUNTERS = {"swp1": {"rx_errors": 7, "tx_errors": 0, "rx_discards": 0, "tx_discards": 0}}


class Device(MemoryDevice):
    """A device in memory that also answers get_interfaces_counters (the gateway's ``_get``),
    counts its sessions, and, when ``down``, cannot be reached at all."""

    down = False
    busy: list[int] = []  # devices surveyed at this moment, shared (the pool)
    peak = 0  # the most devices surveyed at once (the fixture resets it)
    lock = threading.Lock()

    def _get(self, getter: str, action: str, **kwargs: Any) -> Any:
        assert getter == "get_interfaces_counters", getter
        self._getter(getter)
        return COUNTERS

    @reads
    def config(self, retrieve: str = "running") -> str:
        if self.down:
            raise ConnectError(f"{self.target.name}: connecting timed out")
        with Device.lock:
            Device.busy.append(1)
            Device.peak = max(getattr(Device, "peak", 0), len(Device.busy))
        time.sleep(0.02)  # long enough for the pool's other workers to start theirs
        with Device.lock:
            Device.busy.pop()
        self.logins += 1
        return super().config(retrieve)


class Unreachable(Device):
    down = True


class FleetNetBox(RenderingNetBox):
    """NetBox's device list answering the selection, renderings refused for some devices."""

    def __init__(self, mode: Mode, refuse: tuple[str, ...] = ()) -> None:
        super().__init__(mode)
        self.refuse = refuse
        self.filters: list[dict[str, Any]] = []
        self.records: dict[str, dict[str, Any]] = {}  # records to answer instead

    @reads
    def find(self, obj_type: str, **filters: Any) -> list[dict[str, Any]]:
        assert obj_type == "dcim.device"
        self.filters.append(filters)
        names = filters.get("name", FLEET)
        return [self.records.get(name, record(name)) for name in names]

    @reads
    def render_config(self, device_id: int, context: Mapping[str, Any] | None = None) -> str:
        name = next(n for n, i in IDS.items() if i == device_id)
        if name in self.refuse:
            raise RejectedError(f"NetBox refused render-config of device #{device_id}: no template")
        return super().render_config(device_id, context)


def record(name: str) -> dict[str, Any]:
    """A device as NetBox's REST list gives it (``fields`` of `DEVICE_FIELDS`)."""
    ws = working_set(name)
    return {
        "id": ws.id,
        "name": name,
        "platform": {"name": "FRRouting", "slug": "frr"},
        "primary_ip4": {"address": ws.primary_ip4},
        "oob_ip": None,
        "config_context": {},
    }


@pytest.fixture(autouse=True)
def fleet_in_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The working sets of ``rack_data`` for the fleet's GraphQL request; the history in
    a temporary directory; the pool's peak reset."""

    def sets(nb: NetBoxGateway, names: list[str], query: str) -> dict[str, DeviceWorkingSet]:
        assert query == network_maintenance.CONNECTED_QUERY  # no config contexts: not needed
        return {name: working_set(name) for name in names if name in IDS}

    monkeypatch.setattr(network_maintenance, "working_sets", sets)
    monkeypatch.setenv("RUNBOOKS_CONFIG_HISTORY", str(tmp_path / "history"))
    Device.peak = 0


def running(name: str) -> str:
    """The device's raw running configuration: NetBox's rendering (password and all), and on
    leaf1 one line more."""
    text = rendering(name, "service")
    return text + DRIFT + "\n" if name == "leaf1" else text


Factories = dict[type[Gateway], Callable[[RunContext, str], Gateway]]


def factories(devices: dict[str, Device] | None = None) -> Factories:
    """NetBox and the devices for each plan or run, made in its mode."""

    def device(ctx: RunContext, key: str) -> Gateway:
        cls = Unreachable if key == "spine2" else Device
        made = cls(ctx.mode, key, running(key))
        if devices is not None:
            devices[key] = made
        return made

    return {
        NetBoxGateway: lambda ctx, key: FleetNetBox(ctx.mode, refuse=("leaf2",)),
        NetworkGateway: device,
    }


def maintenance(**params: Any) -> NetworkMaintenance:
    return NetworkMaintenance(NetworkMaintenance.parse_params(params))


def engine(store_path: Path, devices: dict[str, Device] | None = None) -> Engine:
    return Engine(RecordStore(store_path), "olivia", gateway_factories=factories(devices))


def evidence(steps: Any, name: str) -> dict[str, Any]:
    return dict(next(s for s in steps if s.step == name).evidence)


# ---- the plan: the review document's summary ---------------------------------------------------


def test_the_plan_names_each_device_by_its_compliance(store_path: Path) -> None:
    plan = engine(store_path).plan(maintenance(role="spine,leaf"))
    assert plan.refusal is None
    summary = evidence(plan.steps, "compliance_summary")
    assert summary["compliant"] == ["spine1"]
    assert list(summary["drifted"]) == ["leaf1"]
    assert f"-{DRIFT}" in summary["drifted"]["leaf1"]  # the device's diff to NetBox's render
    assert list(summary["unreachable"]) == ["spine2"]
    assert "timed out" in summary["unreachable"]["spine2"]
    assert list(summary["not_renderable"]) == ["leaf2"]
    assert summary["warnings"] == [
        f"spine2 unreachable: {summary['unreachable']['spine2']}",
        f"leaf2 not renderable: {summary['not_renderable']['leaf2']}",
    ]
    # the plan shows digests, not configurations; no secret anywhere in it
    surveyed = evidence(plan.steps, "survey_devices")["devices"]
    assert "config" not in surveyed["spine1"] and len(surveyed["spine1"]["sha256"]) == 64
    assert PASSWORD not in json.dumps(plan.to_dict())
    # one change: the commit to the history, not reversible
    history = next(s for s in plan.steps if s.step == "plan_history_commit")
    assert [d.kind for d in history.diffs] == ["create"] and not history.reversible


def test_the_plan_hash_does_not_move_with_the_fleet(store_path: Path) -> None:
    """A nightly change approved once is granted each night: what it reads (drift, a device
    down) is evidence, which the hash leaves out."""
    first = engine(store_path).plan(maintenance())
    net = factories()
    net[NetworkGateway] = lambda ctx, key: Device(ctx.mode, key, rendering(key, "service"))
    second = Engine(RecordStore(store_path), "olivia", gateway_factories=net).plan(maintenance())
    assert evidence(second.steps, "compliance_summary")["compliant"] == [
        "leaf1",
        "spine1",
        "spine2",
    ]
    assert first.content_hash == second.content_hash


def test_the_selection_is_netbox_filters_and_drivers(store_path: Path) -> None:
    nb = FleetNetBox(Mode.PLAN)
    nb.records["leaf2"] = {**record("leaf2"), "platform": None}
    nb.records["spine2"] = {**record("spine2"), "platform": {"slug": "acme-os-nodriver"}}
    net = factories()
    net[NetBoxGateway] = lambda ctx, key: nb
    plan = Engine(RecordStore(store_path), "olivia", gateway_factories=net).plan(
        maintenance(site="dc-a", role="spine,leaf", tag=["core"], status="active,staged")
    )
    assert nb.filters[0] == {
        "site": ["dc-a"],
        "role": ["spine", "leaf"],
        "tag": ["core"],
        "status": ["active", "staged"],
        "fields": network_maintenance.DEVICE_FIELDS,
    }
    chosen = evidence(plan.steps, "select_devices")
    assert sorted(chosen["devices"]) == ["leaf1", "spine1"]
    assert "no platform" in chosen["not_covered"]["leaf2"]
    assert "no NAPALM driver 'acme-os-nodriver'" in chosen["not_covered"]["spine2"]
    assert sorted(evidence(plan.steps, "survey_devices")["devices"]) == ["leaf1", "spine1"]
    assert plan.steps[0].targets == (
        "NetBox devices site=dc-a role=spine,leaf tag=core status=active,staged",
    )


def test_no_device_selected_refuses_the_plan(store_path: Path) -> None:
    net = factories()
    empty = FleetNetBox(Mode.PLAN)
    empty.find = lambda obj_type, **filters: []  # type: ignore[method-assign]
    net[NetBoxGateway] = lambda ctx, key: empty
    plan = Engine(RecordStore(store_path), "olivia", gateway_factories=net).plan(
        maintenance(site="nowhere")
    )
    assert plan.refusal is not None and "no device matches" in plan.refusal


def test_names_that_give_one_history_file_refuse_the_plan(store_path: Path) -> None:
    nb = FleetNetBox(Mode.PLAN)
    nb.records["leaf1"] = {**record("leaf1"), "name": "leaf 1"}
    nb.records["leaf2"] = {**record("leaf2"), "name": "leaf/1"}
    net = factories()
    net[NetBoxGateway] = lambda ctx, key: nb
    plan = Engine(RecordStore(store_path), "olivia", gateway_factories=net).plan(maintenance())
    assert plan.refusal is not None and "leaf_1.cfg: 'leaf 1', 'leaf/1'" in plan.refusal
    assert "survey_devices" not in {s.step for s in plan.steps if s.status == "ok"}


# ---- the run: record, history, evidence --------------------------------------------------------


def test_each_run_backs_up_into_the_record_and_one_commit_naming_it(
    store_path: Path, tmp_path: Path
) -> None:
    devices: dict[str, Device] = {}
    eng = engine(store_path, devices)
    first = eng.run(maintenance())
    second = eng.run(maintenance())
    assert first.status is second.status is RunStatus.SUCCEEDED
    surveyed = evidence(second.steps, "survey_devices")["devices"]
    # the backup in the record: sanitised, the secret's line kept with a placeholder
    assert "<removed>" in surveyed["spine1"]["config"]
    assert surveyed["leaf1"]["interface_errors"] == {"swp1": {"rx_errors": 7}}
    assert surveyed["leaf1"]["bgp"]["expected"] == 2
    assert surveyed["spine1"]["bgp"]["expected"] == 2  # not leaf3's: its cable is planned
    assert surveyed["leaf1"]["logins"] == 1  # one session for the whole survey
    # two runs, two commits, each naming its run; files of the devices reached
    history = ConfigHistory(tmp_path / "history")
    for run in (first, second):
        sha = history.commit_naming(f"run {run.run_id}")
        assert sha is not None
        committed = evidence(run.steps, "plan_history_commit")
        assert committed["commit"] == sha
    files = history.files()
    assert sorted(files) == ["leaf1.cfg", "leaf2.cfg", "spine1.cfg"]  # spine2 unreachable
    assert DRIFT.encode() in files["leaf1.cfg"]
    assert evidence(first.steps, "plan_history_commit")["changed"] == sorted(files)
    assert evidence(second.steps, "plan_history_commit")["changed"] == []  # nothing new
    # no secret in a file, a commit message or the record
    for content in files.values():
        assert PASSWORD.encode() not in content
    record = json.dumps([e.payload for e in RecordStore(store_path).entries()])
    assert PASSWORD not in record and "<removed>" in record


def test_netbox_is_read_while_the_devices_log_in(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The working sets (GraphQL, for the BGP and LLDP evidence) are not waited for before
    the devices are read: a device logs in, answers every getter and compares while the
    request is on its way (the selection needs NetBox's device list only)."""
    compared = threading.Event()
    seen: list[bool] = []
    compare = Device.compare

    def comparing(self: Device, candidate: str, *args: Any, **kwargs: Any) -> str:
        compared.set()
        return compare(self, candidate, *args, **kwargs)

    def sets(nb: NetBoxGateway, names: list[str], query: str) -> dict[str, DeviceWorkingSet]:
        seen.append(compared.wait(timeout=10))
        return {name: working_set(name) for name in names if name in IDS}

    monkeypatch.setattr(Device, "compare", comparing)
    monkeypatch.setattr(network_maintenance, "working_sets", sets)
    result = engine(store_path).run(maintenance())
    assert result.status is RunStatus.SUCCEEDED and seen and all(seen)


def test_netbox_renders_the_fleet_in_a_few_requests_each_device_keeps_its_answer(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renderings are asked in batches (`render_batches`: `RENDERS_AT_ONCE` requests for
    this fleet), not one request per device; each device still gets its own answer: leaf2's
    refusal stays leaf2's (not renderable), the others are compared with their own."""
    asked: list[list[int]] = []
    render_configs = NetBoxGateway.render_configs

    def batched(self: NetBoxGateway, ids: list[int]) -> Any:
        asked.append(list(ids))
        return render_configs(self, ids)

    monkeypatch.setattr(NetBoxGateway, "render_configs", batched)
    monkeypatch.setattr(network_maintenance, "RENDERS_AT_ONCE", 2)
    result = engine(store_path).run(maintenance())
    summary = evidence(result.steps, "compliance_summary")
    assert sorted(map(len, asked)) == [2, 2]
    assert sorted(i for ids in asked for i in ids) == sorted(IDS[name] for name in FLEET)
    assert summary["compliant"] == ["spine1"] and list(summary["drifted"]) == ["leaf1"]
    assert list(summary["not_renderable"]) == ["leaf2"]


def test_a_batch_netbox_does_not_render_is_that_batch_s_devices_only(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NetBox not answering one request of renderings: its devices are not renderable, with
    why; the other batch's devices are compared as ever (spine2 stays unreachable)."""
    render_configs = NetBoxGateway.render_configs

    def timing_out(self: NetBoxGateway, ids: list[int]) -> Any:
        if IDS["leaf1"] in ids:
            raise GatewayTimeout("NetBox at http://netbox did not answer render-config in 30 s")
        return render_configs(self, ids)

    monkeypatch.setattr(NetBoxGateway, "render_configs", timing_out)
    monkeypatch.setattr(network_maintenance, "RENDERS_AT_ONCE", 2)
    result = engine(store_path).run(maintenance())
    summary = evidence(result.steps, "compliance_summary")
    assert sorted(summary["not_renderable"]) == ["leaf1", "leaf2"]
    assert all("did not answer" in why for why in summary["not_renderable"].values())
    assert summary["compliant"] == ["spine1"] and list(summary["unreachable"]) == ["spine2"]


def run_and_history(
    store_path: Path, tmp_path: Path, net: Factories
) -> tuple[Any, dict[str, Any], dict[str, bytes]]:
    """A run with these gateways: its result, its compliance summary, the history's files."""
    result = Engine(RecordStore(store_path), "olivia", gateway_factories=net).run(maintenance())
    assert result.status is RunStatus.SUCCEEDED, result.error
    summary = evidence(result.steps, "compliance_summary")
    return result, summary, ConfigHistory(tmp_path / "history").files()


def test_netbox_not_answering_for_the_evidence_leaves_it_not_checked_the_fleet_goes_on(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The working sets' request failing ends no step: each device's BGP and LLDP are not
    checked, with why, named in the summary; the backups are committed all the same."""

    def hiccup(nb: NetBoxGateway, names: list[str], query: str) -> dict[str, DeviceWorkingSet]:
        raise ConnectError("NetBox: GraphQL request timed out")

    monkeypatch.setattr(network_maintenance, "working_sets", hiccup)
    result, summary, files = run_and_history(store_path, tmp_path, factories())
    surveyed = evidence(result.steps, "survey_devices")["devices"]
    for name in ("leaf1", "leaf2", "spine1"):
        assert surveyed[name]["not_checked"] == [
            "bgp, lldp: NetBox's working sets were not read: NetBox: GraphQL request timed out"
        ]
        assert "bgp" not in surveyed[name] and "lldp" not in surveyed[name]
        assert "timed out" in summary["not_checked"][name]
        assert f"{name} not checked: {summary['not_checked'][name]}" in summary["warnings"]
    assert "spine2" not in summary["not_checked"]  # unreachable says so already
    assert summary["compliant"] == ["spine1"] and list(summary["drifted"]) == ["leaf1"]
    assert sorted(files) == ["leaf1.cfg", "leaf2.cfg", "spine1.cfg"]


def test_a_device_answer_the_evidence_cannot_read_is_that_device_error_not_the_fleet(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """leaf1's counters say "n/a": its interface errors are an error of leaf1's, named in the
    summary (never a silent pass); the other devices and every backup go on."""
    answer = Device._get

    def odd(self: Device, getter: str, action: str, **kwargs: Any) -> Any:
        counters = answer(self, getter, action, **kwargs)
        return {"swp1": {"rx_errors": "n/a"}} if self.target.name == "leaf1" else counters

    monkeypatch.setattr(Device, "_get", odd)
    result, summary, files = run_and_history(store_path, tmp_path, factories())
    surveyed = evidence(result.steps, "survey_devices")["devices"]
    error = surveyed["leaf1"]["interface_errors"]["error"]
    assert error.startswith("the device's answer was not understood: ValueError")
    assert surveyed["leaf1"]["bgp"]["expected"] == 2  # the rest of leaf1's evidence stands
    assert surveyed["spine1"]["interface_errors"] == {"swp1": {"rx_errors": 7}}
    assert summary["not_checked"] == {"leaf1": f"interface_errors: {error}"}
    assert f"leaf1 not checked: interface_errors: {error}" in summary["warnings"]
    assert sorted(files) == ["leaf1.cfg", "leaf2.cfg", "spine1.cfg"]
    assert ConfigHistory(tmp_path / "history").commit_naming(f"run {result.run_id}")


def test_a_survey_that_fails_or_a_logout_that_fails_is_that_device_only(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one device's survey records it unreachable with why; a session that fails to
    close loses nothing of its survey; the fleet goes on."""
    survey = network_survey.survey

    def failing(gw: NetworkGateway, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if gw.target.name == "leaf2":
            raise RuntimeError("a bug")
        return survey(gw, *args, **kwargs)

    def close(self: Device) -> None:
        if self.target.name == "leaf1":
            raise ConnectError("leaf1: the session was gone")

    monkeypatch.setattr(network_survey, "survey", failing)
    monkeypatch.setattr(Device, "close", close)
    result, summary, files = run_and_history(store_path, tmp_path, factories())
    assert summary["unreachable"]["leaf2"] == "the survey failed: RuntimeError: a bug"
    surveyed = evidence(result.steps, "survey_devices")["devices"]
    assert "config" in surveyed["leaf1"] and list(summary["drifted"]) == ["leaf1"]
    assert sorted(files) == ["leaf1.cfg", "spine1.cfg"]


def test_a_run_surveys_each_device_read_only(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a run the gateway is in its plan mode, as in a plan: the driver behind the read-only
    guard (a write is refused, at the gateway and at the wire), and on a driver whose compare
    writes on the device (NAPALM's IOS copies the candidate to flash) no candidate is loaded:
    the diff is made locally. Nothing but reads reaches the driver."""
    monkeypatch.setattr(network, "get_network_driver", lambda name: RecordingDriver)
    RecordingDriver.seen = []
    modes: list[Mode] = []
    wires: list[type] = []
    refused: list[tuple[str, str]] = []

    def device(ctx: RunContext, key: str) -> Gateway:
        target = DeviceTarget(key, f"198.18.0.{IDS[key]}", "cisco_ios", "ios", {}, {})
        modes.append(ctx.mode)
        return NetworkGateway(ctx.mode, target, CREDS, ctx.run_id)

    def counters_and_writes(gw: NetworkGateway) -> dict[str, Any]:
        """The survey's getter, trying to write besides (as a bug would)."""
        wires.append(type(gw._open()))
        for write in (
            lambda: gw.commit("hostname x\n"),
            lambda: gw._call("writing", lambda d: d.load_merge_candidate(config="x")),
            lambda: gw._call("writing", lambda d: d.commit_config()),
        ):
            try:
                write()
            except Exception as exc:
                refused.append((gw.target.name, type(exc).__name__))
        return {}

    monkeypatch.setattr(network_survey, "interface_counters", counters_and_writes)
    net = factories()
    net[NetworkGateway] = device
    _, summary, files = run_and_history(store_path, tmp_path, net)
    assert modes == [Mode.PLAN] * 4 and wires == [ReadOnlyDriver] * 4
    assert sorted(refused) == [
        (name, refusal)
        for name in FLEET
        for refusal in ("DryRunViolation", "ReadOnlyViolation", "ReadOnlyViolation")
    ]
    reads_only = {"open", "close", "get_config", "get_facts", "get_bgp_neighbors"}
    assert {name for name, _ in RecordingDriver.seen} == reads_only | {"get_lldp_neighbors"}
    assert "diffed locally, not on the device" in summary["drifted"]["spine1"]
    assert sorted(summary["drifted"]) == ["leaf1", "spine1", "spine2"]
    assert sorted(files) == ["leaf1.cfg", "leaf2.cfg", "spine1.cfg", "spine2.cfg"]


def test_the_pool_is_bounded(store_path: Path) -> None:
    eng = engine(store_path)
    eng.run(maintenance(parallel=2))
    assert Device.peak == 2
    eng.run(maintenance(parallel=1))
    assert Device.peak == 2  # never more than the pool's size at once


def test_a_getter_the_driver_lacks_is_not_checked_not_failed(store_path: Path) -> None:
    net = factories()
    net[NetworkGateway] = lambda ctx, key: Device(
        ctx.mode, key, rendering(key, "service"), missing={"get_lldp_neighbors"}
    )
    plan = Engine(RecordStore(store_path), "olivia", gateway_factories=net).plan(maintenance())
    spine1 = evidence(plan.steps, "survey_devices")["devices"]["spine1"]
    assert spine1["state"] == "compliant" and "lldp" not in spine1
    assert spine1["not_checked"][0].startswith("lldp: spine1: the frr driver has no")


def test_the_fleet_query_asks_for_a_list_of_names() -> None:
    assert "$names: [String!]!" in FLEET_QUERY
    assert "{name: {in_list: $names}}" in FLEET_QUERY
    assert "$name:" not in FLEET_QUERY and "link_peers" in FLEET_QUERY
    state = network_maintenance.STATE_QUERY
    assert "{name: {in_list: $names}}" in state and "link_peers" in state
    assert "config_context" in FLEET_QUERY and "config_context" not in state
    # the survey's: the connected cables' interfaces only (what its evidence compares)
    connected = network_maintenance.CONNECTED_QUERY
    assert (
        connected.replace(
            "interfaces(filters: {cable: {status: {exact: STATUS_CONNECTED}}}) {", "interfaces {"
        )
        == state
    )
    assert connected.count("STATUS_CONNECTED") == 1


# ---- the pieces ---------------------------------------------------------------------------------


def test_interface_errors_and_summary() -> None:
    counters = {"a": {"rx_errors": 0, "tx_discards": 2}, "b": {"rx_errors": -1}}
    assert network_survey.interface_errors(counters) == {"a": {"tx_discards": 2}}
    assert network_survey.summary({})["counts"] == {
        "compliant": 0,
        "drifted": 0,
        "unreachable": 0,
        "not_renderable": 0,
    }


def test_the_history_masks_every_secret_the_process_has_seen(tmp_path: Path) -> None:
    from runbooks.core import secrets

    secret = "s3cr3t-in-a-description-9"
    secrets.register(secret)
    history = ConfigHistory(tmp_path / "h")
    done = history.commit({"a/b": f"description {secret}\n"}, f"run r1 ({secret})", "olivia")
    assert done.changed == ("a_b.cfg",)
    assert history.files() == {"a_b.cfg": f"description {secrets.MASK}\n".encode()}
    assert history.commit_naming("run r1") == done.sha
    assert history.commit_naming("run r2") is None


def test_the_history_refuses_a_directory_that_is_no_repository(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="not a git repository and not empty"):
        ConfigHistory(tmp_path).commit({"a": "x\n"}, "run r1", "olivia")
    assert ConfigHistory(tmp_path / "none").commit_naming("run r1") is None


def test_unsupported_counters_are_not_checked() -> None:
    gw = Device(Mode.PLAN, "spine1", "hostname spine1\n", missing={"get_interfaces_counters"})
    with pytest.raises(UnsupportedError):
        network_survey.interface_counters(gw)


@pytest.mark.parametrize("module", [network_survey, network_history, network_maintenance])
def test_doctests(module: Any) -> None:
    assert doctest.testmod(module).failed == 0
