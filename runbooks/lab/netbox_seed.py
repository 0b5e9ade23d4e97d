"""Seed the lab's NetBox from inventory/lab.yml in one pass through NetBox's own ORM.

Two halves, one file:

- `build_spec(topology)` runs in runbooks' interpreter: a pure function turning the topology
  into plain JSON data (every address, status and cable decided here, so it is unit-tested).
- `main()` runs in *NetBox's* interpreter (`<netbox venv>/bin/python netbox_seed.py spec out`),
  where only the standard library and Django are importable: it writes the spec into an empty,
  migrated database in one transaction and stores the generated API tokens in `out` (mode
  0600). One process instead of ~40 REST calls or several `netbox` commands (~8 s start-up each).

Decisions (documented here because the runbooks rely on them):
- Statuses: a device, its addresses and its cables are `planned`/`reserved` when the device is
  planned (leaf3); a link touching a planned device is a planned cable with reserved addresses.
- The PC slot (role pc, no rack) is not a device: its management address is reserved in NetBox
  with dns_name and description naming the slot; pc-install registers the PC on it.
- BGP ASN: integer custom field `bgp_asn` on dcim.device.
- PostgreSQL: a host with a cluster (`postgresql: <version>` in the topology) has an
  application service `postgresql` (tcp/<its port>) whose integer custom field
  `postgresql_version` holds the cluster's major version (NetBox's Service has no version
  field; a custom field is typed and filterable): db-upgrade and db-maintenance take
  ``server=<name>`` and find address, port and version there.
- Platforms: `frr` (FRR, our NAPALM driver) and `bird2` (BIRD 2, napalm-bird2 from PyPI; its
  config context gives the gateway `napalm.driver` and `napalm.optional_args`), each with its
  config template (templates/frr.conf.j2, templates/bird.conf.j2).
- Groups and permissions: every runbook-* group may view everything public except tokens and
  permissions, and every object type of the lab's plugins (`PLUGINS`, public or not; they
  exist only once the plugin's migrations ran, so the seed runs after them), add journal
  entries and render device configs (render-config needs a write-enabled token; rendering
  changes nothing). runbook-operators may also add, change and delete objects of dcim, ipam,
  extras, tenancy, circuits, virtualization, wireless and vpn. The plugin's own writes are
  decided by its rules, not by object permissions: no permission is granted for them here.
- Tokens: v2 (`nbt_<key>.<secret>`, header `Bearer`), write-enabled, one per person plus a
  superuser `runbooks-lab` (role "admin") for the lab itself. Everyone also gets a generated
  web password (a browser test signs in as the reviewer). Tokens and passwords exist only in
  NetBox (hashed) and in `out` (0600).
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runbooks.lab.topology import Topology

TEMPLATES = Path(__file__).resolve().parent / "templates"
ADMIN_USER = "runbooks-lab"
OPERATOR_APPS = (
    "dcim",
    "ipam",
    "extras",
    "tenancy",
    "circuits",
    "virtualization",
    "wireless",
    "vpn",
)
HIDDEN_TYPES = (("users", "token"), ("users", "objectpermission"))
PLUGINS = ("netbox_runbooks",)  # NetBox's PLUGINS: app labels of this repository's plugins
# Web passwords are random 24-character secrets, which key stretching does not make any
# harder to guess; Django's 1.5 million rounds would cost ~0.7 s a person on every seed.
# Django re-hashes with its own rounds at a person's first sign-in.
PASSWORD_ROUNDS = 1000
ENV_PARAMS = {"trim_blocks": True, "lstrip_blocks": True, "undefined": "jinja2.StrictUndefined"}


def build_spec(topo: Topology) -> dict[str, Any]:
    """Everything NetBox must hold for the lab, as JSON-ready data (see the module docstring)."""
    from runbooks.core.errors import InputError
    from runbooks.lab.hosts import PG_PORT as pg_port

    if topo.netbox is None:
        raise InputError("lab topology has no `netbox:` catalogue (device types, roles, platforms)")
    cat = topo.netbox
    mgmt_len = topo.addressing.management.prefixlen
    planned = {d.name for d in topo.devices if d.status == "planned"}
    ip_status = {True: "reserved", False: "active"}

    devices: list[dict[str, Any]] = []
    for dev in topo.devices:
        role = cat.role(dev.role)
        is_planned = dev.name in planned
        devices.append(
            {
                "name": dev.name,
                "role": role.slug,
                "device_type": role.device_type,
                "platform": role.platform,
                "rack": dev.rack,
                "position": dev.position,
                "status": dev.status,
                "asn": dev.asn,
                "ips": [
                    {
                        "interface": "eth0",
                        "address": f"{dev.mgmt}/{mgmt_len}",
                        "status": ip_status[is_planned],
                        "primary": True,
                    },
                    {
                        "interface": "lo",
                        "address": f"{dev.loopback}/32",
                        "status": ip_status[is_planned],
                        "primary": False,
                    },
                ],
            }
        )
    by_name = {d["name"]: d for d in devices}

    cables: list[dict[str, Any]] = []
    for link in topo.links:
        (a_dev, a_if), (b_dev, b_if) = link.ends()
        for name in (a_dev, b_dev):
            if name not in by_name:
                raise InputError(
                    f"lab topology: link {link.a} - {link.b} names unknown device {name!r}"
                )
        is_planned = a_dev in planned or b_dev in planned
        a_ip, b_ip = link.addresses()
        for dev_name, if_name, ip in ((a_dev, a_if, a_ip), (b_dev, b_if, b_ip)):
            by_name[dev_name]["ips"].append(
                {
                    "interface": if_name,
                    "address": str(ip),
                    "status": ip_status[is_planned],
                    "primary": False,
                }
            )
        cables.append(
            {
                "a": [a_dev, a_if],
                "b": [b_dev, b_if],
                "status": "planned" if is_planned else "connected",
            }
        )

    reserved: list[dict[str, Any]] = []
    for host in topo.hosts:
        role = cat.role(host.role)
        if host.rack is None:  # a slot, not a device yet (the PC): reserve its address
            reserved.append(
                {
                    "address": f"{host.mgmt}/{mgmt_len}",
                    "dns_name": host.name,
                    "description": f"{role.name} slot {host.name}: reserved for its install",
                }
            )
            continue
        devices.append(
            {
                "name": host.name,
                "role": role.slug,
                "device_type": role.device_type,
                "platform": role.platform,
                "rack": host.rack,
                "position": host.position,
                "status": "active",
                "asn": None,
                "ips": [
                    {
                        "interface": "eth0",
                        "address": f"{host.mgmt}/{mgmt_len}",
                        "status": "active",
                        "primary": True,
                    }
                ],
            }
        )

    services = [
        {
            "parent": host.name,
            "name": "postgresql",
            "port_mappings": [f"tcp/{pg_port}"],
            "postgresql_version": host.postgresql,
            "description": f"PostgreSQL {host.postgresql} cluster",
        }
        for host in topo.hosts
        if host.postgresql and host.rack is not None
    ]
    addressing = topo.addressing
    # the office network's gateway: the first address of the office prefix, by convention
    reserved.append(
        {
            "address": f"{addressing.office[1]}/{addressing.office.prefixlen}",
            "dns_name": "office-gw",
            "description": "Office gateway",
        }
    )
    prefixes = [
        {"prefix": str(addressing.management), "description": "Lab management"},
        {"prefix": str(addressing.loopbacks), "description": "Router loopbacks"},
        {"prefix": str(addressing.p2p), "description": "Point-to-point links (/31)"},
        {"prefix": str(addressing.office), "description": "Office PCs"},
    ]
    groups = sorted({g for u in topo.users for g in u.groups})
    return {
        "site": topo.site.model_dump(),
        "racks": [r.model_dump() for r in topo.racks],
        "manufacturers": [m.model_dump() for m in cat.manufacturers],
        "device_types": [
            {
                "model": t.model,
                "slug": t.slug,
                "manufacturer": t.manufacturer,
                "u_height": t.u_height,
                "interfaces": [i.model_dump() for i in t.interface_templates()],
            }
            for t in cat.device_types
        ],
        "config_templates": [
            {
                "name": c.name,
                "description": c.description,
                "environment_params": ENV_PARAMS,
                "code": (TEMPLATES / c.file).read_text(encoding="utf-8"),
            }
            for c in cat.config_templates
        ],
        "platforms": [p.model_dump() for p in cat.platforms],
        "config_contexts": [c.model_dump() for c in cat.config_contexts],
        "roles": [{"name": r.name, "slug": r.slug, "color": r.color} for r in cat.roles],
        "devices": devices,
        "services": services,
        "app_services": _app_services(topo),
        "cables": cables,
        "prefixes": prefixes,
        "reserved_ips": reserved,
        "locations": [loc.model_dump() for loc in cat.locations],
        "tenants": [t.model_dump() for t in cat.tenants],
        "contact_roles": [r.model_dump() for r in cat.contact_roles],
        "contacts": [c.model_dump() for c in cat.contacts],
        "groups": groups,
        "operator_groups": sorted(
            {g for u in topo.users if u.role == "operator" for g in u.groups}
        ),
        "users": [{"username": u.username, "role": u.role, "groups": u.groups} for u in topo.users],
    }


def _app_services(topo: Topology) -> list[dict[str, Any]]:
    """The lab application's services (labapp on its servers: `runbooks.lab.labapp`)."""
    from runbooks.lab import labapp

    return labapp.services([h.name for h in topo.hosts if h.rack is not None])


