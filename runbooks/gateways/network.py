"""The one vendor-neutral device layer: every runbook talks to network devices through this.

- The NAPALM driver comes from NetBox data: the device's config context ``napalm.driver``,
  else netutils' name for its platform slug (``cisco_ios`` → ``ios``), else the slug itself
  (NAPALM imports ``napalm_<slug>``: ``frr``, ``bird2``). Connection options come from the
  config context's ``napalm.optional_args`` (no secrets there).
- Credentials come from the source ``RUNBOOKS_DEVICE_CREDENTIALS`` names (environment by
  default, a 0600 file, the system keyring; per device, per platform; see
  `runbooks.gateways.device_credentials`), or are handed in; never from code. Their
  driver options (``secret``: the IOS/EOS enable secret) go to the driver too.
- Host keys are checked against the known_hosts file of the settings
  (``RUNBOOKS_SSH_KNOWN_HOSTS``, default ``~/.ssh/known_hosts``): Netmiko-based drivers get
  ``ssh_strict`` with that file, so a device not in it, or whose key differs, is refused
  before any credential is sent (Netmiko's own default accepts any key). A driver that
  does not hand those options to Netmiko (napalm-bird2 accepts any key, with no option to
  change it) gets its SSH connection from the gateway, made with paramiko's RejectPolicy
  and that file: the key is checked on the driver's own connection, before authentication
  (`runbooks.gateways.network_host_keys.open_checked`); any other such driver is checked
  by the gateway before it opens (one SSH key exchange, no authentication); the same
  refusal.
- One connection per device per run (``ctx.gateway`` caches it), opened on first use,
  closed when the run ends; per-device timeouts. What a driver prints while it opens
  (napalm-bird2 prints its version) goes to stderr: stdout is the command's (``--json``).
- A plan cannot write at the wire: the driver is handed on only through
  `runbooks.gateways.network_guard.ReadOnlyDriver` (getters, and load/compare/discard inside
  ``compare``); ``cli`` takes read-only commands only, in runs too.
- A compare leaves nothing on the device. Where the driver's own compare writes on it
  (`network_guard.COMPARE_WRITES`: NAPALM's IOS and NX-OS copy the candidate to flash, IOS
  sets ``file prompt quiet``), a plan loads no candidate: the gateway reads the running
  configuration and diffs it locally (difflib's unified diff of the sanitised texts; a
  merge: netutils' ``diff_network_config``), and says so in the diff's header line and in
  `NetworkGateway.compared_locally`. A run compares on the device (it writes anyway).
- Configuration text leaves sanitised (`runbooks.gateways.config_text`): ``config``,
  ``compare`` and ``commit`` return it with ``<removed>`` for each secret, and take
  candidates holding ``<removed>``, filled from the running configuration (then from
  ``secret_sources``). ``config_with_secrets`` is the raw text: never log or record it.
- A driver answering a NAPALM getter under another name says so in NetBox, not here: the
  config context's ``napalm.getters`` (``{"get_config": "get_bird_running_config"}``) makes
  the gateway call that method and give NAPALM's shape (a text becomes get_config's
  ``{"running": text, "candidate": "", "startup": ""}``).
- A getter, or a commit-confirm method (``has_pending_commit``, ``confirm_commit``,
  ``rollback``), the driver does not implement raises `UnsupportedError` naming device, driver
  and method; `NetworkGateway.commit_confirm_supported` says beforehand whether the device can
  revert a commit by itself, and a commit with ``revert_in`` on one that cannot is refused
  (never a commit that silently has no timer).
- A commit carries ``runbooks run <id>`` in the device's commit log where the driver takes
  a commit message; where it does not (NAPALM's IOS, EOS, NX-OS refuse one), it commits
  without and says so (`NetworkGateway.commit_message_kept`, a log line).
- A compare never disturbs a commit waiting for its confirmation. A driver may keep the
  pending commit as state of its own object: NAPALM's EOS driver keeps it as its open
  config session (``config_session``), its next load reuses that session and its discard
  aborts it, so the device goes back; only that object can confirm or roll it back
  (napalm/eos/eos.py: ``_load_config``, ``commit_config``, ``discard_config``,
  ``confirm_commit``). So while this connection holds a commit it made with ``revert_in``
  (not yet confirmed or rolled back), ``compare`` runs on a second driver object to the
  same device (same credentials, options and host-key check), opened on the first such
  compare and closed by ``confirm``, ``rollback`` or ``close``: one more login per device,
  only while a commit is pending (`NetworkGateway.logins` counts them). ``confirm`` and
  ``rollback`` act on the driver object that committed. Such a session is named by the
  run (``runbooks_<run id>_<random>``: `session_name`), and the name is the commit's
  evidence (`NetworkGateway.session`). A commit left pending by a process of the same run
  that died (a resumed run) has no such object: for that one call the driver object adopts
  the device's pending session if that session is the run's (its ``config_session`` set
  from ``_get_pending_commits()``, cleared again if the call fails), so it is confirmed or
  cancelled as a device-wide commit-confirm would be (``NetworkGateway._adopting``). A
  session pending that the run did not name (another process's) is never confirmed nor
  rolled back: `LockedError`; `NetworkGateway.has_own_pending_commit` tells them apart.
- NAPALM's and Netmiko's exceptions become one clear error each: unreachable, refused
  credentials, timeout, rejected configuration.
"""

