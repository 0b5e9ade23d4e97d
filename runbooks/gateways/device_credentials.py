"""Device credentials, per device and per platform, from a source the user chooses.

``RUNBOOKS_DEVICE_CREDENTIALS`` picks the source:

- ``env`` (the default): one set for every device from ``RUNBOOKS_DEVICE_USERNAME``,
  ``…_PASSWORD``, ``…_KEY_FILE``, ``…_PORT``, ``…_TIMEOUT`` and ``…_SECRET`` (the enable
  secret of IOS/EOS, handed to the driver as its ``secret`` option);
- ``file:<path>``: a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file only its owner can
  read (mode 0600 or stricter; anything readable by group or others is refused) with
  ``[default]``, ``[platform.<slug>]`` and ``[device.<name>]`` tables;
- ``keyring``: the system keyring (the ``keyring`` package), service ``runbooks``, entries
  ``<scope>:<field>`` such as ``device:leaf1:password``, ``platform:cisco_ios:secret``,
  ``default:username``; what the keyring does not hold comes from the environment.

Each field is looked up in order: the device's name, its NetBox platform slug, its NAPALM
driver name, the default. Fields: ``username``, ``password``, ``key_file``, ``port``,
``timeout``, ``secret`` and ``optional_args`` (a table of further driver options, e.g.
``sudo = true``). Every secret value read is registered with `runbooks.core.secrets`.
"""

from __future__ import annotations

import importlib
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from runbooks.config import ssh_known_hosts
from runbooks.core import secrets
from runbooks.core.errors import InputError, InventoryError

SELECTOR = "RUNBOOKS_DEVICE_CREDENTIALS"
KEYRING_SERVICE = "runbooks"
FIELDS = ("username", "password", "key_file", "port", "timeout", "secret", "optional_args")
_SECRET_FIELDS = ("password", "secret")


@dataclass(frozen=True)
class Credentials:
    """How to log in to one device. ``optional_args`` are driver options that come with the
    credentials (``secret``: IOS/EOS enable); never shown."""

    username: str
    password: str = field(default="", repr=False)
    key_file: str | None = None
    port: int = 22
    timeout: int = 30
    known_hosts: Path = field(default_factory=ssh_known_hosts)
    optional_args: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        """The environment's one set (``RUNBOOKS_DEVICE_*``)."""
        source = os.environ if env is None else env
        return resolve([_env_lookup(source)], (), source, "RUNBOOKS_DEVICE_USERNAME")


class CredentialSource(Protocol):
    def for_device(self, device: str, platform: str = "", driver: str = "") -> Credentials: ...


Lookup = Callable[[str, str], Any]  # (scope, field) -> value or None


def scopes(device: str, platform: str = "", driver: str = "") -> tuple[str, ...]:
    """Where a field is looked for, first to last.

    >>> scopes("leaf1", "cisco_ios", "ios")
    ('device:leaf1', 'platform:cisco_ios', 'platform:ios', 'default')
    """
    named = [f"device:{device}", f"platform:{platform}", f"platform:{driver}"]
    return (*dict.fromkeys(s for s in named if not s.endswith(":")), "default")


def resolve(
    lookups: list[Lookup], where: tuple[str, ...], env: Mapping[str, str], hint: str
) -> Credentials:
    """Each field from the first lookup and scope that has it (``where`` then ``default``)."""
    order = (*where, "default") if "default" not in where else where
    found: dict[str, Any] = {}
    for name in FIELDS:
        for lookup in lookups:
            value = next((v for s in order if (v := lookup(s, name)) not in (None, "")), None)
            if value is not None:
                found[name] = value
                break
    if not found.get("username"):
        raise InventoryError(
            f"no device credentials{' for ' + where[0] if where else ''}: set {hint} "
            "(and a password or key file)"
        )
    options = dict(found.get("optional_args") or {})
    if found.get("secret"):
        options["secret"] = str(found["secret"])
    secrets.register(str(found.get("password") or ""), str(found.get("secret") or ""))
    secrets.register(*(str(v) for k, v in options.items() if secrets.is_secret_key(k)))
    try:
        return Credentials(
            str(found["username"]),
            str(found.get("password") or ""),
            os.path.expanduser(str(found["key_file"])) if found.get("key_file") else None,
            int(found.get("port") or 22),
            int(found.get("timeout") or 30),
            ssh_known_hosts(env),
            options,
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"device credentials: port and timeout must be numbers ({exc})") from exc


def _env_lookup(env: Mapping[str, str]) -> Lookup:
    def lookup(scope: str, name: str) -> Any:
        if scope != "default" or name == "optional_args":
            return None
        return env.get(f"RUNBOOKS_DEVICE_{name.upper()}")

    return lookup


