"""Rack-in and rack-out on Cisco IOS, Arista EOS and Juniper Junos without a lab.

Three parts, each as small as the orchestration tests allow:

- `MiniNetBox` (``vendor_netbox.py``): NetBox's HTTP API in memory on the real
  `NetBoxGateway`, rendering with the vendor's template
  (``napalm_mock/fabric/<driver>/netbox.j2``) and the render intent of the request body.
- `RecordedDriver`: NAPALM's own mock driver (`napalm.base.mock.MockDriver`) answering from
  the recorded files of ``napalm_mock/fabric/<driver>/<device>/`` (``record.py`` there
  writes them), with the device's configuration kept as state (see the class).
- `VendorFabric`: both, plus a record store and the engine, for one vendor.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from napalm.base import constants as napalm_constants
from napalm.base import exceptions as napalm_errors
from napalm.base.helpers import sanitize_configs
from napalm.base.mock import MockDriver

from runbooks.config import NetBoxSettings
from runbooks.core.context import Confirmation, RunContext
from runbooks.core.engine import Engine
from runbooks.core.gateway import Gateway
from runbooks.core.plan import Plan
from runbooks.core.results import RunResult
from runbooks.core.runbook import Runbook
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from tests.unit.gateways.netbox_fake import TOKEN, URL
from tests.unit.library.rack_data import IDS, LINKS
from tests.unit.library.vendor_netbox import MiniNetBox

FIXTURES = Path(__file__).parents[1] / "gateways" / "napalm_mock" / "fabric"
CREDENTIALS = Credentials("netops", "pw-not-real")
DRIVER_MODULE = "napalm_recorded"  # NAPALM's get_network_driver("recorded") imports it


# ---- the vendors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Vendor:
    """One network OS: its NAPALM driver, NetBox platform, port names and planted secrets
    (every one of them must stay out of plans and records)."""

    driver: str
    platform: str
    platform_name: str
    ports: dict[str, str]  # the fabric's port names (rack_data) → the vendor's
    mgmt: str
    secrets: tuple[str, ...]
    # what the real driver refuses (napalm/<driver>/<driver>.py, commit_config)
    commit_message: bool
    revert_in: Callable[[int], str | None]
    # EOS: a commit-confirm is the driver's config session (see RecordedDriver)
    session_bound: bool = False

    def port(self, name: str) -> str:
        return self.ports.get(name, name)


def _ios_revert_in(seconds: int) -> str | None:
    if not 60 <= seconds <= 7200:
        return "For Cisco IOS devices revert_in is rounded down to the nearest minute"
    return None


def _junos_revert_in(seconds: int) -> str | None:
    if seconds % 60:
        return "For Junos devices revert_in must be a multiple of 60 (60, 120, 180...)"
    return None


IOS_ENABLE_SECRET = "$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM"
EOS_BGP_PASSWORD = "kQ0dF3yPp5nGoIGvmuyGnA=="
# one key per BGP session (per cable of rack_data.LINKS), as they would differ on a network
IOS_BGP_PASSWORDS = {cable: f"0822455D0A16544541{cable:02d}" for cable in range(1, 7)}
JUNOS_BGP_KEYS = {cable: f"$9$Hk5FCA0IhruOBIcyKvL7-Vb2aJGjq{cable:02d}" for cable in range(1, 7)}

VENDORS: dict[str, Vendor] = {
    "ios": Vendor(
        "ios",
        "cisco_ios",
        "Cisco IOS",
        {"swp1": "GigabitEthernet0/1", "swp2": "GigabitEthernet0/2", "swp3": "GigabitEthernet0/3"}
        | {"lo": "Loopback0"},
        "GigabitEthernet0/0",
        (IOS_ENABLE_SECRET, *IOS_BGP_PASSWORDS.values()),
        commit_message=False,
        revert_in=_ios_revert_in,
    ),
    "eos": Vendor(
        "eos",
        "arista_eos",
        "Arista EOS",
        {"swp1": "Ethernet1", "swp2": "Ethernet2", "swp3": "Ethernet3", "lo": "Loopback0"},
        "Management1",
        (EOS_BGP_PASSWORD,),
        commit_message=False,
        revert_in=lambda seconds: None,
        session_bound=True,
    ),
    "junos": Vendor(
        "junos",
        "juniper_junos",
        "Juniper Junos",
        {"swp1": "xe-0/0/0", "swp2": "xe-0/0/1", "swp3": "xe-0/0/2", "lo": "lo0"},
        "em0",
        tuple(JUNOS_BGP_KEYS.values()),
        commit_message=True,
        revert_in=_junos_revert_in,
    ),
}
# the secrets NetBox's templates hold (a secrets store's values in a real NetBox)
TEMPLATE_SECRETS: dict[str, Any] = {
    "enable_secret": IOS_ENABLE_SECRET,
    "ios_bgp_passwords": IOS_BGP_PASSWORDS,
    "eos_bgp_password": EOS_BGP_PASSWORD,
    "junos_bgp_keys": JUNOS_BGP_KEYS,
}
# NAPALM's own sanitising of get_config(sanitized=True), per driver
SANITIZE = {
    "ios": napalm_constants.CISCO_SANITIZE_FILTERS,
    "eos": napalm_constants.EOS_SANITIZE_FILTERS,
    "junos": {  # napalm/junos/junos.py, get_config
        r"^(\s+community\s+)\w+(;.*|\s+{.*)$": r"\1<removed>\2",
        r'^(.*)"\$\d\$\S+"(;.*)$': r"\1<removed>\2",
    },
}


# ---- the devices ----------------------------------------------------------------------------


class Interrupted(BaseException):
    """The process running the runbook dies here (as SIGKILL would kill it): not an
    Exception, so no step, undo or engine handler sees it."""


@dataclass
class DeviceState:
    """What a device keeps whoever is connected: its running configuration, the one before
    the last commit (rollback's target), a commit waiting for its confirmation."""

    name: str
    running: str
    previous: str | None = None
    pending: bool = False
    pending_session: str | None = None  # EOS: the config session waiting for its confirm
    commits: list[tuple[str, int | None]] = field(default_factory=list)  # (text, revert_in)


@dataclass
class Network:
    """The devices of one vendor's fabric, and what goes wrong on purpose: ``bgp_never_up``
    (devices whose sessions never establish), ``refuse_commit`` (devices that reject every
    candidate at commit), ``timer_runs_out`` (a driver method and the device at whose call
    the device's commit-confirm timer has run out: it went back by itself), ``interrupt``
    (likewise, where the runbook's process dies: ``("commit_config", "spine1")``)."""

    vendor: Vendor
    devices: dict[str, DeviceState]
    bgp_never_up: set[str] = field(default_factory=set)
    refuse_commit: set[str] = field(default_factory=set)
    timer_runs_out: tuple[str, str] | None = None
    interrupt: tuple[str, str] | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)  # (device, method)

    def address_owner(self) -> dict[str, str]:
        """p2p address → the device holding it (from the fabric's cables)."""
        out = {}
        for a, _ai, b, _bi, a_ip, b_ip, _status in LINKS:
            out[a_ip], out[b_ip] = a, b
        return out

    def neighbor_states(self, name: str) -> dict[str, bool]:
        """The BGP neighbours the device's running configuration has: address → enabled."""
        text = self.devices[name].running
        found: dict[str, bool] = {}
        if self.vendor.driver == "junos":
            for m in re.finditer(r"^\s*(inactive: )?neighbor (\S+) \{", text, re.M):
                found[m.group(2)] = not m.group(1)
        else:
            for m in re.finditer(r"^\s+neighbor (\d\S+) remote-as ", text, re.M):
                found[m.group(1)] = True
            for m in re.finditer(r"^\s+neighbor (\d\S+) shutdown$", text, re.M):
                found[m.group(1)] = False
        return found

    def session_up(self, name: str, peer_address: str) -> bool:
        """Up when both ends configure it, enabled, and neither is told never to come up."""
        peer = self.address_owner().get(peer_address)
        if peer is None or not self.neighbor_states(name).get(peer_address):
            return False
        if name in self.bgp_never_up or peer in self.bgp_never_up:
            return False
        mine = next(
            (a_ip if a == name else b_ip)
            for a, _ai, b, _bi, a_ip, b_ip, _s in LINKS
            if {a, b} == {name, peer} and peer_address in (a_ip, b_ip)
        )
        return bool(self.neighbor_states(peer).get(mine))

    def reachable(self, start: str, goal: str, without: str) -> bool:
        """Does ``goal`` get routes from ``start`` over established sessions, not via
        ``without``?"""
        seen, todo = {start}, [start]
        owners = self.address_owner()
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            for address in self.neighbor_states(here):
                there = owners.get(address)
                fresh = there and there not in seen and there != without
                if fresh and self.session_up(here, address):
                    seen.add(str(there))
                    todo.append(str(there))
        return False


