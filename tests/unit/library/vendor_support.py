"""Rack-in and rack-out on Cisco IOS, Arista EOS and Juniper Junos without a lab.

Three parts, each as small as the orchestration tests allow:

- `MiniNetBox`: NetBox's HTTP API in memory, mounted on the real `NetBoxGateway` through the
  fake transport of ``tests/unit/gateways/netbox_fake.py``: the GraphQL working set, rendered
  configurations (the vendor's template in ``napalm_mock/fabric/<driver>/netbox.j2``, with
  the render intent of the request body), bulk writes with ``If-Match``, change records,
  journal entries. The fabric is the one of ``rack_data.py`` (two spines, three leaves,
  leaf3 planned), its ports named as the vendor names them.
- `RecordedDriver`: NAPALM's own mock driver (`napalm.base.mock.MockDriver`) answering from
  the recorded files of ``napalm_mock/fabric/<driver>/<device>/`` (how they were made:
  ``record.py`` there),
  with the device's configuration kept as state (see the class).
- `VendorFabric`: both, plus a record store and the engine, for one vendor.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from napalm.base import constants as napalm_constants
from napalm.base import exceptions as napalm_errors
from napalm.base.helpers import sanitize_configs
from napalm.base.mock import MockDriver

from runbooks.config import NetBoxSettings
from runbooks.core.context import Confirmation, RunContext
from runbooks.core.engine import Engine
from runbooks.core.gateway import Gateway
from runbooks.core.plan import Plan
from runbooks.core.results import RunResult
from runbooks.core.runbook import Runbook
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from tests.unit.gateways.netbox_fake import TOKEN, URL, Answer, FakeNetBox, Sent
from tests.unit.library.rack_data import ASN, IDS, LINKS, status_of

FIXTURES = Path(__file__).parents[1] / "gateways" / "napalm_mock" / "fabric"
CREDENTIALS = Credentials("netops", "pw-not-real")
DRIVER_MODULE = "napalm_recorded"  # NAPALM's get_network_driver("recorded") imports it


# ---- the vendors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Vendor:
    """One network OS: its NAPALM driver, NetBox platform, port names and planted secrets
    (every one of them must stay out of plans and records)."""

    driver: str
    platform: str
    platform_name: str
    ports: dict[str, str]  # the fabric's port names (rack_data) → the vendor's
    mgmt: str
    secrets: tuple[str, ...]
    # what the real driver refuses (napalm/<driver>/<driver>.py, commit_config)
    commit_message: bool
    revert_in: Callable[[int], str | None]

    def port(self, name: str) -> str:
        return self.ports.get(name, name)


def _ios_revert_in(seconds: int) -> str | None:
    if not 60 <= seconds <= 7200:
        return "For Cisco IOS devices revert_in is rounded down to the nearest minute"
    return None


def _junos_revert_in(seconds: int) -> str | None:
    if seconds % 60:
        return "For Junos devices revert_in must be a multiple of 60 (60, 120, 180...)"
    return None


IOS_ENABLE_SECRET = "$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM"
IOS_BGP_PASSWORD = "0822455D0A16544541"
EOS_BGP_PASSWORD = "kQ0dF3yPp5nGoIGvmuyGnA=="
JUNOS_BGP_KEY = "$9$Hk5FCA0IhruOBIcyKvL7-Vb2aJGjqf5F"

VENDORS: dict[str, Vendor] = {
    "ios": Vendor(
        "ios",
        "cisco_ios",
        "Cisco IOS",
        {"swp1": "GigabitEthernet0/1", "swp2": "GigabitEthernet0/2", "swp3": "GigabitEthernet0/3"}
        | {"lo": "Loopback0"},
        "GigabitEthernet0/0",
        (IOS_ENABLE_SECRET, IOS_BGP_PASSWORD),
        commit_message=False,
        revert_in=_ios_revert_in,
    ),
    "eos": Vendor(
        "eos",
        "arista_eos",
        "Arista EOS",
        {"swp1": "Ethernet1", "swp2": "Ethernet2", "swp3": "Ethernet3", "lo": "Loopback0"},
        "Management1",
        (EOS_BGP_PASSWORD,),
        commit_message=False,
        revert_in=lambda seconds: None,
    ),
    "junos": Vendor(
        "junos",
        "juniper_junos",
        "Juniper Junos",
        {"swp1": "xe-0/0/0", "swp2": "xe-0/0/1", "swp3": "xe-0/0/2", "lo": "lo0"},
        "em0",
        (JUNOS_BGP_KEY,),
        commit_message=True,
        revert_in=_junos_revert_in,
    ),
}
# the secrets NetBox's templates hold (a secrets store's values in a real NetBox)
TEMPLATE_SECRETS = {
    "enable_secret": IOS_ENABLE_SECRET,
    "ios_bgp_password": IOS_BGP_PASSWORD,
    "eos_bgp_password": EOS_BGP_PASSWORD,
    "junos_bgp_key": JUNOS_BGP_KEY,
}
# NAPALM's own sanitising of get_config(sanitized=True), per driver
SANITIZE = {
    "ios": napalm_constants.CISCO_SANITIZE_FILTERS,
    "eos": napalm_constants.EOS_SANITIZE_FILTERS,
    "junos": {  # napalm/junos/junos.py, get_config
        r"^(\s+community\s+)\w+(;.*|\s+{.*)$": r"\1<removed>\2",
        r'^(.*)"\$\d\$\S+"(;.*)$': r"\1<removed>\2",
    },
}


# ---- NetBox in memory -----------------------------------------------------------------------


class MiniNetBox:
    """The part of NetBox's API the rack runbooks use, over the fabric of ``rack_data``.

    Objects are REST-shaped dicts; every write bumps ``last_updated`` (the ETag), checks
    ``If-Match`` and leaves a change record, as NetBox does; the GraphQL working set and
    render-config answer from the current objects."""

    RACK = {"id": 1, "name": "R1", "display": "R1", "url": f"{URL}/api/dcim/racks/1/"}

    def __init__(self, vendor: Vendor) -> None:
        self.vendor = vendor
        self.clock = 0
        self.objects: dict[str, dict[int, dict[str, Any]]] = {
            "dcim.device": {},
            "dcim.cable": {},
            "ipam.ipaddress": {},
            "extras.journalentry": {},
        }
        self.interfaces: dict[int, dict[str, Any]] = {}
        self.changes: list[dict[str, Any]] = []
        self.renders: list[tuple[str, str]] = []  # (device, intent) of every render-config
        self.fake = FakeNetBox()
        self._build()
        self._routes()

    # -- the fabric
    def _stamp(self) -> str:
        self.clock += 1
        return f"2026-12-07T10:{self.clock // 60:02d}:{self.clock % 60:02d}.{self.clock:06d}+00:00"

    def _ip(self, address: str, interface_id: int, role: str | None = None) -> int:
        ip_id = len(self.objects["ipam.ipaddress"]) + 1
        self.objects["ipam.ipaddress"][ip_id] = {
            "id": ip_id,
            "display": address,
            "address": address,
            "status": {"value": "active", "label": "Active"},
            "role": {"value": role, "label": role.title()} if role else None,
            "assigned_object_type": "dcim.interface",
            "assigned_object_id": interface_id,
            "last_updated": self._stamp(),
        }
        return ip_id

    def _interface(self, device: int, name: str, **extra: Any) -> int:
        iface_id = 100 * device + len(
            [i for i in self.interfaces.values() if i["device"] == device]
        )
        self.interfaces[iface_id] = {"id": iface_id, "device": device, "name": name, **extra}
        return iface_id

    def _build(self) -> None:
        v = self.vendor
        for name, dev_id in IDS.items():
            planned = status_of(name) == "planned"
            status = status_of(name)
            self.objects["dcim.device"][dev_id] = {
                "id": dev_id,
                "name": name,
                "display": name,
                "status": {"value": status, "label": status.title()},
                "rack": self.RACK,
                "position": 10.0 + dev_id,
                "face": {"value": "front", "label": "Front"},
                "primary_ip4": None,
                "custom_fields": {"bgp_asn": ASN[name]},
                "last_updated": self._stamp(),
            }
            mgmt = self._interface(dev_id, v.mgmt, mgmt_only=True, type="1000base-t")
            ip_id = self._ip(f"198.18.0.{dev_id}/24", mgmt)
            self.objects["dcim.device"][dev_id]["primary_ip4"] = {
                "id": ip_id,
                "address": f"198.18.0.{dev_id}/24",
                "display": f"198.18.0.{dev_id}/24",
            }
            lo = self._interface(dev_id, v.port("lo"), type="virtual")
            self._ip(f"198.18.255.{dev_id}/32", lo, role="loopback")  # NetBox's own mark
            if planned:  # a planned device's addresses are reserved until it is active
                for ip in self.objects["ipam.ipaddress"].values():
                    owner = self.interfaces[ip["assigned_object_id"]]["device"]
                    if owner == dev_id:
                        ip["status"] = {"value": "reserved", "label": "Reserved"}
        for cable_id, (a, a_if, b, b_if, a_ip, b_ip, status) in enumerate(LINKS, start=1):
            self.objects["dcim.cable"][cable_id] = {
                "id": cable_id,
                "display": f"#{cable_id}",
                "status": {"value": status, "label": status.title()},
                "last_updated": self._stamp(),
            }
            ends = []
            for dev, port, address in ((a, a_if, a_ip), (b, b_if, b_ip)):
                iface = self._interface(IDS[dev], v.port(port), cable=cable_id, type="10gbase-x")
                ip_id = self._ip(f"{address}/31", iface)
                if status_of(dev) == "planned":
                    self.objects["ipam.ipaddress"][ip_id]["status"] = {
                        "value": "reserved",
                        "label": "Reserved",
                    }
                ends.append(iface)
            self.interfaces[ends[0]]["peer"] = ends[1]
            self.interfaces[ends[1]]["peer"] = ends[0]

    # -- reading the objects as NetBox's APIs show them
    def device(self, name: str) -> dict[str, Any]:
        return self.objects["dcim.device"][IDS[name]]

    def addresses(self, iface_id: int) -> list[dict[str, Any]]:
        return [
            ip
            for ip in self.objects["ipam.ipaddress"].values()
            if ip["assigned_object_type"] == "dcim.interface"
            and ip["assigned_object_id"] == iface_id
        ]

    def _graphql_device(self, name: str) -> dict[str, Any]:
        dev = self.device(name)
        interfaces = []
        for iface in (i for i in self.interfaces.values() if i["device"] == dev["id"]):
            item: dict[str, Any] = {
                "id": iface["id"],
                "name": iface["name"],
                "type": iface.get("type", "other").upper().replace("-", "_"),
                "enabled": True,
                "mgmt_only": iface.get("mgmt_only", False),
                "description": "",
                "mtu": None,
                "last_updated": dev["last_updated"],
                "ip_addresses": [
                    {
                        "id": ip["id"],
                        "address": ip["address"],
                        "status": ip["status"]["value"].upper(),
                        "role": ip["role"]["value"].upper() if ip["role"] else None,
                        "last_updated": ip["last_updated"],
                    }
                    for ip in self.addresses(iface["id"])
                ],
                "cable": None,
                "link_peers": [],
            }
            if "cable" in iface:
                cable = self.objects["dcim.cable"][iface["cable"]]
                peer = self.interfaces[iface["peer"]]
                peer_dev = self.objects["dcim.device"][peer["device"]]
                item["cable"] = {
                    "id": cable["id"],
                    "status": cable["status"]["value"].upper(),
                    "last_updated": cable["last_updated"],
                }
                item["link_peers"] = [
                    {
                        "__typename": "InterfaceType",
                        "id": peer["id"],
                        "name": peer["name"],
                        "device": {
                            "id": peer_dev["id"],
                            "name": peer_dev["name"],
                            "status": peer_dev["status"]["value"].upper(),
                        },
                    }
                ]
            interfaces.append(item)
        primary = dev["primary_ip4"]
        return {
            "id": dev["id"],
            "name": name,
            "status": dev["status"]["value"].upper(),
            "position": dev["position"],
            "face": dev["face"]["value"].upper() if dev["face"] else None,
            "last_updated": dev["last_updated"],
            "custom_fields": dev["custom_fields"],
            "config_context": {},
            "site": {"id": 1, "name": "Lab DC1", "slug": "lab-dc1"},
            "rack": {"id": 1, "name": "R1"} if dev["rack"] else None,
            "role": {"id": 1, "name": "Leaf", "slug": "leaf"},
            "platform": {
                "id": 1,
                "name": self.vendor.platform_name,
                "slug": self.vendor.platform,
            },
            "device_type": {
                "id": 1,
                "model": f"{self.vendor.platform_name} switch",
                "slug": "switch",
                "u_height": 1.0,
                "manufacturer": {"id": 1, "name": "Vendor", "slug": "vendor"},
            },
            "primary_ip4": {"id": primary["id"], "address": primary["address"]}
            if primary
            else None,
            "interfaces": interfaces,
        }

    # -- rendering: the vendor's template, with the intent the request's body names
    def render(self, name: str, intent: str = "service") -> str:
        """The configuration NetBox renders for a device (``intent``: service, drain, bare;
        contract point 2): its addressed interfaces, and a BGP neighbour over each connected
        cable to an addressed peer port."""
        dev = self.device(name)
        interfaces, neighbors, router_id = [], [], None
        for iface in sorted(
            (i for i in self.interfaces.values() if i["device"] == dev["id"]),
            key=lambda i: i["id"],
        ):
            addresses = [
                ipaddress.ip_interface(ip["address"]) for ip in self.addresses(iface["id"])
            ]
            description = ""
            if "cable" in iface:
                peer = self.interfaces[iface["peer"]]
                peer_dev = self.objects["dcim.device"][peer["device"]]
                description = f"{peer_dev['name']}:{peer['name']}"
                cable = self.objects["dcim.cable"][iface["cable"]]
                if cable["status"]["value"] == "connected":
                    for ip in self.addresses(peer["id"]):
                        neighbors.append(
                            {
                                "address": str(ipaddress.ip_interface(ip["address"]).ip),
                                "asn": peer_dev["custom_fields"]["bgp_asn"],
                                "description": description,
                            }
                        )
            if iface["name"] == self.vendor.port("lo") and addresses:
                router_id = str(addresses[0].ip)
            if addresses:
                interfaces.append(
                    {
                        "name": iface["name"],
                        "mgmt": iface.get("mgmt_only", False),
                        "description": description,
                        "addresses": addresses,
                        "loopback": iface["name"] == self.vendor.port("lo"),
                    }
                )
        template = _templates().get_template(f"{self.vendor.driver}/netbox.j2")
        return template.render(
            name=name,
            asn=dev["custom_fields"]["bgp_asn"],
            interfaces=interfaces,
            neighbors=neighbors,
            router_id=router_id,
            intent=intent,
            secrets=TEMPLATE_SECRETS,
        )

    # -- the HTTP side
    def _routes(self) -> None:
        f, h = self.fake, self.handle
        f.on("POST", "/graphql/", h)
        for dev_id in IDS.values():
            f.on("POST", f"/api/dcim/devices/{dev_id}/render-config/", h)
            f.on("GET", f"/api/dcim/devices/{dev_id}/", h)
        f.on("GET", "/api/dcim/device-types/1/", h)
        f.on("GET", "/api/dcim/racks/1/elevation/", h)
        f.on("GET", "/api/core/object-changes/", h)
        for obj_type in self.objects:
            path = ENDPOINT_OF[obj_type]
            for method in ("GET", "PATCH", "DELETE", "POST"):
                f.on(method, path, h)
        self._journal_routes()

    def _journal_routes(self) -> None:
        for entry_id in [*self.objects["extras.journalentry"], self._next_journal_id()]:
            self.fake.on("GET", f"/api/extras/journal-entries/{entry_id}/", self.handle)

    def _next_journal_id(self) -> int:
        return max(self.objects["extras.journalentry"], default=0) + 1

    def handle(self, sent: Sent) -> Answer:
        if sent.path == "/graphql/":
            name = sent.body["variables"]["name"]
            found = [self._graphql_device(name)] if name in IDS else []
            return Answer(body={"data": {"device_list": found}})
        if sent.path.endswith("/render-config/"):
            dev_id = int(sent.path.split("/")[-3])
            name = self.objects["dcim.device"][dev_id]["name"]
            intent = str((sent.body or {}).get("runbooks_intent", "service"))
            self.renders.append((name, intent))
            return Answer(text=self.render(name, intent), content_type="text/plain")
        if sent.path == "/api/dcim/device-types/1/":
            return Answer(body={"id": 1, "model": "switch", "u_height": 1.0})
        if sent.path.endswith("/elevation/"):
            units = [{"id": u, "name": f"U{u}", "device": None} for u in range(1, 43)]
            return Answer(body={"count": len(units), "results": units})
        if sent.path == "/api/core/object-changes/":
            return Answer(body={"results": self._object_changes(sent.query)})
        obj_type, obj_id = _object_of(sent.path)
        if sent.method == "GET" and obj_id is not None:
            obj = self.objects[obj_type].get(obj_id)
            if obj is None:
                return Answer(404, {"detail": "No object matches the given query."})
            return Answer(body=obj, headers={"ETag": _etag(obj)})
        if sent.method == "GET":
            return Answer(body={"results": self._list(obj_type, sent.query)})
        if sent.method == "POST":
            return self._create(obj_type, sent)
        return self._bulk(obj_type, sent)

    def _list(self, obj_type: str, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
        filters: dict[str, set[str]] = {}
        for key, value in query:
            if key not in ("limit", "fields", "ordering", "offset"):
                filters.setdefault(key, set()).add(value)
        return [
            obj
            for obj in self.objects[obj_type].values()
            if all(str(_plain(obj.get(k))) in values for k, values in filters.items())
        ]

    def _object_changes(self, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
        params: dict[str, set[str]] = {}
        for key, value in query:
            params.setdefault(key, set()).add(value)
        out = []
        for change in self.changes:
            if "request_id" in params and change["request_id"] not in params["request_id"]:
                continue
            if "changed_object_type" in params and (
                change["changed_object_type"] not in params["changed_object_type"]
            ):
                continue
            if "changed_object_id" in params and (
                str(change["changed_object_id"]) not in params["changed_object_id"]
            ):
                continue
            if "action" in params and change["action"]["value"] not in params["action"]:
                continue
            if "q" in params and not any(q in change["message"] for q in params["q"]):
                continue
            out.append(change)
        return list(reversed(out)) if "-time" in params.get("ordering", ()) else out

    def _record(
        self, action: str, obj_type: str, obj: dict[str, Any], pre: Any, message: str
    ) -> None:
        self.changes.append(
            {
                "id": len(self.changes) + 1,
                "request_id": f"req-{self.fake.request_ids + 1}",  # the answer's X-Request-ID
                "action": {"value": action, "label": action.title()},
                "changed_object_type": obj_type,
                "changed_object_id": obj["id"],
                "object_repr": obj.get("display", ""),
                "message": message,
                "time": self._stamp(),
                "user_name": "runbooks",
                "prechange_data": pre,
                "postchange_data": _snapshot(obj) if action != "delete" else None,
            }
        )

    def _bulk(self, obj_type: str, sent: Sent) -> Answer:
        items = list(sent.body or [])
        wanted = {item["id"] for item in items}
        current = [self.objects[obj_type].get(i) for i in wanted]
        if any(obj is None for obj in current):
            return Answer(404, {"detail": "No object matches the given query."})
        matches = {e.strip() for e in sent.headers.get("If-Match", "").split(",") if e.strip()}
        if matches and any(_etag(obj) not in matches for obj in current if obj):
            return Answer(412, {"detail": "Precondition failed."})
        out = []
        for item in items:
            obj = self.objects[obj_type][item["id"]]
            pre = _snapshot(obj)
            message = str(item.get("changelog_message", ""))
            if sent.method == "DELETE":
                del self.objects[obj_type][item["id"]]
                self._record("delete", obj_type, obj, pre, message)
                continue
            for key, value in item.items():
                if key in ("id", "changelog_message"):
                    continue
                obj[key] = self._rest_value(key, value)
            obj["last_updated"] = self._stamp()
            self._record("update", obj_type, obj, pre, message)
            out.append(obj)
        if sent.method == "DELETE":
            return Answer(204, text="")
        return Answer(body=out)

    def _rest_value(self, key: str, value: Any) -> Any:
        if value is None:
            return None
        if key in ("status", "face"):
            return {"value": value, "label": str(value).title()}
        if key == "rack":
            return self.RACK
        if key == "primary_ip4":
            ip = self.objects["ipam.ipaddress"][int(value)]
            return {"id": ip["id"], "address": ip["address"], "display": ip["address"]}
        return value

    def _create(self, obj_type: str, sent: Sent) -> Answer:
        body = dict(sent.body or {})
        if obj_type != "extras.journalentry" or isinstance(sent.body, list):
            return Answer(400, {"detail": f"the test NetBox creates journal entries only ({body})"})
        entry_id = self._next_journal_id()
        entry = {
            "id": entry_id,
            "display": f"journal entry {entry_id}",
            "assigned_object_type": body["assigned_object_type"],
            "assigned_object_id": body["assigned_object_id"],
            "kind": {"value": body.get("kind", "info"), "label": "Info"},
            "comments": body["comments"],
            "last_updated": self._stamp(),
        }
        self.objects["extras.journalentry"][entry_id] = entry
        self._record("create", obj_type, entry, None, str(body.get("changelog_message", "")))
        self._journal_routes()
        return Answer(201, entry)

    def journal(self, name: str) -> list[str]:
        """The comments of the device's journal entries."""
        return [
            str(e["comments"])
            for e in self.objects["extras.journalentry"].values()
            if e["assigned_object_id"] == IDS[name]
        ]


