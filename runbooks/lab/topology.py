"""The lab topology from inventory/lab.yml, validated."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from runbooks.core.errors import InputError
from runbooks.lab.paths import topology_file

DEFAULT_PLATFORM = "frr"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Addressing(_Model):
    management: ipaddress.IPv4Network
    management_gateway: ipaddress.IPv4Address
    loopbacks: ipaddress.IPv4Network
    p2p: ipaddress.IPv4Network
    office: ipaddress.IPv4Network

    def all_prefixes(self) -> list[ipaddress.IPv4Network]:
        return [self.management, self.loopbacks, self.p2p, self.office]


class Site(_Model):
    name: str
    slug: str


class Rack(_Model):
    name: str
    u_height: int = 42


class Device(_Model):
    name: str
    role: str
    rack: str
    position: int
    status: Literal["active", "planned"]
    mgmt: ipaddress.IPv4Address
    loopback: ipaddress.IPv4Address
    asn: int


class Link(_Model):
    a: str
    b: str
    subnet: ipaddress.IPv4Network

    def ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        a_dev, a_if = self.a.split(":", 1)
        b_dev, b_if = self.b.split(":", 1)
        return (a_dev, a_if), (b_dev, b_if)

    def addresses(self) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Interface]:
        first, second = list(self.subnet)[:2]
        plen = self.subnet.prefixlen
        return (
            ipaddress.IPv4Interface(f"{first}/{plen}"),
            ipaddress.IPv4Interface(f"{second}/{plen}"),
        )


class Host(_Model):
    name: str
    role: str
    mgmt: ipaddress.IPv4Address
    rack: str | None = None
    position: int | None = None
    postgresql: int | None = None


class User(_Model):
    """A lab person. Roles name who they are in the lab (credentials(role)); their NetBox
    groups give their authorities. approver2: the second approver an emergency approval
    needs; worker: the service account that runs scheduled changes."""

    username: str
    role: Literal["operator", "reviewer", "approver", "approver2", "supervisor", "worker"]
    groups: list[str]


class InterfaceTemplate(_Model):
    name: str
    type: str = "1000base-t"
    mgmt_only: bool = False


class PortRange(_Model):
    """Numbered front ports, e.g. swp1..swp8."""

    prefix: str
    count: int
    type: str = "10gbase-x-sfpp"

    def names(self) -> list[str]:
        return [f"{self.prefix}{n}" for n in range(1, self.count + 1)]


class Manufacturer(_Model):
    name: str
    slug: str


class DeviceType(_Model):
    model: str
    slug: str
    manufacturer: str
    u_height: int = 1
    interfaces: list[InterfaceTemplate] = []
    ports: PortRange | None = None

    def interface_templates(self) -> list[InterfaceTemplate]:
        if self.ports is None:
            return list(self.interfaces)
        kind = self.ports.type
        front = [InterfaceTemplate(name=n, type=kind) for n in self.ports.names()]
        return [*self.interfaces, *front]


class Platform(_Model):
    name: str
    slug: str
    manufacturer: str | None = None  # the software's maker (a manufacturer slug)
    config_template: str | None = None


class ConfigContext(_Model):
    """NetBox config context data for the devices of some platforms (e.g. `napalm.driver` and
    `napalm.optional_args`, which runbooks' network gateway reads)."""

    name: str
    platforms: list[str]
    data: dict[str, Any]
    weight: int = 1000


class Role(_Model):
    name: str
    slug: str
    color: str
    device_type: str
    platform: str


class ConfigTemplate(_Model):
    name: str
    file: str
    description: str = ""


class Location(_Model):
    name: str
    slug: str


class Tenant(_Model):
    name: str
    slug: str


class ContactRole(_Model):
    name: str
    slug: str


class Contact(_Model):
    """A person of the department's directory (the PC users pc-install hands PCs over to)."""

    name: str
    email: str
    tenant: str | None = None  # their department, a tenant slug


class NetBoxCatalog(_Model):
    """NetBox-only data: what the devices and hosts are (types, roles, platforms, templates),
    and where PCs go and who gets them (locations, tenants, contacts and their roles)."""

    manufacturers: list[Manufacturer]
    device_types: list[DeviceType]
    platforms: list[Platform]
    roles: list[Role]
    config_templates: list[ConfigTemplate] = []
    config_contexts: list[ConfigContext] = []
    locations: list[Location] = []
    tenants: list[Tenant] = []
    contact_roles: list[ContactRole] = []
    contacts: list[Contact] = []

    def platform_of(self, role: str) -> str:
        return self.role(role).platform

    def role(self, slug: str) -> Role:
        for role in self.roles:
            if role.slug == slug:
                return role
        raise InputError(f"lab topology: no NetBox role {slug!r} in netbox.roles", role=slug)


class Topology(_Model):
    addressing: Addressing
    site: Site
    racks: list[Rack]
    devices: list[Device]
    links: list[Link]
    hosts: list[Host]
    users: list[User]
    netbox: NetBoxCatalog | None = None
    # the department's software repository as the lab mirrors it (runbooks.lab.software)
    software: list[str] = []

    def device(self, name: str) -> Device:
        for dev in self.devices:
            if dev.name == name:
                return dev
        raise InputError(f"no lab device named {name!r}", device=name)

    def platform(self, name: str) -> str:
        """The NetBox platform slug of a device (through its role); `frr` without a catalogue."""
        dev = self.device(name)
        return self.netbox.platform_of(dev.role) if self.netbox else DEFAULT_PLATFORM


def load(path: Path | None = None) -> Topology:
    """Read and validate the topology; a bad file is an InputError naming the problem."""
    path = path or topology_file()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(
            f"cannot read lab topology {path}: {exc.strerror}", path=str(path)
        ) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"lab topology {path} is not valid YAML: {exc}", path=str(path)) from exc
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"lab topology {path}: {where}: {first['msg']}", path=str(path)) from exc
