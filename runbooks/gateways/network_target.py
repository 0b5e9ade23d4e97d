"""Which device, and through which NAPALM driver: from NetBox data, not from a table in code.

The driver is the device's config context ``napalm.driver`` if set, else netutils' name for its
NetBox platform slug (``cisco_ios`` → ``ios``), else the slug itself (NAPALM's
``get_network_driver`` imports ``napalm_<slug>``: ``frr``, ``bird2``). Connection options are
the config context's ``napalm.optional_args`` (no secrets: those come with the credentials).
A driver that answers a NAPALM getter under another name says so in ``napalm.getters``
(``{"get_config": "get_bird_running_config"}`` for napalm-bird2): platform data, not code.
So is ``napalm.log_command``: the read-only command showing the platform's log buffer
(``show logging`` on IOS), unset where the platform has none a command shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from napalm.base import NetworkDriver
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


_GETTER_NAME = re.compile(r"get_[a-z0-9_]+\Z")


def napalm_getters(name: str, config_context: Mapping[str, Any] | None) -> dict[str, str]:
    """The config context's ``napalm.getters``: each NAPALM getter (``get_config``) the
    device's driver answers under another method name (``get_bird_running_config``).

    Both names must be getters (``get_…``): the gateway calls the mapped method wherever it
    reads, in plans too, so a mapping onto a method that writes (``rollback``) is refused.

    >>> bird2 = {"get_config": "get_bird_running_config"}
    >>> napalm_getters("border1", {"napalm": {"getters": bird2}})
    {'get_config': 'get_bird_running_config'}
    >>> napalm_getters("r1", {"napalm": {"getters": {"get_config": "rollback"}}})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    runbooks.core.errors.InventoryError: r1: config context napalm.getters maps get_config to ...
    """
    found = napalm_options(config_context).get("getters")
    if found is None:
        return {}
    if not isinstance(found, Mapping):
        raise InventoryError(f"{name}: config context napalm.getters is not a mapping", device=name)
    getters: dict[str, str] = {}
    for getter, method in found.items():
        if not (
            isinstance(getter, str)
            and getter.startswith("get_")
            and callable(getattr(NetworkDriver, getter, None))
        ):
            raise InventoryError(
                f"{name}: config context napalm.getters names {str(getter)[:60]!r}, which is no "
                "NAPALM getter",
                device=name,
            )
        if not (isinstance(method, str) and _GETTER_NAME.match(method)):
            raise InventoryError(
                f"{name}: config context napalm.getters maps {getter} to {str(method)[:60]!r}, "
                "which is no getter (get_…)",
                device=name,
            )
        getters[getter] = method
    return getters


def napalm_log_command(name: str, config_context: Mapping[str, Any] | None) -> str | None:
    """The config context's ``napalm.log_command``: the command showing the device's log
    buffer, or None. Only a text here; the gateway's read-only guard checks the command
    itself (a ``show`` command) when it runs it.

    >>> napalm_log_command("r1", {"napalm": {"log_command": " show logging "}})
    'show logging'
    >>> napalm_log_command("r1", {"napalm": {}}) is None
    True
    >>> napalm_log_command("r1", {"napalm": {"log_command": ["show logging"]}})
    Traceback (most recent call last):
    runbooks.core.errors.InventoryError: r1: config context napalm.log_command is not a text
    """
    found = napalm_options(config_context).get("log_command")
    if found is None or found == "":
        return None
    if not isinstance(found, str) or not found.strip():
        raise InventoryError(
            f"{name}: config context napalm.log_command is not a text", device=name
        )
    return found.strip()


@dataclass(frozen=True)
class DeviceTarget:
    """How to reach one device: name, address, NetBox platform slug, and from NetBox's config
    context the NAPALM driver (None: from the platform), its ``optional_args`` and its
    ``getters`` (a NAPALM getter → the driver's method answering it; see `napalm_getters`)
    and ``log_command`` (see `napalm_log_command`)."""

    name: str
    host: str
    platform: str
    driver: str | None = None
    optional_args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    getters: Mapping[str, str] = field(default_factory=dict, hash=False)
    log_command: str | None = field(default=None, hash=False)

    @classmethod
    def from_netbox(
        cls, name: str, host: str, platform: str, config_context: Mapping[str, Any] | None
    ) -> DeviceTarget:
        """A target from NetBox data: the platform slug and the device's config context.

        >>> t = DeviceTarget.from_netbox("leaf9", "198.18.0.19", "frr",
        ...     {"napalm": {"optional_args": {"sudo": True}}})
        >>> t.driver_name, dict(t.optional_args), dict(t.getters)
        ('frr', {'sudo': True}, {})
        >>> DeviceTarget.from_netbox("border1", "198.18.0.31", "bird2",
        ...     {"napalm": {"getters": {"get_config": "get_bird_running_config"}}}).getters
        {'get_config': 'get_bird_running_config'}
        >>> DeviceTarget.from_netbox("edge1", "192.0.2.1", "cisco_ios",
        ...     {"napalm": {"log_command": "show logging"}}).log_command
        'show logging'
        """
        options = napalm_options(config_context)
        args = options.get("optional_args")
        if args is not None and not isinstance(args, Mapping):
            raise InventoryError(f"{name}: config context napalm.optional_args is not a mapping")
        return cls(
            name,
            host,
            platform,
            napalm_driver_for(platform, config_context),
            args or {},
            napalm_getters(name, config_context),
            napalm_log_command(name, config_context),
        )

    @property
    def driver_name(self) -> str:
        return self.driver or napalm_driver_for(self.platform)