def recorded(vendor: Vendor, device: str, method: str) -> Any:
    return json.loads((FIXTURES / vendor.driver / device / f"{method}.1").read_text())


class RecordedDriver(MockDriver):  # type: ignore[misc]
    """NAPALM's mock driver whose answers follow the device's configuration.

    NAPALM's mock replays ``<method>.<n>`` files by call count and its load/compare/commit
    keep nothing: a commit does not change what ``get_config`` returns, ``compare_config``
    answers a recorded diff whatever the candidate, a rollback restores nothing. The rack
    runbooks read a device, commit, check, and roll back on failure, so here:

    - the configuration is state (`DeviceState`, kept across connections as on a device):
      compare diffs the candidate against it, commit replaces it (with ``revert_in`` it
      waits for confirm_commit), rollback restores the one before the commit;
    - the converged answers recorded for each device (every session up, every loopback
      routed) are cut to what the running configurations establish: a BGP peer is listed
      when configured, up when both ends configure it enabled; a route when its next hop's
      session is up and leads to the destination;
    - commit_config refuses what the vendor's real driver refuses (a commit message on
      IOS and EOS, a ``revert_in`` IOS or Junos cannot honour, on IOS without the archive
      feature configured);
    - EOS's driver commits with ``revert_in`` through its config session and keeps it: only
      that driver object can confirm or roll back the pending commit (another connection
      is told there is none), and its next load reuses the session, so the discard after
      a compare aborts the pending commit: the device goes back.

    Getters the recorded files do not hold raise NotImplementedError, as the mock does."""

    network: Network  # set on the class `driver_for` builds

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(hostname, username, password, timeout, optional_args)
        self.name = next(n for n, i in IDS.items() if hostname == f"198.18.0.{i}")
        self.vendor = self.network.vendor
        self.path = str(FIXTURES / self.vendor.driver / self.name)
        self.config: str | None = None  # the candidate loaded
        self.merge: bool | None = None
        # EOS's config session of this driver object (the name NAPALM's EOS driver gives it)
        self.config_session: str | None = None

    @property
    def state(self) -> DeviceState:
        return self.network.devices[self.name]

    def _called(self, method: str) -> None:
        self.network.calls.append((self.name, method))
        state = self.state
        if self.network.timer_runs_out == (method, self.name) and state.pending:
            self.network.timer_runs_out = None
            state.running, state.previous, state.pending = str(state.previous), None, False
        if self.network.interrupt == (method, self.name):
            self.network.interrupt = None
            raise Interrupted(f"killed at {method} of {self.name}")

    def __getattribute__(self, name: str) -> Any:
        if name in _STATEFUL:  # not the mock's replay of <name>.<n> files
            object.__getattribute__(self, "_raise_if_closed")()
            object.__getattribute__(self, "_called")(name)
            return object.__getattribute__(self, name)
        if name.startswith("get_"):
            object.__getattribute__(self, "_called")(name)
            object.__getattribute__(self, "_raise_if_closed")()
            path = Path(object.__getattribute__(self, "path")) / f"{name}.1"
            if not path.exists():
                raise NotImplementedError(f"no recorded answer {path.name}")
            data = json.loads(path.read_text())
            return lambda *args, **kwargs: data
        return super().__getattribute__(name)

    # -- getters that follow the configuration
    def get_config(
        self,
        retrieve: str = "all",
        full: bool = False,
        sanitized: bool = False,
        format: str = "text",
    ) -> dict[str, str]:
        configs = {"running": "", "startup": "", "candidate": ""}
        if retrieve in ("running", "all"):
            configs["running"] = self.state.running
        if retrieve in ("startup", "all"):
            configs["startup"] = self.state.running
        if retrieve in ("candidate", "all"):
            configs["candidate"] = self.config or ""
        if sanitized:
            return dict(sanitize_configs(configs, SANITIZE[self.vendor.driver]))
        return configs

    def get_bgp_neighbors(self) -> dict[str, Any]:
        answer = recorded(self.vendor, self.name, "get_bgp_neighbors")
        configured = self.network.neighbor_states(self.name)
        peers = answer["global"]["peers"]
        for address in list(peers):
            if address not in configured:
                del peers[address]
                continue
            up = self.network.session_up(self.name, address)
            peers[address]["is_enabled"] = configured[address]
            peers[address]["is_up"] = up
            if not up:
                peers[address]["uptime"] = -1
                for counts in peers[address]["address_family"].values():
                    for key in counts:
                        counts[key] = min(counts[key], 0)
        return answer  # type: ignore[no-any-return]

    def get_route_to(
        self, destination: str = "", protocol: str = "", longer: bool = False
    ) -> dict[str, Any]:
        answer = recorded(self.vendor, self.name, "get_route_to")
        owners = self.network.address_owner()
        out: dict[str, Any] = {}
        for prefix, routes in answer.items():
            if destination and not _covers(prefix, destination):
                continue
            goal = next(n for n, i in IDS.items() if prefix == f"198.18.255.{i}/32")
            kept = [
                r
                for r in routes
                if self.network.session_up(self.name, r["next_hop"])
                and self.network.reachable(owners[r["next_hop"]], goal, without=self.name)
            ]
            if kept:
                out[prefix] = kept
        return out

    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, Any]:
        """What the box says to a command it does not have (FRR's vtysh JSON included)."""
        return {c: "% Invalid input detected at '^' marker." for c in commands}

    # -- the candidate and the commit
    def load_replace_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None:
        self.merge, self.config = (
            False,
            config if config is not None else Path(str(filename)).read_text(),
        )
        if self.vendor.session_bound and self.config_session is None:
            self.config_session = f"napalm_{id(self)}_{len(self.state.commits)}"

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        raise NotImplementedError("the recorded devices take replace candidates only")

    def compare_config(self, filename: str | None = None, config: str | None = None) -> str:
        if self.config is None:
            return ""
        return _device_diff(self.vendor.driver, self.state.running, self.config)

    def discard_config(self) -> None:
        self.merge, self.config = None, None
        state = self.state
        if self.config_session is not None and self.config_session == state.pending_session:
            state.running, state.previous = str(state.previous), None  # aborted: back
            state.pending, state.pending_session = False, None
        self.config_session = None

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        if message and not self.vendor.commit_message:
            raise NotImplementedError("Commit message not implemented for this platform")
        if revert_in is not None:
            refused = self.vendor.revert_in(revert_in)
            archive = re.search(r"^archive$", self.state.running, re.M)
            if self.vendor.driver == "ios" and not archive:
                refused = "For Cisco devices, revert_in requires 'archive' feature to be enabled."
            if refused:
                raise napalm_errors.CommitConfirmException(refused)
            if self.state.pending:
                raise napalm_errors.CommitError("Pending commit confirm already in process!")
        if self.config is None:
            return
        if self.name in self.network.refuse_commit:
            raise napalm_errors.ReplaceConfigException("% Invalid input detected at '^' marker.")
        state = self.state
        state.previous, state.running = state.running, self.config
        state.pending = revert_in is not None
        state.commits.append((self.config, revert_in))
        self.merge, self.config = None, None
        if self.vendor.session_bound:
            state.pending_session = self.config_session if state.pending else None
            self.config_session = self.config_session if state.pending else None

    def _get_pending_commits(self) -> dict[str, int]:
        """EOS: the config sessions waiting for their confirm, and the seconds left (the
        real driver reads ``show configuration sessions detail``)."""
        state = self.state
        pending = state.pending and state.pending_session is not None
        return {str(state.pending_session): 300} if pending else {}

    def _owns_pending(self) -> bool:
        return not self.vendor.session_bound or self.config_session == self.state.pending_session

    def confirm_commit(self) -> None:
        if not self.state.pending or not self._owns_pending():
            raise napalm_errors.CommitError("No pending commit-confirm found!")
        self.state.pending, self.state.pending_session, self.config_session = False, None, None

    def has_pending_commit(self) -> bool:
        return self.state.pending

    def rollback(self) -> None:
        state = self.state
        if state.pending and not self._owns_pending():
            raise napalm_errors.CommitError(
                "Current config session not found as pending commit-confirm"
            )
        if state.previous is None:
            raise napalm_errors.ReplaceConfigException("Rollback config file does not exist")
        state.running, state.previous, state.pending = state.previous, None, False
        state.pending_session = self.config_session = None


