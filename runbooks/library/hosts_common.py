"""What the runbooks that work on a list of hosts (server-maintenance, software-install) share:
the hosts as NetBox's Ansible inventory holds them, and their NetBox device ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runbooks.core.errors import InventoryError
from runbooks.gateways.ansible import AnsibleGateway
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
