"""Change control in NetBox: the client of the netbox-runbooks plugin.

With the plugin installed, NetBox is where a team's changes, signatures, runs and records live,
and the server decides: it takes the user from the token and the time from its clock, applies
the rules (`runbooks_rules.policy`) and records every refusal. This module is the `runbook`
command's side of that API (plugins/netbox-runbooks/README.md): `PluginAPI` (HTTP with the
plugin's refusals as one-line errors), `NetBoxChanges` (the `Changes` book over it) and
`whoami` (identity and authorities as the server sees them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import requests

from runbooks.config import NetBoxSettings
from runbooks.core import policy, secrets
from runbooks.core.changes import Change, RunGrant, drift_message, explain_drift
from runbooks.core.errors import (
    ApprovalError,
    DriftError,
    InputError,
    IntegrityError,
    RejectedError,
)
from runbooks.core.plan import Plan
from runbooks.core.policy import Identity, Signature
from runbooks.core.store import canonical, json_safe
from runbooks.core.window import Window
from runbooks.gateways.netbox_http import NetBoxHTTP, Reply, _detail

log = logging.getLogger(__name__)

API = "/api/plugins/runbooks/"


class PluginAPI(NetBoxHTTP):
    """NetBox's HTTP client, with the plugin's answers mapped: a rule's refusal (403) is an
    ApprovalError carrying the server's sentence, a record entry that does not continue its
    chain (409) an IntegrityError, bad input (400) and unknown objects (404) InputErrors."""

    def __init__(self, settings: NetBoxSettings, timeout: float = 30.0) -> None:
        super().__init__(settings, allow_writes=True, timeout=timeout)

    def _check(self, response: requests.Response, what: str, accept_text: bool) -> Reply:
        status = response.status_code
        if status in (400, 403, 404, 409) and "json" in response.headers.get("Content-Type", ""):
            detail = _detail(response)
            if status == 403 and "token" not in detail and "credentials" not in detail:
                raise ApprovalError(detail)
            if status == 409:
                raise IntegrityError(f"NetBox refused {what}: {detail}")
            if status in (400, 404):
                raise InputError(f"NetBox refused {what}: {detail}")
        return super()._check(response, what, accept_text)

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", API + path, params=params or None).data

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.call("POST", API + path, body=dict(body)).data

    def get_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every object of a list endpoint, following NetBox's pagination."""
        out: list[dict[str, Any]] = []
        params.setdefault("limit", 500)
        offset = 0
        while True:
            page = self.get(path, offset=offset, **params)
            results = page.get("results", []) if isinstance(page, dict) else []
            out.extend(results)
            if not page.get("next") or not results:
                return out
            offset += len(results)


def available(settings: NetBoxSettings, timeout: float = 10.0) -> bool:
    """Does this NetBox run the netbox-runbooks plugin (its API root answers)? A NetBox that
    does not answer, or refuses the token, is an error: never a reason to fall back to the
    local store."""
    http = NetBoxHTTP(settings, allow_writes=False, timeout=timeout)
    try:
        http.call("GET", API, what="the netbox-runbooks API")
    except RejectedError:  # 404: NetBox without the plugin
        return False
    finally:
        http.close()
    return True


def find_one(api: PluginAPI, path: str, field: str, prefix: str, what: str) -> dict[str, Any]:
    """The one object whose ``field`` is ``prefix`` or starts with it (ids are long)."""
    rows = api.get(path, **{f"{field}__isw": prefix, "limit": 2}).get("results", [])
    rows = [r for r in rows if r.get(field) == prefix] or rows
    if not rows:
        raise InputError(f"no {what} {prefix!r} in NetBox")
    if len(rows) > 1:
        raise InputError(f"{what} id {prefix!r} is ambiguous: give more of it")
    return dict(rows[0])


def whoami(api: PluginAPI) -> Identity:
    """The token's owner with the authorities the server grants (groups or permissions)."""
    data = api.get("whoami/")
    return Identity(str(data["username"]), frozenset(data.get("authorities", [])), "netbox")


def _window(data: Mapping[str, Any]) -> Window | None:
    start, end = data.get("window_start"), data.get("window_end")
    return Window.parse(str(start), str(end)) if start and end else None


def change_from(data: Mapping[str, Any]) -> Change:
    """A Change from the plugin's serializer (a list row has no plan or signatures)."""
    return Change(
        id=str(data["name"]),
        runbook=str(data["runbook"]),
        params=dict(data.get("params") or {}),
        plan=dict(data.get("plan") or {}),
        plan_hash=str(data["plan_hash"]),
        preparer=str(data.get("preparer") or ""),
        created=str(data.get("created") or ""),
        window=_window(data),
        signatures=tuple(
            Signature(
                str(s["authority"]),
                str(s["user"]),
                str(s.get("created", "")),
                str(s.get("plan_hash", "")),
                str(s.get("note", "")),
            )
            for s in data.get("signatures") or []
            if s.get("authority") in (policy.REVIEW, policy.APPROVE, policy.EMERGENCY)
        ),
        runs=tuple(str(r["run_id"]) for r in data.get("runs") or []),
        state=str(data.get("status") or ""),
        url=str(data.get("display_url") or ""),
        refusal=str(data.get("refusal") or ""),
        key=str(data["id"]),
        scheduled_by=str(data.get("scheduled_by") or ""),
        confirm_manual=bool(data.get("confirm_manual")),
    )