ENDPOINT_OF = {
    "dcim.device": "/api/dcim/devices/",
    "dcim.cable": "/api/dcim/cables/",
    "ipam.ipaddress": "/api/ipam/ip-addresses/",
    "extras.journalentry": "/api/extras/journal-entries/",
}


def _object_of(path: str) -> tuple[str, int | None]:
    for obj_type, prefix in ENDPOINT_OF.items():
        if path.startswith(prefix):
            rest = path[len(prefix) :].strip("/")
            return obj_type, int(rest) if rest else None
    raise AssertionError(f"the test NetBox has no {path}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("value", value.get("id"))
    return value


def _snapshot(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in obj.items() if k != "display"}


def _etag(obj: dict[str, Any]) -> str:
    return f'W/"{obj["last_updated"]}"'


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(FIXTURES)),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["mask"] = lambda address: str(address.network.netmask)
    return env


# ---- the devices ----------------------------------------------------------------------------


class Interrupted(BaseException):
    """The process running the runbook dies here (as SIGKILL would kill it): not an
    Exception, so no step, undo or engine handler sees it."""


@dataclass
class DeviceState:
    """What a device keeps whoever is connected: its running configuration, the one before
    the last commit (rollback's target), a commit waiting for its confirmation."""

    name: str
    running: str
    previous: str | None = None
    pending: bool = False
    commits: list[tuple[str, int | None]] = field(default_factory=list)  # (text, revert_in)


