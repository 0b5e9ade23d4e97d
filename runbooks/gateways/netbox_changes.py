"""Intended NetBox writes as plan diffs, and NetBox's own change records of the writes done.

A planned write travels inside a `Diff` (the plan's unit, recorded before anything is applied)
so that apply, resume and undo need nothing but the record: ``Diff.before[META]`` holds the
object's type, id and the ETag seen at plan time; the rest of ``before``/``after`` are the
fields as `Diff.of_fields` would hold them.

After a write, NetBox's object-changes of that request (``prechange_data`` /
``postchange_data``) are the evidence, and the source of an exact undo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runbooks.core.errors import InputError
from runbooks.core.results import Diff, FieldChange

META = "_netbox"

# NetBox object type (app_label.model, as object-changes name them) → REST list endpoint.
ENDPOINTS: dict[str, str] = {
    "dcim.cable": "/api/dcim/cables/",
    "dcim.device": "/api/dcim/devices/",
    "dcim.frontport": "/api/dcim/front-ports/",
    "dcim.devicerole": "/api/dcim/device-roles/",
    "dcim.devicetype": "/api/dcim/device-types/",
    "dcim.interface": "/api/dcim/interfaces/",
    "dcim.location": "/api/dcim/locations/",
    "dcim.platform": "/api/dcim/platforms/",
    "dcim.rack": "/api/dcim/racks/",
    "dcim.rearport": "/api/dcim/rear-ports/",
    "dcim.site": "/api/dcim/sites/",
    "extras.journalentry": "/api/extras/journal-entries/",
    "ipam.ipaddress": "/api/ipam/ip-addresses/",
    "ipam.prefix": "/api/ipam/prefixes/",
    "ipam.service": "/api/ipam/services/",
    "ipam.vlan": "/api/ipam/vlans/",
    "tenancy.contact": "/api/tenancy/contacts/",
    "tenancy.contactassignment": "/api/tenancy/contact-assignments/",
    "tenancy.contactrole": "/api/tenancy/contact-roles/",
    "tenancy.tenant": "/api/tenancy/tenants/",
}
# Serialized in change records but never writable.
READ_ONLY = frozenset({"id", "created", "last_updated", "url", "display", "display_url"})


def endpoint(obj_type: str) -> str:
    try:
        return ENDPOINTS[obj_type]
    except KeyError:
        raise InputError(
            f"unknown NetBox object type {obj_type!r}; known: {', '.join(sorted(ENDPOINTS))}"
        ) from None


def plain(value: Any) -> Any:
    """A REST value as a write would send it: choices by value, related objects by id."""
    if isinstance(value, Mapping):
        if "value" in value and "label" in value:
            return value["value"]
        if "id" in value and ("url" in value or "display" in value):
            return value["id"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class PlannedWrite:
    """One intended write to one NetBox object, as carried by a plan `Diff`."""

    action: str  # "update" | "create" | "delete"
    obj_type: str
    id: int | None
    display: str
    etag: str | None = None
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``leaf3 #5``; ``#3`` for objects NetBox names by id (cables)."""
        if self.id is None or self.display == f"#{self.id}":
            return self.display
        return f"{self.display} #{self.id}"

    @property
    def target(self) -> str:
        return f"NetBox {self.obj_type} {self.label}"

    def meta(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "type": self.obj_type,
            "id": self.id,
            "display": self.display,
            "etag": self.etag,
        }

    def to_diff(self, summary: str = "") -> Diff:
        if self.action == "update":
            changes = tuple(
                FieldChange(k, self.before.get(k), v)
                for k, v in self.after.items()
                if self.before.get(k) != v
            )
            return Diff(
                target=self.target,
                kind="fields",
                summary=summary or f"update {self.display}",
                fields=changes,
                before={**{c.name: c.before for c in changes}, META: self.meta()},
                after={c.name: c.after for c in changes},
            )
        if self.action in ("create", "allocate"):
            return Diff(
                target=self.target,
                kind="create",
                summary=summary or f"create {self.display}",
                fields=tuple(FieldChange(k, None, v) for k, v in self.after.items()),
                before={META: self.meta()},
                after=dict(self.after),
            )
        return Diff(
            target=self.target,
            kind="delete",
            summary=summary or f"delete {self.display}",
            fields=tuple(FieldChange(k, v, None) for k, v in self.before.items()),
            before={**self.before, META: self.meta()},
            after=None,
        )

    @classmethod
    def from_diff(cls, diff: Diff) -> PlannedWrite | None:
        """The write a diff carries, or None for a diff that is not a NetBox write."""
        before = diff.before if isinstance(diff.before, Mapping) else {}
        meta = before.get(META)
        if not isinstance(meta, Mapping):
            return None
        obj_id = meta.get("id")
        return cls(
            action=str(meta["action"]),
            obj_type=str(meta["type"]),
            id=int(obj_id) if obj_id is not None else None,
            display=str(meta.get("display") or ""),
            etag=meta.get("etag"),
            before={k: v for k, v in before.items() if k != META},
            after=dict(diff.after) if isinstance(diff.after, Mapping) else {},
        )


