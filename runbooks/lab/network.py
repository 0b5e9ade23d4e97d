"""The lab's wiring: the management bridge, namespaces, veth links, and the address-safety check.

Safety first: a lab once put an address of the machine's uplink range on a bridge and sent packets
out of the machine. Before the lab adds any address or route, `check_addresses` reads every IPv4
route and address of the root namespace and refuses (one line) when anything but the lab's own
objects overlaps a lab prefix. The lab's own objects are the bridge `rblab-mgmt` and the
`unreachable` routes it adds (protocol `LAB_PROTO`) so that the root namespace never sends
loopback/p2p/office traffic to the default gateway.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runbooks.lab.errors import LabError
from runbooks.lab.topology import Topology

log = logging.getLogger(__name__)

BRIDGE = "rblab-mgmt"
NETNS_PREFIX = "rbl-"
MGMT_VETH_PREFIX = "rbm-"
# Routing protocol number the lab stamps on its own routes (rtnetlink leaves 245-254 free).
LAB_PROTO = 245
IFNAMSIZ = 15


@dataclass(frozen=True)
class Route:
    """One IPv4 route of the root namespace, as `ip -j route show table all` reports it."""

    dst: str
    dev: str | None = None
    type: str = "unicast"
    protocol: str = ""
    table: str = "main"


@dataclass(frozen=True)
class Address:
    """One IPv4 address held by an interface of the root namespace."""

    ifname: str
    address: ipaddress.IPv4Interface


def parse_routes(payload: str) -> list[Route]:
    """Routes from `ip -j -4 route show table all` output."""
    return [
        Route(
            dst=str(r.get("dst", "")),
            dev=r.get("dev"),
            type=str(r.get("type", "unicast")),
            protocol=str(r.get("protocol", "")),
            table=str(r.get("table", "main")),
        )
        for r in json.loads(payload or "[]")
    ]


def parse_addresses(payload: str) -> list[Address]:
    """IPv4 addresses from `ip -j -4 addr show` output."""
    found = []
    for link in json.loads(payload or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                iface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
                found.append(Address(str(link["ifname"]), iface))
    return found


def _route_network(dst: str) -> ipaddress.IPv4Network | None:
    if dst in ("", "default", "0.0.0.0/0"):
        return None
    return ipaddress.IPv4Network(dst, strict=False)


def _is_own_route(route: Route) -> bool:
    return route.dev == BRIDGE or route.protocol in (str(LAB_PROTO), f"0x{LAB_PROTO:x}")


def find_conflicts(
    prefixes: Sequence[ipaddress.IPv4Network],
    routes: Iterable[Route],
    addresses: Iterable[Address],
    own_address: ipaddress.IPv4Interface,
) -> list[str]:
    """Every route or address that overlaps a lab prefix and is not the lab's own.

    The default route is ignored (it covers everything); so are routes via the lab's bridge
    and routes stamped with the lab's protocol number. An address counts as the lab's own only
    when it is exactly the management gateway on the lab's bridge.

    >>> p = [ipaddress.IPv4Network("198.18.0.0/24")]
    >>> gw = ipaddress.IPv4Interface("198.18.0.1/24")
    >>> find_conflicts(p, [Route("198.18.0.0/16", "eth1")], [], gw)
    ['route 198.18.0.0/16 dev eth1 overlaps lab prefix 198.18.0.0/24']
    """
    conflicts: list[str] = []
    for route in routes:
        net = _route_network(route.dst)
        if net is None or _is_own_route(route):
            continue
        for prefix in prefixes:
            if net.overlaps(prefix):
                conflicts.append(f"route {route.dst} dev {route.dev} overlaps lab prefix {prefix}")
                break
    for addr in addresses:
        if addr.ifname == BRIDGE and addr.address == own_address:
            continue
        for prefix in prefixes:
            if addr.address.network.overlaps(prefix):
                conflicts.append(
                    f"address {addr.address} on {addr.ifname} overlaps lab prefix {prefix}"
                )
                break
    return conflicts


def own_gateway(topo: Topology) -> ipaddress.IPv4Interface:
    mgmt = topo.addressing.management
    return ipaddress.IPv4Interface(f"{topo.addressing.management_gateway}/{mgmt.prefixlen}")


def check_addresses(topo: Topology, netns: str | None = None) -> None:
    """Refuse (LabError, one line) when the machine already routes or holds a lab address.

    `netns` reads another namespace instead of the root one (tests use a throwaway one)."""
    ip = ["ip", *(["-n", netns] if netns else []), "-j", "-4"]
    routes = parse_routes(run([*ip, "route", "show", "table", "all"]).stdout)
    addresses = parse_addresses(run([*ip, "addr", "show"]).stdout)
    conflicts = find_conflicts(topo.addressing.all_prefixes(), routes, addresses, own_gateway(topo))
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise LabError(f"refusing to add lab addresses: {conflicts[0]}{more}", conflicts=conflicts)


# --- running commands -----------------------------------------------------------------------


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure is a LabError naming the command and its first stderr line."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False, input=input
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} not found: install it (see scripts/lab-deps.sh)") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        first = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[0]
        raise LabError(f"`{' '.join(argv)}` failed ({proc.returncode}): {first}")
    return proc


# --- namespaces -------------------------------------------------------------------------------


def netns_name(node: str) -> str:
    return f"{NETNS_PREFIX}{node}"


def lab_namespaces() -> list[str]:
    """The lab's own network namespaces (named rbl-*); others on the machine are left alone."""
    out = run(["ip", "-j", "netns", "list"]).stdout
    names = [str(n["name"]) for n in json.loads(out or "[]")]
    return sorted(n for n in names if n.startswith(NETNS_PREFIX))