from __future__ import annotations

import difflib
import inspect
import ipaddress
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from napalm import get_network_driver
from napalm.base import NetworkDriver
from napalm.base import exceptions as napalm_errors
from napalm.base.mock import MockDriver
from netutils.config.compliance import diff_network_config
from netutils.lib_mapper import NAPALM_LIB_MAPPER

from runbooks.core.context import RunContext
from runbooks.core.errors import (
    ConnectError,
    InputError,
    InventoryError,
    LockedError,
    UnsupportedError,
)
from runbooks.core.gateway import Gateway, Mode, reads, writes
from runbooks.gateways import config_text, network_host_keys
from runbooks.gateways.device_credentials import Credentials, credential_source
from runbooks.gateways.network_errors import translated
from runbooks.gateways.network_guard import COMPARE_WRITES, ReadOnlyDriver, check_commands
from runbooks.gateways.network_host_keys import key_refusal, needs_key_check, open_checked
from runbooks.gateways.network_target import (
    DeviceTarget,
    napalm_driver_for,
    napalm_getters,
    napalm_options,
)

__all__ = [
    "COMMIT_CONFIRM",
    "Credentials",
    "DeviceTarget",
    "NetworkGateway",
    "host_key_args",
    "local_diff",
    "napalm_driver_for",
    "napalm_getters",
    "napalm_options",
]

# What a driver needs for a commit the device reverts by itself unless confirmed
COMMIT_CONFIRM = ("has_pending_commit", "confirm_commit")

log = logging.getLogger(__name__)
T = TypeVar("T")


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


