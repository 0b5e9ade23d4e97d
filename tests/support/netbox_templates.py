"""The lab's config templates rendered the way NetBox renders them (sandboxed Jinja2, the seed's
environment parameters), on stand-ins for the NetBox objects they read: a device's interfaces,
their addresses, cables and link peers, its ASN custom field and primary IPv4 address. Shared by
the FRR template's tests (tests/unit/lab/test_netbox_seed.py) and the BIRD template's
(tests/unit/lab/test_bird_lab.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from runbooks.lab import netbox_seed


@dataclass
class Rel:
    """A related manager: `.all()`."""

    items: list[Any]

    def all(self) -> list[Any]:
        return self.items


@dataclass
class IP:
    address: Any
    assigned_object_id: int = 0


@dataclass
class Cable:
    status: str


@dataclass
class Iface:
    name: str
    addresses: list[str]
    cable: Cable | None = None
    link_peers: list[Any] = field(default_factory=list)
    description: str = ""
    device: Any = None
    id: int = 0

    @property
    def ip_addresses(self) -> Rel:
        import netaddr  # type: ignore[import-untyped]  # the callers skip without it

        return Rel([IP(netaddr.IPNetwork(a), self.id) for a in self.addresses])


@dataclass
class Device:
    name: str
    asn: int
    ifaces: list[Iface] = field(default_factory=list)
    mgmt: str | None = None  # the interface whose first address is the primary IPv4, if any

    @property
    def interfaces(self) -> Rel:
        return Rel(self.ifaces)

    @property
    def custom_field_data(self) -> dict[str, int]:
        return {"bgp_asn": self.asn}

    @property
    def primary_ip4(self) -> IP | None:
        iface = next((i for i in self.ifaces if i.name == self.mgmt), None)
        return iface.ip_addresses.all()[0] if iface and iface.addresses else None


def render(template: str, device: Device, **context: Any) -> str:
    """The lab's template `template` (a file name under netbox_seed.TEMPLATES) for `device`."""
    params: dict[str, Any] = {**netbox_seed.ENV_PARAMS, "undefined": jinja2.StrictUndefined}
    code = (netbox_seed.TEMPLATES / template).read_text()
    return SandboxedEnvironment(**params).from_string(code).render(device=device, **context)