# -- below: runs inside NetBox's interpreter (Django configured), never imported by runbooks ---


def _seed(spec: dict[str, Any]) -> dict[str, dict[str, str]]:  # pragma: no cover - NetBox side
    with _orm("django.db.transaction").atomic():
        site, racks, types, roles, platforms = _seed_catalog(spec)
        _seed_devices(spec, site, racks, types, roles, platforms)
        _seed_app_services(spec)
        _seed_directory(spec, site)
        return _seed_people(spec)


def _seed_catalog(spec: dict[str, Any]) -> tuple[Any, ...]:  # pragma: no cover - NetBox side
    dcim, extras = _orm("dcim.models"), _orm("extras.models")
    object_type = _orm("core.models").ObjectType

    site = dcim.Site.objects.create(name=spec["site"]["name"], slug=spec["site"]["slug"])
    racks = {
        r["name"]: dcim.Rack.objects.create(site=site, name=r["name"], u_height=r["u_height"])
        for r in spec["racks"]
    }
    makers = {
        m["slug"]: dcim.Manufacturer.objects.create(name=m["name"], slug=m["slug"])
        for m in spec["manufacturers"]
    }
    types = {}
    for t in spec["device_types"]:
        types[t["slug"]] = dt = dcim.DeviceType.objects.create(
            manufacturer=makers[t["manufacturer"]],
            model=t["model"],
            slug=t["slug"],
            u_height=t["u_height"],
        )
        dcim.InterfaceTemplate.objects.bulk_create(
            [
                dcim.InterfaceTemplate(
                    device_type=dt, name=i["name"], type=i["type"], mgmt_only=i["mgmt_only"]
                )
                for i in t["interfaces"]
            ]
        )
    templates = {
        c["name"]: extras.ConfigTemplate.objects.create(
            name=c["name"],
            description=c["description"],
            template_code=c["code"],
            environment_params=c["environment_params"],
        )
        for c in spec["config_templates"]
    }
    platforms = {}
    for p in spec["platforms"]:
        template = templates.get(p.get("config_template") or "")
        platforms[p["slug"]] = dcim.Platform(
            name=p["name"],
            slug=p["slug"],
            manufacturer=makers.get(p.get("manufacturer") or ""),
            config_template=template,
        )
        platforms[p["slug"]].save()
    for c in spec.get("config_contexts", []):
        context = extras.ConfigContext(name=c["name"], weight=c["weight"], data=c["data"])
        context.save()
        context.platforms.set([platforms[slug] for slug in c["platforms"]])
    roles = {}
    for r in spec["roles"]:
        roles[r["slug"]] = dcim.DeviceRole(name=r["name"], slug=r["slug"], color=r["color"])
        roles[r["slug"]].save()
    asn = extras.CustomField(
        name="bgp_asn",
        label="BGP ASN",
        type="integer",
        description="The device's BGP autonomous system number",
    )
    asn.save()
    asn.object_types.set([object_type.objects.get_for_model(dcim.Device)])
    version = extras.CustomField(
        name="postgresql_version",
        label="PostgreSQL version",
        type="integer",
        description="The major version of the PostgreSQL cluster behind this service",
    )
    version.save()
    version.object_types.set([object_type.objects.get_for_model(_orm("ipam.models").Service)])
    return site, racks, types, roles, platforms


