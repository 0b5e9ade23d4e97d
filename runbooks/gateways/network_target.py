"""Which device, and through which NAPALM driver: from NetBox data, not from a table in code.

The driver is the device's config context ``napalm.driver`` if set, else netutils' name for its
NetBox platform slug (``cisco_ios`` → ``ios``), else the slug itself (NAPALM's
``get_network_driver`` imports ``napalm_<slug>``: ``frr``, ``bird2``). Connection options are
the config context's ``napalm.optional_args`` (no secrets: those come with the credentials).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netutils.lib_mapper import NAPALM_LIB_MAPPER_REVERSE

from runbooks.core.errors import InventoryError


def napalm_driver_for(platform: str, config_context: Mapping[str, Any] | None = None) -> str:
    """The NAPALM driver of a device: its config context's ``napalm.driver``, else netutils'
    name for its NetBox platform slug, else the slug itself.

    >>> napalm_driver_for("frr"), napalm_driver_for("cisco_ios"), napalm_driver_for("eos")
    ('frr', 'ios', 'eos')
    >>> napalm_driver_for("bird"), napalm_driver_for("bird", {"napalm": {"driver": "bird2"}})
    ('bird', 'bird2')
    """
    driver = napalm_options(config_context).get("driver")
    if isinstance(driver, str) and driver.strip():
        return driver.strip()
    slug = platform.strip().lower()
    if not slug:
        raise InventoryError("a device without a platform: which NAPALM driver would talk to it?")
    if slug in NAPALM_LIB_MAPPER_REVERSE:  # netutils' normalised names: cisco_ios, arista_eos
        return str(NAPALM_LIB_MAPPER_REVERSE[slug])
    return slug  # a NAPALM name already (ios, junos) or a driver's package (napalm_<slug>)


def napalm_options(config_context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``napalm`` key of a device's NetBox config context (``{}`` when absent).

    >>> napalm_options({"napalm": {"optional_args": {"sudo": True}}})["optional_args"]
    {'sudo': True}
    """
    found = (config_context or {}).get("napalm")
    return dict(found) if isinstance(found, Mapping) else {}


@dataclass(frozen=True)
class DeviceTarget:
    """How to reach one device: name, address, NetBox platform slug, and from NetBox's config
    context the NAPALM driver (None: from the platform) and its ``optional_args``."""

    name: str
    host: str
    platform: str
    driver: str | None = None
    optional_args: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_netbox(
        cls, name: str, host: str, platform: str, config_context: Mapping[str, Any] | None
    ) -> DeviceTarget:
        """A target from NetBox data: the platform slug and the device's config context.

        >>> t = DeviceTarget.from_netbox("leaf9", "198.18.0.19", "frr",
        ...     {"napalm": {"optional_args": {"sudo": True}}})
        >>> t.driver_name, dict(t.optional_args)
        ('frr', {'sudo': True})
        """
        options = napalm_options(config_context)
        args = options.get("optional_args")
        if args is not None and not isinstance(args, Mapping):
            raise InventoryError(f"{name}: config context napalm.optional_args is not a mapping")
        return cls(name, host, platform, napalm_driver_for(platform, config_context), args or {})

    @property
    def driver_name(self) -> str:
        return self.driver or napalm_driver_for(self.platform)
