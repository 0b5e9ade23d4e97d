"""Writes the recorded answers of the test fabric's devices, for ios, eos and junos:
``<driver>/<device>/<getter>.1`` as NAPALM's mock driver reads them.

Each answer has the shape and the vendor's particulars of the NAPALM driver's own test
fixture (napalm repository, ``test/<driver>/mocked_data/test_<getter>/normal/
expected_result.json``: IOS's ``ipv4 unicast`` address family and ``bgp`` protocol, EOS's
``eBGP`` and outgoing interface, Junos's ``inet.0`` table and ``-1`` prefix counts …), with
the values of the fabric of ``tests/unit/library/rack_data.py``. The BGP and route answers
are the converged ones (every cable connected, every session up); the recorded driver cuts
them to what the running configurations establish. ``get_config`` is what NetBox renders at
the start: the active devices run their service configuration, the planned leaf3 its bare
one (as delivered: hostname, management address, enable secret).

Run again after changing the fabric or a template:
``.venv/bin/python -m tests.unit.gateways.napalm_mock.fabric.record``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from netutils.interface import abbreviated_interface_name

from tests.unit.library.rack_data import ASN, IDS, LINKS, status_of
from tests.unit.library.vendor_netbox import MiniNetBox
from tests.unit.library.vendor_support import FIXTURES, TEMPLATE_SECRETS, VENDORS, Vendor

HERE = Path(__file__).parent

FACTS = {
    "ios": ("Cisco", "C8000V", "Cisco IOS XE Software, Version 17.09.04a", "9ABCDEF{:04d}"),
    "eos": ("Arista", "DCS-7050SX3-48YC8", "4.30.1F-32315456.4301F", "JPE2213{:04d}"),
    "junos": ("Juniper", "QFX5120-48Y", "22.4R3-S2.11", "WS37190{:04d}"),
}


def links(name: str) -> list[tuple[str, str, str, str, str]]:
    """(port, peer, peer port, my address, peer address) of every cable of the device."""
    out = []
    for a, a_if, b, b_if, a_ip, b_ip, _status in LINKS:
        if a == name:
            out.append((a_if, b, b_if, a_ip, b_ip))
        elif b == name:
            out.append((b_if, a, a_if, b_ip, a_ip))
    return out


def facts(v: Vendor, name: str) -> dict[str, Any]:
    vendor, model, version, serial = FACTS[v.driver]
    ports = [v.mgmt, v.port("lo"), *(v.port(p) for p, *_ in links(name))]
    return {
        "hostname": name,
        "fqdn": f"{name}.lab.example",
        "vendor": vendor,
        "model": model,
        "os_version": version,
        "serial_number": serial.format(IDS[name]),
        "uptime": 86400.0 * IDS[name],
        "interface_list": ports,
    }


def interfaces(v: Vendor, name: str) -> dict[str, Any]:
    out = {}
    ports = [(v.mgmt, "", 1500, 1000.0), (v.port("lo"), "", 65535, 0.0)]
    ports += [(v.port(p), f"{peer}:{v.port(pp)}", 9214, 10000.0) for p, peer, pp, *_ in links(name)]
    for i, (port, description, mtu, speed) in enumerate(ports):
        out[port] = {
            "is_up": True,
            "is_enabled": True,
            "description": description,
            "last_flapped": 1765100000.0 + i,
            "speed": speed,
            "mtu": mtu,
            "mac_address": f"50:00:00:{IDS[name]:02X}:00:{i:02X}",
        }
    return out


def lldp(v: Vendor, name: str) -> dict[str, Any]:
    """IOS sends its port ID abbreviated (``Port id: Gi0/3`` in ``show lldp neighbors
    detail``, which NAPALM's IOS driver passes on as it is)."""
    return {
        v.port(port): [{"hostname": peer, "port": remote_port(v, v.port(peer_port))}]
        for port, peer, peer_port, *_ in links(name)
    }


def remote_port(v: Vendor, port: str) -> str:
    return abbreviated_interface_name(port) if v.driver == "ios" else port


def bgp(v: Vendor, name: str) -> dict[str, Any]:
    peers = {}
    for _port, peer, _pp, _mine, address in links(name):
        counts = {"received_prefixes": 4, "accepted_prefixes": 4, "sent_prefixes": 4}
        if v.driver == "junos":  # Junos's driver reports what it cannot count as -1
            counts = dict.fromkeys(counts, -1) | {"received_prefixes": 4, "accepted_prefixes": 4}
        family = "ipv4 unicast" if v.driver == "ios" else "ipv4"
        peers[address] = {
            "local_as": ASN[name],
            "remote_as": ASN[peer],
            "remote_id": f"198.18.255.{IDS[peer]}",
            "is_up": True,
            "is_enabled": True,
            "description": f"{peer}:{v.port(_pp)}",
            "uptime": 3600,
            "address_family": {family: counts},
        }
    return {"global": {"router_id": f"198.18.255.{IDS[name]}", "peers": peers}}


def route(
    v: Vendor, name: str, port: str, next_hop: str, peer: str, path: list[str]
) -> dict[str, Any]:
    as_path = " ".join(str(ASN[d]) for d in path)
    attributes: dict[str, Any] = {
        "local_as": ASN[name],
        "remote_as": ASN[peer],
        "remote_address": next_hop,
        "as_path": as_path,
        "communities": [],
        "local_preference": 100,
    }
    entry: dict[str, Any] = {
        "current_active": True,
        "last_active": True,
        "age": 3600,
        "next_hop": next_hop,
        "outgoing_interface": v.port(port),
        "selected_next_hop": True,
        "inactive_reason": "",
        "routing_table": "default",
    }
    if v.driver == "ios":
        entry |= {"protocol": "bgp", "preference": 20, "outgoing_interface": ""}
    elif v.driver == "eos":
        entry |= {"protocol": "eBGP", "preference": 200}
        attributes |= {"preference2": 0, "metric": 0}
    else:
        entry |= {"protocol": "BGP", "preference": 170, "routing_table": "inet.0"}
        attributes |= {"metric": 0, "metric2": None, "preference2": -101}
    return {**entry, "protocol_attributes": attributes}


def routes(v: Vendor, name: str) -> dict[str, Any]:
    """Every other device's loopback, over each shortest path (equal cost: all of them)."""
    mine = {peer: (port, address) for port, peer, _pp, _m, address in links(name)}
    out = {}
    for goal in IDS:
        if goal == name:
            continue
        if goal in mine:
            port, hop = mine[goal]
            entries = [route(v, name, port, hop, goal, [goal])]
        else:
            entries = [
                route(v, name, port, hop, peer, [peer, goal])
                for peer, (port, hop) in mine.items()
                if goal in {p for _po, p, *_ in links(peer)}
            ]
        if entries:
            out[f"198.18.255.{IDS[goal]}/32"] = entries
    return out


def config(netbox: MiniNetBox, name: str) -> dict[str, str]:
    running = netbox.render(name, "bare" if status_of(name) == "planned" else "service")
    return {"running": running, "startup": running, "candidate": ""}


def main() -> None:
    for v in VENDORS.values():
        netbox = MiniNetBox(v, FIXTURES, TEMPLATE_SECRETS)
        for name in IDS:
            folder = HERE / v.driver / name
            folder.mkdir(parents=True, exist_ok=True)
            answers = {
                "get_facts": facts(v, name),
                "get_interfaces": interfaces(v, name),
                "get_lldp_neighbors": lldp(v, name),
                "get_bgp_neighbors": bgp(v, name),
                "get_route_to": routes(v, name),
                "get_config": config(netbox, name),
            }
            for getter, answer in answers.items():
                text = json.dumps(answer, indent=2, ensure_ascii=False) + "\n"
                (folder / f"{getter}.1").write_text(text)


if __name__ == "__main__":
    main()
