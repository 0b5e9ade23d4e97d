"""The whole lab: NetBox, the management bridge, Linux hosts and network devices (FRR, and
BIRD 2 for the platform bird2), up/down/status/reset.

`up` order: address-overlap check -> NetBox (seeded) -> bridge -> hosts -> devices (active ones
with the configuration NetBox renders, planned ones with factory defaults) -> wait for SSH, BGP
Established on every active link and LLDP neighbours matching every link. Idempotent: a second
`up` verifies, restarts what died, and never duplicates anything. A device's NetBox platform
(through its role) picks its OS: `frr` runs runbooks.lab.frr, `bird2` runbooks.lab.bird.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from runbooks.lab import bird, frr, hosts, labapp, network, node, software, topology
from runbooks.lab.errors import LabError
from runbooks.lab.locks import MachineLock
from runbooks.lab.paths import state_dir
from runbooks.lab.status import ComponentStatus
from runbooks.lab.topology import Topology

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
CONVERGE_TIMEOUT = 60.0
# What the lab runs, and the Debian package that brings it (scripts/lab-deps.sh installs them).
REQUIRED = {
    "/usr/sbin/ip": "iproute2",
    "/usr/bin/nsenter": "util-linux",
    "/usr/bin/unshare": "util-linux",
    "/usr/lib/frr/zebra": "frr",
    "/usr/lib/frr/bgpd": "frr",
    "/usr/lib/frr/staticd": "frr",
    "/usr/bin/vtysh": "frr",
    "/usr/lib/frr/frr-reload.py": "frr-pythontools",
    "/usr/sbin/bird": "bird2",
    "/usr/sbin/birdc": "bird2",
    "/usr/bin/traceroute.db": "traceroute",  # the FRR driver's traceroute getter
    "/usr/sbin/lldpd": "lldpd",
    "/usr/sbin/lldpcli": "lldpd",
    "/usr/sbin/sshd": "openssh-server",
    "/usr/bin/ssh-keygen": "openssh-client",
    "/usr/sbin/runuser": "util-linux",
    f"{hosts.PG_BIN}/initdb": f"postgresql-{hosts.PG_VERSION}",
}


_lab_lock = MachineLock(lambda: Path(f"{state_dir()}.lock"), "lab (up/down/reset)")


@contextmanager
def _exclusive(timeout: float = 300) -> Iterator[None]:
    """One up/down/reset at a time on this machine (test sessions and people share the lab);
    inside `held()`, the holder's own go ahead."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts): run it as root")
    with _lab_lock(timeout):
        yield


@contextmanager
def held(
    *, reset_first: bool = True, reset_after: bool = False, progress: Progress = log.info
) -> Iterator[None]:
    """The whole lab for a while (a test, a demo): other processes' up, down and reset wait
    until it is released; this process's own go ahead. Reset to the seeded state first unless
    told not to, and after when asked (so the next user finds it converged)."""
    nb = _netbox_module().held(reset_first=False) if _use_netbox() else nullcontext()
    with _exclusive(), nb:  # the order of every reset: the lab's lock, then NetBox's
        if reset_first:
            _reset(progress)
        try:
            yield
        finally:
            if reset_after:
                _reset(progress)


# The lab department's own values of settings no production runbook defaults: its DNS domain
# (pc-install) and the port of the status agent its server baseline runs (server-maintenance).
LAB_SETTINGS = {"RUNBOOKS_DOMAIN": "lab.example", "RUNBOOKS_BASELINE_AGENT_PORT": "9100"}


def runbooks_env() -> dict[str, str]:
    """What runbooks need to reach the lab's devices and hosts (`runbook lab env`): root with
    the lab's key, host keys checked against the lab's known_hosts, and the lab's settings
    (`LAB_SETTINGS`). Paths and values only, no secret."""
    login = node.login_params("")  # how every node is logged in to, whichever address
    return {
        **LAB_SETTINGS,
        "RUNBOOKS_SSH_KNOWN_HOSTS": login["known_hosts"],
        "RUNBOOKS_DEVICE_USERNAME": login["username"],
        "RUNBOOKS_DEVICE_KEY_FILE": login["key_file"],
        "RUNBOOKS_ANSIBLE_USER": login["username"],
        "RUNBOOKS_ANSIBLE_PRIVATE_KEY": login["key_file"],
        "RUNBOOKS_SOFTWARE_SOURCE": software.source_line(),  # the lab's department repository
        "RUNBOOKS_APP_ARTIFACTS": str(labapp.artifact_dir()),  # the lab application's releases
    }


