"""BIRD 2 border routers: a Linux box routing with BIRD, driven by napalm-bird2 (PyPI).

The lab's second network OS, so that runbooks are shown to work through a NAPALM driver we did
not write. The device contract:
- network namespace `rbl-<name>`, own UTS (hostname = device name), own mount namespace where
  `/etc/bird`, `/run/bird` and `/root` are the device's own bind mounts from
  `state_dir()/devices/<name>/` (etc-bird, run-bird, home), `/run` and `/tmp` private tmpfs;
- `bird -c /etc/bird/bird.conf -s /run/bird/bird.ctl` started by hand as root (its config file
  and control socket are the device's own, never the machine's /etc/bird or /run/bird);
- sshd on <mgmt>:22 (root, key-only, the SFTP subsystem: the driver reads and writes bird.conf
  over SFTP); lldpd with port id = kernel ifname, as on the FRR devices;
- addresses belong to the box's OS, not to BIRD (BIRD routes; it never sets an address): the
  management address on `eth0`, the loopback on `lo` and each cable's /31 on its `swpN`, as the
  topology (= NetBox) gives them, are there from power-on, like an installed server's network
  configuration. BIRD's configuration decides only whether it routes: the factory default
  (`factory_config`) has the device and kernel protocols, no BGP (and no router id line:
  BIRD takes one from an interface, and the management address must not appear in it).

napalm-bird2 0.0.5, read and tried here (what runbooks may expect of it):
- Transports: SSH (paramiko; `key_file`, `port`, `look_for_keys`, `allow_agent`) running
  shell commands (`birdc -s <socket_path> …`, `ip -j link show`, `hostname -f`) and SFTP for
  files, or a local Unix socket when runbooks runs on the router itself. The login needs a
  shell, SFTP, read/write on bird.conf and access to BIRD's socket: root here.
  It accepts ANY SSH host key (paramiko AutoAddPolicy): the driver checks no known_hosts;
  runbooks' gateway checks the box's key against it before the driver opens. On its first
  `open()` in a process it prints its version to stdout (the gateway sends that to stderr)
  and, unless NAPALM_BIRD2_DISABLE_UPDATE_CHECK=1 (the gateway sets it), asks pypi.org for a
  newer release.
- `bird_config_path` is resolved on the machine running runbooks (`Path.exists()` locally,
  then /etc/bird/bird.conf …): a path missing there reads as an empty running configuration.
  The lab names the path in the platform's config context (`napalm.optional_args`) and the
  machine has Debian's bird2 installed, so it resolves to the box's /etc/bird/bird.conf.
  `pathvector_managed: false` keeps it from looking for Pathvector.
- Configuration: load_replace/merge_candidate keep the candidate in memory only;
  compare_config is a unified diff of the box's bird.conf (read over SFTP) and the candidate:
  it writes nothing on the box. commit_config writes bird.conf over SFTP and runs
  `birdc configure`; a configuration BIRD refuses (birdc exits 1) is written back and
  re-applied, and CommandErrorException is raised. rollback re-writes the file read before the
  last commit of the same driver object. `commit_config(revert_in=N)` starts a timer of N
  MINUTES (NAPALM says seconds) in the client's own process, cancelled by close(); there is no
  confirm_commit or has_pending_commit: no commit-confirm on the box.
- Getters: get_facts (hostname = the address connected to, and so is fqdn when
  `hostname -f` cannot resolve the box's name, as here; os_version is empty because
  `bird --version` writes to stderr; uptime 0), get_interfaces (`ip -j link`),
  get_bgp_neighbors and get_bgp_neighbors_detail (`birdc show protocols all`; peers are keyed
  by protocol NAME, so the template names each `protocol bgp '<peer address>'` to get NAPALM's
  address keys; `is_enabled` is always True, even for a `disabled;` protocol; the address
  family key is "ipv4 unicast", not "ipv4"; local_as and router_id are not read from BIRD),
  is_alive. Not implemented (NetworkDriver raises NotImplementedError): get_config (the
  driver's own get_bird_running_config reads the file: the lab's config context maps one to the
  other in `napalm.getters`, which the gateway honours), get_route_to,
  get_lldp_neighbors(_detail), get_interfaces_ip, get_arp_table, cli, ping, traceroute and the
  rest.

API: `device_dir(name)`, `factory_config(topo, name)`, `run_on_device(name, argv)`,
`birdc(name, command)`, `bgp_states(name)`, `parse_protocols(text)`; the lab itself uses
`start_device`, `stop_device`, `reset_device`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import shlex
import subprocess
from pathlib import Path

from runbooks.lab import frr, network, node
from runbooks.lab.errors import LabError
from runbooks.lab.topology import Device, Topology

log = logging.getLogger(__name__)

PLATFORM = "bird2"
BIRD = "/usr/sbin/bird"
BIRDC = "/usr/sbin/birdc"
CONFIG = "/etc/bird/bird.conf"
SOCKET = "/run/bird/bird.ctl"


def device_dir(name: str) -> Path:
    """The same place as an FRR device's: the lab finds every device's holder there."""
    return frr.device_dir(name)


def factory_config(topo: Topology, name: str) -> str:
    """What the box boots with: the device and kernel protocols, no BGP. No `router id` line:
    BIRD takes one from an interface address, and writing the management address into the
    routing configuration is what runbooks refuse (the address is the OS's; an undo of a
    change that removed it would bring it back, and the other way round)."""
    topo.device(name)  # a lab device: refuse a name the topology does not know
    return (
        "# BIRD 2 as the box was delivered: no routing configured; the router id is taken\n"
        "# from an interface address\n\n"
        "protocol device {\n}\n\n"
        "protocol kernel {\n\tipv4 {\n\t\texport where source = RTS_BGP;\n\t};\n}\n"
    )


def os_addresses(topo: Topology, name: str) -> dict[str, list[ipaddress.IPv4Interface]]:
    """Interface -> addresses the box's OS holds besides its management address: the loopback
    and each cable's end, as in NetBox (the seed puts the same ones there)."""
    dev = topo.device(name)
    found: dict[str, list[ipaddress.IPv4Interface]] = {
        "lo": [ipaddress.IPv4Interface(f"{dev.loopback}/32")]
    }
    for link in topo.links:
        (a_dev, a_if), (b_dev, b_if) = link.ends()
        a_addr, b_addr = link.addresses()
        if a_dev == name:
            found.setdefault(a_if, []).append(a_addr)
        if b_dev == name:
            found.setdefault(b_if, []).append(b_addr)
    return found