def ensure_netns(node: str) -> str:
    ns = netns_name(node)
    if ns not in lab_namespaces():
        run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    return ns


def netns_pids(ns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def kill_pids(pids: Iterable[int], grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL what is left after `grace` seconds. Only PIDs the lab owns."""
    pending = set(pids)
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        pending = {p for p in pending if pid_alive(p)}
        time.sleep(0.05)
    for pid in pending:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def pid_alive(pid: int) -> bool:
    """Running (a zombie is dead: only its exit status waits for a parent to collect it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # gone: no file, or ESRCH when it exits while being read
        return False


def delete_netns(ns: str) -> None:
    """Stop every process inside the namespace, then remove it (its veths go with it)."""
    if not ns.startswith(NETNS_PREFIX):
        raise LabError(f"refusing to delete namespace {ns}: not a lab namespace")
    for _ in range(3):
        pids = netns_pids(ns)
        if not pids:
            break
        kill_pids(pids)
    run(["ip", "netns", "del", ns], check=False)


# --- links --------------------------------------------------------------------------------


def link_exists(ifname: str, ns: str | None = None) -> bool:
    argv = ["ip"] + (["-n", ns] if ns else []) + ["link", "show", ifname]
    return run(argv, check=False).returncode == 0


def ensure_bridge(topo: Topology) -> None:
    """The management bridge in the root namespace, holding the management gateway address."""
    check_addresses(topo)
    if not link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    # Nothing received from the lab is forwarded anywhere, and no IPv6 chatter on the bridge.
    _sysctl(f"net/ipv4/conf/{BRIDGE}/forwarding", "0")
    _sysctl(f"net/ipv6/conf/{BRIDGE}/disable_ipv6", "1")
    gateway = own_gateway(topo)
    have = parse_addresses(run(["ip", "-j", "-4", "addr", "show", "dev", BRIDGE]).stdout)
    if gateway not in [a.address for a in have]:
        run(["ip", "addr", "add", str(gateway), "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    _ensure_unreachable_routes(topo)


def _ensure_unreachable_routes(topo: Topology) -> None:
    """Lab prefixes other than management never leave by the default route."""
    mgmt = topo.addressing.management
    for prefix in topo.addressing.all_prefixes():
        if prefix != mgmt:
            run(["ip", "route", "replace", "unreachable", str(prefix), "proto", str(LAB_PROTO)])


def remove_bridge(topo: Topology) -> None:
    for prefix in topo.addressing.all_prefixes():
        if prefix != topo.addressing.management:
            run(
                ["ip", "route", "del", "unreachable", str(prefix), "proto", str(LAB_PROTO)],
                check=False,
            )
    for ifname in mgmt_veths():
        run(["ip", "link", "del", ifname], check=False)
    if link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE])


def _sysctl(key: str, value: str) -> None:
    path = f"/proc/sys/{key}"
    if os.path.exists(path):
        with open(path, "w", encoding="ascii") as fh:
            fh.write(value)


def mgmt_veth(node: str) -> str:
    name = f"{MGMT_VETH_PREFIX}{node}"
    if len(name) > IFNAMSIZ:
        raise LabError(f"lab node name {node!r} is too long for an interface name (max 11)")
    return name


def mgmt_veths() -> list[str]:
    out = run(["ip", "-j", "link", "show"]).stdout
    return [
        str(x["ifname"])
        for x in json.loads(out or "[]")
        if str(x["ifname"]).startswith(MGMT_VETH_PREFIX)
    ]


def ensure_mgmt_link(topo: Topology, node: str, address: ipaddress.IPv4Address) -> None:
    """`eth0` in the node's namespace, wired to the bridge, holding the management address."""
    ns = netns_name(node)
    outer = mgmt_veth(node)
    if not link_exists("eth0", ns):
        if link_exists(outer):
            run(["ip", "link", "del", outer])
        run(["ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns])
        # A node that existed before had another MAC at this address: the machine's stale
        # neighbour entry for it kept a new box silent for longer than any wait (seen by the
        # fleet bench, which starts and removes boxes at the same addresses run after run).
        run(["ip", "neigh", "flush", "to", str(address), "dev", BRIDGE], check=False)
    run(["ip", "link", "set", outer, "master", BRIDGE, "up"])
    iface = ipaddress.IPv4Interface(f"{address}/{topo.addressing.management.prefixlen}")
    if iface.network != topo.addressing.management:
        raise LabError(f"management address {address} of {node} is outside the management prefix")
    have = parse_addresses(run(["ip", "-n", ns, "-j", "-4", "addr", "show", "dev", "eth0"]).stdout)
    if iface not in [a.address for a in have]:
        run(["ip", "-n", ns, "addr", "add", str(iface), "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])


def ensure_fabric_links(topo: Topology) -> None:
    """One veth pair per cable, created straight into both devices' namespaces (no addresses:
    the devices' own configuration puts them there)."""
    for link in topo.links:
        (a_dev, a_if), (b_dev, b_if) = link.ends()
        a_ns, b_ns = netns_name(a_dev), netns_name(b_dev)
        a_ok, b_ok = link_exists(a_if, a_ns), link_exists(b_if, b_ns)
        if not (a_ok and b_ok):
            for ifname, ns, ok in ((a_if, a_ns, a_ok), (b_if, b_ns, b_ok)):
                if ok:
                    run(["ip", "-n", ns, "link", "del", ifname])
            run(
                [
                    "ip",
                    "link",
                    "add",
                    a_if,
                    "netns",
                    a_ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    b_if,
                    "netns",
                    b_ns,
                ]
            )
        run(["ip", "-n", a_ns, "link", "set", a_if, "up"])
        run(["ip", "-n", b_ns, "link", "set", b_if, "up"])