def preflight() -> None:
    """Refuse early, in one line, when the lab cannot work on this machine."""
    missing = sorted({pkg for path, pkg in REQUIRED.items() if not os.path.exists(path)})
    if missing:
        raise LabError(f"the lab needs these packages: apt-get install {' '.join(missing)}")


@dataclass(frozen=True)
class Timings:
    """Seconds spent in each phase of an up or reset, in order."""

    phases: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.phases.values())


class _Clock:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.phases: dict[str, float] = {}
        self._t = time.monotonic()

    def lap(self, phase: str, detail: str = "") -> None:
        now = time.monotonic()
        self.phases[phase] = round(now - self._t, 3)
        self._t = now
        self.progress(f"{phase}: {detail or 'ok'} ({self.phases[phase]:.1f} s)")


def _netbox_module() -> ModuleType:
    # Imported late: devices and hosts work (RUNBOOKS_LAB_NETBOX=0) even when NetBox's side cannot.
    from runbooks.lab import netbox

    return netbox


def _render(nb: ModuleType, topo: Topology, attempts: int = 3) -> dict[str, str]:
    """NetBox's rendered configs (every FRR router, and the devices of other platforms that
    start active); a NetBox that has just (re)started may refuse for a moment."""
    others = {topo.platform(d.name) for d in topo.devices if d.status == "active"} - {"frr"}
    for attempt in range(1, attempts + 1):
        try:
            configs: dict[str, str] = nb.render_configs()
            for platform in sorted(others):
                configs |= nb.render_configs(platform)
            return configs
        except LabError as exc:
            if attempt == attempts:
                raise
            log.warning("NetBox render-config failed (%s); retrying", exc)
            time.sleep(2.0 * attempt)
    raise AssertionError("unreachable")


def _use_netbox() -> bool:
    """RUNBOOKS_LAB_NETBOX=0: devices and hosts alone (the caller then passes the configs)."""
    return os.environ.get("RUNBOOKS_LAB_NETBOX", "1") != "0"


def up(progress: Progress = log.info, configs: dict[str, str] | None = None) -> Timings:
    """Bring the whole lab up (or verify and repair a running one)."""
    with _exclusive():
        return _up(progress, configs)


def _up(progress: Progress, configs: dict[str, str] | None) -> Timings:
    topo = topology.load()
    clock = _Clock(progress)
    preflight()
    network.check_addresses(topo)
    node.prepare_state_dir()
    node.lab_key()
    clock.lap(
        "address check",
        "no route or address overlaps " + ", ".join(str(p) for p in topo.addressing.all_prefixes()),
    )
    if topo.software and software.missing(topo.software):
        fetched = software.ensure(topo.software, progress=progress)
        clock.lap("software", f"repository {software.repo_dir()}: {len(fetched)} package(s) added")
    built = labapp.ensure()  # the lab application's releases (app-maintenance), idempotent
    if built:
        clock.lap("labapp", f"releases {labapp.artifact_dir()}: {len(built)} file(s) built")
    if _use_netbox():
        nb = _netbox_module()
        nb.up()
        clock.lap("netbox", nb.url())
        # Running devices keep their configuration: render only for devices about to start.
        if configs is None and any(
            node.holder_pid(frr.device_dir(d.name), d.name) is None
            for d in topo.devices
            if d.status == "active"
        ):
            configs = _render(nb, topo)
            clock.lap("render", f"{len(configs)} configs rendered by NetBox")
    network.ensure_bridge(topo)
    clock.lap("bridge", f"{network.BRIDGE} {network.own_gateway(topo)}")
    for host in topo.hosts:
        network.ensure_netns(host.name)
        network.ensure_mgmt_link(topo, host.name, host.mgmt)
    fresh = [h.name for h in topo.hosts if hosts.start_host(topo, h)]
    clock.lap("hosts", _started(fresh, len(topo.hosts)))
    for dev in topo.devices:
        network.ensure_netns(dev.name)
        network.ensure_mgmt_link(topo, dev.name, dev.mgmt)
    network.ensure_fabric_links(topo)
    fresh = [d.name for d in topo.devices if _start_device(topo, d, _config_for(topo, d, configs))]
    clock.lap("devices", _started(fresh, len(topo.devices)))
    _wait_converged(topo, clock)
    return Timings(clock.phases)


