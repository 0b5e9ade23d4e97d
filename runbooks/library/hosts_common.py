"""What the runbooks that work on a list of hosts (server-maintenance, software-install,
app-maintenance) share: the hosts as NetBox's Ansible inventory holds them, their NetBox
device ids, and the undo's play."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runbooks.core.errors import InventoryError, RollbackError
from runbooks.gateways.ansible import AnsibleGateway
from runbooks.gateways.ansible_events import PlaybookResult
from runbooks.gateways.netbox import NetBoxGateway


def in_inventory(ansible: AnsibleGateway, hosts: Sequence[str]) -> dict[str, Any]:
    """Each host's address and role in NetBox's inventory; those not in it are one line."""
    inventory = ansible.inventory_hosts()
    missing = [h for h in hosts if h not in inventory]
    if missing:
        raise InventoryError(
            f"not in the NetBox inventory (Linux platform, primary IP): {', '.join(missing)}"
        )
    return {
        h: {"address": inventory[h].get("ansible_host"), "role": inventory[h].get("role")}
        for h in hosts
    }


def device_ids(nb: NetBoxGateway, names: Sequence[str]) -> dict[str, int]:
    """Each host's NetBox device id, in the order given; those NetBox lacks are one line."""
    found = nb.find("dcim.device", name=list(names))
    ids = {str(d["name"]): int(d["id"]) for d in found}
    missing = [h for h in names if h not in ids]
    if missing:
        raise InventoryError(f"no NetBox device named {', '.join(missing)}")
    return {h: ids[h] for h in names}


def run_restore(
    gateway: AnsibleGateway,
    playbook: str,
    hosts: Sequence[str],
    extravars: dict[str, Any],
    what: str,
    again: str,
) -> PlaybookResult:
    """An undo's play: ``playbook`` on every host whatever fails on one (``run_unchecked``).
    Not clean on all of them: a `RollbackError` saying ``what`` it was, how it ended per host,
    and the command that runs it again by hand (``again``: its extra arguments)."""
    result = gateway.run_unchecked(playbook, limit=list(hosts), extravars=extravars)
    if not result.clean:
        where = gateway.settings  # the installed playbooks and inventory, or the configured
        command = (
            f"ansible-playbook -i {where.inventory} {where.project_dir / playbook} "
            f"-l {','.join(hosts)} {again}"
        )
        raise RollbackError(f"{what}: {result.outcome()}; when back: {command}")
    return result