class NetworkGateway(Gateway):
    """One network device, through its NAPALM driver."""

    def __init__(
        self,
        mode: Mode,
        target: DeviceTarget,
        credentials: Credentials,
        run_id: str = "",
        driver: str | None = None,
        optional_args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(mode)
        self.target = target
        self.driver_name = driver or target.driver_name
        self.run_id = run_id
        self._credentials = credentials
        self._optional_args = {**target.optional_args, **(optional_args or {})}
        self._getters = dict(target.getters)  # NAPALM getter -> the driver's method for it
        self._device: Any = None
        self._wire: Any = None  # the driver as this gateway may use it (read-only in a plan)
        self._class: Any = None
        # a commit with revert_in made on this connection, not yet confirmed or rolled back
        # (set before the driver is asked: a commit that failed half-way may still pend)
        self._holds_pending = False
        # the second driver object the compares use meanwhile (see the module's docstring)
        self._side_device: Any = None
        self._side_wire: Any = None
        self.calls = 0  # how many driver calls this run made (for benchmarks and tests)
        self.logins = 0  # how many driver objects this gateway opened (for benchmarks, tests)
        # whether this run's commits carry "runbooks run <id>" in the device's commit log
        # (None: no commit yet; False: the driver takes no commit message)
        self.commit_message_kept: bool | None = None
        # the config session of this run's commit waiting for its confirmation, where the
        # driver keeps one (EOS): the one it committed with revert_in, or found pending
        # (`has_own_pending_commit`); None elsewhere and once confirmed or rolled back
        self.session: str | None = None

    @classmethod
    def for_device(
        cls, ctx: RunContext, target: DeviceTarget, credentials: Credentials | None = None
    ) -> NetworkGateway:
        """The run's one gateway for this device (opened on first use); without
        ``credentials``, those of the source ``RUNBOOKS_DEVICE_CREDENTIALS`` names."""

        def build(c: RunContext, key: str) -> Gateway:
            creds = credentials or credential_source().for_device(
                target.name, target.platform, target.driver_name
            )
            return cls(c.mode, target, creds, c.run_id)

        return ctx.gateway(cls, target.name, build)

    def _driver_class(self) -> Any:
        if self._class is not None:
            return self._class
        try:
            self._class = get_network_driver(self.driver_name)
            return self._class
        except napalm_errors.ModuleImportError as exc:
            raise InventoryError(
                f"{self.target.name}: no NAPALM driver {self.driver_name!r} (platform "
                f"{self.target.platform!r}): install napalm-{self.driver_name} or set the "
                "config context's napalm.driver",
                device=self.target.name,
            ) from exc

    def _open(self) -> Any:
        if self._wire is None:
            self._device = self._connect()
            self._wire = self._guarded(self._device)
        return self._wire

    def _guarded(self, device: Any) -> Any:
        """The driver as this gateway may use it: read-only in a plan."""
        if self.mode is Mode.RUN:
            return device
        return ReadOnlyDriver(device, self.target.name, self.driver_name)

    def _connect(self) -> Any:
        """A new driver object to the device, opened (the host key checked first where the
        driver does not check it)."""
        creds = self._credentials
        args = {
            "port": creds.port,
            **host_key_args(creds.known_hosts),
            **self._optional_args,
            **creds.optional_args,
        }
        if creds.key_file:
            args.setdefault("key_file", creds.key_file)
            args.setdefault("use_keys", True)
        driver = self._driver_class()
        # napalm-bird2 asks PyPI for a newer version on open: devices only, no phoning home
        os.environ.setdefault("NAPALM_BIRD2_DISABLE_UPDATE_CHECK", "1")
        started = time.monotonic()
        action = f"connecting to {self.target.host}"
        with translated(self.target.name, action, creds.known_hosts), _stdout_to_stderr():
            device = driver(
                self.target.host,
                creds.username,
                creds.password,
                timeout=creds.timeout,
                optional_args=args,
            )
        with translated(self.target.name, action, creds.known_hosts), _stdout_to_stderr():
            if not self._open_checked(device, action, args):
                device.open()
        self.logins += 1
        log.info(
            "%s: connected (%s) in %.2f s",
            self.target.name,
            self.driver_name,
            time.monotonic() - started,
        )
        return device

    def _side(self) -> Any:
        """The second driver object, for compares while this connection holds a pending
        commit (opened on first use, kept until the commit is confirmed or rolled back)."""
        if self._side_wire is None:
            self._side_device = self._connect()
            self._side_wire = self._guarded(self._side_device)
        return self._side_wire

    def _close_side(self) -> None:
        """Close the second driver object, if any; a failure to close is logged, not raised
        (it held no candidate: each compare discards its own)."""
        device, self._side_device, self._side_wire = self._side_device, None, None
        if device is None:
            return
        try:
            with _stdout_to_stderr():
                device.close()
        except Exception as exc:  # closing a spare connection is no step's failure
            log.warning(
                "%s: could not close the second connection: %s",
                self.target.name,
                type(exc).__name__,
            )

    def _open_checked(self, device: Any, action: str, args: Mapping[str, Any]) -> bool:
        """Where the driver would not check the host key itself (see
        `runbooks.gateways.network_host_keys`): open it on a connection whose key is checked
        (`open_checked`: napalm-bird2) and say True; else refuse the device before its
        driver opens when the box's key is not the known_hosts file's (nothing sent but
        SSH's key exchange), and say False: the caller opens it."""
        known_hosts = self._credentials.known_hosts
        if not needs_key_check(device, known_hosts):
            return False
        if open_checked(device, known_hosts):
            log.debug("%s: host key checked on the driver's own connection", self.target.name)
            return True
        self._check_host_key(action, args)
        return False

    def _check_host_key(self, action: str, args: Mapping[str, Any]) -> None:
        """Refuse the device unless the box's host key is the known_hosts file's, asked on
        a connection of its own (`key_refusal`)."""
        known_hosts = self._credentials.known_hosts
        port = int(args.get("port") or network_host_keys.SSH_PORT)
        started = time.monotonic()
        with translated(self.target.name, action, known_hosts):
            why = key_refusal(self.target.host, port, known_hosts, self._credentials.timeout)
        log.debug(
            "%s: host key checked by the gateway (%s) in %.3f s",
            self.target.name,
            self.driver_name,
            time.monotonic() - started,
        )
        if why:
            raise ConnectError(
                f"{self.target.name}: refused while {action}: its host key {why} {known_hosts}",
                device=self.target.name,
            )

    def _call(self, action: str, fn: Callable[[Any], T]) -> T:
        wire = self._open()
        self.calls += 1
        with translated(self.target.name, action):
            return fn(wire)

    def _unsupported(self, method: str, why: str = "") -> UnsupportedError:
        """``method``: a NAPALM method name; ``getter`` too in the context when it is one (the
        library's "cannot check" names it)."""
        mapped = self._getters.get(method)
        named = f"{method} (nor {mapped}, which napalm.getters maps it to)" if mapped else method
        return UnsupportedError(
            f"{self.target.name}: the {self.driver_name} driver has no {named}{why}",
            device=self.target.name,
            driver=self.driver_name,
            method=method,
            **({"getter": method} if method.startswith("get_") else {}),
        )

    def _get(self, getter: str, action: str, **kwargs: Any) -> Any:
        """A getter of the driver, or `UnsupportedError` when the driver lacks it."""
        if not self.supports(getter):
            raise self._unsupported(getter)
        try:
            return self._call(action, lambda d: self._invoke(d, getter, **kwargs))
        except NotImplementedError as exc:
            raise self._unsupported(getter) from exc

    def _invoke(self, wire: Any, getter: str, **kwargs: Any) -> Any:
        """Call ``getter`` on the driver, or the method ``napalm.getters`` maps it to (with
        only the arguments that method takes), and answer in NAPALM's shape."""
        method = self._getters.get(getter)
        if method is None:
            return getattr(wire, getter)(**kwargs)
        fn = getattr(wire, method)
        answer = fn(**_accepted(fn, kwargs))
        if getter == "get_config" and isinstance(answer, str):
            return {"running": answer, "candidate": "", "startup": ""}
        return answer

    def _method(self, name: str, action: str, adopt: bool = False) -> Any:
        """A commit-confirm method of the driver (``has_pending_commit``, ``confirm_commit``,
        ``rollback``), or `UnsupportedError` when the driver lacks it. ``adopt``: on the
        device's pending session where this connection holds none (`_adopting`)."""
        if not self.supports(name):
            raise self._unsupported(name)

        def run(wire: Any) -> Any:
            if not adopt:
                return getattr(wire, name)()
            with self._adopting(wire):
                return getattr(wire, name)()

        try:
            return self._call(action, run)
        except NotImplementedError as exc:
            raise self._unsupported(name) from exc

    def reopen(self, ctx: RunContext) -> NetworkGateway | None:
        """The open connection to the device handed to ``ctx`` (a run after its re-plan, or
        back to a plan's read-only use): a gateway of ``ctx``'s mode and run id on the same
        driver object, behind the read-only guard when that mode is a plan, its ``logins``
        none (it opened nothing). None (the caller closes this one; ``ctx`` logs in anew)
        when there is nothing to hand over: no connection, one no longer alive, or one holding
        a commit waiting for its confirmation or a second connection (those stay with the
        run that made them)."""
        device = self._device
        if device is None or self._holds_pending or self._side_device is not None:
            return None
        try:
            with _stdout_to_stderr():
                alive = bool(device.is_alive().get("is_alive"))
        except Exception:  # a transport that died raises instead of answering
            alive = False
        if not alive:
            return None
        moved = type(self)(
            ctx.mode, self.target, self._credentials, ctx.run_id, self.driver_name,
            self._optional_args,
        )  # fmt: skip
        moved._class = self._class
        moved._device, moved._wire = device, moved._guarded(device)
        self._device = self._wire = None
        return moved

    def close(self) -> None:
        try:
            self._close_side()
            if self._device is not None:
                self._device.close()
        finally:
            self._device = None
            self._wire = None
            self._holds_pending = False

    # ---- getters: allowed in plans
    @reads
    def supports(self, method: str) -> bool:
        """Whether the driver implements ``method``: a getter (``get_route_to``; ``route_to``
        too) or another method of NAPALM's ``NetworkDriver`` (``cli``, ``ping``,
        ``confirm_commit``, ``has_pending_commit``, ``rollback``), taken as named. Its class
        overrides NAPALM's ``NetworkDriver`` method, or for a getter the method the device's
        ``napalm.getters`` maps it to exists. Asks no device. (NAPALM's mock driver answers
        every getter it has recorded files for: those count, and its own commit methods.)"""
        name = _napalm_name(method)
        name = self._getters.get(name, name)
        cls = self._driver_class()
        if not isinstance(cls, type):
            return callable(getattr(cls, name, None))
        if issubclass(cls, MockDriver):
            return self._mock_supports(cls, name)
        own = getattr(cls, name, None)
        return callable(own) and own is not getattr(NetworkDriver, name, None)

    @reads
    def commit_confirm_supported(self) -> bool:
        """Whether a commit with ``revert_in`` reverts on the device by itself unless
        confirmed: the driver implements ``has_pending_commit`` and ``confirm_commit``
        (NAPALM's commit-confirm). Asks no device.

        A driver with a ``revert_in`` but neither does not count: napalm-bird2's starts a
        timer in our own process (counted in minutes, cancelled by ``close``) that dies with
        the process running the runbook, so nothing on the device would revert a commit that
        cut it off; and nothing could say a commit is pending or confirm it."""
        return all(self.supports(name) for name in COMMIT_CONFIRM)

    @reads
    def compared_locally(self) -> str:
        """Why `compare` diffs here rather than on the device, or ``""`` when the device
        compares: in a plan, a driver whose compare writes on the device
        (`network_guard.COMPARE_WRITES`). Asks no device; a plan can name it beside the diff.

        >>> from runbooks.gateways.device_credentials import Credentials
        >>> t = DeviceTarget("r1", "198.18.0.9", "cisco_ios", "ios", {}, {})
        >>> NetworkGateway(Mode.PLAN, t, Credentials("u", "p")).compared_locally()[:20]
        "NAPALM's ios driver "
        >>> NetworkGateway(Mode.RUN, t, Credentials("u", "p")).compared_locally()
        ''
        """
        if self.mode is Mode.RUN:
            return ""
        return COMPARE_WRITES.get(self.driver_name, "")

    def _mock_supports(self, cls: type, name: str) -> bool:
        if any(name in vars(k) for k in cls.__mro__ if k not in (MockDriver, NetworkDriver)):
            return True
        if name in vars(MockDriver) and not name.startswith("get_") and name != "cli":
            return True  # its own load/compare/commit-confirm methods, not replayed from files
        path = self._optional_args.get("path") or getattr(self._device, "path", None)
        if not path:
            return True  # recorded files not known before the device opens: the call decides
        return any(Path(str(path)).glob(f"{name}.*"))

    @reads
    def facts(self) -> dict[str, Any]:
        return dict(self._get("get_facts", "reading facts"))

    @reads
    def interfaces(self) -> dict[str, Any]:
        return dict(self._get("get_interfaces", "reading interfaces"))

    @reads
    def interfaces_ip(self) -> dict[str, Any]:
        return dict(self._get("get_interfaces_ip", "reading interface addresses"))

    @reads
    def lldp_neighbors(self) -> dict[str, Any]:
        return dict(self._get("get_lldp_neighbors", "reading LLDP neighbours"))

    @reads
    def lldp_neighbors_detail(self) -> dict[str, Any]:
        return dict(self._get("get_lldp_neighbors_detail", "reading LLDP details"))

    @reads
    def bgp_neighbors(self) -> dict[str, Any]:
        return dict(self._get("get_bgp_neighbors", "reading BGP neighbours"))

    @reads
    def route_to(self, destination: str, protocol: str = "") -> dict[str, Any]:
        """NAPALM's ``get_route_to``: ``{prefix: [{"current_active": bool, …}]}``. The
        destination must be an address or prefix (it reaches the device's CLI)."""
        try:
            ipaddress.ip_network(destination, strict=False)
        except ValueError as exc:
            raise InputError(f"{self.target.name}: {destination[:60]!r} is no prefix") from exc
        if not protocol.replace("-", "").isalnum() and protocol:
            raise InputError(f"{self.target.name}: {protocol[:30]!r} is no routing protocol")
        return dict(
            self._get(
                "get_route_to",
                f"reading the route to {destination}",
                destination=destination,
                protocol=protocol,
            )
        )

    @reads
    def config(self, retrieve: str = "running") -> str:
        """The configuration, sanitised: each secret value is ``<removed>``."""
        return config_text.sanitize(self.config_with_secrets(retrieve))

    @reads
    def config_with_secrets(self, retrieve: str = "running") -> str:
        """The raw configuration, secrets and all: never log, record or show it. (Each
        secret in it is registered with the masker all the same.)"""
        result = self._get("get_config", "reading the configuration", retrieve=retrieve)
        text = str(result.get(retrieve, ""))
        config_text.sanitize(text)  # registers its secrets
        return text

    @reads
    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, Any]:
        """Read-only commands (``show …``; see `runbooks.gateways.network_guard`), in plans
        and runs alike; answers come back sanitised (text as configuration, JSON answers value
        by value: `config_text.sanitize_data`)."""
        check_commands(self.target.name, self.driver_name, commands)
        if not self.supports("cli"):
            raise self._unsupported("cli")
        answers = self._call("running show commands", lambda d: d.cli(commands, encoding))
        return dict(config_text.sanitize_data(answers))

    @reads
    def device_log(self, lines: int) -> list[str]:
        """The last ``lines`` lines of the device's log buffer, sanitised: the output of the
        command the device's config context names (``napalm.log_command``: platform data, no
        command in code), run through `cli` and its read-only guard. `UnsupportedError` where
        NetBox names none (a platform whose log no command shows) or the driver has no cli."""
        command = self.target.log_command
        if not command:
            raise UnsupportedError(
                f"{self.target.name}: no napalm.log_command for {self.target.platform}",
                device=self.target.name,
                driver=self.driver_name,
                method="cli",
            )
        text = str(self.cli([command]).get(command, ""))
        return text.splitlines()[-lines:] if lines > 0 else []

    @reads
    def compare(
        self, candidate: str, replace: bool = True, secret_sources: Sequence[str] = ()
    ) -> str:
        """The device's own diff between its running configuration and ``candidate``,
        sanitised.

        ``<removed>`` in ``candidate`` is filled from the running configuration, then from
        ``secret_sources`` (raw texts). The candidate is loaded, compared and discarded (in
        ``finally``): a compare leaves nothing on the device, in plans and in runs.

        In a plan, on a driver whose compare writes on the device (`compared_locally` says
        why), no candidate is loaded: the diff is `local_diff` of the sanitised running
        configuration and candidate, its header line naming why. (A secret changed under
        the same line does not show there: both sides read ``<removed>``.)

        While this connection holds a commit made with ``revert_in`` and not yet confirmed
        or rolled back, the compare runs on a second driver object to the device, so the
        pending commit stays untouched (NAPALM's EOS driver would load into its pending
        session and abort it on discard). Its cost: one more login to the device, only
        while a commit is pending; that connection is kept for the next compares and closed
        by `confirm`, `rollback` or `close`."""

        def run(d: Any) -> str:
            text = self._filled(d, candidate, secret_sources)
            with _comparing(d), _discarding(d, self.target.name):
                (d.load_replace_candidate if replace else d.load_merge_candidate)(config=text)
                return config_text.sanitize(str(d.compare_config()))

        action = "comparing the candidate configuration"
        why = self.compared_locally()
        if why:
            return self._call(
                f"{action} locally",
                lambda d: self._local_compare(d, candidate, replace, secret_sources, why),
            )
        if not self._holds_pending:
            return self._call(action, run)
        wire = self._side()
        self.calls += 1
        with translated(self.target.name, f"{action} (on a second connection)"):
            return run(wire)

    @reads
    def has_pending_commit(self) -> bool:
        """Whether a commit waits for its confirmation (`UnsupportedError` on a driver
        without commit-confirm: see `commit_confirm_supported`)."""
        return bool(self._method("has_pending_commit", "checking for a pending commit"))

    @reads
    def has_own_pending_commit(self) -> bool:
        """Whether a commit of this run waits for its confirmation: where the driver keeps
        it as a config session (`_session_bound`: EOS), a pending session of the run's name
        (`session_name`; the one this connection committed, or one a process of this run
        that died left: `session` then names it); elsewhere (or where the driver names no
        pending session) the device's pending commit, which nothing tells apart from
        another's (the run holds its targets' locks). A pending session that is not the
        run's is refused (`LockedError`): the run neither confirms it, nor cancels it, nor
        commits over it."""
        if not self.has_pending_commit():
            return False
        if not _session_bound(self._wire):  # opened by the question, unless nothing asked one
            return True

        def run(wire: Any) -> bool:
            pending = [str(s) for s in wire._get_pending_commits() or {}]
            own = [s for s in pending if self._owns(wire, s)]
            if own:
                self.session = own[0]
                return True
            if pending:
                raise self._not_ours(pending)
            return True  # no session named: the device's commit

        return self._call("checking whose commit pends", run)

    def _not_ours(self, pending: Sequence[str]) -> LockedError:
        named = session_name(self.run_id, "*") if self.run_id else "after the run's id"
        return LockedError(
            f"{self.target.name}: the commit pending on the device is not this run's (config "
            f"session {', '.join(pending)}; this run's are named {named}): neither confirmed "
            "nor rolled back",
            device=self.target.name,
            sessions=list(pending),
        )

    def _owns(self, wire: Any, session: str) -> bool:
        """Whether the pending ``session`` is this run's: named for it, or this connection's."""
        held = self._holds_pending and wire.config_session == session
        return held or is_session_of(session, self.run_id)

    def _local_compare(
        self, wire: Any, candidate: str, replace: bool, sources: Sequence[str], why: str
    ) -> str:
        """`compare` without the device's help: one ``get_config``, then `local_diff`.
        Placeholders are filled as for the device (a secret nothing holds raises
        `SecretUnavailable` as there), so both texts are sanitised alike."""
        raw = str(self._invoke(wire, "get_config", retrieve="running").get("running", ""))
        running = config_text.sanitize(raw)  # registers its secrets
        filled = config_text.fill_secrets(candidate, raw, *sources)
        wanted = config_text.sanitize(filled)
        platform = NAPALM_LIB_MAPPER.get(self.driver_name, self.driver_name)
        return local_diff(running, wanted, why, platform if not replace else "")

    def _filled(self, wire: Any, candidate: str, sources: Sequence[str]) -> str:
        """The candidate with its placeholders filled (running configuration first); every
        secret in it registered with the masker before it goes anywhere."""
        text = candidate
        if config_text.PLACEHOLDER in candidate:
            running = []
            if self.supports("get_config"):
                answer = self._invoke(wire, "get_config", retrieve="running")
                running = [str(answer.get("running", ""))]
            text = config_text.fill_secrets(candidate, *running, *sources)
        config_text.sanitize(text)
        return text

    # ---- writes: refused in plans
    @writes
    def commit(
        self,
        candidate: str,
        revert_in: int | None = None,
        replace: bool = True,
        secret_sources: Sequence[str] = (),
    ) -> str:
        """Apply ``candidate`` (placeholders filled as in `compare`); with ``revert_in`` the
        device reverts by itself unless ``confirm`` is called in time (commit-confirm).
        Returns the diff applied, sanitised.

        The commit carries ``runbooks run <run id>`` as its message in the device's commit
        log where the driver takes one (Junos); NAPALM's IOS, EOS and NX-OS drivers take
        none: committed without, said in `commit_message_kept` and a log line.

        ``revert_in`` on a device without commit-confirm (`commit_confirm_supported`), or
        whose driver raises NotImplementedError for it, is refused with `UnsupportedError`
        before anything is committed (the candidate is discarded)."""
        message = f"runbooks run {self.run_id}" if self.run_id else "runbooks"
        if revert_in is not None and not self.commit_confirm_supported():
            missing = next(name for name in COMMIT_CONFIRM if not self.supports(name))
            raise self._unsupported(
                missing, f": no commit-confirm, so no commit with revert_in={revert_in}"
            )

        def run(d: Any) -> str:
            text = self._filled(d, candidate, secret_sources)
            named = revert_in is not None and _session_bound(d) and d.config_session is None
            if named and self.run_id:  # the run's name: a resumed run knows it for its own
                d.config_session = session_name(self.run_id)
            try:
                (d.load_replace_candidate if replace else d.load_merge_candidate)(config=text)
                diff = str(d.compare_config())
            except BaseException:
                _discard_quietly(d, self.target.name)
                raise
            if not diff.strip():
                d.discard_config()
                return ""
            held = self._holds_pending
            if revert_in is not None:
                self._holds_pending = True  # from now on compares go elsewhere
            try:
                self._commit_config(d, message, revert_in)
            except napalm_errors.CommandErrorException as exc:
                # the box refused the configuration at commit (napalm-bird2: `birdc configure`
                # failed and the driver put the old file back): a rejection, as CommitError is
                raise napalm_errors.CommitError(str(exc)) from exc
            except NotImplementedError as exc:
                self._holds_pending = held  # refused before anything was committed
                _discard_quietly(d, self.target.name)
                if revert_in is None:
                    raise
                raise self._unsupported(
                    "commit_config", f" with revert_in ({str(exc)[:80] or 'not implemented'})"
                ) from exc
            if named and d.config_session:
                self.session = self._pending_session(d)
            return config_text.sanitize(diff)

        return self._call("committing the configuration", run)

    def _pending_session(self, wire: Any) -> str | None:
        """The driver object's session just committed with revert_in, once the device lists
        it as pending (a driver shaped like EOS's whose commit-confirm is no session has
        none); None, and a log line, when the device cannot say: the commit stands."""
        session = str(wire.config_session)
        try:
            pending = wire._get_pending_commits() or {}
        except Exception as exc:  # a read after the commit: no reason to undo it
            log.warning(
                "%s: could not list the pending config sessions after the commit (%s); "
                "session %s not recorded",
                self.target.name,
                type(exc).__name__,
                session,
            )
            return None
        return session if session in pending else None

    def _commit_config(self, wire: Any, message: str, revert_in: int | None) -> None:
        """``commit_config`` with the run's id as the commit message where the driver takes
        one, else without (`commit_message_kept` says which, and a log line names the run).

        Which: a driver whose ``commit_config`` has no ``message`` parameter takes none; a
        driver refusing it with NAPALM's own words (IOS, EOS, NX-OS: ``NotImplementedError(
        "Commit message not implemented for this platform")``, raised before anything else
        in their ``commit_config``) is asked again without it, and not asked with one again
        on this connection. Any other error, NotImplementedError included, is the
        caller's."""
        takes = self.commit_message_kept is not False and "message" in _accepted(
            wire.commit_config, {"message": message}
        )
        if takes:
            try:
                wire.commit_config(message=message, revert_in=revert_in)
                self.commit_message_kept = True
                return
            except NotImplementedError as exc:
                if not _refuses_messages(exc):
                    raise
        self.commit_message_kept = False
        log.warning(
            "%s: committed without %r in the device's commit log: the %s driver takes no "
            "commit message",
            self.target.name,
            message,
            self.driver_name,
        )
        wire.commit_config(revert_in=revert_in)

    @writes
    def confirm(self) -> None:
        """Confirm the pending commit, on the driver object that made it (or, made by a
        process that died, the device's pending session adopted: `_adopting`)."""
        self._method("confirm_commit", "confirming the commit", adopt=True)
        self._settled()

    @writes
    def rollback(self) -> None:
        """Roll back (a pending commit: cancelled), on the driver object that made it (or,
        made by a process that died, the device's pending session adopted: `_adopting`)."""
        self._method("rollback", "rolling the configuration back", adopt=True)
        self._settled()

    @contextmanager
    def _adopting(self, wire: Any) -> Iterator[None]:
        """For one ``confirm_commit`` or ``rollback``: where the driver keeps a pending
        commit as its object's session (`_session_bound`: NAPALM's EOS driver) and this
        connection made none, the device's pending session of this run's name (`session_name`)
        is set as this driver object's, as if it had made it; the call then confirms or
        cancels it, as a device-wide commit-confirm would (Junos, IOS, FRR). That is the
        commit a resumed run left pending: its process died before confirming it
        (napalm/eos/eos.py ``confirm_commit`` and ``rollback`` act on ``self.config_session``
        only, and a new object has none).

        Only for that call: the driver clears the session when it succeeds, and the gateway
        when it fails, so no later compare loads into it and aborts it on discard. Nothing
        is adopted when this connection holds its own pending commit, when the driver
        object already has a session, or when none of the run's pends. A session pending
        that is not the run's (another process's, or a run's without an id) is never
        adopted: the call is refused (`LockedError`) rather than confirm or cancel it, or
        (a rollback) put back the configuration saved before it."""
        adopted: str | None = None
        if self.mode is Mode.RUN and not self._holds_pending and _session_bound(wire):
            pending = [str(s) for s in wire._get_pending_commits() or {}]
            own = [s for s in pending if is_session_of(s, self.run_id)]
            if wire.config_session is None and len(own) == 1:
                wire.config_session = adopted = own[0]
                log.info(
                    "%s: adopted the run's pending commit session %s (left by an earlier "
                    "process of the run)",
                    self.target.name,
                    adopted,
                )
            elif wire.config_session is None and not own and pending:
                raise self._not_ours(pending)
            elif len(own) > 1:
                log.warning(
                    "%s: %d sessions of the run wait for their confirmation; none adopted",
                    self.target.name,
                    len(own),
                )
        try:
            yield
        except BaseException:
            if adopted and wire.config_session == adopted:
                wire.config_session = None
            raise

    def _settled(self) -> None:
        """No commit pends on this connection any more: compares come back to it."""
        self._holds_pending = False
        self.session = None
        self._close_side()


