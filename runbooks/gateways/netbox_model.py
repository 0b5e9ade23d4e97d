"""A device's working set as NetBox holds it: typed frozen dataclasses and the one GraphQL
query that reads them.

GraphQL facts this relies on (NetBox 4.7): filters take lookup objects; ids come back as
strings; ``last_updated`` is the timestamp NetBox's REST ETag is made from
(``W/"<last_updated>"``), so every object read here carries the ETag a later write needs
without a detail GET per object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WORKING_SET_QUERY = """
query DeviceWorkingSet($name: String!) {
  device_list(filters: {name: {exact: $name}}) {
    id name status serial asset_tag position face description last_updated
    custom_fields config_context
    site { id name slug } location { id name slug } rack { id name }
    platform { id name slug } role { id name slug } tenant { id name slug }
    device_type { id model slug u_height manufacturer { id name slug } }
    primary_ip4 { id address } primary_ip6 { id address } oob_ip { id address }
    interfaces {
      id name type enabled mgmt_only description mtu last_updated
      primary_mac_address { mac_address }
      ip_addresses { id address status role dns_name description last_updated vrf { id name } }
      cable { id status label type last_updated }
      link_peers {
        __typename
        ... on InterfaceType { id name device { id name status } }
        ... on FrontPortType { id name device { id name status } }
        ... on RearPortType { id name device { id name status } }
        ... on ConsolePortType { id name device { id name status } }
        ... on ConsoleServerPortType { id name device { id name status } }
        ... on PowerPortType { id name device { id name status } }
        ... on PowerOutletType { id name device { id name status } }
        ... on CircuitTerminationType { id term_side circuit { id cid } }
      }
    }
  }
}
"""


def etag_of(last_updated: str | None) -> str | None:
    """NetBox's weak ETag from a ``last_updated`` value (GraphQL ``+00:00`` or REST ``Z``)."""
    if not last_updated:
        return None
    stamp = last_updated[:-1] + "+00:00" if last_updated.endswith("Z") else last_updated
    return f'W/"{stamp}"'


@dataclass(frozen=True)
class Ref:
    """A related object named by id, name and (where it has one) slug."""

    id: int
    name: str
    slug: str = ""

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, name_key: str = "name") -> Ref | None:
        if not data:
            return None
        return cls(int(data["id"]), str(data.get(name_key) or ""), str(data.get("slug") or ""))


@dataclass(frozen=True)
class IPAddress:
    id: int
    address: str  # with prefix length: "198.18.1.0/31"
    status: str
    role: str | None = None
    dns_name: str = ""
    description: str = ""
    vrf: str | None = None
    etag: str | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> IPAddress:
        vrf = data.get("vrf")
        return cls(
            id=int(data["id"]),
            address=str(data["address"]),
            status=str(data.get("status") or "").lower(),
            role=(str(data["role"]).lower() if data.get("role") else None),
            dns_name=str(data.get("dns_name") or ""),
            description=str(data.get("description") or ""),
            vrf=str(vrf["name"]) if vrf else None,
            etag=etag_of(data.get("last_updated")),
        )


@dataclass(frozen=True)
class Cable:
    id: int
    status: str  # connected | planned | decommissioning
    label: str = ""
    type: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class CablePeer:
    """The far end of a cable: a port on another device (or a circuit termination)."""

    kind: str  # "interface", "front-port", "circuit-termination", ...
    id: int
    name: str
    device_id: int | None = None
    device: str | None = None
    device_status: str | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> CablePeer:
        typename = str(data.get("__typename", ""))
        kind = _kebab(typename.removesuffix("Type"))
        device = data.get("device")
        if device:
            return cls(
                kind,
                int(data["id"]),
                str(data.get("name") or ""),
                int(device["id"]),
                str(device["name"]),
                str(device.get("status") or "").lower() or None,
            )
        circuit = data.get("circuit") or {}
        name = f"{circuit.get('cid', '?')} side {data.get('term_side', '?')}"
        return cls(kind, int(data["id"]), name)