def _started(fresh: list[str], total: int) -> str:
    return f"{len(fresh)} started, {total - len(fresh)} already running"


def _is_bird(topo: Topology, dev: topology.Device) -> bool:
    return topo.platform(dev.name) == bird.PLATFORM


def _start_device(topo: Topology, dev: topology.Device, config: str) -> bool:
    if _is_bird(topo, dev):
        return bird.start_device(topo, dev, config)
    return frr.start_device(dev, config)


def _reset_device(topo: Topology, dev: topology.Device, config: str) -> None:
    if _is_bird(topo, dev):
        bird.reset_device(topo, dev, config)
    else:
        frr.reset_device(dev, config)


def bgp_states(topo: Topology, name: str) -> dict[str, str]:
    """Neighbour address -> BGP state ("Established" when up) of a device, whichever its OS."""
    return bird.bgp_states(name) if _is_bird(topo, topo.device(name)) else frr.bgp_states(name)


def _config_for(topo: Topology, dev: topology.Device, configs: dict[str, str] | None) -> str:
    """The startup config of a device being (re)started: NetBox's, else the one it first had."""
    if dev.status != "active":
        if _is_bird(topo, dev):
            return bird.factory_config(topo, dev.name)
        return frr.factory_config(dev.name)
    if configs and dev.name in configs:
        return configs[dev.name]
    initial = frr.device_dir(dev.name) / "initial.conf"
    if initial.exists():
        return initial.read_text()
    raise LabError(f"no configuration for active device {dev.name} (NetBox rendered none)")


def _wait_converged(topo: Topology, clock: _Clock) -> None:
    nodes = [(d.name, str(d.mgmt)) for d in topo.devices] + [
        (h.name, str(h.mgmt)) for h in topo.hosts
    ]
    for name, addr in nodes:
        node.wait_for(f"sshd on {name} ({addr})", functools.partial(node.ssh_answers, addr), 15)
    clock.lap("ssh", f"{len(nodes)} sshd answering")
    active = [d.name for d in topo.devices if d.status == "active"]
    node.wait_for(
        "BGP Established on every active link",
        lambda: not bgp_problems(topo, active),
        CONVERGE_TIMEOUT,
        0.2,
    )
    sessions = sum(len(frr.expected_peers(topo, n)) for n in active)
    clock.lap("bgp", f"{sessions} sessions Established")
    for dev in topo.devices:
        frr.run_on_device(dev.name, ["lldpcli", "update"])
    node.wait_for(
        "LLDP neighbours matching every link",
        lambda: not lldp_problems(topo),
        CONVERGE_TIMEOUT,
        0.2,
    )
    clock.lap("lldp", f"{2 * len(topo.links)} neighbours match the links")


def bgp_problems(topo: Topology, names: list[str] | None = None) -> list[str]:
    """Expected BGP sessions (links between active devices) that are not Established."""
    problems = []
    for name in names or [d.name for d in topo.devices if d.status == "active"]:
        states = bgp_states(topo, name)
        for peer, peer_name in frr.expected_peers(topo, name).items():
            if states.get(peer) != "Established":
                problems.append(f"{name} -> {peer_name} ({peer}): {states.get(peer, 'absent')}")
    return problems


def lldp_problems(topo: Topology) -> list[str]:
    """Links whose LLDP neighbour (SysName, port) does not match the topology."""
    problems = []
    for dev in topo.devices:
        seen = frr.lldp_neighbours(dev.name)
        for ifname, want in frr.expected_lldp(topo, dev.name).items():
            if seen.get(ifname) != want:
                problems.append(f"{dev.name}:{ifname} sees {seen.get(ifname)}, expected {want}")
    return problems


def reset(progress: Progress = log.info) -> Timings:
    """NetBox back to its seed, devices to their NetBox-rendered configs (leaf3 to factory
    defaults), hosts to a fresh private filesystem (db1 with its sample data again)."""
    with _exclusive():
        return _reset(progress)


def _reset(progress: Progress) -> Timings:
    topo = topology.load()
    clock = _Clock(progress)
    missing = [
        n
        for n in ([d.name for d in topo.devices] + [h.name for h in topo.hosts])
        if network.netns_name(n) not in network.lab_namespaces()
    ]
    if missing:
        raise LabError(f"lab is not up ({', '.join(missing)} missing): run `runbook lab up`")
    configs: dict[str, str] = {}
    if _use_netbox():
        nb = _netbox_module()
        nb.reset()
        configs = _render(nb, topo)
        clock.lap("netbox", "seeded state restored, configs rendered")
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = [pool.submit(hosts.reset_host, topo, h) for h in topo.hosts]
        jobs += [
            pool.submit(_reset_device, topo, d, _config_for(topo, d, configs)) for d in topo.devices
        ]
        for job in jobs:
            job.result()
    clock.lap("restart", f"{len(topo.hosts)} hosts, {len(topo.devices)} devices")
    _wait_converged(topo, clock)
    return Timings(clock.phases)