@dataclass
class Network:
    """The devices of one vendor's fabric, and what goes wrong on purpose: ``bgp_never_up``
    (devices whose sessions never establish), ``interrupt`` (a driver method and the device
    at whose call the runbook's process dies: ``("commit_config", "spine1")``)."""

    vendor: Vendor
    devices: dict[str, DeviceState]
    bgp_never_up: set[str] = field(default_factory=set)
    interrupt: tuple[str, str] | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)  # (device, method)

    def address_owner(self) -> dict[str, str]:
        """p2p address → the device holding it (from the fabric's cables)."""
        out = {}
        for a, _ai, b, _bi, a_ip, b_ip, _status in LINKS:
            out[a_ip], out[b_ip] = a, b
        return out

    def neighbor_states(self, name: str) -> dict[str, bool]:
        """The BGP neighbours the device's running configuration has: address → enabled."""
        text = self.devices[name].running
        found: dict[str, bool] = {}
        if self.vendor.driver == "junos":
            for m in re.finditer(r"^\s*(inactive: )?neighbor (\S+) \{", text, re.M):
                found[m.group(2)] = not m.group(1)
        else:
            for m in re.finditer(r"^\s+neighbor (\d\S+) remote-as ", text, re.M):
                found[m.group(1)] = True
            for m in re.finditer(r"^\s+neighbor (\d\S+) shutdown$", text, re.M):
                found[m.group(1)] = False
        return found

    def session_up(self, name: str, peer_address: str) -> bool:
        """Up when both ends configure it, enabled, and neither is told never to come up."""
        peer = self.address_owner().get(peer_address)
        if peer is None or not self.neighbor_states(name).get(peer_address):
            return False
        if name in self.bgp_never_up or peer in self.bgp_never_up:
            return False
        mine = next(
            (a_ip if a == name else b_ip)
            for a, _ai, b, _bi, a_ip, b_ip, _s in LINKS
            if {a, b} == {name, peer} and peer_address in (a_ip, b_ip)
        )
        return bool(self.neighbor_states(peer).get(mine))

    def reachable(self, start: str, goal: str, without: str) -> bool:
        """Does ``goal`` get routes from ``start`` over established sessions, not via
        ``without``?"""
        seen, todo = {start}, [start]
        owners = self.address_owner()
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            for address in self.neighbor_states(here):
                there = owners.get(address)
                fresh = there and there not in seen and there != without
                if fresh and self.session_up(here, address):
                    seen.add(str(there))
                    todo.append(str(there))
        return False