@dataclass(frozen=True)
class Interface:
    id: int
    name: str
    type: str
    enabled: bool = True
    mgmt_only: bool = False
    description: str = ""
    mtu: int | None = None
    mac_address: str | None = None
    ip_addresses: tuple[IPAddress, ...] = ()
    cable: Cable | None = None
    peers: tuple[CablePeer, ...] = ()
    etag: str | None = None

    @property
    def peer(self) -> CablePeer | None:
        """The one link peer of a point-to-point cable (None when not cabled)."""
        return self.peers[0] if self.peers else None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Interface:
        cable = data.get("cable")
        mac = data.get("primary_mac_address")
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            type=str(data.get("type") or "").lower(),
            enabled=bool(data.get("enabled", True)),
            mgmt_only=bool(data.get("mgmt_only", False)),
            description=str(data.get("description") or ""),
            mtu=int(data["mtu"]) if data.get("mtu") is not None else None,
            mac_address=str(mac["mac_address"]) if mac else None,
            ip_addresses=tuple(IPAddress.parse(ip) for ip in data.get("ip_addresses") or ()),
            cable=(
                Cable(
                    int(cable["id"]),
                    str(cable.get("status") or "").lower(),
                    str(cable.get("label") or ""),
                    (str(cable["type"]).lower() if cable.get("type") else None),
                    etag_of(cable.get("last_updated")),
                )
                if cable
                else None
            ),
            peers=tuple(CablePeer.parse(p) for p in data.get("link_peers") or ()),
            etag=etag_of(data.get("last_updated")),
        )


@dataclass(frozen=True)
class DeviceWorkingSet:
    """Everything a runbook needs to know about one device, read in one GraphQL request."""

    id: int
    name: str
    status: str
    site: Ref
    role: Ref
    device_type: Ref  # name is the model
    manufacturer: Ref
    platform: Ref | None = None
    location: Ref | None = None
    rack: Ref | None = None
    position: float | None = None
    face: str | None = None
    tenant: Ref | None = None
    serial: str = ""
    asset_tag: str | None = None
    description: str = ""
    primary_ip4: str | None = None
    primary_ip6: str | None = None
    oob_ip: str | None = None
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    config_context: Mapping[str, Any] = field(default_factory=dict)
    interfaces: tuple[Interface, ...] = ()
    etag: str | None = None
    config: str | None = None  # the rendered configuration, when asked for

    def interface(self, name: str) -> Interface:
        for iface in self.interfaces:
            if iface.name == name:
                return iface
        raise KeyError(f"{self.name} has no interface {name}")

    @property
    def cabled(self) -> tuple[Interface, ...]:
        return tuple(i for i in self.interfaces if i.cable is not None)

    @property
    def cables(self) -> tuple[Cable, ...]:
        seen: dict[int, Cable] = {}
        for iface in self.interfaces:
            if iface.cable is not None:
                seen.setdefault(iface.cable.id, iface.cable)
        return tuple(seen.values())

    @property
    def ip_addresses(self) -> tuple[IPAddress, ...]:
        return tuple(ip for i in self.interfaces for ip in i.ip_addresses)

    @classmethod
    def parse(cls, data: Mapping[str, Any], config: str | None = None) -> DeviceWorkingSet:
        device_type = data["device_type"]
        position = data.get("position")
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            status=str(data.get("status") or "").lower(),
            site=_ref(data["site"]),
            role=_ref(data["role"]),
            device_type=_ref(device_type, "model"),
            manufacturer=_ref(device_type["manufacturer"]),
            platform=Ref.parse(data.get("platform")),
            location=Ref.parse(data.get("location")),
            rack=Ref.parse(data.get("rack")),
            position=float(position) if position is not None else None,
            face=(str(data["face"]).lower() if data.get("face") else None),
            tenant=Ref.parse(data.get("tenant")),
            serial=str(data.get("serial") or ""),
            asset_tag=data.get("asset_tag"),
            description=str(data.get("description") or ""),
            primary_ip4=_address(data.get("primary_ip4")),
            primary_ip6=_address(data.get("primary_ip6")),
            oob_ip=_address(data.get("oob_ip")),
            custom_fields=dict(data.get("custom_fields") or {}),
            config_context=dict(data.get("config_context") or {}),
            interfaces=tuple(Interface.parse(i) for i in data.get("interfaces") or ()),
            etag=etag_of(data.get("last_updated")),
            config=config,
        )


def _ref(data: Mapping[str, Any], name_key: str = "name") -> Ref:
    ref = Ref.parse(data, name_key)
    assert ref is not None
    return ref


def _address(data: Mapping[str, Any] | None) -> str | None:
    return str(data["address"]) if data else None


def _kebab(name: str) -> str:
    out = "".join("-" + c.lower() if c.isupper() else c for c in name)
    return out.lstrip("-")