@dataclass(frozen=True)
class EnvSource:
    """Today's default: one set from ``RUNBOOKS_DEVICE_*`` for every device."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def for_device(self, device: str, platform: str = "", driver: str = "") -> Credentials:
        return resolve([_env_lookup(self.env)], (), self.env, "RUNBOOKS_DEVICE_USERNAME")


@dataclass(frozen=True)
class FileSource:
    """A TOML or YAML file that only its owner can read."""

    path: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def for_device(self, device: str, platform: str = "", driver: str = "") -> Credentials:
        tables = self._tables()

        def lookup(scope: str, name: str) -> Any:
            kind, _, key = scope.partition(":")
            table = tables.get("default", {}) if kind == "default" else tables.get(kind, {})
            entry = table if kind == "default" else table.get(key, {})
            return entry.get(name) if isinstance(entry, Mapping) else None

        return resolve(
            [lookup], scopes(device, platform, driver), self.env, f"a username in {self.path}"
        )

    def _read_text(self) -> str:
        """The file's text, checked on the open descriptor itself (no stat-then-read race):
        not a symbolic link, a regular file owned by the effective user and closed to group
        and others, in a directory group and others cannot write to (nobody else can swap
        it)."""
        where = f"device credentials file {self.path}"
        try:
            folder = os.stat(self.path.parent)
        except OSError as exc:
            raise InputError(f"{where}: {exc.strerror}") from exc
        if folder.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise InputError(
                f"{where}: its directory is writable by group or others "
                f"(mode {stat.S_IMODE(folder.st_mode):04o}): chmod go-w {self.path.parent}"
            )
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags)
        except OSError as exc:
            if os.path.islink(self.path):
                raise InputError(f"{where} is a symbolic link: name the file itself") from exc
            raise InputError(f"{where}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"{where} is not a regular file")
            if info.st_uid != os.geteuid():
                raise InputError(
                    f"{where} belongs to uid {info.st_uid}, not to this user ({os.geteuid()})"
                )
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise InputError(
                    f"{where} is open to group or others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}): chmod 600 it"
                )
            data = file.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{where} is not UTF-8 text") from None

    def _tables(self) -> dict[str, Any]:
        text = self._read_text()
        try:
            if self.path.suffix == ".toml":
                data: Any = tomllib.loads(text)
            elif self.path.suffix in (".yaml", ".yml"):
                data = yaml.safe_load(text) or {}
            else:
                raise InputError(f"device credentials file {self.path}: name it .toml or .yaml")
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            # the parsers quote the offending text, which may be a password: say where only
            raise InputError(f"device credentials file {self.path} does not parse") from exc
        if not isinstance(data, dict):
            raise InputError(f"device credentials file {self.path}: expected tables")
        unknown = sorted(set(data) - {"default", "platform", "device"})
        if unknown:
            raise InputError(
                f"device credentials file {self.path}: unknown table {unknown[0]!r} "
                "(default, platform.<slug>, device.<name>)"
            )
        for where, entry in _entries(data):
            if not isinstance(entry, Mapping):
                raise InputError(f"device credentials file {self.path}: [{where}] is no table")
            bad = sorted(set(entry) - set(FIELDS))
            if bad:
                raise InputError(
                    f"device credentials file {self.path}: [{where}] has unknown key {bad[0]!r}"
                )
        return data


def _entries(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("default", data.get("default") or {})]
    for kind in ("platform", "device"):
        tables = data.get(kind) or {}
        if not isinstance(tables, Mapping):
            out.append((kind, tables))
            continue
        out += [(f"{kind}.{k}", v or {}) for k, v in tables.items()]
    return out


@dataclass(frozen=True)
class KeyringSource:
    """The system keyring (service ``runbooks``); the environment for what it lacks."""

    get_password: Callable[[str, str], str | None]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def system(cls, env: Mapping[str, str] | None = None) -> KeyringSource:
        try:  # optional: only this source needs it (pip install keyring)
            keyring = importlib.import_module("keyring")
        except ImportError as exc:
            raise InputError(
                f"{SELECTOR}=keyring needs the keyring package (pip install keyring)"
            ) from exc
        return cls(keyring.get_password, dict(os.environ if env is None else env))

    def for_device(self, device: str, platform: str = "", driver: str = "") -> Credentials:
        def lookup(scope: str, name: str) -> Any:
            if name not in ("username", *_SECRET_FIELDS):
                return None
            try:
                return self.get_password(KEYRING_SERVICE, f"{scope}:{name}")
            except Exception as exc:  # any backend's error (no keyring, locked, D-Bus…)
                # one line naming the entry; the backend's own message is left out (and not
                # chained): nothing says it holds no value
                raise InputError(
                    f"the keyring could not be read ({KEYRING_SERVICE} {scope}:{name}): "
                    f"{type(exc).__module__}.{type(exc).__qualname__}"
                ) from None

        return resolve(
            [lookup, _env_lookup(self.env)],
            scopes(device, platform, driver),
            self.env,
            f"a username in the keyring ({KEYRING_SERVICE} default:username) or "
            "RUNBOOKS_DEVICE_USERNAME",
        )


def credential_source(env: Mapping[str, str] | None = None) -> CredentialSource:
    """The source ``RUNBOOKS_DEVICE_CREDENTIALS`` names (``env`` when unset).

    >>> type(credential_source({"RUNBOOKS_DEVICE_CREDENTIALS": "file:/etc/runbooks/d.toml"}))
    <class 'runbooks.gateways.device_credentials.FileSource'>
    """
    source = dict(os.environ if env is None else env)
    choice = source.get(SELECTOR, "env").strip()
    if choice == "env":
        return EnvSource(source)
    if choice.startswith("file:") and choice[5:]:
        return FileSource(Path(choice[5:]).expanduser(), source)
    if choice == "keyring":
        return KeyringSource.system(source)
    raise InputError(f"{SELECTOR} must be env, file:<path> or keyring (got {choice[:40]!r})")
