"""Build, in the lab's NetBox, a device with N cabled interfaces (each with an address) and the
peer devices at the far ends; shared by tests/lab/test_netbox_gateway.py and
bench/netbox_gateway.py. Bulk creates keep it to 6 requests (NetBox writes ~80 ms/object).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from runbooks.gateways.netbox_http import NetBoxHTTP
from runbooks.lab import netbox

PORTS_PER_PEER = 8


@pytest.fixture
def netbox_held(netbox_lab: str) -> Iterator[str]:
    """The seeded NetBox, and nobody else's reset until the test ends.

    The lab's NetBox is shared by every session on the machine; a reset by another session in
    the middle of a test drops the database under it. This holds the lab's own lock (the one
    `netbox.reset()` takes) for the test's duration: other resets wait, they do not fail.
    """
    with netbox.held():
        yield netbox_lab


# the frr-switch-8 device type brings swp1..swp8


@dataclass(frozen=True)
class CabledDevice:
    name: str
    id: int
    peers: tuple[str, ...]
    interfaces: tuple[int, ...]
    cables: tuple[int, ...]


def _one(http: NetBoxHTTP, path: str, **filters: Any) -> int:
    results = http.call("GET", path, params=filters).data["results"]
    assert len(results) == 1, f"{path} {filters}: {len(results)} results"
    return int(results[0]["id"])


def build(http: NetBoxHTTP, name: str, cabled: int, *, net: int = 0) -> CabledDevice:
    """``name`` with ``cabled`` interfaces e1..eN, each cabled to a peer's swpK and addressed
    in 198.19.<net>.0/24 (NetBox data only: nothing is configured on any machine)."""
    site = _one(http, "/api/dcim/sites/", slug="lab-dc1")
    role = _one(http, "/api/dcim/device-roles/", slug="leaf")
    dtype = _one(http, "/api/dcim/device-types/", slug="frr-switch-8")
    platform = _one(http, "/api/dcim/platforms/", slug="frr")
    peers = [f"{name}-peer{k + 1}" for k in range(-(-cabled // PORTS_PER_PEER))]
    common = {
        "device_type": dtype,
        "role": role,
        "site": site,
        "platform": platform,
        "status": "active",
    }
    devices = http.call(
        "POST",
        "/api/dcim/devices/",
        body=[{"name": name, **common, "custom_fields": {"bgp_asn": 65200}}]
        + [
            {"name": p, **common, "custom_fields": {"bgp_asn": 65300 + i}}
            for i, p in enumerate(peers)
        ],
    ).data
    device_id = int(devices[0]["id"])
    peer_ids = [int(d["id"]) for d in devices[1:]]
    ifaces = http.call(
        "POST",
        "/api/dcim/interfaces/",
        body=[
            {"device": device_id, "name": f"e{i + 1}", "type": "10gbase-x-sfpp"}
            for i in range(cabled)
        ],
    ).data
    local = [int(i["id"]) for i in ifaces]
    params: list[tuple[str, Any]] = [("device_id", p) for p in peer_ids]
    far_all = http.call(
        "GET", "/api/dcim/interfaces/", params=[*params, ("name__isw", "swp"), ("limit", 0)]
    ).data["results"]
    far_all.sort(key=lambda i: (i["device"]["id"], int(i["name"].removeprefix("swp"))))
    far = [int(i["id"]) for i in far_all][:cabled]
    cables = http.call(
        "POST",
        "/api/dcim/cables/",
        body=[
            {
                "a_terminations": [{"object_type": "dcim.interface", "object_id": a}],
                "b_terminations": [{"object_type": "dcim.interface", "object_id": b}],
                "status": "connected",
            }
            for a, b in zip(local, far, strict=True)
        ],
    ).data
    addresses = []
    for i, (a, b) in enumerate(zip(local, far, strict=True)):
        base = f"198.19.{net}.{i * 2}"
        peer_addr = f"198.19.{net}.{i * 2 + 1}"
        addresses.append(
            {
                "address": f"{base}/31",
                "status": "active",
                "assigned_object_type": "dcim.interface",
                "assigned_object_id": a,
            }
        )
        addresses.append(
            {
                "address": f"{peer_addr}/31",
                "status": "active",
                "assigned_object_type": "dcim.interface",
                "assigned_object_id": b,
            }
        )
    http.call("POST", "/api/ipam/ip-addresses/", body=addresses)
    return CabledDevice(
        name, device_id, tuple(peers), tuple(local), tuple(int(c["id"]) for c in cables)
    )
