"""Settings of the Ansible gateway: where playbooks, inventory and collections are, how to log
in to hosts; and extra-vars made JSON (secret values revealed only for the 0600 vars file).

The playbooks, their roles and templates, and the NetBox inventory are package data
(``runbooks/playbooks``, ``runbooks/inventory/netbox.yml``): an installed wheel has them, no
source checkout is assumed. ``RUNBOOKS_PLAYBOOKS`` and ``RUNBOOKS_ANSIBLE_INVENTORY`` (or the
settings file's ``playbooks`` / ``ansible_inventory``) name a department's own instead."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from runbooks.config import ssh_known_hosts
from runbooks.core import secrets

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PLAYBOOKS = PACKAGE_DIR / "playbooks"  # the installed playbooks and roles
NETBOX_INVENTORY = PACKAGE_DIR / "inventory" / "netbox.yml"  # netbox.netbox.nb_inventory


def _cache_dir() -> Path:
    return Path(os.environ.get("RUNBOOKS_CACHE_DIR", "/var/cache/runbooks"))


@dataclass(frozen=True)
class AnsibleSettings:
    """Where playbooks, inventory and collections are, and how to log in to hosts."""

    project_dir: Path = PLAYBOOKS
    # an nb_inventory config (resolved through NetBox), any other inventory file or directory,
    # or inline inventory text ("localhost ansible_connection=local")
    inventory: Path | str = NETBOX_INVENTORY
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
        RUNBOOKS_PLAYBOOKS, RUNBOOKS_ANSIBLE_INVENTORY, _USER, _PRIVATE_KEY, _WORK_DIR,
        _PIPELINING for the rest; host keys as for every SSH transport
        (RUNBOOKS_SSH_KNOWN_HOSTS).

        >>> AnsibleSettings.from_env({}).project_dir == PLAYBOOKS
        True
        >>> AnsibleSettings.from_env({"RUNBOOKS_PLAYBOOKS": "/srv/plays"}).project_dir.as_posix()
        '/srv/plays'
        """
        e = os.environ if env is None else env
        base = cls()
        key = e.get("RUNBOOKS_ANSIBLE_PRIVATE_KEY")
        url = e.get("RUNBOOKS_NETBOX_URL") or e.get("NETBOX_URL") or e.get("NETBOX_API")
        token = e.get("RUNBOOKS_NETBOX_TOKEN") or e.get("NETBOX_TOKEN") or None
        playbooks = e.get("RUNBOOKS_PLAYBOOKS", "").strip()
        return replace(
            base,
            project_dir=Path(playbooks).expanduser() if playbooks else base.project_dir,
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
