"""Shared by the rack-in and rack-out lab tests: a lab held for one test, engines with
injected faults, and a snapshot of everything a run may touch (to prove a rollback exact).

The lab is shared by every test session on this machine. `rack_lab` resets it and then holds
the lab's reset lock and NetBox's lock for the test, so that another session's reset cannot
pull the devices or the database from under a run (theirs wait for ours; the lab's own
`reset` waits up to 300 s for its lock). It resets again afterwards unless the next test
resets first: a lab left racked out would fail the next session's `lab` fixture (it waits for
every seeded BGP session).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from runbooks.config import netbox_settings
from runbooks.core.context import RunContext, confirm_all
from runbooks.core.engine import Engine
from runbooks.core.errors import RejectedError
from runbooks.core.gateway import Gateway, Mode, reads, writes
from runbooks.core.results import Diff
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_writes import Applied
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.lab import frr, netbox, network
from runbooks.lab import lab as lab_ops

log = logging.getLogger(__name__)
DEVICES = ("spine1", "spine2", "leaf1", "leaf2", "leaf3")
MODULES = "runbooks.library.rack_in,runbooks.library.rack_out"


@pytest.fixture
def rack_lab(lab: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The seeded lab, held for this test; NetBox and device credentials in the environment."""
    url, token = netbox.credentials("operator")
    ssh = frr.device_ssh_params("leaf3")
    monkeypatch.setenv("RUNBOOKS_NETBOX_URL", url)
    monkeypatch.setenv("RUNBOOKS_NETBOX_TOKEN", token)
    monkeypatch.setenv("RUNBOOKS_DEVICE_USERNAME", ssh["username"])
    monkeypatch.setenv("RUNBOOKS_DEVICE_KEY_FILE", ssh["key_file"])
    monkeypatch.setenv("RUNBOOKS_DEVICE_TIMEOUT", "20")
    # held: nobody else's reset in the middle; left seeded for whatever comes next (the next
    # session's `lab` fixture waits for every seeded BGP session) unless the next test resets
    # first anyway: one reset between two rack tests instead of two (~4 s each)
    with lab_ops.held(reset_first=True):
        yield lab
        if not next_test_resets_first():
            lab_ops.reset()


# What resets the lab before its test (the fixture names), and the test pytest runs after the
# one being torn down (set by tests/lab/conftest.py's pytest_runtest_teardown).
RESET_FIRST = frozenset({"rack_lab", "lab_reset"})
following: dict[str, pytest.Item | None] = {"item": None}


def next_test_resets_first() -> bool:
    item = following["item"]
    return item is not None and bool(RESET_FIRST & set(getattr(item, "fixturenames", ())))


Factory = Callable[[RunContext, str], Gateway]


def engine(tmp_path: Path, factories: dict[type[Gateway], Factory] | None = None) -> Engine:
    store = RecordStore(tmp_path / "records.sqlite3")
    return Engine(store, "olivia", confirmer=confirm_all(), gateway_factories=factories or {})


def device_gateway(cls: type[NetworkGateway], mode: Mode, name: str, run_id: str = "") -> Any:
    ssh = frr.device_ssh_params(name)
    target = DeviceTarget(name, ssh["host"], "frr")
    creds = Credentials(ssh["username"], key_file=ssh["key_file"], timeout=20)
    return cls(mode, target, creds, run_id)


def devices_with(faulty: dict[str, type[NetworkGateway]]) -> dict[type[Gateway], Factory]:
    """A factory override: the named devices get a faulty gateway, the others the real one."""

    def build(ctx: RunContext, key: str) -> Gateway:
        cls = faulty.get(key, NetworkGateway)
        gw: Gateway = device_gateway(cls, ctx.mode, key, ctx.run_id)
        return gw

    return {NetworkGateway: build}


class RejectingDevice(NetworkGateway):
    """The device refuses every configuration: vtysh rejects a line in the candidate."""

    @writes
    def commit(
        self,
        candidate: str,
        revert_in: int | None = None,
        replace: bool = True,
        secret_sources: Sequence[str] = (),
    ) -> str:
        bad = candidate + "interface lo\n ip addresss bogus\nexit\n"
        return super().commit(bad, revert_in, replace, secret_sources)


