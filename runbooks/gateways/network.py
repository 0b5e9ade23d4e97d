"""The one vendor-neutral device layer: every runbook talks to network devices through this.

- The NAPALM driver comes from the device's NetBox platform (a data table, then netutils'
  names): ``frr`` → our FRR driver, ``cisco_ios`` → ``ios``, ``eos`` → ``eos``…
- Credentials come from the environment (``RUNBOOKS_DEVICE_USERNAME``, ``…_PASSWORD``,
  ``…_KEY_FILE``, ``…_PORT``, ``…_TIMEOUT``) or are handed in; never from code.
- Host keys are checked against the known_hosts file of the settings
  (``RUNBOOKS_SSH_KNOWN_HOSTS``, default ``~/.ssh/known_hosts``): Netmiko-based drivers get
  ``ssh_strict`` with that file, so a device not in it, or whose key differs, is refused
  before any credential is sent (Netmiko's own default accepts any key).
- One connection per device per run (``ctx.gateway`` caches it), opened on first use,
  closed when the run ends; per-device timeouts.
- In a plan only getters and ``compare`` are allowed; commit, confirm, rollback raise.
- NAPALM's and Netmiko's exceptions become one clear error each: unreachable, refused
  credentials, timeout, rejected configuration.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from napalm import get_network_driver
from napalm.base import exceptions as napalm_errors
from netmiko import exceptions as netmiko_errors
from netutils.lib_mapper import NAPALM_LIB_MAPPER, NAPALM_LIB_MAPPER_REVERSE
from paramiko.ssh_exception import BadHostKeyException

from runbooks.config import ssh_known_hosts
from runbooks.core import secrets
from runbooks.core.context import RunContext
from runbooks.core.errors import (
    AuthenticationError,
    ConnectError,
    GatewayTimeout,
    InventoryError,
    RejectedError,
)
from runbooks.core.gateway import Gateway, Mode, reads, writes

log = logging.getLogger(__name__)
T = TypeVar("T")

# NetBox platform slug -> NAPALM driver, for what netutils does not name (it has no FRRouting).
PLATFORM_DRIVERS: dict[str, str] = {
    "frr": "frr",
    "frrouting": "frr",
    "cumulus": "frr",
}


def napalm_driver_for(platform: str) -> str:
    """The NAPALM driver name for a NetBox platform slug.

    >>> napalm_driver_for("frr"), napalm_driver_for("cisco_ios"), napalm_driver_for("eos")
    ('frr', 'ios', 'eos')
    """
    slug = platform.strip().lower()
    if slug in PLATFORM_DRIVERS:
        return PLATFORM_DRIVERS[slug]
    if slug in NAPALM_LIB_MAPPER_REVERSE:  # netutils' normalised names: cisco_ios, arista_eos
        return str(NAPALM_LIB_MAPPER_REVERSE[slug])
    if slug in NAPALM_LIB_MAPPER:  # already a NAPALM name: ios, eos, junos
        return slug
    raise InventoryError(f"no NAPALM driver for NetBox platform {platform!r}", platform=platform)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(default="", repr=False)
    key_file: str | None = None
    port: int = 22
    timeout: int = 30
    known_hosts: Path = field(default_factory=ssh_known_hosts)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Credentials:
        source = dict(os.environ if env is None else env)
        username = source.get("RUNBOOKS_DEVICE_USERNAME")
        if not username:
            raise InventoryError(
                "no device credentials: set RUNBOOKS_DEVICE_USERNAME (and "
                "RUNBOOKS_DEVICE_PASSWORD or RUNBOOKS_DEVICE_KEY_FILE)"
            )
        password = source.get("RUNBOOKS_DEVICE_PASSWORD", "")
        secrets.register(password)
        return cls(
            username,
            password,
            source.get("RUNBOOKS_DEVICE_KEY_FILE") or None,
            int(source.get("RUNBOOKS_DEVICE_PORT", "22")),
            int(source.get("RUNBOOKS_DEVICE_TIMEOUT", "30")),
            ssh_known_hosts(source),
        )


@dataclass(frozen=True)
class DeviceTarget:
    name: str
    host: str
    platform: str


def host_key_args(known_hosts: Path) -> dict[str, Any]:
    """Netmiko's options that check the device's host key against ``known_hosts`` only and
    refuse an unknown or changed key (Netmiko's default adds any key it is shown).

    >>> host_key_args(Path("/etc/runbooks/known_hosts"))["ssh_strict"]
    True
    """
    return {
        "ssh_strict": True,
        "system_host_keys": False,
        "alt_host_keys": True,
        "alt_key_file": str(known_hosts),
    }


def _key_refusal(exc: BaseException) -> str:
    """How paramiko refused the device's host key (somewhere in the chain); "" if it did not."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BadHostKeyException):
            return "does not match the one in"
        if "not found in known_hosts" in str(seen):
            return "is not in"
        seen = seen.__cause__ or seen.__context__
    return ""


@contextmanager
def _translated(device: str, action: str, known_hosts: Path | None = None) -> Iterator[None]:
    """NAPALM's and Netmiko's exceptions as our one-line errors."""
    try:
        yield
    except (napalm_errors.ConnectAuthError, netmiko_errors.NetmikoAuthenticationException) as e:
        raise AuthenticationError(
            f"{device}: credentials refused while {action}", device=device
        ) from e
    except (
        napalm_errors.CommandTimeoutException,
        netmiko_errors.NetmikoTimeoutException,
        TimeoutError,
    ) as e:
        raise GatewayTimeout(f"{device}: timed out while {action}", device=device) from e
    except (
        napalm_errors.MergeConfigException,
        napalm_errors.ReplaceConfigException,
        napalm_errors.CommitError,
        napalm_errors.CommitConfirmException,
    ) as e:
        raise RejectedError(
            f"{device}: configuration rejected while {action}: "
            f"{secrets.mask_text(str(e)).splitlines()[0] if str(e) else ''}",
            device=device,
        ) from e
    except (
        napalm_errors.ConnectionException,
        napalm_errors.ConnectionClosedException,
        ConnectionError,
        OSError,
        EOFError,
    ) as e:
        why = _key_refusal(e)
        if why:
            raise ConnectError(
                f"{device}: refused while {action}: its host key {why} {known_hosts}",
                device=device,
            ) from e
        raise ConnectError(
            f"{device}: unreachable while {action} ({type(e).__name__})", device=device
        ) from e


class NetworkGateway(Gateway):
    """One network device, through its NAPALM driver."""

    def __init__(
        self,
        mode: Mode,
        target: DeviceTarget,
        credentials: Credentials,
        run_id: str = "",
        driver: str | None = None,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(mode)
        self.target = target
        self.driver_name = driver or napalm_driver_for(target.platform)
        self.run_id = run_id
        self._credentials = credentials
        self._optional_args = optional_args or {}
        self._device: Any = None
        self.calls = 0  # how many driver calls this run made (for benchmarks and tests)

    @classmethod
    def for_device(
        cls, ctx: RunContext, target: DeviceTarget, credentials: Credentials | None = None
    ) -> NetworkGateway:
        """The run's one gateway for this device (opened on first use)."""

        def build(c: RunContext, key: str) -> Gateway:
            return cls(c.mode, target, credentials or Credentials.from_env(), c.run_id)

        return ctx.gateway(cls, target.name, build)

    def _open(self) -> Any:
        if self._device is None:
            creds = self._credentials
            args = {"port": creds.port, **host_key_args(creds.known_hosts), **self._optional_args}
            if creds.key_file:
                args.setdefault("key_file", creds.key_file)
                args.setdefault("use_keys", True)
            driver = get_network_driver(self.driver_name)
            started = time.monotonic()
            action = f"connecting to {self.target.host}"
            with _translated(self.target.name, action, creds.known_hosts):
                device = driver(
                    self.target.host,
                    creds.username,
                    creds.password,
                    timeout=creds.timeout,
                    optional_args=args,
                )
                device.open()
            log.info(
                "%s: connected (%s) in %.2f s",
                self.target.name,
                self.driver_name,
                time.monotonic() - started,
            )
            self._device = device
        return self._device

    def _call(self, action: str, fn: Callable[[Any], T]) -> T:
        device = self._open()
        self.calls += 1
        with _translated(self.target.name, action):
            return fn(device)

    def close(self) -> None:
        if self._device is not None:
            try:
                self._device.close()
            finally:
                self._device = None

    # ---- getters: allowed in plans
    @reads
    def facts(self) -> dict[str, Any]:
        return self._call("reading facts", lambda d: d.get_facts())

    @reads
    def interfaces(self) -> dict[str, Any]:
        return self._call("reading interfaces", lambda d: d.get_interfaces())

    @reads
    def interfaces_ip(self) -> dict[str, Any]:
        return self._call("reading interface addresses", lambda d: d.get_interfaces_ip())

    @reads
    def lldp_neighbors(self) -> dict[str, Any]:
        return self._call("reading LLDP neighbours", lambda d: d.get_lldp_neighbors())

    @reads
    def lldp_neighbors_detail(self) -> dict[str, Any]:
        return self._call("reading LLDP details", lambda d: d.get_lldp_neighbors_detail())

    @reads
    def bgp_neighbors(self) -> dict[str, Any]:
        return self._call("reading BGP neighbours", lambda d: d.get_bgp_neighbors())

    @reads
    def config(self, retrieve: str = "running") -> str:
        result = self._call("reading the configuration", lambda d: d.get_config(retrieve))
        return str(result.get(retrieve, ""))

    @reads
    def cli(self, commands: list[str]) -> dict[str, Any]:
        return self._call("running show commands", lambda d: d.cli(commands))

    @reads
    def compare(self, candidate: str, replace: bool = True) -> str:
        """The device's own diff between its running configuration and ``candidate``.
        Loads the candidate, compares, discards: the running configuration is untouched."""

        def run(d: Any) -> str:
            (d.load_replace_candidate if replace else d.load_merge_candidate)(config=candidate)
            try:
                return str(d.compare_config())
            finally:
                d.discard_config()

        return self._call("comparing the candidate configuration", run)

    @reads
    def has_pending_commit(self) -> bool:
        return bool(self._call("checking for a pending commit", lambda d: d.has_pending_commit()))

    # ---- writes: refused in plans
    @writes
    def commit(self, candidate: str, revert_in: int | None = None, replace: bool = True) -> str:
        """Apply ``candidate``; with ``revert_in`` the device reverts by itself unless
        ``confirm`` is called in time (commit-confirm). Returns the diff applied."""
        message = f"runbooks run {self.run_id}" if self.run_id else "runbooks"

        def run(d: Any) -> str:
            (d.load_replace_candidate if replace else d.load_merge_candidate)(config=candidate)
            diff = str(d.compare_config())
            if not diff.strip():
                d.discard_config()
                return ""
            d.commit_config(message=message, revert_in=revert_in)
            return diff

        return self._call("committing the configuration", run)

    @writes
    def confirm(self) -> None:
        self._call("confirming the commit", lambda d: d.confirm_commit())

    @writes
    def rollback(self) -> None:
        self._call("rolling the configuration back", lambda d: d.rollback())
