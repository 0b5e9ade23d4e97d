"""Settings of the Ansible gateway: where playbooks, inventory and collections are, how to log
in to hosts; and extra-vars made JSON (secret values revealed only for the 0600 vars file)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from runbooks.config import ssh_known_hosts
from runbooks.core import secrets

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cache_dir() -> Path:
    return Path(os.environ.get("RUNBOOKS_CACHE_DIR", "/var/cache/runbooks"))


@dataclass(frozen=True)
class AnsibleSettings:
    """Where playbooks, inventory and collections are, and how to log in to hosts."""

    project_dir: Path = REPO_ROOT / "playbooks"
    # an nb_inventory config (resolved through NetBox), any other inventory file or directory,
    # or inline inventory text ("localhost ansible_connection=local")
    inventory: Path | str = REPO_ROOT / "inventory" / "netbox.yml"
    netbox_url: str | None = None
    netbox_token: str | None = None
    collections_path: Path = field(default_factory=lambda: _cache_dir() / "ansible-collections")
    work_dir: Path | None = None  # parent of the private data dirs; None: the system temp dir
    keep_artifacts: bool = False
    remote_user: str | None = None
    private_key_file: Path | None = None
    # On: hosts are checked against `known_hosts` (never written to); an unknown or changed
    # key makes the host unreachable. Off: a per-run known_hosts file. ~/.ssh untouched either way.
    host_key_checking: bool = True
    known_hosts: Path = field(default_factory=ssh_known_hosts)
    connect_timeout_s: int = 10
    timeout_s: float = 1800.0
    forks: int = 10
    # Off: without pipelining each module runs under `ssh -tt`, so when a cancel kills the
    # local ssh the remote command gets SIGHUP and stops; with pipelining it keeps running
    # (measured on the lab's hosts). Pipelining is faster: turn it on where cancels are rare.
    pipelining: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AnsibleSettings:
        """NetBox as for every gateway (RUNBOOKS_NETBOX_URL/_TOKEN, or NETBOX_URL/NETBOX_TOKEN);
        RUNBOOKS_ANSIBLE_INVENTORY, _USER, _PRIVATE_KEY, _WORK_DIR, _PIPELINING for the rest;
        host keys as for every SSH transport (RUNBOOKS_SSH_KNOWN_HOSTS)."""
        e = os.environ if env is None else env
        base = cls()
        key = e.get("RUNBOOKS_ANSIBLE_PRIVATE_KEY")
        url = e.get("RUNBOOKS_NETBOX_URL") or e.get("NETBOX_URL") or e.get("NETBOX_API")
        token = e.get("RUNBOOKS_NETBOX_TOKEN") or e.get("NETBOX_TOKEN") or None
        return replace(
            base,
            inventory=e.get("RUNBOOKS_ANSIBLE_INVENTORY", str(base.inventory)),
            netbox_url=url.rstrip("/") if url else None,
            netbox_token=token,
            work_dir=Path(e["RUNBOOKS_ANSIBLE_WORK_DIR"])
            if e.get("RUNBOOKS_ANSIBLE_WORK_DIR")
            else None,
            remote_user=e.get("RUNBOOKS_ANSIBLE_USER"),
            private_key_file=Path(key) if key else None,
            pipelining=e.get("RUNBOOKS_ANSIBLE_PIPELINING", "0") == "1",
            known_hosts=ssh_known_hosts(e),
        )


def software_source() -> str:
    """The apt source line of the department's software repository, for playbooks that
    install packages (roles/department_repo): ``RUNBOOKS_SOFTWARE_SOURCE``; unset or empty,
    the hosts use their own sources. (The lab's mirror: `runbook lab software` prints it.)"""
    return os.environ.get("RUNBOOKS_SOFTWARE_SOURCE", "").strip()


def plain_vars(value: Any) -> Any:
    """Extra-vars as JSON: SecretStr values revealed (they go to a 0600 file only)."""
    if isinstance(value, SecretStr):
        secrets.register(value)
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {str(k): plain_vars(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_vars(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