def local_diff(running: str, candidate: str, why: str, merge_platform: str = "") -> str:
    r"""The diff from ``running`` to ``candidate`` (both sanitised), made here: a unified
    diff whose header says it was not the device's (``why``); ``""`` when they read the same.
    With ``merge_platform`` (netutils' name: ``cisco_ios``) ``candidate`` is merged, not
    replaced: the candidate's lines ``running`` lacks, under their sections (netutils'
    ``diff_network_config``), each marked ``+``.

    >>> print(local_diff("hostname r1\nip route 0.0.0.0 0.0.0.0 10.0.0.1", "hostname r1", "w"))
    --- running (read from the device)
    +++ candidate (diffed locally, not on the device: w)
    @@ -1,2 +1 @@
     hostname r1
    -ip route 0.0.0.0 0.0.0.0 10.0.0.1
    >>> local_diff("hostname r1\n", "hostname r1", "w")
    ''
    >>> print(local_diff("hostname r1", "interface Lo0\n ip address 10.0.0.9 255.255.255.255",
    ...                  "w", merge_platform="cisco_ios"))
    --- running (read from the device)
    +++ candidate (diffed locally, not on the device: w)
    +interface Lo0
    + ip address 10.0.0.9 255.255.255.255
    """
    before = "running (read from the device)"
    after = f"candidate (diffed locally, not on the device: {why})"
    if merge_platform:
        missing = diff_network_config(candidate, running, merge_platform).splitlines()
        body = [f"+{line}" for line in missing if line.strip()]
        return "\n".join([f"--- {before}", f"+++ {after}", *body]) if body else ""
    old, new = running.strip("\n").splitlines(), candidate.strip("\n").splitlines()
    return "\n".join(difflib.unified_diff(old, new, before, after, lineterm=""))


