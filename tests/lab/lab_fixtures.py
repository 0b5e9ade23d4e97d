"""Lab fixtures (imported by tests/lab/conftest.py) and helpers."""

from __future__ import annotations

from runbooks.lab.topology import Topology


def topology_configs(topo: Topology) -> dict[str, str]:
    """FRR configs generated straight from the topology (a stand-in for NetBox's rendering)."""
    configs: dict[str, str] = {}
    by_name = {d.name: d for d in topo.devices}
    for dev in topo.devices:
        if dev.status != "active":
            continue
        ifaces: list[str] = []
        neighbours: list[str] = []
        for link in topo.links:
            (a_dev, a_if), (b_dev, b_if) = link.ends()
            a_addr, b_addr = link.addresses()
            if dev.name not in (a_dev, b_dev):
                continue
            mine, theirs = (a_if, b_addr) if a_dev == dev.name else (b_if, a_addr)
            my_addr = a_addr if a_dev == dev.name else b_addr
            peer = b_dev if a_dev == dev.name else a_dev
            ifaces += [f"interface {mine}", f" description {peer}", f" ip address {my_addr}",
                       "exit", "!"]
            if by_name[peer].status == "active":
                neighbours += [f" neighbor {theirs.ip} remote-as {by_name[peer].asn}",
                               f" neighbor {theirs.ip} description {peer}"]
        configs[dev.name] = "\n".join([
            "frr version 8.4.4", "frr defaults traditional", f"hostname {dev.name}",
            "log file /var/log/frr/frr.log", "service integrated-vtysh-config", "!",
            "interface lo", f" ip address {dev.loopback}/32", "exit", "!", *ifaces,
            f"router bgp {dev.asn}", f" bgp router-id {dev.loopback}",
            " no bgp ebgp-requires-policy", *neighbours, " !", " address-family ipv4 unicast",
            f"  network {dev.loopback}/32", " exit-address-family", "exit", "!", "line vty", "!",
            "",
        ])
    return configs
