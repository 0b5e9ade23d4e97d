"""What application maintenance and application triage share: where an application runs, as
NetBox holds it, and how its state on a host reads.

An application is an application service in NetBox (``ipam.service``: its name, one TCP
port) on each device that runs it: the devices with a service of that name are its hosts,
the service's port is where it listens (on the host's primary address). The playbooks'
``roles/app_release`` reads a host's state (`HostState`): the release the link ``current``
points to, the init script and its process, the ports that process listens on, one GET of
the health URL, the log's recent ERROR lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from runbooks.core.errors import InputError
from runbooks.core.runbook import Params
from runbooks.gateways.ansible import AnsibleGateway
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.library.base import comma_list
from runbooks.library.hosts_common import in_inventory

SERVICES_QUERY = """
query AppServices($name: String!) {
  service_list(filters: {name: {exact: $name}}) {
    id name port_mappings parent { __typename ... on DeviceType { name } }
  }
}
"""
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")
HEALTHY_CODE = 200


class AppParams(Params):
    """The application and where it runs: what both runbooks take."""

    app: str = Field(
        pattern=NAME.pattern,
        description="the application, by the name of its NetBox service (ipam.service)",
    )
    hosts: list[str] = Field(
        default_factory=list,
        description="some of its hosts only (comma-separated device names); default: every "
        "device with the application's NetBox service",
    )
    health_path: str = Field(
        default="/health",
        pattern=r"^/[A-Za-z0-9/._~-]*$",
        description="the path of its health URL on each host (http://<address>:<port><path>)",
    )

    _comma_list = field_validator("hosts", mode="before")(comma_list)


def placement(
    nb: NetBoxGateway, ansible: AnsibleGateway, app: str, only: Sequence[str] = ()
) -> dict[str, Any]:
    """The application's hosts (in name order), its port and each host's address: its NetBox
    services (one GraphQL request) and the Ansible inventory. Every way it cannot be placed
    is one line."""
    found = nb.http.graphql(SERVICES_QUERY, {"name": app}, f"the {app!r} services")
    services = found.get("service_list") or []
    on_devices = [s for s in services if (s.get("parent") or {}).get("__typename") == "DeviceType"]
    if not on_devices:
        raise InputError(f"NetBox has no application service named {app!r} on any device")
    hosts = {str(s["parent"]["name"]): s for s in on_devices}
    unknown = [h for h in only if h not in hosts]
    if unknown:
        raise InputError(
            f"{', '.join(unknown)}: no {app!r} service there in NetBox "
            f"(it runs on {', '.join(sorted(hosts))})"
        )
    ports = sorted({_tcp_port(app, h, s) for h, s in hosts.items()})
    if len(ports) != 1:
        raise InputError(f"{app!r} listens on different ports across its hosts: {ports}")
    inventory = in_inventory(ansible, sorted(only or hosts))
    return {
        "app": app,
        "port": ports[0],
        "hosts": {
            h: {"address": found["address"], "service": int(hosts[h]["id"])}
            for h, found in inventory.items()
        },
    }


def _tcp_port(app: str, host: str, service: dict[str, Any]) -> int:
    """The service's one TCP port.

    >>> _tcp_port("shop", "web1", {"port_mappings": ["tcp/8080"]})
    8080
    >>> _tcp_port("shop", "web1", {"port_mappings": ["udp/53"]})
    Traceback (most recent call last):
    ...
    runbooks.core.errors.InputError: web1's 'shop' service must have one TCP port (it has udp/53)
    """
    mappings = [str(m) for m in service.get("port_mappings") or []]
    ports = [m.split("/", 1)[1] for m in mappings if m.startswith("tcp/")]
    if len(ports) != 1 or not ports[0].isdigit():
        raise InputError(
            f"{host}'s {app!r} service must have one TCP port (it has "
            f"{', '.join(mappings) or 'none'})"
        )
    return int(ports[0])


def play_vars(placed: dict[str, Any], health_path: str, **more: Any) -> dict[str, Any]:
    """The extra-vars every app playbook takes."""
    return {
        "app_targets": ",".join(placed["hosts"]),
        "app_name": placed["app"],
        "app_port": placed["port"],
        "app_health_path": health_path,
        **more,
    }


def health_line(state: dict[str, Any]) -> str:
    """A host's health check in words.

    >>> health_line({"health": {"code": 500, "latency_ms": 3.2}})
    '/health answers 500 in 3.2 ms'
    >>> health_line({"health": {"code": None, "error": "[Errno 111] Connection refused"}})
    '/health does not answer: [Errno 111] Connection refused'
    """
    health = state.get("health") or {}
    path = urlsplit(str(health.get("url", ""))).path or "/health"
    if health.get("code") is None:
        return f"{path} does not answer: {health.get('error', 'no answer')}"
    return f"{path} answers {health['code']} in {health.get('latency_ms')} ms"


def healthy(state: dict[str, Any], version: str | None = None) -> bool:
    """Running, answering 200 on its health URL, and (when given) at that release."""
    return (
        bool(state.get("running"))
        and (state.get("health") or {}).get("code") == HEALTHY_CODE
        and (version is None or state.get("version") == version)
    )
