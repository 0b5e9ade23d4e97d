"""NetBox, the source of truth: a device's working set in one request, writes that fail safe.

Reading: `working_set(name)` is one GraphQL request for the device, its rack position, type,
role, platform, interfaces with cables, link peers and addresses, and config context
(``render=True`` adds the rendered configuration: one more request).

Planning: ``plan_*`` methods read and return `Diff` objects that carry each object's ETag;
they never write (and the session itself refuses writes in a plan).

The journal: `plan_journal` and `journal` find before they create (an object's entry holding
a marker, e.g. a run's id, is written once however often a run is resumed); `remove_journal`
takes a run's entry back.

Running: `apply(diffs)` writes them as bulk requests with ``If-Match`` on the planned ETags
(an object edited since the plan stops the run with `DriftError`, nothing written), each entry
with a changelog message naming the run; it returns `Applied` holding NetBox's own change
records. `undo(diffs)` restores every altered field from those records.

A runbook uses it as ``nb = ctx.gateway(NetBoxGateway)``. Every write goes through the
``@writes`` methods below: the session refuses any other (a plan's session every write).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

import pynetbox

from runbooks.config import NetBoxSettings, netbox_settings
from runbooks.core import secrets
from runbooks.core.errors import GatewayError, InputError, InventoryError, RejectedError
from runbooks.core.gateway import Gateway, Mode, reads, writes
from runbooks.core.results import Diff, FieldChange
from runbooks.gateways.netbox_changes import (
    Applied,
    ObjectChange,
    PlannedWrite,
    endpoint,
    plain,
)
from runbooks.gateways.netbox_http import (
    RENDER_CONFIGS,
    GuardedSession,
    NetBoxHTTP,
    first_line,
    status_error,
)
from runbooks.gateways.netbox_model import WORKING_SET_QUERY, DeviceWorkingSet, etag_of
from runbooks.gateways.netbox_writes import Writer

if TYPE_CHECKING:
    from runbooks.core.context import RunContext

log = logging.getLogger(__name__)


class NetBoxGateway(Gateway):
    """NetBox through its REST and GraphQL APIs on one session."""

    def __init__(
        self,
        settings: NetBoxSettings,
        mode: Mode,
        *,
        run_id: str = "",
        runbook: str = "",
        timeout: float = 30.0,
        session: GuardedSession | None = None,
    ) -> None:
        super().__init__(mode)
        self.http = NetBoxHTTP(
            settings,
            allow_writes=mode is Mode.RUN,
            timeout=timeout,
            session=session,
            declared_only=True,
        )
        self.run_id = run_id
        self.message = f"runbook {runbook or '?'} run {run_id or '?'}"
        self._writer = Writer(self.http, self.message)
        self._render_configs: bool | None = None  # the plugin's render-configs answers

    @classmethod
    def open(cls, ctx: RunContext, key: str) -> Self:
        settings = netbox_settings()
        if settings is None:
            raise InputError("NetBox is not configured: set RUNBOOKS_NETBOX_URL and _TOKEN")
        return cls(settings, ctx.mode, run_id=ctx.run_id, runbook=ctx.runbook.name)

    def close(self) -> None:
        self.http.close()

    @property
    def session(self) -> GuardedSession:
        """The one requests session (count requests with ``session.log.count``). It writes
        only inside this gateway's declared writes: a write sent through it directly is
        refused, in a plan and in a run alike."""
        return self.http.session

    # -- reads -------------------------------------------------------------------------------

    @reads
    def working_set(self, name: str, *, render: bool = False) -> DeviceWorkingSet:
        """The device and everything around it in one request (two with ``render``)."""
        data = self.http.graphql(WORKING_SET_QUERY, {"name": name}, f"working set of {name}")
        devices = data.get("device_list") or []
        if not devices:
            raise InventoryError(f"NetBox has no device named {name!r}")
        device = DeviceWorkingSet.parse(devices[0])
        if not render:
            return device
        return DeviceWorkingSet.parse(devices[0], config=self.render_config(device.id))

    @reads
    def render_config(self, device_id: int, context: Mapping[str, Any] | None = None) -> str:
        """The device's configuration rendered by NetBox (needs a write-enabled token).

        ``context`` goes as the request's JSON body: NetBox merges it into the template's
        context (over the device's config context), e.g. ``{"runbooks_intent": "drain"}``."""
        reply = self.http.call(
            "POST",
            f"/api/dcim/devices/{device_id}/render-config/",
            body=dict(context) if context else None,
            accept_text=True,
            what=f"render-config of device #{device_id}",
        )
        return reply.text

    @reads
    def render_configs(self, device_ids: Sequence[int]) -> dict[int, str | GatewayError]:
        """Each device's configuration as `render_config` renders it without ``context``, by
        id; a device NetBox does not render maps to the error its render-config would raise
        (400 no template, 404 not found or not allowed: RejectedError; 500 the template's
        error: GatewayError). One request to the netbox-runbooks plugin's render-configs
        (NetBox's render-config costs a filterset per device: `netbox_runbooks.renders`);
        where NetBox has no such endpoint, one render-config per device."""
        ids = list(dict.fromkeys(int(i) for i in device_ids))
        if not ids:
            return {}
        if self._render_configs is not False:
            try:
                reply = self.http.call(
                    "POST",
                    RENDER_CONFIGS,
                    body={"devices": ids},
                    what=f"render-config of {len(ids)} devices",
                )
            except RejectedError as exc:
                if exc.context.get("status") != 404:
                    raise
                self._render_configs = False  # NetBox without the plugin (or an older one)
            except GatewayError as exc:
                if not isinstance(exc.context.get("status"), int):
                    raise  # unreachable, timed out, the token refused: NetBox's, not a device's
                # NetBox failed the batch (5xx): each device asked alone, its failure its own
                log.warning("NetBox's render-configs failed, rendering one by one: %s", exc)
            else:
                self._render_configs = True
                answers = (reply.data or {}).get("devices") or {}
                return {i: _rendered(i, answers.get(str(i))) for i in ids}
        out: dict[int, str | GatewayError] = {}
        for i in ids:
            try:
                out[i] = self.render_config(i)
            except (RejectedError, GatewayError) as exc:
                out[i] = exc
        return out

    @reads
    def get(self, obj_type: str, obj_id: int) -> dict[str, Any]:
        """One object by id (a detail GET); its ETag is under ``"_etag"``."""
        reply = self.http.call(
            "GET", f"{endpoint(obj_type)}{obj_id}/", what=f"{obj_type} #{obj_id}"
        )
        return {**reply.data, "_etag": reply.etag}

    @reads
    def find(self, obj_type: str, **filters: Any) -> list[dict[str, Any]]:
        """Every object matching REST filters, in one request (``limit=0``)."""
        params: list[tuple[str, Any]] = []
        for key, value in filters.items():
            values = value if isinstance(value, list | tuple | set) else [value]
            params += [(key, v) for v in values]
        reply = self.http.call(
            "GET", endpoint(obj_type), params=[*params, ("limit", 0)], what=f"list {obj_type}"
        )
        return list(reply.data.get("results", []))

    @reads
    def object_changes(self, request_id: str) -> tuple[ObjectChange, ...]:
        """NetBox's change records of one request (``X-Request-ID``)."""
        return self._writer.changes_of(request_id)

    @reads
    def available_ips(self, prefix_id: int, count: int = 1) -> list[str]:
        """The next free addresses of a prefix (read only: nothing is reserved)."""
        reply = self.http.call(
            "GET",
            f"/api/ipam/prefixes/{prefix_id}/available-ips/",
            params={"limit": count},
            what=f"available IPs of prefix #{prefix_id}",
        )
        return [str(ip["address"]) for ip in reply.data][:count]

    @reads
    def rack_units(self, rack_id: int, face: str, exclude: int) -> list[dict[str, Any]]:
        """The rack's elevation on one face, unit by unit, without device ``exclude``."""
        reply = self.http.call(
            "GET",
            f"/api/dcim/racks/{rack_id}/elevation/",
            params={"face": face, "exclude": exclude, "limit": 0},
            what=f"elevation of rack #{rack_id}",
        )
        return list(reply.data.get("results", []))

    @reads
    def pynetbox(self) -> pynetbox.api:
        """A pynetbox API on this gateway's session, for reading: its writes are refused
        (in a plan as every write is; in a run as not declared: use the gateway's writes)."""
        api = pynetbox.api(self.http.settings.url, token=self.http.settings.token)
        api.http_session = self.http.session
        return api

    # -- plans: Diffs carrying ETags; nothing is written -----------------------------------

    @reads
    def plan_update(
        self, obj_type: str, obj_id: int, changes: Mapping[str, Any], summary: str = ""
    ) -> Diff:
        """The field diff of an update to one object (one detail GET for fields and ETag)."""
        current = self.get(obj_type, obj_id)
        return self._update_diff(obj_type, current, current["_etag"], changes, summary)

    @reads
    def plan_updates(
        self, obj_type: str, changes: Mapping[int, Mapping[str, Any]], summary: str = ""
    ) -> list[Diff]:
        """Field diffs of updates to many objects of one type, in one request."""
        if not changes:
            return []
        found = {int(o["id"]): o for o in self.find(obj_type, id=list(changes))}
        missing = sorted(set(changes) - set(found))
        if missing:
            raise InventoryError(f"NetBox has no {obj_type} with id {missing}")
        return [
            self._update_diff(
                obj_type, found[i], etag_of(found[i].get("last_updated")), fields, summary
            )
            for i, fields in changes.items()
        ]

    @staticmethod
    def _update_diff(
        obj_type: str,
        current: Mapping[str, Any],
        etag: str | None,
        changes: Mapping[str, Any],
        summary: str,
    ) -> Diff:
        unknown = [k for k in changes if k not in current]
        if unknown:
            raise InputError(f"{obj_type} has no field {', '.join(unknown)}")
        before = {k: plain(current[k]) for k in changes}
        write = PlannedWrite(
            "update",
            obj_type,
            int(current["id"]),
            str(current.get("display") or ""),
            etag,
            before,
            dict(changes),
        )
        return write.to_diff(summary)

    @reads
    def plan_create(
        self, obj_type: str, fields: Mapping[str, Any], display: str, summary: str = ""
    ) -> Diff:
        """A new object (pc-install's device, an address)."""
        endpoint(obj_type)
        return PlannedWrite("create", obj_type, None, display, None, {}, dict(fields)).to_diff(
            summary
        )

    @reads
    def plan_delete(self, obj_type: str, obj_id: int, summary: str = "") -> Diff:
        current = self.get(obj_type, obj_id)
        before = {k: plain(v) for k, v in current.items() if not k.startswith("_")}
        write = PlannedWrite(
            "delete",
            obj_type,
            obj_id,
            str(current.get("display") or ""),
            current["_etag"],
            before,
            {},
        )
        return write.to_diff(summary)

    # what rack-in, rack-out and pc-install need, as plans

    @reads
    def plan_device_status(self, device: DeviceWorkingSet, status: str) -> Diff:
        """The device's status; no request (the working set holds status and ETag)."""
        write = PlannedWrite(
            "update",
            "dcim.device",
            device.id,
            device.name,
            device.etag,
            {"status": device.status},
            {"status": status},
        )
        return write.to_diff(f"{device.name}: status {device.status} → {status}")

    @reads
    def plan_rack_position(
        self, device_id: int, rack_id: int | None, position: float | None, face: str | None
    ) -> Diff:
        """Mount (or, with ``None``s, unmount) a device; ``face`` is front or rear."""
        return self.plan_update(
            "dcim.device",
            device_id,
            {"rack": rack_id, "position": position, "face": face},
            "rack position",
        )

    @reads
    def plan_cable_status(
        self, device: DeviceWorkingSet, status: str, interfaces: Iterable[str] | None = None
    ) -> list[Diff]:
        """Cables of the device (all, or those on the named interfaces); no request."""
        names = set(interfaces) if interfaces is not None else None
        diffs = []
        for iface in device.cabled:
            if names is not None and iface.name not in names:
                continue
            assert iface.cable is not None
            peer = iface.peer
            far = f"{peer.device}:{peer.name}" if peer else "?"
            write = PlannedWrite(
                "update",
                "dcim.cable",
                iface.cable.id,
                f"{device.name}:{iface.name}↔{far}",
                iface.cable.etag,
                {"status": iface.cable.status},
                {"status": status},
            )
            diffs.append(write.to_diff(f"cable {device.name}:{iface.name} → {status}"))
        return diffs

    @reads
    def plan_ip_assign(self, ip_id: int, interface_id: int, status: str = "active") -> Diff:
        return self.plan_update(
            "ipam.ipaddress",
            ip_id,
            {
                "assigned_object_type": "dcim.interface",
                "assigned_object_id": interface_id,
                "status": status,
            },
            "assign address",
        )

    @reads
    def plan_ip_release(self, ip_id: int, status: str = "deprecated") -> Diff:
        """Unassign an address and mark it (it stays in NetBox: undo is then exact)."""
        return self.plan_update(
            "ipam.ipaddress",
            ip_id,
            {"assigned_object_type": None, "assigned_object_id": None, "status": status},
            "release address",
        )

    @reads
    def plan_ip_allocate(
        self, prefix_id: int, fields: Mapping[str, Any], display: str = ""
    ) -> Diff:
        """The next free address of a prefix (``fields``: status, dns_name, assigned_…).

        Idempotent by ``dns_name``: when an address with that name exists, the plan is an
        update of it (empty once in place), so a re-plan after the write finds nothing to do.
        """
        if fields.get("dns_name"):
            existing = self.find("ipam.ipaddress", dns_name=fields["dns_name"])
            if existing:
                return self._update_diff(
                    "ipam.ipaddress",
                    existing[0],
                    etag_of(existing[0].get("last_updated")),
                    fields,
                    f"address {fields['dns_name']}",
                )
        free = self.available_ips(prefix_id)
        if not free:
            raise InventoryError(f"NetBox prefix #{prefix_id} has no free address")
        after = {"prefix_id": prefix_id, "address": free[0], **fields}
        write = PlannedWrite(
            "allocate", "ipam.ipaddress", None, display or free[0], None, {}, after
        )
        return write.to_diff(f"next free address of prefix #{prefix_id}: now {free[0]}")

    @reads
    def plan_device_create(self, name: str, fields: Mapping[str, Any]) -> Diff:
        """A new device (pc-install); ``fields`` use ids: device_type, role, site, status …

        Idempotent by name: an existing device gives an update diff (empty once in place).
        """
        existing = self.find("dcim.device", name=name)
        if existing:
            return self._update_diff(
                "dcim.device",
                existing[0],
                etag_of(existing[0].get("last_updated")),
                fields,
                f"device {name}",
            )
        return self.plan_create("dcim.device", {"name": name, **fields}, name, f"new {name}")

    # -- writes ------------------------------------------------------------------------------

    @writes
    def apply(self, diffs: Sequence[Diff]) -> Applied:
        """Write the planned NetBox diffs (others are ignored); refuse on drift (412)."""
        with self.http.session.permit():
            return self._writer.apply(_planned(diffs))

    @writes
    def undo(self, diffs: Sequence[Diff]) -> Applied:
        """Restore what `apply` of these diffs changed, from NetBox's change records."""
        with self.http.session.permit():
            return self._writer.undo(_planned(diffs))

    # -- the journal: found before it is written ----------------------------------------------

    @reads
    def journal_entry(self, obj_type: str, obj_id: int, marker: str) -> dict[str, Any] | None:
        """The object's journal entry whose comments hold ``marker`` (one request), if any."""
        entries = self.find(
            "extras.journalentry", assigned_object_type=obj_type, assigned_object_id=obj_id
        )
        return next((e for e in entries if marker in str(e.get("comments", ""))), None)

    @reads
    def plan_journal(
        self,
        obj_type: str,
        obj_id: int | None,
        name: str,
        comments: str,
        kind: str = "info",
        *,
        marker: str | None = None,
        summary: str = "",
    ) -> Diff | None:
        """The journal entry `journal` would write on an object (``name`` names it in the
        review; ``obj_id`` None: the run creates the object first). None when the object has
        an entry holding ``marker`` already (looked up when both are known)."""
        if marker and obj_id is not None and self.journal_entry(obj_type, obj_id, marker):
            return None
        return Diff(
            target=f"NetBox journal of {name}",
            kind="create",
            summary=summary or f"journal entry ({kind}) on {name}",
            fields=(FieldChange("comments", None, comments),),
            after={
                "object_type": obj_type,
                "object_id": obj_id,
                "object": name,
                "kind": kind,
                "comments": comments,
                "marker": marker,
            },
        )

    @writes
    def journal(
        self,
        obj_type: str,
        obj_id: int,
        comments: str,
        kind: str = "info",
        *,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """Find or create a journal entry on an object (Markdown ``comments``): the object's
        entry holding ``marker`` (default: these very comments) when it has one, else a new
        entry, so a retried or resumed run writes it once. Returns NetBox's entry."""
        found = self.journal_entry(obj_type, obj_id, marker or comments)
        if found is not None:
            return found
        with self.http.session.permit():
            reply = self.http.call(
                "POST",
                endpoint("extras.journalentry"),
                body={
                    "assigned_object_type": obj_type,
                    "assigned_object_id": obj_id,
                    "kind": kind,
                    "comments": comments,
                    "changelog_message": self.message,
                },
                what=f"journal entry on {obj_type} #{obj_id}",
            )
        return dict(reply.data)

    @writes
    def remove_journal(self, obj_type: str, obj_id: int, marker: str) -> int | None:
        """Delete the object's journal entry holding ``marker`` (an undone run's witness);
        returns its id, None when there is none."""
        found = self.journal_entry(obj_type, obj_id, marker)
        if found is None:
            return None
        entry_id = int(found["id"])
        with self.http.session.permit():
            self._writer.apply(_planned([self.plan_delete("extras.journalentry", entry_id)]))
        return entry_id


def _planned(diffs: Sequence[Diff]) -> list[PlannedWrite]:
    writes = [PlannedWrite.from_diff(d) for d in diffs]
    return [w for w in writes if w is not None]


def _rendered(device_id: int, answer: Any) -> str | GatewayError:
    """One device's answer of render-configs as `NetBoxGateway.render_config` would give it:
    its configuration, or the error its render-config would raise."""
    what = f"render-config of device #{device_id}"
    if not isinstance(answer, dict):
        return GatewayError(f"NetBox answered {what} with nothing")
    if isinstance(answer.get("config"), str):
        return str(answer["config"])
    status = int(answer.get("status") or 500)
    # one line, as render-config's own error text is read (a template's error can be a
    # traceback with the template's debug on)
    detail = secrets.mask_text(first_line(str(answer.get("detail", ""))))
    return status_error(what, status, detail)