class LLDPSeesStrangers(NetworkGateway):
    """LLDP reports a neighbour NetBox does not cable to the device (a post-check fails)."""

    @reads
    def lldp_neighbors(self) -> dict[str, Any]:
        return {
            name: [{"hostname": "stranger", "port": "eth9"}] for name in super().lldp_neighbors()
        }


class BGPDown(NetworkGateway):
    """Every BGP session is reported down (a post-check fails)."""

    @reads
    def bgp_neighbors(self) -> dict[str, Any]:
        data = super().bgp_neighbors()
        for vrf in data.values():
            for peer in vrf.get("peers", {}).values():
                peer["is_up"] = False
        return data


def netbox_failing_on(fragment: str) -> dict[type[Gateway], Factory]:
    """A NetBox whose write of any diff whose target contains ``fragment`` fails."""

    class FailingNetBox(NetBoxGateway):
        @writes
        def apply(self, diffs: Any) -> Applied:
            if any(fragment in d.target for d in diffs if isinstance(d, Diff)):
                raise RejectedError(f"injected: NetBox refused the write of {fragment}")
            return super().apply(diffs)

    def build(ctx: RunContext, key: str) -> Gateway:
        settings = netbox_settings()
        assert settings is not None
        return FailingNetBox(settings, ctx.mode, run_id=ctx.run_id, runbook=ctx.runbook.name)

    return {NetBoxGateway: build}


def snapshot() -> dict[str, Any]:
    """Everything a rack run may change: running and startup configs, NetBox's objects."""
    state: dict[str, Any] = {}
    for name in DEVICES:
        gw = device_gateway(NetworkGateway, Mode.PLAN, name)
        try:
            state[f"{name} running"] = gw.config()
            state[f"{name} startup"] = config_lines(gw.config("startup"))
            state[f"{name} pending commit"] = gw.has_pending_commit()
        finally:
            gw.close()
        state[f"{name} management address"] = management_addresses(name)
    settings = netbox_settings()
    assert settings is not None
    nb = NetBoxGateway(settings, Mode.PLAN)
    try:
        keep = {
            "dcim.device": ("name", "status", "rack", "position", "face", "primary_ip4"),
            "dcim.cable": ("status",),
            "ipam.ipaddress": ("address", "status", "assigned_object_id"),
            "extras.journalentry": ("comments",),
        }
        for obj_type, fields in keep.items():
            state[obj_type] = {
                o["id"]: {f: _plain(o.get(f)) for f in fields} for o in nb.find(obj_type)
            }
    finally:
        nb.close()
    return state


def management_addresses(name: str) -> list[str]:
    """The addresses on the device's management interface, as its kernel holds them: the
    box's own, which no commit, undo or commit-confirm revert may take away."""
    ns = network.netns_name(name)
    shown = network.run(["ip", "-n", ns, "-j", "-4", "addr", "show", "dev", "eth0"]).stdout
    return [str(a.address) for a in network.parse_addresses(shown)]


def snapshot_journal() -> list[str]:
    """Every NetBox journal entry's text."""
    settings = netbox_settings()
    assert settings is not None
    nb = NetBoxGateway(settings, Mode.PLAN)
    try:
        return [str(o.get("comments")) for o in nb.find("extras.journalentry")]
    finally:
        nb.close()


def config_lines(text: str) -> list[str]:
    """A configuration's lines without what FRR writes on its own (version, ``!``, ``end``):
    a startup file written by a commit and the one the lab started with then compare."""
    skip = ("!", "end", "", "line vty")  # an empty ``line vty`` block: FRR writes none back
    return [
        line
        for line in text.splitlines()
        if line.strip() not in skip and not line.startswith("frr version")
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("value", value.get("id", value.get("name")))
    return value


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs: a device's configuration by name, NetBox objects down to the field."""
    out = []
    for key, was in before.items():
        now = after.get(key)
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            for oid in sorted(set(was) | set(now), key=str):
                if was.get(oid) != now.get(oid):
                    out.append(f"{key} #{oid}: {was.get(oid)} -> {now.get(oid)}")
        else:
            out.append(key)
    return out
