"""Benchmark: N devices of each network OS, each: facts, interfaces, BGP and LLDP, and a
candidate diff — through the runbooks network gateway (concurrent, one session per device),
beside a serial Netmiko loop (the pile-of-scripts way) and Nornir + nornir_napalm with the same
NAPALM driver, all measured in one run on the same devices, the two OSes side by side:

- frr: the lab's FRR devices, our NAPALM driver (napalm-frr);
- bird2: BIRD 2 boxes (border1 and extras like it), napalm-bird2 from PyPI, with the options
  the lab's NetBox config context gives it. It has no LLDP getter: the gateway and Nornir read
  facts, interfaces and BGP only there (the serial loop still runs lldpcli, as a script would).

Beside the wall times, per OS and N:

- the CPU floor of the gateway's run: the CPU time the whole work took on this machine — the
  bench process (all its threads, and children if any: getrusage of self and children) plus
  every process in the devices' network namespaces (sshd and its sessions, vtysh, zebra/bgpd,
  bird/birdc, sftp-server: utime+stime+cutime+cstime from /proc, so short-lived ones count
  through the parent that reaped them) — divided by the cores this process may run on. The
  devices run on this machine too, so that is the time this work could not go below here:
  no schedule runs it faster than on every core at once, doing nothing else. Waiting (network
  round trips, a driver's sleeps) is not in it. Other load on the machine (other users of
  the 2 cores) is printed beside it ("other cpu", machine-wide busy CPU minus ours): it slows
  the wall time but not the floor, so a ratio measured under it is pessimistic. How much:
  "bg load" is the machine's busy cores in the second before the gateway's run (ours idle
  then: other users, and the lab's own daemons), and "best" = cores / (cores - bg load),
  the lowest gw/floor any program doing this work could reach beside that load (the cores
  it leaves us, when our work keeps them busy). The target is gw/floor all the same.
- logins per device: successful SSH authentications counted at the wire (paramiko's
  Transport, which Netmiko, napalm-frr and napalm-bird2 all use), per device address, for the
  gateway and for Nornir; the gateway's own `NetworkGateway.logins` must agree. SSH key
  exchanges are counted too: one per device for the gateway on both OSes, napalm-bird2's
  host key included (the gateway makes that driver's SSH client with the known_hosts file
  and paramiko's RejectPolicy: runbooks/gateways/network_host_keys.py, `open_checked`).
- "nornir+keys": Nornir with host-key checks, for a like-for-like comparison: Netmiko's
  strict options with the known_hosts file (napalm-frr), and where the driver checks no
  key (napalm-bird2) the check a Nornir user can add, `key_refusal` on a connection of its
  own before the driver opens (a second key exchange). "keychk/dev": the gateway's mean
  time per device in such a separate check (0: it makes none).

Needs the lab up (`runbook lab up`); holds it for the run (other lab users wait, no reset).
Devices beyond the lab's are started for the run as extra boxes on the lab's management
bridge (FRR 198.18.0.101…, BIRD 198.18.0.151…) and removed afterwards.

    .venv/bin/python bench/network_fleet.py [--sizes 5 10 20] [--workers 20] [--os frr bird2]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import os
import resource
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import yaml
from netmiko import ConnectHandler

from runbooks.core.gateway import Mode
from runbooks.gateways import network as network_gateway
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway, host_key_args
from runbooks.gateways.network_host_keys import SSH_PORT, key_refusal
from runbooks.lab import bird, frr, lab, network, node, topology

os.environ.setdefault("NAPALM_BIRD2_DISABLE_UPDATE_CHECK", "1")  # no PyPI lookup from the bench


@dataclass(frozen=True)
class OS:
    """What differs between the network OSes here: data, not branches."""

    platform: str  # NetBox platform slug = NAPALM driver
    role: str  # the lab role of an extra box
    extra_prefix: str  # extra boxes' names and addresses
    extra_base: int
    candidate_line: str  # added to the running configuration: the diff must show it
    shows: list[str]  # the serial loop's four commands; the first answers the box's name
    show_running: str
    getters: list[str]  # what the gateway and Nornir read (NAPALM getter names)
    optional_args: Mapping[str, Any] = field(default_factory=dict)
    # whether the driver checks the SSH host key itself when handed Netmiko's strict options
    # (napalm-frr); else the gateway checks it before the driver opens (napalm-bird2)
    driver_checks_host_key: bool = True
    merge: bool = True  # a merge candidate of one line (FRR); else the whole running + line


FRR = OS(
    platform="frr",
    role="leaf",
    extra_prefix="bench",
    extra_base=100,
    candidate_line="ip route 198.18.250.0/24 Null0",
    shows=[
        "vtysh -c 'show version'",
        "ip -j addr show",
        "vtysh -c 'show bgp summary json'",
        "lldpcli -f json0 show neighbors",
    ],
    show_running="vtysh -c 'show running-config'",
    getters=["facts", "interfaces", "bgp_neighbors", "lldp_neighbors"],
)


def _bird_options() -> dict[str, Any]:
    """The driver options the lab's NetBox config context gives the platform bird2."""
    catalog = topology.load().netbox
    assert catalog is not None
    for context in catalog.config_contexts:
        if bird.PLATFORM in context.platforms:
            return dict(context.data["napalm"]["optional_args"])
    raise SystemExit("inventory/lab.yml has no config context for bird2")