def _seed_devices(
    spec: dict[str, Any],
    site: Any,
    racks: dict[str, Any],
    types: dict[str, Any],
    roles: dict[str, Any],
    platforms: dict[str, Any],
) -> None:  # pragma: no cover
    dcim, ipam = _orm("dcim.models"), _orm("ipam.models")

    devices = {}
    for d in spec["devices"]:
        dev = dcim.Device(
            name=d["name"],
            site=site,
            rack=racks.get(d["rack"]),
            position=d["position"],
            face="front" if d["rack"] else "",
            device_type=types[d["device_type"]],
            role=roles[d["role"]],
            platform=platforms[d["platform"]],
            status=d["status"],
            custom_field_data={"bgp_asn": d["asn"]},
        )
        dev.full_clean()
        dev.save()  # instantiates the interfaces from the device type's templates
        devices[d["name"]] = dev
        ifaces = {i.name: i for i in dcim.Interface.objects.filter(device=dev)}
        for ip in d["ips"]:
            addr = ipam.IPAddress(
                address=ip["address"], status=ip["status"], assigned_object=ifaces[ip["interface"]]
            )
            addr.save()
            if ip["primary"]:
                dev.primary_ip4 = addr
        dev.save()
    for svc in spec.get("services", []):
        service = ipam.Service(
            parent=devices[svc["parent"]],
            name=svc["name"],
            port_mappings=svc["port_mappings"],
            description=svc["description"],
            custom_field_data={"postgresql_version": svc["postgresql_version"]},
        )
        service.full_clean()
        service.save()
    for c in spec["cables"]:
        a = dcim.Interface.objects.get(device=devices[c["a"][0]], name=c["a"][1])
        b = dcim.Interface.objects.get(device=devices[c["b"][0]], name=c["b"][1])
        dcim.Cable(a_terminations=[a], b_terminations=[b], status=c["status"]).save()
    for p in spec["prefixes"]:
        ipam.Prefix(
            prefix=p["prefix"], description=p["description"], status="active", scope=site
        ).save()
    for r in spec["reserved_ips"]:
        ipam.IPAddress(
            address=r["address"],
            status="reserved",
            dns_name=r["dns_name"],
            description=r["description"],
        ).save()


