"""Writing planned NetBox changes: bulk, conditional on the planned ETags, logged, undoable.

Consecutive planned writes of one kind to one object type go as one request: a bulk PATCH
(``[{"id": …, field: value, "changelog_message": …}, …]``, all-or-nothing) with
``If-Match`` listing every planned ETag, so that NetBox refuses the whole batch with 412 if
any object was edited after the plan. The request's ``X-Request-ID`` then fetches NetBox's
own change records, which are the evidence and the basis of undo.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from runbooks.core.errors import DriftError, RollbackError
from runbooks.gateways.netbox_changes import (
    Applied,
    ObjectChange,
    PlannedWrite,
    WriteRequest,
    endpoint,
    recreate_body,
    restore_body,
)
from runbooks.gateways.netbox_http import NetBoxHTTP
from runbooks.gateways.netbox_model import etag_of

log = logging.getLogger(__name__)

# Generic relations: their content type is an id in change records, a name in REST.
CONTENT_TYPE_FIELDS = frozenset(
    {
        "assigned_object_type",
        "scope_type",
        "termination_type",
        "object_type",
        "parent_object_type",
        "component_type",
    }
)


class Writer:
    """Carries out planned writes and their undo through one `NetBoxHTTP`."""

    def __init__(self, http: NetBoxHTTP, message: str) -> None:
        self.http = http
        self.message = message  # names the run; every change record carries it
        # (type, id) -> (ETag the plan saw, ETag after this run's own latest write): a second
        # planned write to an object this run already wrote must not look like drift.
        self._chain: dict[tuple[str, int], tuple[str, str]] = {}
        self._types: dict[int, str] = {}

    # -- apply -------------------------------------------------------------------------------

    def apply(self, writes: Sequence[PlannedWrite]) -> Applied:
        """Write in batches: all updates (or creates, deletes) of one type in one request.

        Batches go in the order their first write was planned. With more than one batch,
        the planned ETags are checked first (one GET per type), so drift found then writes
        nothing; drift found later (a race) undoes this apply's earlier batches.
        """
        batches: dict[tuple[str, str], list[PlannedWrite]] = {}
        for write in writes:
            batches.setdefault((write.action, write.obj_type), []).append(write)
        if len(batches) > 1:
            self._preflight(batches)
        done: list[WriteRequest] = []
        try:
            for (action, obj_type), batch in batches.items():
                if action == "update":
                    done.append(self._update(obj_type, batch))
                elif action == "create":
                    done.append(self._create(obj_type, batch))
                elif action == "delete":
                    done.append(self._delete(obj_type, batch))
                else:
                    done.extend(self._allocate(w) for w in batch)
        except DriftError as exc:
            if done:
                self._compensate(done)
                raise DriftError(
                    f"{exc}; the {len(done)} earlier write(s) of this step were undone",
                    **exc.context,
                ) from exc
            raise
        return Applied(tuple(done))

    def _preflight(self, batches: dict[tuple[str, str], list[PlannedWrite]]) -> None:
        by_type: dict[str, list[PlannedWrite]] = {}
        for (action, obj_type), batch in batches.items():
            if action in ("update", "delete"):
                by_type.setdefault(obj_type, []).extend(batch)
        for obj_type, planned in by_type.items():
            now = self._current(obj_type, {w.id for w in planned if w.id is not None})
            if any(
                w.id not in now or etag_of(now[w.id]) != self._etag(obj_type, w) for w in planned
            ):
                raise self._drift(obj_type, planned, now)

    def _compensate(self, done: list[WriteRequest]) -> None:
        for request in reversed(done):
            by_type: dict[tuple[str, str], list[tuple[ObjectChange, dict[str, Any]]]] = {}
            for change in request.changes:
                restore = restore_body(change) if change.action == "update" else {}
                by_type.setdefault((change.obj_type, change.action), []).append((change, restore))
            for (obj_type, _action), ours in by_type.items():
                self._revert(obj_type, ours)

    def _update(self, obj_type: str, batch: list[PlannedWrite]) -> WriteRequest:
        merged: dict[int, PlannedWrite] = {}
        for w in batch:  # NetBox refuses a bulk request naming one object twice
            assert w.id is not None
            first = merged.get(w.id)
            merged[w.id] = (
                w
                if first is None
                else PlannedWrite(
                    "update",
                    obj_type,
                    w.id,
                    w.display,
                    first.etag,
                    {**w.before, **first.before},
                    {**first.after, **w.after},
                )
            )
        batch = list(merged.values())
        body = [
            {"id": w.id, **w.after, "changelog_message": f"{self.message}: {w.display}"}
            for w in batch
        ]
        return self._conditional("PATCH", obj_type, batch, body)

    def _etag(self, obj_type: str, write: PlannedWrite) -> str | None:
        seen = self._chain.get((obj_type, write.id or 0))
        return seen[1] if seen and seen[0] == write.etag else write.etag

    def _delete(self, obj_type: str, batch: list[PlannedWrite]) -> WriteRequest:
        body = [{"id": w.id, "changelog_message": f"{self.message}: {w.display}"} for w in batch]
        return self._conditional("DELETE", obj_type, batch, body)

    def _conditional(
        self, method: str, obj_type: str, batch: list[PlannedWrite], body: list[dict[str, Any]]
    ) -> WriteRequest:
        etags = [e for e in (self._etag(obj_type, w) for w in batch) if e]
        headers = {"If-Match": ", ".join(etags)} if len(etags) == len(batch) else {}
        if not headers:
            log.warning("writing %s without an ETag for every object: no drift check", obj_type)
        path = endpoint(obj_type)
        try:
            reply = self.http.call(
                method,
                path,
                body=body,
                headers=headers,
                what=f"{method} of {len(batch)} {obj_type}",
            )
        except DriftError as exc:
            raise self._drift(obj_type, batch) from exc
        for item in reply.data if isinstance(reply.data, list) else []:
            planned = next((w.etag for w in batch if w.id == item.get("id")), None)
            now = etag_of(item.get("last_updated"))
            if planned and now:
                self._chain[(obj_type, int(item["id"]))] = (planned, now)
        return self._logged(method, path, reply.request_id, [w.id or 0 for w in batch])

    def _create(self, obj_type: str, batch: list[PlannedWrite]) -> WriteRequest:
        path = endpoint(obj_type)
        body = [{**w.after, "changelog_message": f"{self.message}: {w.display}"} for w in batch]
        reply = self.http.call("POST", path, body=body, what=f"create of {len(batch)} {obj_type}")
        ids = [int(o["id"]) for o in reply.data] if isinstance(reply.data, list) else []
        return self._logged("POST", path, reply.request_id, ids)

    def _allocate(self, write: PlannedWrite) -> WriteRequest:
        prefix = write.after.get("prefix_id")
        fields = {k: v for k, v in write.after.items() if k not in ("prefix_id", "address")}
        path = f"/api/ipam/prefixes/{prefix}/available-ips/"
        reply = self.http.call(
            "POST",
            path,
            body={**fields, "changelog_message": f"{self.message}: {write.display}"},
            what=f"next available IP in prefix #{prefix}",
        )
        data = reply.data[0] if isinstance(reply.data, list) else reply.data
        return self._logged("POST", path, reply.request_id, [int(data["id"])])

    def _logged(
        self, method: str, path: str, request_id: str | None, ids: list[int]
    ) -> WriteRequest:
        changes = self.changes_of(request_id) if request_id else ()
        log.info("%s %s: %d object(s), request %s", method, path, len(ids), request_id)
        return WriteRequest(method, path, request_id or "", tuple(ids), changes)

    def changes_of(self, request_id: str) -> tuple[ObjectChange, ...]:
        reply = self.http.call(
            "GET",
            "/api/core/object-changes/",
            params={"request_id": request_id, "limit": 0, "ordering": "time"},
            what="object-changes of a write",
        )
        return tuple(ObjectChange.parse(c) for c in reply.data.get("results", []))

    def _drift(
        self, obj_type: str, batch: list[PlannedWrite], now: dict[int, str] | None = None
    ) -> DriftError:
        """Name the objects edited since the plan (and who edited them last)."""
        if now is None:
            now = self._current(obj_type, [w.id for w in batch if w.id is not None])
        stale = [w for w in batch if w.id in now and etag_of(now[w.id]) != self._etag(obj_type, w)]
        gone = [w for w in batch if w.id not in now]
        names = [w.label for w in stale] + [f"{w.display} (deleted)" for w in gone]
        who = self._last_editors(obj_type, [w.id for w in stale if w.id is not None])
        by = f" by {', '.join(sorted(who))}" if who else ""
        return DriftError(
            f"NetBox {obj_type} {', '.join(names) or '?'} changed since the plan{by}; "
            "nothing was written",
            objects=names,
        )

    def _current(self, obj_type: str, ids: Iterable[int]) -> dict[int, str]:
        """id → last_updated of the objects that exist now."""
        params: list[tuple[str, Any]] = [("id", i) for i in ids]
        params += [("limit", 0), ("fields", "id,last_updated")]
        reply = self.http.call("GET", endpoint(obj_type), params=params, what=f"current {obj_type}")
        return {int(o["id"]): str(o["last_updated"]) for o in reply.data.get("results", [])}

    def _last_editors(self, obj_type: str, ids: list[int]) -> set[str]:
        if not ids:
            return set()
        history = self._history(obj_type, ids)
        return {h[0].user for h in history.values() if h}

    def _history(self, obj_type: str, ids: list[int]) -> dict[int, list[ObjectChange]]:
        """Each object's change records, newest first."""
        params: list[tuple[str, Any]] = [("changed_object_type", obj_type)]
        params += [("changed_object_id", i) for i in ids]
        params += [("ordering", "-time"), ("limit", 0)]
        reply = self.http.call(
            "GET", "/api/core/object-changes/", params=params, what=f"change history of {obj_type}"
        )
        out: dict[int, list[ObjectChange]] = {i: [] for i in ids}
        for item in reply.data.get("results", []):
            change = ObjectChange.parse(item)
            out.setdefault(change.obj_id, []).append(change)
        return out

    # -- undo --------------------------------------------------------------------------------

    def undo(self, writes: Sequence[PlannedWrite]) -> Applied:
        """Put back what `apply` of these writes did, newest first, from NetBox's records.

        Only the planned fields are restored (an earlier step's change to the same object is
        that step's to undo). Refuses (RollbackError) to touch an object someone outside this
        run changed after the run wrote it.
        """
        batches: dict[tuple[str, str], list[PlannedWrite]] = {}
        for write in reversed(writes):
            batches.setdefault((write.action, write.obj_type), []).append(write)
        done: list[WriteRequest] = []
        for (action, obj_type), batch in batches.items():
            if action in ("create", "allocate"):
                ours = self._find_created(obj_type, batch)
            else:
                ours = self._our_changes(obj_type, batch)
            if ours:
                done.append(self._revert(obj_type, ours))
        return Applied(tuple(done))

    def _our_changes(
        self, obj_type: str, batch: list[PlannedWrite]
    ) -> list[tuple[ObjectChange, dict[str, Any]]]:
        """Per object: this run's change that wrote the planned fields, and what to restore."""
        ids = sorted({w.id for w in batch if w.id is not None})
        history = self._history(obj_type, ids)
        out: list[tuple[ObjectChange, dict[str, Any]]] = []
        for write in batch:
            changes = history.get(write.id or 0, [])
            fields = set(write.after) if write.action == "update" else set()
            mine = next(
                (
                    c
                    for c in changes
                    if c.message.startswith(self.message + ":")
                    and (not fields or fields & set(c.changed()))
                ),
                None,
            )
            if mine is None:
                continue  # never written (the run stopped before): nothing to undo
            for change in changes:
                if change.id == mine.id:
                    break
                if not change.message.startswith(self.message):
                    raise RollbackError(
                        f"NetBox {obj_type} {write.display} #{write.id} was changed by "
                        f"{change.user} after this run wrote it; not undoing over their change"
                    )
            restore = (
                recreate_body(write.before) if write.action == "delete" else restore_body(mine)
            )
            if fields:
                restore = {k: v for k, v in restore.items() if k in fields}
            out.append((mine, restore))
        return out

    def _find_created(
        self, obj_type: str, batch: list[PlannedWrite]
    ) -> list[tuple[ObjectChange, dict[str, Any]]]:
        reply = self.http.call(
            "GET",
            "/api/core/object-changes/",
            params={
                "changed_object_type": obj_type,
                "action": "create",
                "q": self.message,
                "limit": 0,
            },
            what=f"objects of type {obj_type} created by this run",
        )
        names = {f"{self.message}: {w.display}" for w in batch}
        found = (ObjectChange.parse(d) for d in reply.data.get("results", []))
        return [(c, {}) for c in found if c.message in names]

    def _revert(
        self, obj_type: str, ours: list[tuple[ObjectChange, dict[str, Any]]]
    ) -> WriteRequest:
        path = endpoint(obj_type)
        message = f"{self.message} undo"
        action = ours[0][0].action
        ids = sorted({c.obj_id for c, _ in ours})
        if action == "delete":  # a deleted object comes back (with a new id)
            body = [{**restore, "changelog_message": message} for _c, restore in ours]
            reply = self.http.call("POST", path, body=body, what=f"undo of {obj_type} deletion")
            return self._logged("POST", path, reply.request_id, ids)
        now = self._current(obj_type, ids)
        headers = {"If-Match": ", ".join(str(etag_of(now[i])) for i in ids if i in now)}
        if action == "update":
            merged: dict[int, dict[str, Any]] = {}
            for change, restore in ours:
                merged.setdefault(change.obj_id, {}).update(restore)
            body = [
                {"id": i, **self._rest(f), "changelog_message": message} for i, f in merged.items()
            ]
            method = "PATCH"
        else:
            body = [{"id": i, "changelog_message": message} for i in ids]
            method = "DELETE"
        reply = self.http.call(
            method, path, body=body, headers=headers, what=f"undo of {len(ids)} {obj_type}"
        )
        return self._logged(method, path, reply.request_id, ids)

    def _rest(self, data: dict[str, Any]) -> dict[str, Any]:
        """Change records keep content types as ids; REST writes name them app_label.model."""
        out = dict(data)
        for key, value in data.items():
            if key in CONTENT_TYPE_FIELDS and isinstance(value, int):
                out[key] = self._object_type(value)
        return out

    def _object_type(self, type_id: int) -> str:
        if type_id not in self._types:
            data = self.http.call(
                "GET", f"/api/core/object-types/{type_id}/", what=f"object type #{type_id}"
            ).data
            self._types[type_id] = f"{data['app_label']}.{data['model']}"
        return self._types[type_id]