BIRD = OS(
    platform=bird.PLATFORM,
    role="border",
    extra_prefix="bird",
    extra_base=150,
    candidate_line="protocol static bench { ipv4; route 198.18.250.0/24 blackhole; }",
    shows=[
        "hostname",
        "ip -j addr show",
        f"birdc -s {bird.SOCKET} show protocols all",
        "lldpcli -f json0 show neighbors",
    ],
    show_running=f"cat {bird.CONFIG}",
    getters=["facts", "interfaces", "bgp_neighbors"],  # napalm-bird2 has no LLDP getter
    optional_args=_bird_options(),
    driver_checks_host_key=False,  # paramiko's AutoAddPolicy, no option to change it
    merge=False,  # napalm-bird2 diffs a merge candidate against the file as if it replaced it
)
OSES = {o.platform: o for o in (FRR, BIRD)}


def lab_devices(os_: OS) -> list[tuple[str, str]]:
    topo = topology.load()
    return [(d.name, str(d.mgmt)) for d in topo.devices if topo.platform(d.name) == os_.platform]


def start_extras(os_: OS, count: int) -> tuple[topology.Topology, list[tuple[str, str]]]:
    topo = topology.load()
    devices = []
    for i in range(1, count + 1):
        devices.append(
            topology.Device(
                name=f"{os_.extra_prefix}{i:02d}",
                role=os_.role,
                rack="R01",
                position=1,
                status="planned",
                mgmt=ipaddress.IPv4Address(f"198.18.0.{os_.extra_base + i}"),
                loopback=ipaddress.IPv4Address(f"198.18.255.{os_.extra_base + i}"),
                asn=65300 + os_.extra_base + i,
            )
        )
    topo = topo.model_copy(update={"devices": [*topo.devices, *devices]})
    for dev in devices:
        network.ensure_netns(dev.name)
        network.ensure_mgmt_link(topo, dev.name, dev.mgmt)
        if os_ is BIRD:
            bird.start_device(topo, dev, bird.factory_config(topo, dev.name))
        else:
            frr.start_device(dev, frr.factory_config(dev.name))
    return topo, [(d.name, str(d.mgmt)) for d in devices]


def stop_extras(extras: list[tuple[str, str]]) -> None:
    for name, _ in extras:
        frr.stop_device(name)  # every process in the box's namespace, whichever the OS
        network.delete_netns(network.netns_name(name))
        shutil.rmtree(frr.device_dir(name), ignore_errors=True)


def candidates(os_: OS, topo: topology.Topology, devices: list[tuple[str, str]]) -> dict[str, str]:
    """Per device, the candidate to compare: one line to merge, or its running config + it."""
    if os_.merge:
        return {name: os_.candidate_line + "\n" for name, _ in devices}
    running = {
        name: bird.run_on_device(name, ["cat", bird.CONFIG], check=True).stdout
        for name, _ in devices
    }
    return {name: running[name] + os_.candidate_line + "\n" for name, _ in devices}


def key_file() -> str:
    return str(node.ssh_dir() / "id_ed25519")


GATEWAY_LOGINS: dict[str, int] = {}  # the last gateway run's NetworkGateway.logins per device
KEY_CHECKS: list[float] = []  # the last gateway run's host-key check times (s)


@contextmanager
def timed_key_checks() -> Iterator[None]:
    """Time each host-key check the gateway makes itself (into `KEY_CHECKS`)."""
    original = network_gateway.key_refusal

    def timed_check(*args: Any, **kwargs: Any) -> str:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            KEY_CHECKS.append(time.perf_counter() - started)

    KEY_CHECKS.clear()
    network_gateway.key_refusal = timed_check  # type: ignore[assignment]
    try:
        yield
    finally:
        network_gateway.key_refusal = original