def session_name(run_id: str, suffix: str = "") -> str:
    """The name of a config session a run commits with revert_in in (`_session_bound`
    drivers: EOS), by which a resumed run knows it for its own: ``runbooks_``, the run's id
    (any character but a letter, digit or ``-`` as ``-``), ``_`` and ``suffix`` (random
    unless given).

    >>> session_name("20261207-101500-a1b2c3", "5f3e")
    'runbooks_20261207-101500-a1b2c3_5f3e'
    >>> is_session_of(session_name("run_7"), "run_7"), is_session_of("napalm_80123", "run_7")
    (True, False)
    >>> is_session_of(session_name("run-1-2"), "run-1"), is_session_of("runbooks__x", "")
    (False, False)
    """
    return f"{_session_prefix(run_id)}{suffix or secrets.token_hex(3)}"


def _session_prefix(run_id: str) -> str:
    return f"runbooks_{re.sub(r'[^A-Za-z0-9-]', '-', run_id)}_"


def is_session_of(session: str, run_id: str) -> bool:
    """Whether a config session is one `session_name` named for this run (never without
    an id)."""
    return bool(run_id) and str(session).startswith(_session_prefix(run_id))


def _session_bound(wire: Any) -> bool:
    """Whether the driver keeps a pending commit as a session of its own object, which a
    new object must adopt to confirm or cancel it: it has the ``config_session`` attribute
    and ``_get_pending_commits()`` (session → seconds left) of NAPALM's EOS driver
    (napalm/eos/eos.py). NAPALM's IOS and Junos drivers have the latter only: their pending
    commit is the device's, whoever asks. (Only ever a driver of a run: a plan's
    `ReadOnlyDriver` reaches no commit method.)"""
    return (
        not isinstance(wire, ReadOnlyDriver)
        and hasattr(wire, "config_session")
        and callable(getattr(wire, "_get_pending_commits", None))
    )


