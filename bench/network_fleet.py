"""Benchmark: N FRR devices, each: facts, interfaces, BGP and LLDP, and a candidate diff —
through the runbooks network gateway (concurrent, one session per device), beside a serial
Netmiko loop (the pile-of-scripts way) and Nornir + nornir_napalm with the same FRR driver,
all measured in one run on the same devices.

Needs the lab up (`runbook lab up`). Devices beyond the lab's five are started for the run as
extra FRR boxes on the lab's management bridge (198.18.0.101…) and removed afterwards.

    .venv/bin/python bench/network_fleet.py [--sizes 5 10 20] [--workers 20]
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from netmiko import ConnectHandler

from runbooks.core.gateway import Mode
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.lab import frr, network, node, topology

CANDIDATE_LINE = "ip route 198.18.250.0/24 Null0"
SHOWS = [
    "vtysh -c 'show version'",
    "ip -j addr show",
    "vtysh -c 'show bgp summary json'",
    "lldpcli -f json0 show neighbors",
]


def lab_devices() -> list[tuple[str, str]]:
    return [(d.name, str(d.mgmt)) for d in topology.load().devices]


def start_extras(count: int) -> list[tuple[str, str]]:
    topo = topology.load()
    extras = []
    for i in range(1, count + 1):
        name = f"bench{i:02d}"
        mgmt = ipaddress.IPv4Address(f"198.18.0.{100 + i}")
        dev = topology.Device(
            name=name,
            role="leaf",
            rack="R01",
            position=1,
            status="planned",
            mgmt=mgmt,
            loopback=ipaddress.IPv4Address(f"198.18.255.{100 + i}"),
            asn=65300 + i,
        )
        network.ensure_netns(name)
        network.ensure_mgmt_link(topo, name, mgmt)
        frr.start_device(dev, frr.factory_config(name))
        extras.append((name, str(mgmt)))
    return extras


def stop_extras(extras: list[tuple[str, str]]) -> None:
    for name, _ in extras:
        frr.stop_device(name)
        network.delete_netns(network.netns_name(name))
        shutil.rmtree(frr.device_dir(name), ignore_errors=True)


def key_file() -> str:
    return str(node.ssh_dir() / "id_ed25519")


def via_gateway(devices: list[tuple[str, str]], workers: int) -> dict[str, str]:
    creds = Credentials(
        "root", key_file=key_file(), timeout=60, known_hosts=node.known_hosts_file()
    )

    def one(dev: tuple[str, str]) -> str:
        gw = NetworkGateway(Mode.PLAN, DeviceTarget(dev[0], dev[1], "frr"), creds, "bench")
        try:
            facts = gw.facts()
            gw.interfaces()
            gw.bgp_neighbors()
            gw.lldp_neighbors()
            diff = gw.compare(CANDIDATE_LINE + "\n", replace=False)
            assert CANDIDATE_LINE in diff, diff
            return str(facts["hostname"])
        finally:
            gw.close()

    with ThreadPoolExecutor(workers) as pool:
        return dict(zip([d[0] for d in devices], pool.map(one, devices), strict=True))


def via_serial_netmiko(devices: list[tuple[str, str]]) -> dict[str, str]:
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
            version = conn.send_command(SHOWS[0])
            for command in SHOWS[1:]:
                conn.send_command(command)
            running = conn.send_command("vtysh -c 'show running-config'")
            diff = "".join(
                difflib.unified_diff(
                    running.splitlines(True), (running + CANDIDATE_LINE + "\n").splitlines(True)
                )
            )
            assert CANDIDATE_LINE in diff
            # "FRRouting 8.4.4 (leaf1) on Linux(…)": the device says its own name
            out[name] = version.split("(", 1)[1].split(")", 1)[0] if "(" in version else version
        finally:
            conn.disconnect()
    return out


def via_nornir(devices: list[tuple[str, str]], workers: int) -> dict[str, str]:
    from nornir import InitNornir
    from nornir_napalm.plugins.tasks import napalm_configure, napalm_get

    with tempfile.TemporaryDirectory() as tmp:
        hosts = {
            name: {
                "hostname": host,
                "platform": "frr",
                "username": "root",
                "password": "",
                "connection_options": {
                    "napalm": {
                        "extras": {"optional_args": {"key_file": key_file(), "use_keys": True}}
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
            got = t.run(
                napalm_get, getters=["facts", "interfaces", "bgp_neighbors", "lldp_neighbors"]
            )
            diff = t.run(
                napalm_configure, configuration=CANDIDATE_LINE + "\n", replace=False, dry_run=True
            )
            assert CANDIDATE_LINE in (diff.diff or "")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--workers", type=int, default=20)
    args = parser.parse_args()
    base = lab_devices()
    extras = start_extras(max(0, max(args.sizes) - len(base)))
    try:
        time.sleep(2)  # sshd and vtysh of the new boxes
        devices = base + extras
        print(
            f"{'N':>3} {'serial netmiko':>15} {'nornir':>8} {'gateway':>8} "
            f"{'serial/gw':>10} {'nornir/gw':>10}"
        )
        for n in args.sizes:
            subset = devices[:n]
            t_serial, r1 = timed(lambda s=subset: via_serial_netmiko(s))
            t_nornir, r2 = timed(lambda s=subset: via_nornir(s, args.workers))
            t_gw, r3 = timed(lambda s=subset: via_gateway(s, args.workers))
            assert set(r1) == set(r2) == set(r3) == {d[0] for d in subset}
            expected = {d[0]: d[0] for d in subset}  # each device said its own name
            assert r1 == r2 == r3 == expected, (r1, r2, r3)
            print(
                f"{n:>3} {t_serial:>14.2f}s {t_nornir:>7.2f}s {t_gw:>7.2f}s "
                f"{t_serial / t_gw:>9.2f}x {t_nornir / t_gw:>9.2f}x"
            )
    finally:
        stop_extras(extras)


if __name__ == "__main__":
    main()
