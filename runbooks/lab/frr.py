"""FRR network devices: namespaces that log in, route and talk LLDP like a switch.

The device contract (the FRR NAPALM driver is written against it):
- network namespace `rbl-<name>`, own UTS (hostname = device name), own mount namespace where
  `/etc/frr`, `/run/frr` (= /var/run/frr), `/var/log/frr` and `/root` are the device's own bind
  mounts from `state_dir()/devices/<name>/`, and `/tmp`, `/run` are private tmpfs (so lldpd's
  `/run/lldpd.socket`, `/run/sshd` are per device; of the state dir only the device's own
  directory and the lab's authorized_keys are visible, at their usual paths);
- FRR zebra, staticd and bgpd started by hand (`vtysh -b` loads the integrated /etc/frr/frr.conf),
  so `vtysh`, `frr-reload.py --test|--reload`, `write memory` work with their default paths;
- sshd on <mgmt>:22, root, key-only with the lab key; lldpd with port id = kernel ifname;
- `eth0` management on the lab bridge, `swp1..` fabric veths per the topology's links.

API: `device_ssh_params(name)`, `run_on_device(name, argv)`, `vtysh_json(name, cmd)`,
`bgp_states(name)`, `lldp_neighbours(name)`, `expected_peers/expected_lldp(topo, name)`,
`factory_config(name)`; the lab itself uses `start_device`, `stop_device`, `reset_device`.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

from runbooks.lab import network, node
from runbooks.lab.errors import LabError
from runbooks.lab.paths import state_dir
from runbooks.lab.topology import Device, Topology

log = logging.getLogger(__name__)

FRR_DAEMONS = ("zebra", "staticd", "bgpd")
FRR_BIN = Path("/usr/lib/frr")
_DAEMON_ARGS = {"zebra": ["-s", "90000000"]}
_DAEMONS_FILE = """\
# Written by runbooks lab: the daemons this device runs (started by the lab, not frrinit.sh).
zebra=yes
bgpd=yes
staticd=yes
vtysh_enable=yes
zebra_options="  -A 127.0.0.1 -s 90000000"
bgpd_options="   -A 127.0.0.1"
staticd_options="-A 127.0.0.1"
"""


def device_dir(name: str) -> Path:
    return state_dir() / "devices" / name


def factory_config(name: str) -> str:
    """What a new box boots with: its hostname and nothing else."""
    return (
        "frr version 8.4.4\nfrr defaults traditional\n"
        f"hostname {name}\nlog file /var/log/frr/frr.log\n"
        "service integrated-vtysh-config\n!\nline vty\n!\n"
    )


# --- the device API other code uses ---------------------------------------------------------


def device_ssh_params(name: str, topo: Topology | None = None) -> dict[str, Any]:
    """How to log in to a device: {host, username, key_file, port, known_hosts}."""
    from runbooks.lab import topology

    return node.login_params((topo or topology.load()).device(name).mgmt)


def run_on_device(
    name: str,
    argv: list[str],
    *,
    check: bool = False,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run argv inside the device's namespaces (tests and diagnostics; runbooks use SSH)."""
    return node.run_inside(
        device_dir(name), name, "device", argv, check=check, input=input, timeout=timeout
    )


def vtysh_json(name: str, command: str) -> Any:
    out = run_on_device(name, ["vtysh", "-c", command], check=True).stdout
    try:
        return json.loads(out or "{}")
    except json.JSONDecodeError as exc:
        raise LabError(f"{name}: `{command}` did not return JSON") from exc


# --- bring-up -------------------------------------------------------------------------------


def _holder_script(name: str) -> str:
    return node.router_holder_script(
        device_dir(name),
        name,
        daemon="frr",
        mounts={"etc-frr": "/etc/frr", "log-frr": "/var/log/frr"},
        # A router forwards IPv6 too; otherwise zebra shows `no ipv6 forwarding` in every config.
        ipv6_forwarding=True,
    )