def via_gateway(
    os_: OS, devices: list[tuple[str, str]], workers: int, candidate: dict[str, str]
) -> dict[str, str]:
    creds = Credentials(
        "root", key_file=key_file(), timeout=60, known_hosts=node.known_hosts_file()
    )

    def one(dev: tuple[str, str]) -> tuple[str, int]:
        target = DeviceTarget(dev[0], dev[1], os_.platform, os_.platform, os_.optional_args)
        gw = NetworkGateway(Mode.PLAN, target, creds, "bench")
        try:
            facts = gw.facts()
            for getter in os_.getters[1:]:
                getattr(gw, getter)()
            diff = gw.compare(candidate[dev[0]], replace=not os_.merge)
            assert os_.candidate_line in diff, diff
            return str(facts["hostname"]), gw.logins
        finally:
            gw.close()

    with ThreadPoolExecutor(workers) as pool, timed_key_checks():
        answers = dict(zip([d[0] for d in devices], pool.map(one, devices), strict=True))
    GATEWAY_LOGINS.clear()
    GATEWAY_LOGINS.update({name: logins for name, (_, logins) in answers.items()})
    return {name: hostname for name, (hostname, _) in answers.items()}


def via_serial_netmiko(os_: OS, devices: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for name, host in devices:
        conn = ConnectHandler(
            device_type="linux",
            host=host,
            username="root",
            use_keys=True,
            key_file=key_file(),
            allow_agent=False,
        )
        try:
            version = conn.send_command(os_.shows[0])
            for command in os_.shows[1:]:
                conn.send_command(command)
            running = conn.send_command(os_.show_running)
            wanted = running + os_.candidate_line + "\n"
            diff = "".join(difflib.unified_diff(running.splitlines(True), wanted.splitlines(True)))
            assert os_.candidate_line in diff
            # "FRRouting 8.4.4 (leaf1) on Linux(…)" or `hostname`: the device says its own name
            out[name] = (
                version.split("(", 1)[1].split(")", 1)[0] if "(" in version else version.strip()
            )
        finally:
            conn.disconnect()
    return out


def via_nornir(
    os_: OS,
    devices: list[tuple[str, str]],
    workers: int,
    candidate: dict[str, str],
    check_keys: bool = False,
) -> dict[str, str]:
    """Nornir + nornir_napalm, the same driver and work; with ``check_keys``, the host key
    checked as the gateway checks it (Netmiko's strict options; `key_refusal` before the
    connection opens where the driver checks none)."""
    from nornir import InitNornir
    from nornir_napalm.plugins.tasks import napalm_configure, napalm_get

    known_hosts = node.known_hosts_file()
    strict = host_key_args(known_hosts) if check_keys else {}
    with tempfile.TemporaryDirectory() as tmp:
        hosts = {
            name: {
                "hostname": host,
                "platform": os_.platform,
                "username": "root",
                "password": "",
                "connection_options": {
                    "napalm": {
                        "extras": {
                            "optional_args": {
                                **strict,
                                **os_.optional_args,
                                "key_file": key_file(),
                                "use_keys": True,
                            }
                        }
                    }
                },
            }
            for name, host in devices
        }
        host_file = Path(tmp) / "hosts.yaml"
        host_file.write_text(yaml.safe_dump(hosts))
        nr = InitNornir(
            runner={"plugin": "threaded", "options": {"num_workers": workers}},
            inventory={"plugin": "SimpleInventory", "options": {"host_file": str(host_file)}},
            logging={"enabled": False},
        )

        def task(t: Any) -> str:
            if check_keys and not os_.driver_checks_host_key:  # before the first napalm task
                why = key_refusal(t.host.hostname, SSH_PORT, known_hosts, 60)
                assert not why, f"{t.host.name}: its host key {why} {known_hosts}"
            got = t.run(napalm_get, getters=os_.getters)
            diff = t.run(
                napalm_configure,
                configuration=candidate[t.host.name],
                replace=not os_.merge,
                dry_run=True,
            )
            assert os_.candidate_line in (diff.diff or "")
            return str(got.result["facts"]["hostname"])

        result = nr.run(task=task)
        nr.close_connections()
        failed = [h for h, r in result.items() if r.failed]
        assert not failed, {h: str(result[h].exception) for h in failed}
        return {h: r[0].result for h, r in result.items()}


CORES = len(os.sched_getaffinity(0))
TICK = os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """This process's CPU seconds (all threads) and its reaped children's (user + sys)."""
    me, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def namespace_cpu(namespaces: list[str]) -> float:
    """CPU seconds of every process in these network namespaces, with the children each
    reaped (utime + stime + cutime + cstime from /proc/<pid>/stat)."""
    inodes = set()
    for name in namespaces:
        try:
            inodes.add(os.stat(f"/run/netns/{name}").st_ino)
        except FileNotFoundError:
            continue
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino not in inodes:
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # gone meanwhile: its time is in its parent's cutime/cstime
        fields = stat.rsplit(")", 1)[1].split()
        ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / TICK


def machine_busy() -> float:
    """Machine-wide busy CPU seconds so far (/proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICK


class WireCount:
    """SSH key exchanges and logins (successful authentications) per device address, counted
    on paramiko's Transport while active; a transport's login counts once."""

    def __init__(self) -> None:
        self.kex: Counter[str] = Counter()
        self.logins: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def active(self) -> Iterator[WireCount]:
        cls = paramiko.Transport
        saved = {n: getattr(cls, n) for n in ("start_client", *self.AUTH)}
        count = self

        def start_client(transport: Any, *args: Any, **kwargs: Any) -> Any:
            with count._lock:
                count.kex[transport.getpeername()[0]] += 1
            return saved["start_client"](transport, *args, **kwargs)

        def auth(name: str) -> Callable[..., Any]:
            def wrapped(transport: Any, *args: Any, **kwargs: Any) -> Any:
                answer = saved[name](transport, *args, **kwargs)
                with count._lock:
                    if transport.is_authenticated() and not getattr(transport, "_bench", 0):
                        transport._bench = 1
                        count.logins[transport.getpeername()[0]] += 1
                return answer

            return wrapped

        cls.start_client = start_client  # type: ignore[method-assign]
        for name in self.AUTH:
            setattr(cls, name, auth(name))
        try:
            yield self
        finally:
            for name, fn in saved.items():
                setattr(cls, name, fn)

    AUTH = ("auth_none", "auth_password", "auth_publickey", "auth_interactive")


@dataclass
class Run:
    wall: float
    answers: dict[str, str]
    cpu: float  # ours + the devices' (s)
    other: float  # the rest of the machine's busy CPU meanwhile (s)
    wire: WireCount


def timed(fn: Callable[[], dict[str, str]], namespaces: list[str]) -> Run:
    wire = WireCount()
    cpu0, busy0 = own_cpu() + namespace_cpu(namespaces), machine_busy()
    with wire.active():
        start = time.perf_counter()
        answers = fn()
        wall = time.perf_counter() - start
    time.sleep(0.2)  # the devices' sessions end and are reaped (their CPU to the parent)
    cpu = own_cpu() + namespace_cpu(namespaces) - cpu0
    return Run(wall, answers, cpu, max(0.0, machine_busy() - busy0 - cpu), wire)


def per_device(counts: Counter[str], subset: list[tuple[str, str]]) -> str:
    """ "1" when every device has 1; else min-max over the devices."""
    values = [counts.get(address, 0) for _, address in subset]
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def background_load(namespaces: list[str], seconds: float = 1.0) -> float:
    """The machine's busy cores over ``seconds`` while this work is idle (ours subtracted)."""
    ours, busy = own_cpu() + namespace_cpu(namespaces), machine_busy()
    time.sleep(seconds)
    ours = own_cpu() + namespace_cpu(namespaces) - ours
    return max(0.0, machine_busy() - busy - ours) / seconds


HEADER = (
    f"{'OS':>6} {'N':>3} {'serial':>7} {'nornir':>7} {'nornir+keys':>11} {'gateway':>8} "
    f"{'nornir/gw':>9} {'n+keys/gw':>9} {'cpu floor':>9} {'gw/floor':>8} "
    f"{'logins gw':>9} {'nornir':>6} {'kex gw':>6} {'nornir':>6} {'keychk/dev':>10} "
    f"{'other cpu':>9} {'bg load':>7} {'best':>5}"
)


def measure(
    os_: OS, topo: topology.Topology, subset: list[tuple[str, str]], workers: int, rounds: int = 1
) -> str:
    """One row: the ways on the same devices, each device's answers checked. With
    ``rounds`` > 1, Nornir, Nornir with keys and the gateway run that many times in turn
    (so other load on the machine falls on each alike) and each column shows the round of
    median wall time (the floor and ratios: that gateway round's own)."""
    candidate = candidates(os_, topo, subset)
    namespaces = [network.netns_name(name) for name, _ in subset]
    serial = timed(lambda: via_serial_netmiko(os_, subset), namespaces)
    assert serial.answers == {d[0]: d[0] for d in subset}, serial.answers  # its own name
    # the drivers' facts: FRR's say the name; napalm-bird2's say the address it was reached at
    said = {d[0]: d[0] if os_ is FRR else d[1] for d in subset}
    ways: dict[str, list[tuple[Run, float]]] = {"nornir": [], "keyed": [], "gw": []}
    for _ in range(rounds):
        for way, keys in (("nornir", False), ("keyed", True)):
            done = timed(lambda k=keys: via_nornir(os_, subset, workers, candidate, k), namespaces)
            ways[way].append((done, 0.0))
        load = background_load(namespaces)
        gw_run = timed(lambda: via_gateway(os_, subset, workers, candidate), namespaces)
        ways["gw"].append((gw_run, load))
        # the gateway's own count agrees with the wire's
        wire_logins = {name: gw_run.wire.logins.get(address, 0) for name, address in subset}
        assert wire_logins == GATEWAY_LOGINS, (GATEWAY_LOGINS, wire_logins)
    for way, runs in ways.items():
        assert all(r.answers == said for r, _ in runs), (way, [r.answers for r, _ in runs])
    nornir, _ = _median(ways["nornir"])
    keyed, _ = _median(ways["keyed"])
    gw, load = _median(ways["gw"])
    floor = gw.cpu / CORES
    check = sum(KEY_CHECKS) / len(subset) if KEY_CHECKS else 0.0
    return (
        f"{os_.platform:>6} {len(subset):>3} {serial.wall:>6.2f}s {nornir.wall:>6.2f}s "
        f"{keyed.wall:>10.2f}s {gw.wall:>7.2f}s {nornir.wall / gw.wall:>8.2f}x "
        f"{keyed.wall / gw.wall:>8.2f}x {floor:>8.2f}s {gw.wall / floor:>7.2f}x "
        f"{per_device(gw.wire.logins, subset):>9} {per_device(nornir.wire.logins, subset):>6} "
        f"{per_device(gw.wire.kex, subset):>6} {per_device(nornir.wire.kex, subset):>6} "
        f"{check * 1000:>8.0f}ms {gw.other:>8.2f}s {load:>7.2f} {best(load):>5}"
    )


def best(load: float) -> str:
    """The lowest gw/floor reachable beside ``load`` busy cores ("-": it took them all)."""
    return f"{CORES / (CORES - load):.2f}x" if load < CORES - 0.05 else "-"


def _median(runs: list[tuple[Run, float]]) -> tuple[Run, float]:
    """The run of median wall time (of an even count, the faster of the middle two)."""
    ordered = sorted(runs, key=lambda pair: pair[0].wall)
    return ordered[(len(ordered) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--os", nargs="+", default=list(OSES), choices=list(OSES))
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of each way per row, the median shown"
    )
    args = parser.parse_args()
    with lab.held(reset_first=False):  # other lab users wait; the lab as it is
        run(args.sizes, args.os, args.workers, args.rounds)


def run(sizes: list[int], oses: list[str], workers: int, rounds: int = 1) -> None:
    fleets: dict[str, tuple[topology.Topology, list[tuple[str, str]]]] = {}
    extras: list[tuple[str, str]] = []
    try:
        for name in oses:
            base = lab_devices(OSES[name])
            topo, more = start_extras(OSES[name], max(0, max(sizes) - len(base)))
            extras += more
            fleets[name] = (topo, base + more)
        for name, address in extras:  # the new boxes' sshd answer (then vtysh and bird do)
            node.wait_for(f"sshd on {name}", lambda a=address: node.ssh_answers(a), 30)
        time.sleep(1)
        print(f"{CORES} cores; times are wall seconds; serial = a serial Netmiko loop")
        print(HEADER)
        for n in sizes:
            for name in oses:
                topo, devices = fleets[name]
                print(measure(OSES[name], topo, devices[:n], workers, rounds), flush=True)
    finally:
        stop_extras(extras)


if __name__ == "__main__":
    main()
