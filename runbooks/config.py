"""Configuration from the environment: where NetBox is and which token to use, and which
SSH host keys to trust.

Credentials never come from code: ``RUNBOOKS_NETBOX_URL`` / ``RUNBOOKS_NETBOX_TOKEN``
(or NetBox's own ``NETBOX_URL`` / ``NETBOX_TOKEN``). The token's value is registered
with the secrets masker as soon as it is read.

Every SSH transport (devices, Ansible, the database server) checks host keys against one
known_hosts file, ``RUNBOOKS_SSH_KNOWN_HOSTS`` (default ``~/.ssh/known_hosts``), and refuses a
host that is not in it or whose key differs. Nothing ever writes to that file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


def ssh_known_hosts(env: Mapping[str, str] | None = None) -> Path:
    """The known_hosts file every SSH transport checks host keys against.

    >>> str(ssh_known_hosts({"RUNBOOKS_SSH_KNOWN_HOSTS": "/etc/runbooks/known_hosts"}))
    '/etc/runbooks/known_hosts'
    >>> ssh_known_hosts({"HOME": "/home/olivia"}).as_posix()
    '/home/olivia/.ssh/known_hosts'
    """
    e = os.environ if env is None else env
    given = e.get("RUNBOOKS_SSH_KNOWN_HOSTS", "").strip()
    if given:
        return Path(given).expanduser()
    home = e.get("HOME") or str(Path.home())
    return Path(home) / ".ssh" / "known_hosts"