class NetBoxChanges:
    """The `Changes` book kept in NetBox: every decision is the server's."""

    def __init__(self, api: PluginAPI, on_grant: Callable[[str, int], None] | None = None) -> None:
        self.api = api
        self.on_grant = on_grant  # told (run id, NetBox's id of the run) when a run is granted

    def create(
        self, plan: Plan, preparer: Identity, window: Window | None, unreviewed: bool = False
    ) -> Change:
        policy.check_prepare(preparer)  # the server checks again; this saves a round trip
        if plan.refusal:
            raise InputError(f"a refused plan cannot become a change: {plan.refusal}")
        document = _json(plan.to_dict())
        if secrets.mask(document) != document:  # what the hash covers cannot be masked
            raise InputError(
                "the plan holds a secret (a password, token or key in a diff or its evidence): "
                "it is not sent to NetBox for review; keep secrets in SecretStr parameters"
            )
        data = self.api.post(
            "changes/",
            {
                "runbook": plan.runbook,
                "instruction": plan.instruction,
                "params": plan.params,
                "plan": document,
                "window_start": window.start.isoformat() if window else None,
                "window_end": window.end.isoformat() if window else None,
                "unreviewed": unreviewed,
            },
        )
        return change_from(data)

    def get(self, change_id: str) -> Change:
        found = find_one(self.api, "changes/", "name", change_id, "change")
        return change_from(self.api.get(f"changes/{found['id']}/"))

    def list(self) -> list[Change]:
        return [change_from(r) for r in self.api.get_all("changes/", ordering="-created")]

    def sign(
        self,
        change: Change,
        who: Identity,
        authority: str,
        given_hash: str,
        note: str = "",
        current: Plan | None = None,
    ) -> Change:
        body: dict[str, Any] = {"authority": authority, "hash": given_hash, "note": note}
        drifted = current is not None and current.content_hash != change.plan_hash
        if current is not None:
            body["current_hash"] = current.content_hash
            if drifted:
                body["drift"] = secrets.mask(explain_drift(change.plan, current))
        try:
            return change_from(self.api.post(f"changes/{change.key}/sign/", body))
        except ApprovalError as exc:
            if drifted and _about_drift(exc):
                lines = body["drift"]
                raise DriftError(drift_message(change, lines), lines=lines) from None
            raise

    def precheck_sign(self, change: Change, who: Identity, authority: str, given_hash: str) -> None:
        # who is acting, before the client's re-plan; the server records a refusal
        body = {"authority": authority, "hash": given_hash, "check_only": True}
        self.api.post(f"changes/{change.key}/sign/", body)

    def precheck_run(
        self, change: Change, who: Identity, in_window: bool, scheduled: bool = False
    ) -> None:
        # the server's checks before the plan hash: a person who may not run the change is
        # told (and the server records it) before the re-plan; the window is the server's
        self.api.post(f"changes/{change.key}/runs/", {"check_only": True, "scheduled": scheduled})

    def start_run(
        self,
        change: Change,
        who: Identity,
        planned: Plan,
        now: datetime | None = None,
        *,
        scheduled: bool = False,
        worker: str | None = None,
        run_id: str | None = None,
    ) -> RunGrant:
        body: dict[str, Any] = {
            "plan_hash": planned.content_hash,
            "scheduled": scheduled,
            "worker": worker,
            "run_id": run_id or "",
        }
        drifted = planned.content_hash != change.plan_hash
        if drifted:
            body["drift"] = secrets.mask(explain_drift(change.plan, planned))
        try:
            data = self.api.post(f"changes/{change.key}/runs/", body)
        except ApprovalError as exc:
            if drifted and _about_drift(exc):  # the server recorded it; the person reads the way on
                lines = body["drift"]
                raise DriftError(drift_message(change, lines), lines=lines) from None
            raise
        grant = RunGrant(str(data["run_id"]), bool(data.get("emergency")))
        log.info("NetBox granted run %s of %s (run #%s)", grant.run_id, change.id, data["id"])
        if self.on_grant is not None:
            self.on_grant(grant.run_id, int(data["id"]))
        return grant

    def schedule(self, change: Change, who: Identity, confirm_manual: bool) -> Change:
        data = self.api.post(f"changes/{change.key}/schedule/", {"confirm_manual": confirm_manual})
        return change_from(data)

    def signoff(self, run_id: str, who: Identity, note: str = "") -> str:
        run = find_one(self.api, "runs/", "run_id", run_id, "run")
        data = self.api.post(f"runs/{run['id']}/signoff/", {"note": note})
        return str(data.get("role") or data.get("authority") or "")


def _json(data: Any) -> Any:
    """The JSON-clean form the server hashes (what the local canonical form would be)."""
    return json.loads(canonical(json_safe(data)))


def _about_drift(refusal: ApprovalError) -> bool:
    """Did the server refuse because the plan no longer holds (not, say, for the person)?"""
    text = str(refusal)
    return "no longer holds" in text or "the world changed" in text
