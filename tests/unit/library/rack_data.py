"""Working sets as NetBox's GraphQL would return them, for the rack runbooks' unit tests:
a two-spine, two-leaf fabric (leaf3 planned) in a few lines per device; and, to run single
steps of the runbooks, NetBox's renderings and the devices in memory (`context`)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from runbooks.config import NetBoxSettings
from runbooks.core.context import RunContext
from runbooks.core.errors import UnsupportedError
from runbooks.core.gateway import Gateway, Mode, reads, writes
from runbooks.core.runbook import Runbook
from runbooks.gateways.config_text import fill_secrets, sanitize
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_model import DeviceWorkingSet
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.library.rack_steps import RackState

ASN = {"spine1": 65001, "spine2": 65002, "leaf1": 65101, "leaf2": 65102, "leaf3": 65103}
IDS = {name: i for i, name in enumerate(ASN, start=1)}
# (a device, a interface, b device, b interface, a address, b address, cable status)
LINKS = [
    ("spine1", "swp1", "leaf1", "swp1", "198.18.1.0", "198.18.1.1", "connected"),
    ("spine1", "swp2", "leaf2", "swp1", "198.18.1.2", "198.18.1.3", "connected"),
    ("spine1", "swp3", "leaf3", "swp1", "198.18.1.4", "198.18.1.5", "planned"),
    ("spine2", "swp1", "leaf1", "swp2", "198.18.1.6", "198.18.1.7", "connected"),
    ("spine2", "swp2", "leaf2", "swp2", "198.18.1.8", "198.18.1.9", "connected"),
    ("spine2", "swp3", "leaf3", "swp2", "198.18.1.10", "198.18.1.11", "planned"),
]


def status_of(name: str) -> str:
    return "planned" if name == "leaf3" else "active"


def working_set(
    name: str, links: Sequence[tuple[str, ...]] | None = None, status: str | None = None
) -> DeviceWorkingSet:
    interfaces: list[dict[str, Any]] = [
        {"id": 1, "name": "lo", "ip_addresses": [_ip(f"198.18.255.{IDS[name]}/32")]},
    ]
    for i, (a, a_if, b, b_if, a_ip, b_ip, cable) in enumerate(LINKS if links is None else links):
        if name not in (a, b):
            continue
        mine, addr, peer, peer_if = (a_if, a_ip, b, b_if) if name == a else (b_if, b_ip, a, a_if)
        interfaces.append(
            {
                "id": 100 + i,
                "name": mine,
                "ip_addresses": [_ip(f"{addr}/31")],
                "cable": {"id": i + 1, "status": cable.upper()},
                "link_peers": [
                    {
                        "__typename": "InterfaceType",
                        "id": 200 + i,
                        "name": peer_if,
                        "device": {"id": IDS[peer], "name": peer, "status": status_of(peer)},
                    }
                ],
            }
        )
    return DeviceWorkingSet.parse(
        {
            "id": IDS[name],
            "name": name,
            "status": (status or status_of(name)).upper(),
            "site": {"id": 1, "name": "Lab DC1"},
            "role": {"id": 1, "name": "Leaf"},
            "device_type": {
                "id": 1,
                "model": "FRR Switch 8",
                "manufacturer": {"id": 1, "name": "W"},
            },
            "platform": {"id": 1, "name": "FRRouting", "slug": "frr"},
            "custom_fields": {"bgp_asn": ASN[name]},
            "primary_ip4": {"id": 1, "address": f"198.18.0.{IDS[name]}/24"},
            "interfaces": interfaces,
        }
    )


def _ip(address: str) -> dict[str, Any]:
    return {"id": abs(hash(address)) % 10_000, "address": address, "status": "ACTIVE"}


# ---- NetBox and devices in memory, for running single steps of the rack runbooks ------------

PASSWORD = "pl4nted-bgp-s3cret"  # a BGP password NetBox renders: never in a diff or evidence

# What a driver shaped like napalm-bird2 lacks: commit-confirm (no has_pending_commit, no
# confirm_commit: its revert_in is a timer in our own process) and two getters
NO_COMMIT_CONFIRM = frozenset({"has_pending_commit", "confirm_commit"})
BIRD2_LACKS = NO_COMMIT_CONFIRM | {"get_lldp_neighbors", "get_route_to"}


def rendering(name: str, intent: str, links: Sequence[tuple[str, ...]] | None = None) -> str:
    """A device's configuration as a NetBox template would render it for ``intent``: the
    same three intents as the lab's templates, in no vendor's words in particular."""
    lines = [f"hostname {name}", "!"]
    if intent == "bare":
        return "\n".join(lines) + "\n"
    ws = working_set(name, links)
    lines += [f"interface {i.name}\n ip address {i.ip_addresses[0].address}" for i in ws.interfaces]
    lines.append(f"router bgp {ASN[name]}")
    for link in LINKS if links is None else links:
        a, _, b, _, a_ip, b_ip, cable = link
        if name not in (a, b) or cable != "connected":
            continue
        peer, address = (b, b_ip) if name == a else (a, a_ip)
        lines += [
            f" neighbor {address} remote-as {ASN[peer]}",
            f" neighbor {address} password {PASSWORD}",
        ]
        if intent == "drain":
            lines.append(f" neighbor {address} shutdown")
    return "\n".join(lines) + "\n"


class RenderingNetBox(NetBoxGateway):
    """NetBox's reads the rack steps make, in memory; each rendering's intent is kept."""

    def __init__(self, mode: Mode, links: Sequence[tuple[str, ...]] | None = None) -> None:
        super().__init__(NetBoxSettings("http://127.0.0.1:9", "0" * 40), mode)
        self.links = links
        self.rendered: list[tuple[str, str]] = []  # (device, intent) of every render request
        self.renders: dict[tuple[str, str], str] = {}  # a rendering to answer instead
        # a NetBox without the plugin's render-configs: `render_configs` asks `render_config`
        # per device, as the gateway does there (its own tests: test_netbox_gateway.py)
        self._render_configs = False

    @reads
    def working_set(self, name: str, *, render: bool = False) -> DeviceWorkingSet:
        return working_set(name, self.links)

    @reads
    def render_config(self, device_id: int, context: Mapping[str, Any] | None = None) -> str:
        name = next(n for n, i in IDS.items() if i == device_id)
        intent = str((context or {}).get("runbooks_intent", "service"))
        self.rendered.append((name, intent))
        return self.renders.get((name, intent)) or rendering(name, intent, self.links)


class MemoryDevice(NetworkGateway):
    """A device in memory behind the gateway's API: its raw running configuration, the
    getters' answers (a getter or method named in ``missing`` is one its driver lacks: as the
    gateway does, it raises UnsupportedError, and a commit with revert_in is refused where
    commit-confirm is missing), and what it was asked. ``cli`` fails the test: the runbooks
    send no command."""

    def __init__(
        self,
        mode: Mode,
        name: str,
        running: str,
        missing: Iterable[str] = (),
        platform: str = "frr",
    ) -> None:
        target = DeviceTarget(name, f"198.18.0.{IDS[name]}", platform)
        super().__init__(mode, target, Credentials("netops"), driver=platform)
        self.running = running
        self.missing = set(missing)
        self.routes: dict[str, dict[str, Any]] = {}  # destination -> get_route_to's answer
        self.bgp: list[dict[str, Any]] = []  # get_bgp_neighbors' answers, in turn (last stays)
        self.lldp: dict[str, Any] = {}
        self.commits: list[tuple[str, int | None, tuple[str, ...]]] = []
        self.compared: list[tuple[str, tuple[str, ...]]] = []
        self.pending = False
        self.before_commit = running

    def _getter(self, name: str) -> None:
        if name in self.missing:
            raise UnsupportedError(
                f"{self.target.name}: the {self.driver_name} driver has no {name}",
                method=name,
                **({"getter": name} if name.startswith("get_") else {}),
            )

    @reads
    def supports(self, getter: str) -> bool:
        return getter not in self.missing

    @reads
    def facts(self) -> dict[str, Any]:
        return {"hostname": self.target.name, "interface_list": ["swp1", "swp2"]}

    @reads
    def route_to(self, destination: str, protocol: str = "") -> dict[str, Any]:
        self._getter("get_route_to")
        return self.routes.get(destination, {})

    @reads
    def bgp_neighbors(self) -> dict[str, Any]:
        self._getter("get_bgp_neighbors")
        return self.bgp.pop(0) if len(self.bgp) > 1 else self.bgp[0] if self.bgp else {}

    @reads
    def lldp_neighbors(self) -> dict[str, Any]:
        self._getter("get_lldp_neighbors")
        return self.lldp

    @reads
    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, Any]:
        raise AssertionError(f"a runbook sent {commands} to {self.target.name}")

    @reads
    def config(self, retrieve: str = "running") -> str:
        return sanitize(self.running)

    @reads
    def compare(
        self, candidate: str, replace: bool = True, secret_sources: Sequence[str] = ()
    ) -> str:
        self.compared.append((candidate, tuple(secret_sources)))
        full = fill_secrets(candidate, self.running, *secret_sources)
        lines = difflib.unified_diff(self.running.splitlines(), full.splitlines(), lineterm="")
        return sanitize("\n".join(list(lines)[2:]))

    @reads
    def has_pending_commit(self) -> bool:
        self._getter("has_pending_commit")
        return self.pending

    @writes
    def commit(
        self,
        candidate: str,
        revert_in: int | None = None,
        replace: bool = True,
        secret_sources: Sequence[str] = (),
    ) -> str:
        if revert_in is not None and not self.commit_confirm_supported():
            raise UnsupportedError(f"{self.target.name}: no commit with revert_in={revert_in}")
        full = fill_secrets(candidate, self.running, *secret_sources)
        diff = self.compare(candidate, secret_sources=secret_sources)
        self.commits.append((full, revert_in, tuple(secret_sources)))
        self.before_commit, self.running = self.running, full
        self.pending = revert_in is not None
        return diff

    @writes
    def confirm(self) -> None:
        self._getter("confirm_commit")
        self.pending = False

    @writes
    def rollback(self) -> None:
        self._getter("rollback")
        self.running, self.pending = self.before_commit, False


def fn(func: Callable[..., Any] | None) -> Callable[..., Any]:
    """A change step's apply, verify or undo function (typed: the step may lack one)."""
    assert func is not None, "the step has no such function"
    return func


def context(
    runbook: Runbook,
    mode: Mode,
    devices: Mapping[str, MemoryDevice],
    netbox: RenderingNetBox | None = None,
) -> RunContext:
    """A plan's or run's context whose NetBox and devices are the ones given."""
    nb = netbox or RenderingNetBox(mode)

    def device(ctx: RunContext, key: str) -> Gateway:
        return devices[key]

    return RunContext(
        mode,
        "run-1",
        "olivia",
        runbook,
        gateway_factories={NetBoxGateway: lambda ctx, key: nb, NetworkGateway: device},
        state=RackState(),
    )