_STATEFUL = frozenset(
    {
        "get_config",
        "get_bgp_neighbors",
        "get_route_to",
        "cli",
        "load_replace_candidate",
        "load_merge_candidate",
        "compare_config",
        "discard_config",
        "commit_config",
        "confirm_commit",
        "has_pending_commit",
        "rollback",
    }
)


def _covers(prefix: str, destination: str) -> bool:
    net = ipaddress.ip_network(prefix)
    try:
        return ipaddress.ip_network(destination, strict=False).subnet_of(net)  # type: ignore[arg-type]
    except ValueError:
        return False


def _device_diff(driver: str, running: str, candidate: str) -> str:
    """The diff as the vendor's driver shows it: IOS ``+``/``-`` lines (show archive config
    differences), EOS a unified diff of the session, Junos ``show | compare``-like."""
    a, b = running.splitlines(), candidate.splitlines()
    if a == b:
        return ""
    if driver == "eos":
        lines = difflib.unified_diff(
            a, b, "system:/running-config", "session:/runbooks-session-config", lineterm=""
        )
        return "\n".join(lines)
    changed = [
        line
        for line in difflib.ndiff(a, b)
        if line.startswith(("+ ", "- ")) and line[2:].strip() not in ("!", "}")
    ]
    body = [f"{line[0]}{line[2:]}" for line in changed]
    return "\n".join(["[edit]", *body] if driver == "junos" else body)