def recorded(vendor: Vendor, device: str, method: str) -> Any:
    return json.loads((FIXTURES / vendor.driver / device / f"{method}.1").read_text())


class RecordedDriver(MockDriver):  # type: ignore[misc]
    """NAPALM's mock driver whose answers follow the device's configuration.

    NAPALM's mock replays ``<method>.<n>`` files by call count and its load/compare/commit
    keep nothing: a commit does not change what ``get_config`` returns, ``compare_config``
    answers a recorded diff whatever the candidate, a rollback restores nothing. The rack
    runbooks read a device, commit, check, and roll back on failure, so here:

    - the configuration is state (`DeviceState`, kept across connections as on a device):
      compare diffs the candidate against it, commit replaces it (with ``revert_in`` it
      waits for confirm_commit), rollback restores the one before the commit;
    - the converged answers recorded for each device (every session up, every loopback
      routed) are cut to what the running configurations establish: a BGP peer is listed
      when configured, up when both ends configure it enabled; a route when its next hop's
      session is up and leads to the destination;
    - commit_config refuses what the vendor's real driver refuses (a commit message on
      IOS and EOS, a ``revert_in`` IOS or Junos cannot honour).

    Getters the recorded files do not hold raise NotImplementedError, as the mock does."""

    network: Network  # set on the class `driver_for` builds

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(hostname, username, password, timeout, optional_args)
        self.name = next(n for n, i in IDS.items() if hostname == f"198.18.0.{i}")
        self.vendor = self.network.vendor
        self.path = str(FIXTURES / self.vendor.driver / self.name)
        self.config: str | None = None  # the candidate loaded
        self.merge: bool | None = None

    @property
    def state(self) -> DeviceState:
        return self.network.devices[self.name]

    def _called(self, method: str) -> None:
        self.network.calls.append((self.name, method))
        if self.network.interrupt == (method, self.name):
            self.network.interrupt = None
            raise Interrupted(f"killed at {method} of {self.name}")

    def __getattribute__(self, name: str) -> Any:
        if name in _STATEFUL:  # not the mock's replay of <name>.<n> files
            object.__getattribute__(self, "_raise_if_closed")()
            object.__getattribute__(self, "_called")(name)
            return object.__getattribute__(self, name)
        if name.startswith("get_"):
            object.__getattribute__(self, "_called")(name)
            object.__getattribute__(self, "_raise_if_closed")()
            path = Path(object.__getattribute__(self, "path")) / f"{name}.1"
            if not path.exists():
                raise NotImplementedError(f"no recorded answer {path.name}")
            data = json.loads(path.read_text())
            return lambda *args, **kwargs: data
        return super().__getattribute__(name)

    # -- getters that follow the configuration
    def get_config(
        self,
        retrieve: str = "all",
        full: bool = False,
        sanitized: bool = False,
        format: str = "text",
    ) -> dict[str, str]:
        configs = {"running": "", "startup": "", "candidate": ""}
        if retrieve in ("running", "all"):
            configs["running"] = self.state.running
        if retrieve in ("startup", "all"):
            configs["startup"] = self.state.running
        if retrieve in ("candidate", "all"):
            configs["candidate"] = self.config or ""
        if sanitized:
            return dict(sanitize_configs(configs, SANITIZE[self.vendor.driver]))
        return configs

    def get_bgp_neighbors(self) -> dict[str, Any]:
        answer = recorded(self.vendor, self.name, "get_bgp_neighbors")
        configured = self.network.neighbor_states(self.name)
        peers = answer["global"]["peers"]
        for address in list(peers):
            if address not in configured:
                del peers[address]
                continue
            up = self.network.session_up(self.name, address)
            peers[address]["is_enabled"] = configured[address]
            peers[address]["is_up"] = up
            if not up:
                peers[address]["uptime"] = -1
                for counts in peers[address]["address_family"].values():
                    for key in counts:
                        counts[key] = min(counts[key], 0)
        return answer  # type: ignore[no-any-return]

    def get_route_to(
        self, destination: str = "", protocol: str = "", longer: bool = False
    ) -> dict[str, Any]:
        answer = recorded(self.vendor, self.name, "get_route_to")
        owners = self.network.address_owner()
        out: dict[str, Any] = {}
        for prefix, routes in answer.items():
            if destination and not _covers(prefix, destination):
                continue
            goal = next(n for n, i in IDS.items() if prefix == f"198.18.255.{i}/32")
            kept = [
                r
                for r in routes
                if self.network.session_up(self.name, r["next_hop"])
                and self.network.reachable(owners[r["next_hop"]], goal, without=self.name)
            ]
            if kept:
                out[prefix] = kept
        return out

    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, Any]:
        """What the box says to a command it does not have (FRR's vtysh JSON included)."""
        return {c: "% Invalid input detected at '^' marker." for c in commands}

    # -- the candidate and the commit
    def load_replace_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None:
        self.merge, self.config = (
            False,
            config if config is not None else Path(str(filename)).read_text(),
        )

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        raise NotImplementedError("the recorded devices take replace candidates only")

    def compare_config(self, filename: str | None = None, config: str | None = None) -> str:
        if self.config is None:
            return ""
        return _device_diff(self.vendor.driver, self.state.running, self.config)

    def discard_config(self) -> None:
        self.merge, self.config = None, None

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        if message and not self.vendor.commit_message:
            raise NotImplementedError("Commit message not implemented for this platform")
        if revert_in is not None:
            refused = self.vendor.revert_in(revert_in)
            if refused:
                raise napalm_errors.CommitConfirmException(refused)
            if self.state.pending:
                raise napalm_errors.CommitError("Pending commit confirm already in process!")
        if self.config is None:
            return
        state = self.state
        state.previous, state.running = state.running, self.config
        state.pending = revert_in is not None
        state.commits.append((self.config, revert_in))
        self.merge, self.config = None, None

    def confirm_commit(self) -> None:
        if not self.state.pending:
            raise napalm_errors.CommitError("No pending commit-confirm")
        self.state.pending = False

    def has_pending_commit(self) -> bool:
        return self.state.pending

    def rollback(self) -> None:
        state = self.state
        if state.previous is None:
            raise napalm_errors.ReplaceConfigException("Rollback config file does not exist")
        state.running, state.previous, state.pending = state.previous, None, False


