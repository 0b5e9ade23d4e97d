"""Working sets as NetBox's GraphQL would return them, for the rack runbooks' unit tests:
a two-spine, two-leaf fabric (leaf3 planned) in a few lines per device."""

from __future__ import annotations

from typing import Any

from runbooks.gateways.netbox_model import DeviceWorkingSet

ASN = {"spine1": 65001, "spine2": 65002, "leaf1": 65101, "leaf2": 65102, "leaf3": 65103}
IDS = {name: i for i, name in enumerate(ASN, start=1)}
# (a device, a interface, b device, b interface, a address, b address, cable status)
LINKS = [
    ("spine1", "swp1", "leaf1", "swp1", "198.18.1.0", "198.18.1.1", "connected"),
    ("spine1", "swp2", "leaf2", "swp1", "198.18.1.2", "198.18.1.3", "connected"),
    ("spine1", "swp3", "leaf3", "swp1", "198.18.1.4", "198.18.1.5", "planned"),
    ("spine2", "swp1", "leaf1", "swp2", "198.18.1.6", "198.18.1.7", "connected"),
    ("spine2", "swp2", "leaf2", "swp2", "198.18.1.8", "198.18.1.9", "connected"),
    ("spine2", "swp3", "leaf3", "swp2", "198.18.1.10", "198.18.1.11", "planned"),
]


def status_of(name: str) -> str:
    return "planned" if name == "leaf3" else "active"


def working_set(
    name: str, links: list[tuple[str, ...]] | None = None, status: str | None = None
) -> DeviceWorkingSet:
    interfaces: list[dict[str, Any]] = [
        {"id": 1, "name": "lo", "ip_addresses": [_ip(f"198.18.255.{IDS[name]}/32")]},
    ]
    for i, (a, a_if, b, b_if, a_ip, b_ip, cable) in enumerate(LINKS if links is None else links):
        if name not in (a, b):
            continue
        mine, addr, peer, peer_if = (a_if, a_ip, b, b_if) if name == a else (b_if, b_ip, a, a_if)
        interfaces.append(
            {
                "id": 100 + i,
                "name": mine,
                "ip_addresses": [_ip(f"{addr}/31")],
                "cable": {"id": i + 1, "status": cable.upper()},
                "link_peers": [
                    {
                        "__typename": "InterfaceType",
                        "id": 200 + i,
                        "name": peer_if,
                        "device": {"id": IDS[peer], "name": peer, "status": status_of(peer)},
                    }
                ],
            }
        )
    return DeviceWorkingSet.parse(
        {
            "id": IDS[name],
            "name": name,
            "status": (status or status_of(name)).upper(),
            "site": {"id": 1, "name": "Lab DC1"},
            "role": {"id": 1, "name": "Leaf"},
            "device_type": {
                "id": 1,
                "model": "FRR Switch 8",
                "manufacturer": {"id": 1, "name": "W"},
            },
            "platform": {"id": 1, "name": "FRRouting", "slug": "frr"},
            "custom_fields": {"bgp_asn": ASN[name]},
            "primary_ip4": {"id": 1, "address": f"198.18.0.{IDS[name]}/24"},
            "interfaces": interfaces,
        }
    )


def _ip(address: str) -> dict[str, Any]:
    return {"id": abs(hash(address)) % 10_000, "address": address, "status": "ACTIVE"}
