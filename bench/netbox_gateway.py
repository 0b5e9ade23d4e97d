"""A device's working set from NetBox three ways, side by side in one run: request counts and
time ratios, for a device with 4 and with 48 cabled interfaces.

- gateway: `NetBoxGateway.working_set(name, render=True)` (one GraphQL query + render-config);
- naive pynetbox: device, then per interface an IP lookup, per cable a GET, per peer a device
  GET (what a script written from the pynetbox docs does), + render-config;
- bulk REST: device, then interfaces / cables / IPs filtered by device_id with limit=0, peer
  devices by id list, + render-config.

Run: .venv/bin/python bench/netbox_gateway.py [--rounds N]
Needs the lab's NetBox up (`runbook lab up`); resets it to the seeded state, then adds two
devices (ws4, ws48) with their cabled peers (NetBox data only).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynetbox
import requests
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import checkout  # noqa: F401  (binds the checkout's tests package: bench/checkout.py)

from runbooks.config import NetBoxSettings
from runbooks.core.gateway import Mode
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_http import NetBoxHTTP
from runbooks.lab import netbox
from tests.support.netbox_cabled import build


class Counter(HTTPAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return super().send(request, *args, **kwargs)


def counted_session(settings: NetBoxSettings) -> tuple[requests.Session, Counter]:
    session = requests.Session()
    counter = Counter()
    session.mount("http://", counter)
    session.headers.update({"Authorization": settings.authorization, "Accept": "application/json"})
    return session, counter


def gateway_read(settings: NetBoxSettings, name: str) -> int:
    gw = NetBoxGateway(settings, Mode.PLAN)
    counter = Counter()
    gw.session.mount("http://", counter)
    ws = gw.working_set(name, render=True)
    assert ws.config and len(ws.cabled) >= 4
    gw.close()
    return counter.count


def naive_read(settings: NetBoxSettings, name: str) -> int:
    session, counter = counted_session(settings)
    nb = pynetbox.api(settings.url, token=settings.token)
    nb.http_session = session
    device = nb.dcim.devices.get(name=name)
    seen = [
        device.rack and device.rack.name,
        device.platform and device.platform.name,
        device.device_type.model,
        device.role.name,
        device.config_context,
    ]
    for iface in nb.dcim.interfaces.filter(device_id=device.id):
        seen.append([str(ip) for ip in nb.ipam.ip_addresses.filter(interface_id=iface.id)])
        if iface.cable:
            cable = nb.dcim.cables.get(iface.cable.id)
            seen.append(cable.status)
            for peer in iface.link_peers or []:
                peer_device = nb.dcim.devices.get(peer["device"]["id"])
                seen.append((peer_device.name, peer_device.status, peer["name"]))
    config = session.post(
        f"{settings.url}/api/dcim/devices/{device.id}/render-config/",
        headers={"Accept": "text/plain"},
    )
    assert config.ok and seen
    return counter.count


def bulk_rest_read(settings: NetBoxSettings, name: str) -> int:
    session, counter = counted_session(settings)
    api = settings.url + "/api"

    def get(path: str, **params: Any) -> Any:
        response = session.get(api + path, params=params)
        response.raise_for_status()
        return response.json()

    device = get("/dcim/devices/", name=name)["results"][0]
    ifaces = get("/dcim/interfaces/", device_id=device["id"], limit=0)["results"]
    cables = get("/dcim/cables/", device_id=device["id"], limit=0)["results"]
    ips = get("/ipam/ip-addresses/", device_id=device["id"], limit=0)["results"]
    peer_ids = sorted(
        {p["device"]["id"] for i in ifaces for p in i.get("link_peers") or [] if "device" in p}
    )
    peers = get("/dcim/devices/", id=peer_ids, limit=0)["results"]
    config = session.post(
        f"{api}/dcim/devices/{device['id']}/render-config/", headers={"Accept": "text/plain"}
    )
    assert config.ok and cables and ips and peers
    return counter.count


PATTERNS: dict[str, Callable[[NetBoxSettings, str], int]] = {
    "gateway (GraphQL + render)": gateway_read,
    "bulk REST (+ render)": bulk_rest_read,
    "naive pynetbox (+ render)": naive_read,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    netbox.reset()
    # Hold the lab's lock while building and measuring: other sessions' resets wait (the
    # lab is shared; a reset in the middle would drop the database under us).
    with netbox._exclusive():
        results = measure(args.rounds)
    report(results, args.rounds)


def measure(rounds: int) -> dict[tuple[str, int], tuple[int, list[float]]]:
    admin = NetBoxHTTP(NetBoxSettings(*netbox.credentials("admin")), allow_writes=True)
    started = time.perf_counter()
    for k, cabled in enumerate((4, 48)):
        build(admin, f"ws{cabled}", cabled, net=k)
    print(f"built ws4 and ws48 in {time.perf_counter() - started:.1f} s")
    settings = NetBoxSettings(*netbox.credentials("operator"))

    results: dict[tuple[str, int], tuple[int, list[float]]] = {}
    for _ in range(rounds):  # interleaved, so that load on the machine hits all alike
        for cabled in (4, 48):
            for label, read in PATTERNS.items():
                t0 = time.perf_counter()
                count = read(settings, f"ws{cabled}")
                elapsed = time.perf_counter() - t0
                results.setdefault((label, cabled), (count, []))[1].append(elapsed)
    return results


def report(results: dict[tuple[str, int], tuple[int, list[float]]], rounds: int) -> None:
    print(f"NetBox {netbox.VERSION}: a device's working set, {rounds} rounds, median")
    print(f"{'pattern':<28} {'cabled':>6} {'requests':>9} {'median s':>9} {'vs gateway':>11}")
    for cabled in (4, 48):
        base = statistics.median(results[(next(iter(PATTERNS)), cabled)][1])
        for label in PATTERNS:
            count, times = results[(label, cabled)]
            med = statistics.median(times)
            print(f"{label:<28} {cabled:>6} {count:>9} {med:>9.2f} {med / base:>10.1f}x")


if __name__ == "__main__":
    main()