_STATEFUL = frozenset(
    {
        "get_config",
        "get_bgp_neighbors",
        "get_route_to",
        "cli",
        "load_replace_candidate",
        "load_merge_candidate",
        "compare_config",
        "discard_config",
        "commit_config",
        "confirm_commit",
        "has_pending_commit",
        "rollback",
    }
)


def _covers(prefix: str, destination: str) -> bool:
    net = ipaddress.ip_network(prefix)
    try:
        return ipaddress.ip_network(destination, strict=False).subnet_of(net)  # type: ignore[arg-type]
    except ValueError:
        return False


def _device_diff(driver: str, running: str, candidate: str) -> str:
    """The diff as the vendor's driver shows it: IOS ``+``/``-`` lines (show archive config
    differences), EOS a unified diff of the session, Junos ``show | compare``-like."""
    a, b = running.splitlines(), candidate.splitlines()
    if a == b:
        return ""
    if driver == "eos":
        lines = difflib.unified_diff(
            a, b, "system:/running-config", "session:/runbooks-session-config", lineterm=""
        )
        return "\n".join(lines)
    changed = [
        line
        for line in difflib.ndiff(a, b)
        if line.startswith(("+ ", "- ")) and line[2:].strip() not in ("!", "}")
    ]
    body = [f"{line[0]}{line[2:]}" for line in changed]
    return "\n".join(["[edit]", *body] if driver == "junos" else body)