@dataclass(frozen=True)
class ObjectChange:
    """One of NetBox's own change records (``/api/core/object-changes/``)."""

    id: int
    request_id: str
    action: str  # create | update | delete
    obj_type: str
    obj_id: int
    display: str
    message: str
    time: str
    user: str
    prechange: Mapping[str, Any] | None
    postchange: Mapping[str, Any] | None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ObjectChange:
        action = data.get("action")
        return cls(
            id=int(data["id"]),
            request_id=str(data.get("request_id") or ""),
            action=str(action.get("value") if isinstance(action, Mapping) else action),
            obj_type=str(data["changed_object_type"]),
            obj_id=int(data["changed_object_id"]),
            display=str(data.get("object_repr") or ""),
            message=str(data.get("message") or ""),
            time=str(data.get("time") or ""),
            user=str(data.get("user_name") or ""),
            prechange=data.get("prechange_data"),
            postchange=data.get("postchange_data"),
        )

    def changed(self) -> dict[str, tuple[Any, Any]]:
        """Fields whose value the change altered: name → (before, after)."""
        pre, post = self.prechange or {}, self.postchange or {}
        return {
            k: (pre.get(k), post.get(k))
            for k in sorted(set(pre) | set(post))
            if pre.get(k) != post.get(k) and k not in READ_ONLY
        }

    def to_evidence(self) -> dict[str, Any]:
        return {
            "object_change": self.id,
            "request_id": self.request_id,
            "action": self.action,
            "object": f"{self.obj_type} #{self.obj_id} {self.display}",
            "user": self.user,
            "time": self.time,
            "message": self.message,
            "changed": {k: {"before": b, "after": a} for k, (b, a) in self.changed().items()},
        }


def writable(data: Mapping[str, Any]) -> dict[str, Any]:
    """Change-record data (model serialization) as a REST write body."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in READ_ONLY or key.endswith("_count"):
            continue
        if key == "tags" and isinstance(value, list):
            out[key] = [{"name": t} if isinstance(t, str) else t for t in value]
        else:
            out[key] = value
    return out


def restore_body(change: ObjectChange) -> dict[str, Any]:
    """The PATCH that puts back every field an update altered, from its prechange data."""
    pre = change.prechange or {}
    return writable({k: pre.get(k) for k in change.changed()})


def recreate_body(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """A POST body bringing back a deleted object from its planned REST snapshot.

    Blank values are left to NetBox's defaults (some, such as a cable's profile, refuse "");
    cable terminations are named by object type and id. The object gets a new id.
    """
    out: dict[str, Any] = {}
    for key, value in snapshot.items():
        if key in READ_ONLY or key.endswith("_count") or value in ("", None, [], {}):
            continue
        if key in ("a_terminations", "b_terminations") and isinstance(value, list):
            out[key] = [
                {"object_type": t["object_type"], "object_id": t["object_id"]}
                for t in value
                if isinstance(t, Mapping)
            ]
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class WriteRequest:
    """One write request and what NetBox logged for it."""

    method: str
    path: str
    request_id: str
    objects: tuple[int, ...]
    changes: tuple[ObjectChange, ...]


@dataclass(frozen=True)
class Applied:
    """What a batch of writes did; `evidence()` goes into the run's record."""

    requests: tuple[WriteRequest, ...] = ()

    @property
    def changes(self) -> tuple[ObjectChange, ...]:
        return tuple(c for r in self.requests for c in r.changes)

    @property
    def created(self) -> dict[str, list[int]]:
        """Ids of objects created, by object type."""
        out: dict[str, list[int]] = {}
        for change in self.changes:
            if change.action == "create":
                out.setdefault(change.obj_type, []).append(change.obj_id)
        return out

    def evidence(self) -> dict[str, Any]:
        return {
            "netbox_requests": [
                {
                    "method": r.method,
                    "path": r.path,
                    "request_id": r.request_id,
                    "objects": list(r.objects),
                }
                for r in self.requests
            ],
            "netbox_changes": [c.to_evidence() for c in self.changes],
        }
