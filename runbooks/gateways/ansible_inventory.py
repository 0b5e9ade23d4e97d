"""The inventory for playbook runs, from NetBox through netbox.netbox's ``nb_inventory``.

``inventory/netbox.yml`` is resolved once per gateway with ``ansible-inventory --list --yaml``
into a YAML inventory in a private directory: one NetBox query per run instead of one per
playbook, and the NetBox token lives only in that subprocess's environment, never in the
environment ansible-runner writes into its artifacts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from runbooks.core import secrets
from runbooks.core.errors import ConnectError, InputError, InventoryError
from runbooks.gateways import ansible_process as proc

if TYPE_CHECKING:
    from runbooks.gateways.ansible_settings import AnsibleSettings

log = logging.getLogger(__name__)

NETBOX_HOSTS = "netbox-hosts.yml"
ATTEMPTS = 3
RETRY_S = 4.0
NB_PLUGINS = frozenset({"netbox.netbox.nb_inventory", "nb_inventory"})


def is_netbox_inventory(path: Path) -> bool:
    if not path.is_file() or path.suffix not in (".yml", ".yaml"):
        return False
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("plugin") in NB_PLUGINS


def resolve_inventory(settings: AnsibleSettings, workdir: Path) -> Path:
    """An inventory path ansible-playbook can read without NetBox credentials."""
    raw = settings.inventory
    path = Path(raw)
    if isinstance(raw, str) and ("\n" in raw or not path.exists()):
        if not raw.strip() or ("/" in raw and not any(c.isspace() for c in raw)):
            raise InputError(f"inventory {raw!r} does not exist")
        inline = workdir / "hosts"
        inline.write_text(raw if raw.endswith("\n") else raw + "\n", encoding="utf-8")
        return inline
    if not is_netbox_inventory(path):
        return path
    started = time.monotonic()
    text = _ansible_inventory(settings, path, workdir, "--list", "--yaml", "--export")
    hosts = workdir / NETBOX_HOSTS
    hosts.write_text(secrets.mask_text(text), encoding="utf-8")
    count = _count_hosts(yaml.safe_load(text) or {})
    if count == 0:
        raise InventoryError(f"NetBox inventory {path.name} resolved to no hosts")
    log.info(
        "inventory %s: %d hosts from NetBox in %.1f s", path.name, count, time.monotonic() - started
    )
    return hosts


def inventory_list(settings: AnsibleSettings, inventory: Path, workdir: Path) -> str:
    """``ansible-inventory --list`` (JSON with ``_meta.hostvars``) of an inventory path."""
    return _ansible_inventory(settings, inventory, workdir, "--list")


def _ansible_inventory(settings: AnsibleSettings, path: Path, workdir: Path, *args: str) -> str:
    # an empty config of our own shields the call from ansible.cfg files on the machine
    config = workdir / "ansible.cfg"
    if not config.exists():
        config.write_text("# empty: no ansible.cfg of the machine applies\n", encoding="utf-8")
    env = proc.child_env(
        os.environ,
        {
            "ANSIBLE_COLLECTIONS_PATH": str(settings.collections_path),
            "ANSIBLE_CONFIG": str(config),
            # nb_inventory caches NetBox's API schema (~5 MB) beside DEFAULT_LOCAL_TMP: keep it
            # in our cache, never in ~/.ansible
            "ANSIBLE_HOME": str(workdir / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(_schema_cache() / "tmp"),
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_NOCOLOR": "1",
        },
        str(Path(sys.executable).parent),
    )
    # the NetBox credentials go to this subprocess only (child_env refuses secrets on purpose)
    if settings.netbox_url:
        env["NETBOX_API"] = settings.netbox_url
    if settings.netbox_token:
        env["NETBOX_TOKEN"] = settings.netbox_token
    exe = Path(sys.executable).parent / "ansible-inventory"
    why = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            done = subprocess.run(
                [str(exe), "-i", str(path), *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ConnectError(f"inventory {path.name}: NetBox did not answer in 120 s") from exc
        if done.returncode == 0:
            return done.stdout
        why = _reason(done.stderr)
        log.warning("inventory %s, attempt %d: %s", path.name, attempt, why)
        if attempt < ATTEMPTS:
            time.sleep(RETRY_S)  # NetBox restarting (about 8 s) should not fail a run
    raise InventoryError(f"inventory {path.name} could not be read: {why}", inventory=str(path))


def _schema_cache() -> Path:
    path = Path(os.environ.get("RUNBOOKS_CACHE_DIR", "/var/cache/runbooks")) / "ansible-inventory"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _reason(stderr: str) -> str:
    """The lines that say why (nb_inventory's own error comes under "caused by")."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if "error" in ln.lower() or ln.startswith("{")]
    return secrets.mask_text(" | ".join(useful[:4]) or (lines[-1] if lines else "no output"))[:600]


def yaml_hostvars(path: Path) -> dict[str, dict[str, object]]:
    """host -> variables of a YAML inventory (as resolved from NetBox), without a subprocess."""
    found: dict[str, dict[str, object]] = {}

    def walk(node: object) -> None:
        if not isinstance(node, dict):
            return
        hosts = node.get("hosts")
        if isinstance(hosts, dict):
            for name, hostvars in hosts.items():
                found.setdefault(str(name), {}).update(hostvars or {})
        for key, value in node.items():
            if key not in {"hosts", "vars"}:
                walk(value)

    walk(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return found


def _count_hosts(group: object) -> int:
    names: set[str] = set()

    def walk(node: object) -> None:
        if not isinstance(node, dict):
            return
        hosts = node.get("hosts")
        if isinstance(hosts, dict):
            names.update(hosts)
        for child in (node.get("children") or {}).values():
            walk(child)
        for key, value in node.items():
            if key not in ("hosts", "children", "vars"):
                walk(value)

    walk(group)
    return len(names)
