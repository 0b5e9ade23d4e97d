"""NetBox's API in memory for the vendor rack tests (`vendor_support`): the GraphQL working
set, rendered configurations (a vendor's template with the render intent of the request
body), bulk writes with ``If-Match``, change records and journal entries, answering the real
`NetBoxGateway` through the fake transport of ``tests/unit/gateways/netbox_fake.py``. The
fabric is the one of ``rack_data.py`` (two spines, three leaves, leaf3 planned), its ports
named as the vendor names them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from tests.unit.gateways.netbox_fake import URL, Answer, FakeNetBox, Sent
from tests.unit.library.rack_data import ASN, IDS, LINKS, status_of

if TYPE_CHECKING:
    from tests.unit.library.vendor_support import Vendor


class MiniNetBox:
    """The part of NetBox's API the rack runbooks use, over the fabric of ``rack_data``.

    Objects are REST-shaped dicts; every write bumps ``last_updated`` (the ETag), checks
    ``If-Match`` and leaves a change record, as NetBox does; the GraphQL working set and
    render-config answer from the current objects."""

    RACK = {"id": 1, "name": "R1", "display": "R1", "url": f"{URL}/api/dcim/racks/1/"}

    def __init__(self, vendor: Vendor, templates: Path, secrets: Mapping[str, Any]) -> None:
        self.vendor = vendor
        self.templates = templates
        self.secrets = secrets  # what a secrets store gives the templates in a real NetBox
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
                                "session": cable["id"],  # both ends: one key per session
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
        template = _templates(self.templates).get_template(f"{self.vendor.driver}/netbox.j2")
        return template.render(
            name=name,
            asn=dev["custom_fields"]["bgp_asn"],
            interfaces=interfaces,
            neighbors=neighbors,
            router_id=router_id,
            intent=intent,
            secrets=self.secrets,
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


def _templates(folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["mask"] = lambda address: str(address.network.netmask)
    return env