# --- the device API other code uses ---------------------------------------------------------


def run_on_device(
    name: str, argv: list[str], *, check: bool = False, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run argv inside the box's namespaces (tests and diagnostics; runbooks use SSH)."""
    return node.run_inside(device_dir(name), name, "device", argv, check=check, timeout=timeout)


def birdc(name: str, command: str) -> str:
    """A `birdc` command's answer on the box (LabError when BIRD does not answer)."""
    proc = run_on_device(name, [BIRDC, "-s", SOCKET, *shlex.split(command)], timeout=15)
    if proc.returncode != 0:
        raise LabError(f"{name}: birdc {command}: {(proc.stdout + proc.stderr).strip()[:200]}")
    return proc.stdout


def parse_protocols(text: str) -> dict[str, str]:
    """Neighbour address -> BGP state from `birdc show protocols all`.

    >>> parse_protocols('''
    ... 198.18.1.12 BGP        ---        up     10:00:01.000  Established
    ...   BGP state:          Established
    ...     Neighbor address: 198.18.1.12
    ... 198.18.1.14 BGP        ---        down   10:00:01.000
    ...   BGP state:          Down
    ...     Neighbor address: 198.18.1.14
    ... ''')
    {'198.18.1.12': 'Established', '198.18.1.14': 'Down'}
    """
    states: dict[str, str] = {}
    state = ""
    for line in text.splitlines():
        found = re.match(r"\s+BGP state:\s+(\S+)", line)
        if found:
            state = found[1]
            continue
        found = re.match(r"\s+Neighbor address:\s+(\S+)", line)
        if found:
            states[found[1].split("%")[0]] = state
    return states


def bgp_states(name: str) -> dict[str, str]:
    """Neighbour address -> BGP state ("Established" when up), as `frr.bgp_states` gives."""
    return parse_protocols(birdc(name, "show protocols all"))


# --- bring-up -------------------------------------------------------------------------------


def _holder_script(name: str) -> str:
    return node.router_holder_script(
        device_dir(name), name, daemon="bird", mounts={"etc-bird": "/etc/bird"}
    )


def _prepare_dirs(dev: Device, config: str) -> None:
    d = device_dir(dev.name)
    for sub in ("runfs", "run-bird", "etc-bird", "home", "lldpd.d"):
        (d / sub).mkdir(parents=True, exist_ok=True)
        (d / sub).chmod(0o755)
    write_config(dev.name, config)
    (d / "initial.conf").write_text(config)
    node.prepare_router_login(d, dev.name, str(dev.mgmt))


def write_config(name: str, config: str) -> None:
    """Set the configuration BIRD reads at start (/etc/bird/bird.conf as the box sees it)."""
    path = device_dir(name) / "etc-bird" / "bird.conf"
    path.write_text(config if config.endswith("\n") else config + "\n")
    path.chmod(0o640)


def _apply_os_addresses(topo: Topology, name: str) -> None:
    """The box's OS network configuration (idempotent: `replace`)."""
    ns = network.netns_name(name)
    for ifname, addresses in os_addresses(topo, name).items():
        for address in addresses:
            network.run(["ip", "-n", ns, "addr", "replace", str(address), "dev", ifname])
        network.run(["ip", "-n", ns, "link", "set", ifname, "up"])


def _bird_answers(pid: int) -> bool:
    return node.nsenter(pid, [BIRDC, "-s", SOCKET, "show", "status"], timeout=5).returncode == 0


def start_device(topo: Topology, dev: Device, config: str) -> bool:
    """Bring one box up (namespace and links must exist). Idempotent: a running box keeps its
    configuration and only gets missing daemons restarted. True if started fresh."""
    d = device_dir(dev.name)
    pid = node.holder_pid(d, dev.name)
    fresh = pid is None
    if pid is None:
        stop_device(dev.name)
        frr.flush_addresses(dev.name)
        _prepare_dirs(dev, config)
        pid = node.start_holder(d, dev.name, _holder_script(dev.name))
        log.info("device %s (BIRD): holder %d", dev.name, pid)
    node.trust_host_key(str(dev.mgmt), dev.name, d / "ssh_host_ed25519_key")
    _apply_os_addresses(topo, dev.name)
    if not _bird_answers(pid):
        (d / "run-bird" / "bird.ctl").unlink(missing_ok=True)
        started = node.nsenter(
            pid, [BIRD, "-c", CONFIG, "-s", SOCKET, "-P", "/run/bird/bird.pid"], timeout=30
        )
        if started.returncode != 0:
            raise LabError(f"{dev.name}: bird refused to start: {started.stderr.strip()[:200]}")
        node.wait_for(f"BIRD on {dev.name}", lambda: _bird_answers(pid), 10)
    node.start_sshd_and_lldpd(pid, d)
    return fresh


def stop_device(name: str) -> None:
    """Stop every process of the box; the namespace and links stay."""
    node.stop_router(device_dir(name), name, daemon="bird")


def reset_device(topo: Topology, dev: Device, config: str) -> None:
    stop_device(dev.name)
    frr.flush_addresses(dev.name)
    start_device(topo, dev, config)
