"""Who is acting: the owner of the NetBox API token in use, with the authorities of their
NetBox groups: the department's `netbox_groups` setting (``RUNBOOKS_NETBOX_GROUPS``), by
default runbook-operators, -reviewers, -approvers, -supervisors. The mapping goes to the rules'
`authorities_from`, the function the NetBox plugin calls with its own
``PLUGINS_CONFIG["netbox_runbooks"]["groups"]``."""

from __future__ import annotations

import logging
from typing import Any

import requests
from runbooks_rules.policy import GroupMap

from runbooks.config import NetBoxSettings, netbox_groups
from runbooks.core.errors import AuthenticationError, ConnectError, GatewayError
from runbooks.core.policy import Identity

log = logging.getLogger(__name__)


class NetBoxIdentity:
    """Asks NetBox whose token this is (``GET /api/authentication-check/``, NetBox ≥ 4.5)."""

    def __init__(
        self, settings: NetBoxSettings, timeout: float = 10.0, groups: GroupMap | None = None
    ) -> None:
        """``groups``: the department's groups and their authorities; default the setting."""
        self.settings = settings
        self.timeout = timeout
        self.groups = netbox_groups() if groups is None else groups

    def whoami(self) -> Identity:
        user = self._get("/api/authentication-check/")
        groups = [
            g.get("name", "") if isinstance(g, dict) else str(g) for g in user.get("groups", [])
        ]
        identity = Identity.from_groups(
            str(user["username"]), groups, source="netbox", group_map=self.groups
        )
        log.info("acting as %s (groups: %s)", identity.username, ", ".join(groups) or "none")
        return identity

    def _get(self, path: str) -> dict[str, Any]:
        url = self.settings.url + path
        if not self.settings.token:
            raise AuthenticationError("no NetBox token: set RUNBOOKS_NETBOX_TOKEN")
        try:
            response = requests.get(
                url,
                timeout=self.timeout,
                headers={
                    "Authorization": self.settings.authorization,
                    "Accept": "application/json",
                },
            )
        except requests.Timeout as exc:
            raise ConnectError(
                f"NetBox at {self.settings.url} did not answer in {self.timeout:g} s"
            ) from exc
        except requests.ConnectionError as exc:
            raise ConnectError(f"NetBox at {self.settings.url} is unreachable") from exc
        if response.status_code in (401, 403):
            raise AuthenticationError(
                f"NetBox refused the token ({response.status_code}): it is invalid, expired "
                "or lacks permission"
            )
        if "json" not in response.headers.get("Content-Type", ""):
            raise GatewayError(
                f"NetBox answered {path} with {response.headers.get('Content-Type')}"
                " instead of JSON (a login page? check the URL and token)"
            )
        if response.status_code >= 400:
            raise GatewayError(f"NetBox answered {path} with {response.status_code}")
        data = response.json()
        if not isinstance(data, dict) or "username" not in data:
            raise GatewayError(f"NetBox answered {path} without a username")
        return data