def _seed_app_services(spec: dict[str, Any]) -> None:  # pragma: no cover - NetBox side
    """Application services (``ipam.service``, no custom fields) on their devices."""
    dcim, ipam = _orm("dcim.models"), _orm("ipam.models")
    for svc in spec.get("app_services", []):
        service = ipam.Service(
            parent=dcim.Device.objects.get(name=svc["parent"]),
            name=svc["name"],
            port_mappings=svc["port_mappings"],
            description=svc["description"],
        )
        service.full_clean()
        service.save()


def _seed_directory(spec: dict[str, Any], site: Any) -> None:  # pragma: no cover
    """Where PCs go and who gets them: locations, tenants, contacts and contact roles."""
    dcim, tenancy = _orm("dcim.models"), _orm("tenancy.models")
    for loc in spec.get("locations", []):
        dcim.Location(site=site, name=loc["name"], slug=loc["slug"], status="active").save()
    tenants = {
        t["slug"]: tenancy.Tenant.objects.create(name=t["name"], slug=t["slug"])
        for t in spec.get("tenants", [])
    }
    for r in spec.get("contact_roles", []):
        tenancy.ContactRole.objects.create(name=r["name"], slug=r["slug"])
    for c in spec.get("contacts", []):
        comments = f"Department: {tenants[c['tenant']].name}" if c.get("tenant") else ""
        tenancy.Contact.objects.create(name=c["name"], email=c["email"], comments=comments)


