"""No lab value in the production runbooks (issue 17): nothing under runbooks/library — code,
docstrings, doctests, templates — names a lab device or host, the lab's site, its DNS domain or
an address in the lab's ranges. The lab's values are read from the lab's own definition
(inventory/lab.yml through runbooks.lab.topology, and the lab's settings in runbooks.lab.lab),
so a device, host or range added to the lab is checked too."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from runbooks.lab.lab import LAB_SETTINGS
from runbooks.lab.topology import Topology, load

LIBRARY = Path(__file__).resolve().parents[3] / "runbooks" / "library"
_ADDRESS = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?![\d.])")


def lab_names(topology: Topology) -> set[str]:
    """Host names, the site, and the DNS domains (the lab's setting and its people's e-mail)."""
    names = {d.name for d in topology.devices} | {h.name for h in topology.hosts}
    names |= {topology.site.name, topology.site.slug, LAB_SETTINGS["RUNBOOKS_DOMAIN"]}
    if topology.netbox is not None:
        names |= {c.email.partition("@")[2] for c in topology.netbox.contacts}
    return names


def lab_networks(topology: Topology) -> list[ipaddress.IPv4Network]:
    nets = list(topology.addressing.all_prefixes())
    nets += [link.subnet for link in topology.links]
    addresses = [topology.addressing.management_gateway]
    addresses += [a for d in topology.devices for a in (d.mgmt, d.loopback)]
    addresses += [h.mgmt for h in topology.hosts]
    nets += [ipaddress.IPv4Network(a) for a in addresses]
    return nets


def lab_values_in(text: str, names: set[str], nets: list[ipaddress.IPv4Network]) -> list[str]:
    found = [
        name
        for name in sorted(names)
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE)
    ]
    for match in _ADDRESS.finditer(text):
        try:
            net = ipaddress.IPv4Network(match.group(), strict=False)
        except ValueError:
            continue  # not an address (a version number, say)
        if any(net.overlaps(lab) for lab in nets):
            found.append(match.group())
    return found


def test_the_lab_definition_gives_names_and_addresses_and_the_check_finds_them() -> None:
    topology = load()
    names, nets = lab_names(topology), lab_networks(topology)
    host = topology.hosts[0]
    assert len(names) > len(topology.devices) and nets
    sample = f"ssh root@{host.name}.{LAB_SETTINGS['RUNBOOKS_DOMAIN']} # {host.mgmt}"
    assert set(lab_values_in(sample, names, nets)) == {
        host.name,
        LAB_SETTINGS["RUNBOOKS_DOMAIN"],
        str(host.mgmt),
    }
    neutral = f"ssh root@{host.name}0.example.com # 203.0.113.7 version 1.2.3.4567"
    assert lab_values_in(neutral, names, nets) == []


def test_no_file_of_the_runbook_library_names_a_lab_host_domain_or_address() -> None:
    topology = load()
    names, nets = lab_names(topology), lab_networks(topology)
    files = [p for p in LIBRARY.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.suffix == ".py" for p in files)
    found = {
        str(p.relative_to(LIBRARY)): hits
        for p in files
        if (hits := lab_values_in(p.read_text(encoding="utf-8", errors="replace"), names, nets))
    }
    assert found == {}