def down(progress: Progress = log.info) -> Timings:
    """Leave nothing: processes, namespaces, links, routes, mounts, state dir (cache stays)."""
    with _exclusive():
        return _down(progress)


def _down(progress: Progress) -> Timings:
    topo = topology.load()
    clock = _Clock(progress)
    namespaces = network.lab_namespaces()
    holders = _recorded_holders()
    for ns in namespaces:
        network.delete_netns(ns)
    # A holder whose namespace file vanished still keeps its namespaces alive: stop it too.
    network.kill_pids(p for p in holders if _is_lab_holder(p))
    clock.lap("nodes", f"{len(namespaces)} namespaces removed")
    network.remove_bridge(topo)
    clock.lap("bridge", f"{network.BRIDGE} and lab routes removed")
    for sub in ("devices", "hosts", "ssh"):
        node.remove_tree(state_dir() / sub)
    if _use_netbox():
        _netbox_module().destroy()
        clock.lap("netbox", "stopped, lab databases dropped")
        node.remove_tree(state_dir())
    clock.lap("state", f"{state_dir()} removed")
    return Timings(clock.phases)


def _recorded_holders() -> list[int]:
    pids = []
    for pid_file in state_dir().glob("*/*/holder.pid"):
        try:
            pids.append(int(pid_file.read_text(encoding="ascii")))
        except (OSError, ValueError):
            continue
    return pids


def _is_lab_holder(pid: int) -> bool:
    """Still the lab's holder: `sleep infinity` outside the root network namespace."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        own = os.stat("/proc/self/ns/net").st_ino
        return cmdline == b"sleep\0infinity\0" and os.stat(f"/proc/{pid}/ns/net").st_ino != own
    except OSError:
        return False


def status() -> list[ComponentStatus]:
    """Each component and whether it answers."""
    topo = topology.load()
    result: list[ComponentStatus] = []
    if _use_netbox():
        try:
            result += _netbox_module().status()
        except Exception as exc:  # status must report, not crash: show what failed
            result.append(ComponentStatus("netbox", False, f"status failed: {exc}"))
    bridge = network.link_exists(network.BRIDGE)
    result.append(
        ComponentStatus(
            "bridge",
            bridge,
            f"{network.BRIDGE} {network.own_gateway(topo)}" if bridge else "absent",
        )
    )
    for dev in topo.devices:
        result.append(_device_status(topo, dev))
    for host in topo.hosts:
        ssh = node.ssh_answers(str(host.mgmt))
        result.append(
            ComponentStatus(
                f"host {host.name}", ssh, f"sshd {host.mgmt}:22 {'answers' if ssh else 'silent'}"
            )
        )
        if host.postgresql:
            pg = hosts.postgres_answers(host)
            result.append(
                ComponentStatus(
                    f"host {host.name} postgresql",
                    pg,
                    f"PostgreSQL {host.postgresql} {host.mgmt}:{hosts.PG_PORT} "
                    f"{'answers' if pg else 'silent'}",
                )
            )
    return result


def _device_status(topo: Topology, dev: topology.Device) -> ComponentStatus:
    name = f"device {dev.name}"
    if node.holder_pid(frr.device_dir(dev.name), dev.name) is None:
        return ComponentStatus(name, False, "not running")
    ssh = node.ssh_answers(str(dev.mgmt))
    daemon = "bird" if _is_bird(topo, dev) else "bgpd"
    try:
        states = bgp_states(topo, dev.name)
    except LabError:
        return ComponentStatus(
            name, False, f"sshd {'answers' if ssh else 'silent'}, {daemon} silent"
        )
    want = frr.expected_peers(topo, dev.name)
    up_ = sum(1 for p in want if states.get(p) == "Established")
    ok = ssh and up_ == len(want)
    return ComponentStatus(
        name,
        ok,
        f"{dev.status}, sshd {'answers' if ssh else 'silent'}, "
        f"{daemon} answers, {up_}/{len(want)} BGP sessions Established",
    )