def driver_for(network: Network) -> type[RecordedDriver]:
    """The driver class of one network, importable by NAPALM as ``napalm_recorded``."""
    cls = type("RecordedDriver", (RecordedDriver,), {"network": network})
    module = types.ModuleType(DRIVER_MODULE)
    module.RecordedDriver = cls  # type: ignore[attr-defined]
    sys.modules[DRIVER_MODULE] = module
    return cls


# ---- the engine on both -----------------------------------------------------------------------


class VendorFabric:
    """One vendor's fabric: the NetBox above, the recorded devices, a record store and the
    engine reaching them as the CLI's engine would (its gateway factories)."""

    def __init__(self, vendor: str, store_path: Path) -> None:
        self.vendor = VENDORS[vendor]
        self.netbox = MiniNetBox(self.vendor)
        self.network = Network(
            self.vendor,
            {
                name: DeviceState(name, recorded(self.vendor, name, "get_config")["running"])
                for name in IDS
            },
        )
        driver_for(self.network)
        store_path.parent.mkdir(parents=True, exist_ok=True)
        self.store_path = store_path
        self.originals = {name: state.running for name, state in self.network.devices.items()}
        self.declined: str | None = None  # the title of a manual step nobody confirms

    def running(self, name: str) -> str:
        return self.network.devices[name].running

    def _netbox(self, ctx: RunContext, key: str) -> Gateway:
        gw = NetBoxGateway(
            NetBoxSettings(URL, TOKEN), ctx.mode, run_id=ctx.run_id, runbook=ctx.runbook.name
        )
        gw.session.mount("http://", self.netbox.fake)
        return gw

    def _device(self, ctx: RunContext, key: str) -> Gateway:
        target = DeviceTarget(key, f"198.18.0.{IDS[key]}", self.vendor.platform)
        return NetworkGateway(ctx.mode, target, CREDENTIALS, ctx.run_id, driver="recorded")

    def _confirm(self, step_title: str, instruction: str, actor: str) -> Confirmation:
        declined = self.declined is not None and self.declined in step_title
        note = "declined (unit test)" if declined else "confirmed (unit test)"
        return Confirmation(not declined, actor, datetime.now(UTC), note)

    def engine(self, store: RecordStore) -> Engine:
        return Engine(
            store,
            "olivia",
            confirmer=self._confirm,
            gateway_factories={NetBoxGateway: self._netbox, NetworkGateway: self._device},
        )

    def plan(self, runbook: Runbook) -> Plan:
        with RecordStore(self.store_path) as store:
            return self.engine(store).plan(runbook)

    def run(self, runbook: Runbook) -> RunResult:
        with RecordStore(self.store_path) as store:
            return self.engine(store).run(runbook)

    def resume(self, run_id: str, runbook_type: type[Runbook]) -> RunResult:
        with RecordStore(self.store_path) as store:
            return self.engine(store).resume(
                run_id, lambda started: runbook_type(runbook_type.parse_params(started["params"]))
            )

    def record_text(self) -> str:
        """Everything the store holds, as bytes on disk (its WAL too), for secret hunting."""
        texts = [
            p.read_bytes().decode("utf-8", "replace")
            for p in self.store_path.parent.iterdir()
            if p.is_file()
        ]
        return "\n".join(texts)