def _napalm_name(method: str) -> str:
    """NAPALM's name for ``method``: a ``NetworkDriver`` method as named (``cli``, ``ping``,
    ``confirm_commit``), else the getter (``route_to`` → ``get_route_to``).

    >>> _napalm_name("route_to"), _napalm_name("get_facts"), _napalm_name("confirm_commit")
    ('get_route_to', 'get_facts', 'confirm_commit')
    """
    if method.startswith("get_") or callable(getattr(NetworkDriver, method, None)):
        return method
    return f"get_{method}"


def _refuses_messages(exc: NotImplementedError) -> bool:
    """Whether a driver's NotImplementedError is NAPALM's refusal of a commit message.

    >>> _refuses_messages(NotImplementedError("Commit message not implemented for this platform"))
    True
    >>> _refuses_messages(NotImplementedError("Commit confirm has not been implemented"))
    False
    """
    return "commit message" in str(exc).lower()


def _accepted(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of ``kwargs`` that ``fn`` takes (all of them if it takes ``**kwargs``):
    a mapped driver method need not take the NAPALM getter's (``retrieve``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


class _StdoutToStderr:
    """Send what is printed to stdout meanwhile to stderr, safely with several threads
    opening devices at once (the first one in swaps, the last one out puts stdout back)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._stdout: Any = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._inside == 0:
                self._stdout, sys.stdout = sys.stdout, sys.stderr
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._inside == 0:
                    sys.stdout, self._stdout = self._stdout, None


_stdout_to_stderr = _StdoutToStderr()


@contextmanager
def _comparing(wire: Any) -> Iterator[None]:
    """Open the plan's guard for one load → compare → discard (a run's driver has none)."""
    if isinstance(wire, ReadOnlyDriver):
        with wire.comparing():
            yield
    else:
        yield


def _discard_quietly(wire: Any, device: str) -> None:
    """Discard after a failure without hiding it (the failure is what the person needs)."""
    try:
        wire.discard_config()
    except Exception as exc:  # the first failure is what the caller re-raises
        log.warning("%s: could not discard the candidate: %s", device, type(exc).__name__)


@contextmanager
def _discarding(wire: Any, device: str) -> Iterator[None]:
    """Discard the candidate when the block ends, however it ends."""
    try:
        yield
    except BaseException:
        _discard_quietly(wire, device)
        raise
    wire.discard_config()