def _seed_people(spec: dict[str, Any]) -> dict[str, dict[str, str]]:  # pragma: no cover
    object_types, users = _orm("core.models").ObjectType.objects, _orm("users.models")

    groups = {g: users.Group.objects.create(name=g) for g in spec["groups"]}
    everyone = list(groups.values())
    operators = [groups[g] for g in spec["operator_groups"]]
    public = object_types.public()
    for app, model in HIDDEN_TYPES:
        public = public.exclude(app_label=app, model=model)
    readable = public | object_types.filter(app_label__in=PLUGINS)
    journal = object_types.filter(app_label="extras", model="journalentry")
    device = object_types.filter(app_label="dcim", model="device")
    perm = users.ObjectPermission
    _permission(perm, "runbooks: read everything", ["view"], readable.distinct(), everyone)
    _permission(perm, "runbooks: journal entries", ["add"], journal, everyone)
    _permission(perm, "runbooks: render device configs", ["render_config"], device, everyone)
    _permission(
        perm,
        "runbook-operators: change inventory",
        ["add", "change", "delete"],
        public.filter(app_label__in=OPERATOR_APPS),
        operators,
    )

    admin = users.User.objects.create_superuser(username=ADMIN_USER)
    tokens = {"admin": _token(users.Token, admin)}
    for u in spec["users"]:
        user = users.User.objects.create_user(username=u["username"])
        user.groups.set([groups[g] for g in u["groups"]])
        tokens[u["role"]] = _token(users.Token, user)
    return tokens


def _orm(module: str) -> Any:
    """A module of NetBox's interpreter (Django, NetBox apps): imported late, typed as Any."""
    return importlib.import_module(module)


def _permission(model: Any, name: str, actions: list[str], types: Any, groups: Any) -> None:
    perm = model(name=name, actions=actions, enabled=True)
    perm.save()
    perm.object_types.set(list(types))
    perm.groups.set(list(groups))


def _token(model: Any, user: Any) -> dict[str, str]:
    """A v2 API token and a web password for `user`, shown only in `out`."""
    hasher = _orm("django.contrib.auth.hashers").PBKDF2PasswordHasher()
    entry = {"username": user.username, "password": secrets.token_urlsafe(18)}
    user.password = hasher.encode(entry["password"], hasher.salt(), iterations=PASSWORD_ROUNDS)
    user.save()
    token = model(user=user, version=2, write_enabled=True, description="runbooks lab")
    token.save()
    entry["token"] = f"nbt_{token.key}.{token.token}"
    return entry


def main(argv: list[str]) -> int:  # pragma: no cover - NetBox side
    spec_path, out_path = Path(argv[1]), Path(argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "netbox.settings")
    _orm("django").setup()
    tokens = _seed(json.loads(spec_path.read_text(encoding="utf-8")))
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(tokens, fh)
    return 0


if __name__ == "__main__":  # pragma: no cover - NetBox side
    sys.exit(main(sys.argv))
