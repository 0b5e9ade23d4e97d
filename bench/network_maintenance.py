"""Benchmark: network-maintenance's backup + compliance for 20 lab devices, beside Nornir +
nornir_napalm doing the same work on the same devices in the same run.

The fleet: the lab's four active FRR routers, 15 extra FRR boxes started for the run on the
lab's management bridge (bench/network_fleet.py's `start_extras`) and registered in NetBox as
active leaves (device, primary address, AS number), and one NetBox device whose address in
the lab's range nothing answers: 20 devices, one unreachable. Both sides select them from
NetBox (site, roles spine and leaf, status active).

- runbook: `Engine.run` of network-maintenance in this process (NetBox selection and working
  sets, NetBox's renderings in a few requests (the netbox-runbooks plugin's render-configs),
  then per device on one login: get_config, get_facts, get_bgp_neighbors,
  get_lldp_neighbors, get_interfaces_counters and the device's compare with its rendering;
  the summary; one git commit of the sanitised backups). ``parallel`` devices at a time.
- nornir: NetBox's device list (REST), then per host with the same worker count: napalm_get
  of the same five getters, render-config (REST), napalm_configure(dry_run=True) with the
  rendering (the device's compare), the configuration written to a file: the same getters,
  the same compare, a backup but no git commit. Host keys checked as the gateway checks them.

Each side runs ``--rounds`` times, alternately; the wall times and the ratio runbook/nornir
are printed (at most 1: the runbook is no slower), with what each side found. Benches
measure; they assert nothing.

Needs the lab up; holds it for the run (other lab users wait) and resets it afterwards
(NetBox back to its seed; the extra boxes are stopped first).

    .venv/bin/python bench/network_maintenance.py [--rounds 2] [--workers 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pynetbox
import requests
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import network_fleet  # the extra FRR boxes (bench/network_fleet.py)

from runbooks.core.engine import Engine
from runbooks.core.store import RecordStore
from runbooks.gateways.config_text import sanitize
from runbooks.gateways.network import host_key_args
from runbooks.lab import lab, netbox, node, topology
from runbooks.library import network_maintenance
from runbooks.library.network_maintenance import CONNECTED_QUERY, NetworkMaintenance

FLEET = 20
SELECTION = {"site": "lab-dc1", "role": "spine,leaf", "status": "active"}
GETTERS = ["config", "facts", "bgp_neighbors", "lldp_neighbors", "interfaces_counters"]


def register(extras: list[tuple[str, str]], topo: topology.Topology) -> tuple[str, list[int]]:
    """The extra boxes as active leaves in NetBox, and one device whose address nothing
    answers; its name and every device id made (NetBox's reset removes them)."""
    api = pynetbox.api(*netbox.credentials("admin"))
    site = api.dcim.sites.get(slug=topo.site.slug)
    role = api.dcim.device_roles.get(slug="leaf")
    kind = api.dcim.device_types.get(slug="frr-switch-8")
    platform = api.dcim.platforms.get(slug="frr")
    prefix = topo.addressing.management.prefixlen
    taken = {str(d.mgmt) for d in topo.devices} | {str(h.mgmt) for h in topo.hosts}
    taken |= {address for _, address in extras}
    silent = next(
        str(a) for a in reversed(list(topo.addressing.management.hosts())) if str(a) not in taken
    )
    made = []
    for i, (name, address) in enumerate([*extras, ("bench-silent", silent)]):
        device = api.dcim.devices.create(
            name=name,
            site=site.id,
            role=role.id,
            device_type=kind.id,
            platform=platform.id,
            status="active",
            custom_fields={"bgp_asn": 65400 + i},
        )
        eth0 = api.dcim.interfaces.get(device_id=device.id, name="eth0")
        ip = api.ipam.ip_addresses.create(
            address=f"{address}/{prefix}",
            assigned_object_type="dcim.interface",
            assigned_object_id=eth0.id,
            status="active",
        )
        device.primary_ip4 = ip.id
        device.save()
        made.append(int(device.id))
    return silent, made


def environment(history: Path) -> None:
    """NetBox as olivia, the lab's device login and host keys, the history's directory."""
    url, token = netbox.credentials("operator")
    login = node.login_params("")
    os.environ.update(
        RUNBOOKS_NETBOX_URL=url,
        RUNBOOKS_NETBOX_TOKEN=token,
        RUNBOOKS_DEVICE_USERNAME=login["username"],
        RUNBOOKS_DEVICE_KEY_FILE=login["key_file"],
        RUNBOOKS_DEVICE_TIMEOUT="20",
        RUNBOOKS_SSH_KNOWN_HOSTS=login["known_hosts"],
        RUNBOOKS_CONFIG_HISTORY=str(history),
    )


def via_runbook(workdir: Path, workers: int) -> tuple[float, str]:
    runbook = NetworkMaintenance(
        NetworkMaintenance.parse_params({**SELECTION, "parallel": workers})
    )
    engine = Engine(RecordStore(workdir / "records.sqlite3"), "olivia")
    started = time.perf_counter()
    result = engine.run(runbook)
    wall = time.perf_counter() - started
    steps = {s.step: s for s in result.steps}
    counts = steps["compliance_summary"].evidence.get("counts", {}) if steps else {}
    surveyed = steps["survey_devices"].evidence.get("devices", {}) if steps else {}
    logins = sorted({int(s.get("logins", 0)) for s in surveyed.values()})
    took = " ".join(f"{s.step}={s.duration_s or 0:.2f}" for s in result.steps)
    found = f"{result.status}, {len(surveyed)} devices, {counts}, logins/device {logins}; {took}"
    return wall, found


def via_nornir(workdir: Path, workers: int, netbox_state: bool = False) -> tuple[float, str]:
    """Nornir's way; with ``netbox_state`` it also reads what the runbook compares BGP and
    LLDP with (the runbook's GraphQL request of the working sets, `CONNECTED_QUERY`, before
    the tasks, as a script would)."""
    from nornir import InitNornir
    from nornir_napalm.plugins.tasks import napalm_configure, napalm_get

    url, token = netbox.credentials("operator")
    login = node.login_params("")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    backups = workdir / "nornir-backups"
    backups.mkdir(exist_ok=True)
    started = time.perf_counter()
    session = requests.Session()
    params = [(k, v) for k, vs in SELECTION.items() for v in vs.split(",")] + [("limit", "0")]
    listed = session.get(f"{url}/api/dcim/devices/", params=params, headers=headers, timeout=30)
    devices = [d for d in listed.json()["results"] if d.get("primary_ip4")]
    if netbox_state:
        names = [d["name"] for d in devices]
        query = {"query": CONNECTED_QUERY, "variables": {"names": names}}
        session.post(f"{url}/graphql/", json=query, headers=headers, timeout=60).json()
    options = {**host_key_args(Path(login["known_hosts"])), "key_file": login["key_file"]}
    hosts = {
        d["name"]: {
            "hostname": d["primary_ip4"]["address"].split("/")[0],
            "platform": d["platform"]["slug"],
            "username": login["username"],
            "password": "",
            "data": {"id": d["id"]},
            "connection_options": {
                "napalm": {
                    "extras": {"timeout": 20, "optional_args": {**options, "use_keys": True}}
                }
            },
        }
        for d in devices
    }
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "hosts.yaml"  # Nornir's SimpleInventory reads files
        inventory.write_text(yaml.safe_dump(hosts))
        threaded = {"plugin": "threaded", "options": {"num_workers": workers}}
        simple = {"plugin": "SimpleInventory", "options": {"host_file": str(inventory)}}
        nr = InitNornir(runner=threaded, inventory=simple, logging={"enabled": False})

        def task(t: Any) -> str:
            got = t.run(napalm_get, getters=GETTERS)
            running = sanitize(got.result["config"]["running"])
            (backups / f"{t.host.name}.cfg").write_text(running)
            rendered = session.post(
                f"{url}/api/dcim/devices/{t.host.data['id']}/render-config/",
                headers={**headers, "Accept": "text/plain"},
                timeout=30,
            ).text
            diff = t.run(napalm_configure, configuration=rendered, replace=True, dry_run=True)
            return "drifted" if (diff.diff or "").strip() else "compliant"

        result = nr.run(task=task)
        nr.close_connections()
    wall = time.perf_counter() - started
    states = [("failed" if r.failed else str(r[0].result)) for r in result.values()]
    found = f"{len(states)} devices, " + ", ".join(
        f"{states.count(s)} {s}" for s in sorted(set(states))
    )
    return wall, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument(
        "--renders", type=int, default=network_maintenance.RENDERS_AT_ONCE,
        help="the runbook's rendering requests in flight",
    )  # fmt: skip
    args = parser.parse_args()
    network_maintenance.RENDERS_AT_ONCE = args.renders
    with lab.held(reset_first=False, reset_after=True):  # NetBox's seed again afterwards
        run(args.rounds, args.workers)


def run(rounds: int, workers: int) -> None:
    active = [d for d in topology.load().devices if d.status == "active"]
    count = FLEET - 1 - len(active)
    topo, extras = network_fleet.start_extras(network_fleet.FRR, count)
    try:
        for name, address in extras:
            node.wait_for(f"sshd on {name}", lambda a=address: node.ssh_answers(a), 30)
        silent, _ = register(extras, topo)
        print(
            f"{len(active) + len(extras) + 1} devices: {len(active)} of the lab "
            f"({', '.join(d.name for d in active)}), {len(extras)} extra FRR boxes, one "
            f"unreachable (bench-silent at {silent}); {workers} at a time; "
            f"{len(os.sched_getaffinity(0))} cores"
        )
        ways = {
            "runbook": via_runbook,
            "nornir": via_nornir,
            "nornir+state": lambda workdir, n: via_nornir(workdir, n, netbox_state=True),
        }
        walls: dict[str, list[float]] = {name: [] for name in ways}
        with tempfile.TemporaryDirectory() as tmp:
            environment(Path(tmp) / "history")
            for n in range(1, rounds + 1):
                for name, way in ways.items():
                    wall, found = way(Path(tmp), workers)
                    walls[name].append(wall)
                    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
                    print(
                        f"round {n} {name:>12}: {wall:6.2f} s  load {load:4.1f}  {found}",
                        flush=True,
                    )
        best = {name: min(w) for name, w in walls.items()}
        median = {name: statistics.median(w) for name, w in walls.items()}
        print("best: " + ", ".join(f"{name} {wall:.2f} s" for name, wall in best.items()))
        for other in ("nornir", "nornir+state"):
            print(
                f"ratio runbook/{other}: best {best['runbook'] / best[other]:.2f}, median "
                f"{median['runbook'] / median[other]:.2f} (at most 1: the runbook no slower)"
            )
    finally:
        network_fleet.stop_extras(extras)


if __name__ == "__main__":
    main()
