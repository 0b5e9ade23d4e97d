"""Benchmark: N devices of each network OS, each: facts, interfaces, BGP and LLDP, and a
candidate diff — through the runbooks network gateway (concurrent, one session per device),
beside a serial Netmiko loop (the pile-of-scripts way) and Nornir + nornir_napalm with the same
NAPALM driver, all measured in one run on the same devices, the two OSes side by side:

- frr: the lab's FRR devices, our NAPALM driver (napalm-frr);
- bird2: BIRD 2 boxes (border1 and extras like it), napalm-bird2 from PyPI, with the options
  the lab's NetBox config context gives it. It has no LLDP getter: the gateway and Nornir read
  facts, interfaces and BGP only there (the serial loop still runs lldpcli, as a script would).

Needs the lab up (`runbook lab up`). Devices beyond the lab's are started for the run as extra
boxes on the lab's management bridge (FRR 198.18.0.101…, BIRD 198.18.0.151…) and removed
afterwards.

    .venv/bin/python bench/network_fleet.py [--sizes 5 10 20] [--workers 20] [--os frr bird2]
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from netmiko import ConnectHandler

from runbooks.core.gateway import Mode
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.lab import bird, frr, network, node, topology

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


def via_gateway(
    os_: OS, devices: list[tuple[str, str]], workers: int, candidate: dict[str, str]
) -> dict[str, str]:
    creds = Credentials(
        "root", key_file=key_file(), timeout=60, known_hosts=node.known_hosts_file()
    )

    def one(dev: tuple[str, str]) -> str:
        target = DeviceTarget(dev[0], dev[1], os_.platform, os_.platform, os_.optional_args)
        gw = NetworkGateway(Mode.PLAN, target, creds, "bench")
        try:
            facts = gw.facts()
            for getter in os_.getters[1:]:
                getattr(gw, getter)()
            diff = gw.compare(candidate[dev[0]], replace=not os_.merge)
            assert os_.candidate_line in diff, diff
            return str(facts["hostname"])
        finally:
            gw.close()

    with ThreadPoolExecutor(workers) as pool:
        return dict(zip([d[0] for d in devices], pool.map(one, devices), strict=True))


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
    os_: OS, devices: list[tuple[str, str]], workers: int, candidate: dict[str, str]
) -> dict[str, str]:
    from nornir import InitNornir
    from nornir_napalm.plugins.tasks import napalm_configure, napalm_get

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


def timed(fn: Callable[[], dict[str, str]]) -> tuple[float, dict[str, str]]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(os_: OS, topo: topology.Topology, subset: list[tuple[str, str]], workers: int) -> str:
    """One row: the three ways on the same devices, each device's answers checked."""
    candidate = candidates(os_, topo, subset)
    t_serial, r1 = timed(lambda: via_serial_netmiko(os_, subset))
    t_nornir, r2 = timed(lambda: via_nornir(os_, subset, workers, candidate))
    t_gw, r3 = timed(lambda: via_gateway(os_, subset, workers, candidate))
    assert r1 == {d[0]: d[0] for d in subset}, r1  # each device said its own name
    # the drivers' facts: FRR's say the name; napalm-bird2's say the address it was reached at
    said = {d[0]: d[0] if os_ is FRR else d[1] for d in subset}
    assert r2 == r3 == said, (r2, r3)
    n = len(subset)
    return (
        f"{os_.platform:>6} {n:>3} {t_serial:>14.2f}s {t_nornir:>7.2f}s {t_gw:>7.2f}s "
        f"{t_serial / t_gw:>9.2f}x {t_nornir / t_gw:>9.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--os", nargs="+", default=list(OSES), choices=list(OSES))
    args = parser.parse_args()
    fleets: dict[str, tuple[topology.Topology, list[tuple[str, str]]]] = {}
    extras: list[tuple[str, str]] = []
    try:
        for name in args.os:
            base = lab_devices(OSES[name])
            topo, more = start_extras(OSES[name], max(0, max(args.sizes) - len(base)))
            extras += more
            fleets[name] = (topo, base + more)
        for name, address in extras:  # the new boxes' sshd answer (then vtysh and bird do)
            node.wait_for(f"sshd on {name}", lambda a=address: node.ssh_answers(a), 30)
        time.sleep(1)
        print(
            f"{'OS':>6} {'N':>3} {'serial netmiko':>15} {'nornir':>8} {'gateway':>8} "
            f"{'serial/gw':>10} {'nornir/gw':>10}"
        )
        for n in args.sizes:
            for name in args.os:
                topo, devices = fleets[name]
                print(measure(OSES[name], topo, devices[:n], args.workers), flush=True)
    finally:
        stop_extras(extras)


if __name__ == "__main__":
    main()
