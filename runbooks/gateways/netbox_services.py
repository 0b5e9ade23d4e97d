"""A server and one of its application services as NetBox holds them, read in one request.

A server is a NetBox device or virtual machine, found by name; its address is its primary IP
(IPv4 first); an application service (``ipam.service``: name, ``port_mappings`` such as
``tcp/5432``, custom fields) is found by name among the server's own. What a runbook needs of
them (`ServiceHost`) is read with one GraphQL query through the NetBox gateway, never written.

Every way NetBox cannot answer is one `InputError` line (the name is a parameter): no such
server, a device and a virtual machine of the same name, no primary IP, no such service, a
service with no TCP port or several.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbooks.core.errors import InputError

if TYPE_CHECKING:
    from runbooks.gateways.netbox import NetBoxGateway

_SERVER = """
      id name
      primary_ip4 { address } primary_ip6 { address }
      services { id name port_mappings description custom_fields }
"""
SERVICE_HOST_QUERY = f"""
query ServiceHost($name: String!) {{
  device_list(filters: {{name: {{exact: $name}}}}) {{ {_SERVER} }}
  virtual_machine_list(filters: {{name: {{exact: $name}}}}) {{ {_SERVER} }}
}}
"""
KINDS = {"device_list": "dcim.device", "virtual_machine_list": "virtualization.virtualmachine"}
SHOWN = {"dcim.device": "device", "virtualization.virtualmachine": "virtual machine"}


@dataclass(frozen=True)
class ServiceHost:
    """A server (``kind`` ``dcim.device`` or ``virtualization.virtualmachine``) and its
    service ``service`` as NetBox holds them."""

    kind: str
    id: int
    name: str
    address: str  # the primary IP, without its prefix length
    service: str
    service_id: int
    port: int
    custom_fields: dict[str, Any] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        """What NetBox says, for a plan's evidence."""
        return {
            "object": f"{self.kind} #{self.id} {self.name}",
            "primary_ip": self.address,
            "service": f"ipam.service #{self.service_id} {self.service} tcp/{self.port}",
            "custom_fields": dict(self.custom_fields),
        }


def service_host(nb: NetBoxGateway, name: str, service: str) -> ServiceHost:
    """The server ``name`` and its service ``service``: one GraphQL request (a read)."""
    data = nb.http.graphql(SERVICE_HOST_QUERY, {"name": name}, f"server {name}")
    return parse_service_host(data, name, service)


def parse_service_host(data: dict[str, Any], name: str, service: str) -> ServiceHost:
    """The answer of `SERVICE_HOST_QUERY`, checked (see the module).

    >>> dev = {"id": "9", "name": "db1", "primary_ip4": {"address": "198.18.0.41/24"},
    ...        "primary_ip6": None, "services": [{"id": "3", "name": "postgresql",
    ...        "port_mappings": ["tcp/5432"], "custom_fields": {"postgresql_version": 15}}]}
    >>> found = parse_service_host({"device_list": [dev], "virtual_machine_list": []},
    ...                            "db1", "postgresql")
    >>> found.address, found.port, found.custom_fields["postgresql_version"]
    ('198.18.0.41', 5432, 15)
    """
    found = [(KINDS[key], obj) for key in KINDS for obj in data.get(key) or []]
    if not found:
        raise InputError(f"NetBox has no device or virtual machine named {name!r}")
    if len(found) > 1:
        kinds = " and ".join(f"a {SHOWN[kind]} (#{obj['id']})" for kind, obj in found)
        raise InputError(
            f"NetBox has {kinds} named {name!r}: which server is meant is ambiguous "
            "(rename one, or give host= and its connection parameters)"
        )
    kind, obj = found[0]
    what = f"NetBox {SHOWN[kind]} {name!r}"
    primary = obj.get("primary_ip4") or obj.get("primary_ip6")
    if not primary or not primary.get("address"):
        raise InputError(f"{what} has no primary IP address: set one in NetBox, or give host=")
    services = [s for s in obj.get("services") or [] if s.get("name") == service]
    if not services:
        have = ", ".join(sorted(str(s.get("name")) for s in obj.get("services") or []))
        raise InputError(
            f"{what} has no {service!r} application service"
            + (f" (it has {have})" if have else "")
            + ": add one in NetBox (tcp and its port), or give host= and port="
        )
    if len(services) > 1:
        raise InputError(f"{what} has {len(services)} {service!r} services: keep one")
    svc = services[0]
    ports = [m.split("/", 1)[1] for m in svc.get("port_mappings") or [] if m.startswith("tcp/")]
    if len(ports) != 1 or not ports[0].isdigit():
        raise InputError(
            f"{what}'s {service!r} service must have one TCP port "
            f"(it has {', '.join(svc.get('port_mappings') or []) or 'none'})"
        )
    return ServiceHost(
        kind=kind,
        id=int(obj["id"]),
        name=str(obj["name"]),
        address=str(ipaddress.ip_interface(primary["address"]).ip),
        service=service,
        service_id=int(svc["id"]),
        port=int(ports[0]),
        custom_fields=dict(svc.get("custom_fields") or {}),
    )