def driver_for(network: Network) -> type[RecordedDriver]:
    """The driver class of one network, importable by NAPALM as ``napalm_recorded``."""
    cls = type("RecordedDriver", (RecordedDriver,), {"network": network})
    module = types.ModuleType(DRIVER_MODULE)
    module.RecordedDriver = cls  # type: ignore[attr-defined]
    sys.modules[DRIVER_MODULE] = module
    return cls


# ---- the engine on both -----------------------------------------------------------------------


class VendorFabric:
    """One vendor's fabric: the NetBox above, the recorded devices, a record store and the
    engine reaching them as the CLI's engine would (its gateway factories)."""

    def __init__(self, vendor: str, store_path: Path) -> None:
        self.vendor = VENDORS[vendor]
        self.netbox = MiniNetBox(self.vendor, FIXTURES, TEMPLATE_SECRETS)
        self.network = Network(
            self.vendor,
            {
                name: DeviceState(name, recorded(self.vendor, name, "get_config")["running"])
                for name in IDS
            },
        )
        driver_for(self.network)
        store_path.parent.mkdir(parents=True, exist_ok=True)
        self.store_path = store_path
        self.originals = {name: state.running for name, state in self.network.devices.items()}
        self.declined: str | None = None  # the title of a manual step nobody confirms

    def running(self, name: str) -> str:
        return self.network.devices[name].running

    def _netbox(self, ctx: RunContext, key: str) -> Gateway:
        gw = NetBoxGateway(
            NetBoxSettings(URL, TOKEN), ctx.mode, run_id=ctx.run_id, runbook=ctx.runbook.name
        )
        gw.session.mount("http://", self.netbox.fake)
        return gw

    def _device(self, ctx: RunContext, key: str) -> Gateway:
        target = DeviceTarget(key, f"198.18.0.{IDS[key]}", self.vendor.platform)
        return NetworkGateway(ctx.mode, target, CREDENTIALS, ctx.run_id, driver="recorded")

    def _confirm(self, step_title: str, instruction: str, actor: str) -> Confirmation:
        declined = self.declined is not None and self.declined in step_title
        note = "declined (unit test)" if declined else "confirmed (unit test)"
        return Confirmation(not declined, actor, datetime.now(UTC), note)

    def engine(self, store: RecordStore) -> Engine:
        return Engine(
            store,
            "olivia",
            confirmer=self._confirm,
            gateway_factories={NetBoxGateway: self._netbox, NetworkGateway: self._device},
        )

    def plan(self, runbook: Runbook) -> Plan:
        with RecordStore(self.store_path) as store:
            return self.engine(store).plan(runbook)

    def run(self, runbook: Runbook) -> RunResult:
        with RecordStore(self.store_path) as store:
            return self.engine(store).run(runbook)

    def resume(self, run_id: str, runbook_type: type[Runbook]) -> RunResult:
        with RecordStore(self.store_path) as store:
            return self.engine(store).resume(
                run_id, lambda started: runbook_type(runbook_type.parse_params(started["params"]))
            )

    def record_text(self) -> str:
        """Everything the store holds, as bytes on disk (its WAL too), for secret hunting."""
        texts = [
            p.read_bytes().decode("utf-8", "replace")
            for p in self.store_path.parent.iterdir()
            if p.is_file()
        ]
        return "\n".join(texts)
