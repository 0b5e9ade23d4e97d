"""Configuration from the environment: where NetBox is and which token to use.

Credentials never come from code: ``RUNBOOKS_NETBOX_URL`` / ``RUNBOOKS_NETBOX_TOKEN``
(or NetBox's own ``NETBOX_URL`` / ``NETBOX_TOKEN``). The token's value is registered
with the secrets masker as soon as it is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runbooks.core import secrets
from runbooks.core.errors import InputError


@dataclass(frozen=True)
class NetBoxSettings:
    url: str
    token: str = ""

    def __repr__(self) -> str:  # never show the token
        return f"NetBoxSettings(url={self.url!r}, token=<{len(self.token)} chars>)"

    @property
    def authorization(self) -> str:
        """v2 tokens (``nbt_<key>.<secret>``) are Bearer tokens; v1 tokens use ``Token``."""
        scheme = "Bearer" if self.token.startswith("nbt_") else "Token"
        return f"{scheme} {self.token}"


def netbox_settings() -> NetBoxSettings | None:
    url = os.environ.get("RUNBOOKS_NETBOX_URL") or os.environ.get("NETBOX_URL")
    token = os.environ.get("RUNBOOKS_NETBOX_TOKEN") or os.environ.get("NETBOX_TOKEN") or ""
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise InputError(
            f"RUNBOOKS_NETBOX_URL must start with http:// or https:// (got {url[:60]!r})"
        )
    secrets.register(token)
    return NetBoxSettings(url.rstrip("/"), token)