def _prepare_dirs(dev: Device, config: str) -> None:
    d = device_dir(dev.name)
    for sub in ("runfs", "run-frr", "etc-frr", "log-frr", "home"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for sub, mode in (("run-frr", 0o755), ("etc-frr", 0o750), ("log-frr", 0o750)):
        (d / sub).chmod(mode)
        shutil.chown(d / sub, "frr", "frr")
    write_config(dev.name, config)
    (d / "initial.conf").write_text(config)
    (d / "etc-frr" / "vtysh.conf").write_text("service integrated-vtysh-config\n")
    (d / "etc-frr" / "daemons").write_text(_DAEMONS_FILE)
    for f in ("vtysh.conf", "daemons"):
        shutil.chown(d / "etc-frr" / f, "frr", "frr")
    node.prepare_router_login(d, dev.name, str(dev.mgmt))


def write_config(name: str, config: str) -> None:
    """Set the startup configuration (/etc/frr/frr.conf as the device sees it)."""
    path = device_dir(name) / "etc-frr" / "frr.conf"
    path.write_text(config if config.endswith("\n") else config + "\n")
    path.chmod(0o640)
    shutil.chown(path, "frr", "frr")


def start_device(dev: Device, config: str) -> bool:
    """Bring one device up (namespace and links must exist). Idempotent: a running device keeps
    its current configuration and only gets missing daemons restarted. True if started fresh."""
    d = device_dir(dev.name)
    pid = node.holder_pid(d, dev.name)
    fresh = pid is None
    if pid is None:
        stop_device(dev.name)  # leftovers of a holder that died would hold the old mounts
        flush_addresses(dev.name)
        _prepare_dirs(dev, config)
        pid = node.start_holder(d, dev.name, _holder_script(dev.name))
        log.info("device %s: holder %d", dev.name, pid)
    node.trust_host_key(str(dev.mgmt), dev.name, d / "ssh_host_ed25519_key")
    missing = [x for x in FRR_DAEMONS if not node.pid_file_alive(d / "run-frr" / f"{x}.pid")]
    for daemon in missing:
        node.nsenter(
            pid,
            [str(FRR_BIN / daemon), "-d", "-A", "127.0.0.1", *_DAEMON_ARGS.get(daemon, [])],
            check=True,
        )
    if missing:
        # Load the integrated config into the daemons just started (frrinit.sh does the same).
        boot = node.nsenter(pid, ["vtysh", "-b"], timeout=60)
        if boot.returncode not in (0, 1):  # 1: a line was refused; the rest still applies
            raise LabError(f"{dev.name}: vtysh -b failed: {boot.stderr.strip()[:200]}")
    node.start_sshd_and_lldpd(pid, d)
    return fresh


def stop_device(name: str) -> None:
    """Stop every process of the device; the namespace and links stay."""
    node.stop_router(device_dir(name), name, daemon="frr")


def flush_addresses(name: str) -> None:
    """Drop what an old configuration left in the kernel (FRR leaves addresses behind)."""
    ns = network.netns_name(name)
    out = network.run(["ip", "-n", ns, "-j", "link", "show"]).stdout
    for link in json.loads(out or "[]"):
        ifname = str(link["ifname"])
        if ifname.startswith("swp"):
            network.run(["ip", "-n", ns, "addr", "flush", "dev", ifname])
    network.run(["ip", "-n", ns, "addr", "flush", "dev", "lo", "scope", "global"])


def reset_device(dev: Device, config: str) -> None:
    stop_device(dev.name)
    flush_addresses(dev.name)
    start_device(dev, config)


# --- checks ----------------------------------------------------------------------------------


def expected_peers(topo: Topology, name: str) -> dict[str, str]:
    """Neighbour address -> device, for links whose both ends are active devices."""
    active = {d.name for d in topo.devices if d.status == "active"}
    peers: dict[str, str] = {}
    for link in topo.links:
        (a_dev, _), (b_dev, _) = link.ends()
        if not {a_dev, b_dev} <= active:
            continue
        a_addr, b_addr = link.addresses()
        if a_dev == name:
            peers[str(b_addr.ip)] = b_dev
        elif b_dev == name:
            peers[str(a_addr.ip)] = a_dev
    return peers


def bgp_states(name: str) -> dict[str, str]:
    """Neighbour address -> BGP state, from `show bgp summary json`."""
    data = vtysh_json(name, "show bgp summary json")
    peers = data.get("ipv4Unicast", {}).get("peers", {})
    return {str(k): str(v.get("state", "")) for k, v in peers.items()}


def expected_lldp(topo: Topology, name: str) -> dict[str, tuple[str, str]]:
    """Local interface -> (peer SysName, peer port) for every wired link of a running device."""
    found: dict[str, tuple[str, str]] = {}
    for link in topo.links:
        (a_dev, a_if), (b_dev, b_if) = link.ends()
        if a_dev == name:
            found[a_if] = (b_dev, b_if)
        elif b_dev == name:
            found[b_if] = (a_dev, a_if)
    return found


def lldp_neighbours(name: str) -> dict[str, tuple[str, str]]:
    """Local interface -> (peer SysName, peer port id), from `lldpcli -f json show neighbors`."""
    out = run_on_device(name, ["lldpcli", "-f", "json0", "show", "neighbors"], check=True).stdout
    return parse_lldp(out)


def parse_lldp(payload: str) -> dict[str, tuple[str, str]]:
    """Local interface -> (peer SysName, peer port id) from lldpcli's `json0` output."""
    data = json.loads(payload or "{}")
    found: dict[str, tuple[str, str]] = {}
    for lldp in data.get("lldp", []):
        for iface in lldp.get("interface", []):
            chassis = (iface.get("chassis") or [{}])[0]
            sysname = (chassis.get("name") or [{}])[0].get("value", "")
            port = (iface.get("port") or [{}])[0]
            port_id = (port.get("id") or [{}])[0].get("value", "")
            found[str(iface.get("name"))] = (str(sysname), str(port_id))
    return found
