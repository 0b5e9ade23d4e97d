"""Settings: one TOML file, every value overridable by its ``RUNBOOKS_*`` environment variable.

The file is ``--config PATH``, else ``$RUNBOOKS_CONFIG``, else
``$XDG_CONFIG_HOME/runbooks/config.toml`` (``~/.config/runbooks/config.toml``). Its keys are
the variables' names without ``RUNBOOKS_``, in lower case (``netbox_url = "https://…"``); an
unknown key is an error, not a silent no-op. A variable that is set wins over the file.

`Config` is read through pydantic-settings. `apply` hands the file's values to the process as
the ``RUNBOOKS_*`` variables that are not set, so every module that reads its variable (and
every child process: Ansible, the worker) sees the same settings as ``runbook config show``.

Credentials never come from code: ``RUNBOOKS_NETBOX_URL`` / ``RUNBOOKS_NETBOX_TOKEN``
(or NetBox's own ``NETBOX_URL`` / ``NETBOX_TOKEN``). The token's value is registered
with the secrets masker as soon as it is read.

Every SSH transport (devices, Ansible, the database server) checks host keys against one
known_hosts file, ``RUNBOOKS_SSH_KNOWN_HOSTS`` (default ``~/.ssh/known_hosts``), and refuses a
host that is not in it or whose key differs. Nothing ever writes to that file.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from runbooks_rules.policy import GROUP_AUTHORITIES, GroupMap, group_authorities

from runbooks.core import secrets
from runbooks.core.errors import InputError

PREFIX = "RUNBOOKS_"
# UTC+8: the manual's Traditional script with its mainland terms (網絡, 服務器, 數據庫) is
# Hong Kong's usage; a department elsewhere sets `time_zone`
DEPARTMENT_ZONE = "Asia/Hong_Kong"
# the record sheets' languages (runbooks.report.i18n)
SHEET_LANGUAGES = ("both", "zh-Hant", "en")
CONFIG_ENV = "RUNBOOKS_CONFIG"
# NetBox's own variables, read when RUNBOOKS_* is not set (as pynetbox users have them)
FALLBACK_ENV = {"netbox_url": ("NETBOX_URL",), "netbox_token": ("NETBOX_TOKEN",)}


def _env(name: str, *, also: tuple[str, ...] = ()) -> Any:
    """The field's names: its variable (and fallbacks) in the environment, its key in the file."""
    return AliasChoices(PREFIX + name.upper(), *also, name)


class Config(BaseSettings):
    """Every setting of the `runbook` command and its gateways. The README's table is made
    from this model (``scripts/settings-table``); the descriptions are that table's text."""

    model_config = SettingsConfigDict(
        extra="forbid", case_sensitive=True, env_ignore_empty=True, validate_default=False
    )

    # NetBox, the source of truth
    netbox_url: str | None = Field(
        None,
        validation_alias=_env("netbox_url", also=("NETBOX_URL",)),
        description="NetBox's address, `https://…` (else `NETBOX_URL`).",
    )
    netbox_token: SecretStr | None = Field(
        None,
        validation_alias=_env("netbox_token", also=("NETBOX_TOKEN",)),
        description="NetBox API token; its owner's groups give the authorities (else "
        "`NETBOX_TOKEN`).",
    )
    netbox_groups: dict[str, str | list[str]] = Field(
        default_factory=lambda: dict[str, str | list[str]](GROUP_AUTHORITIES),
        validation_alias=_env("netbox_groups"),
        description="The NetBox groups that give the authorities (handle, review, approve, "
        'supervise): a table, `[netbox_groups]` `it-ops = "handle"`, `it-leads = '
        '["review", "approve"]`; the variable holds it as JSON. The NetBox plugin\'s is '
        '`PLUGINS_CONFIG["netbox_runbooks"]["groups"]`: give both the same.',
    )
    netbox_asn_field: str = Field(
        "bgp_asn",
        validation_alias=_env("netbox_asn_field"),
        description="The device custom field that holds a router's BGP AS number (rack-in, "
        "rack-out).",
    )
    time_zone: str = Field(
        DEPARTMENT_ZONE,
        validation_alias=_env("time_zone"),
        description="The department's time zone (IANA name, `Asia/Taipei`): window times "
        "given without an offset are in it, record sheets show their times in it, naming it.",
    )
    sheet_language: str = Field(
        "both",
        validation_alias=_env("sheet_language"),
        description="The language of record sheets: `zh-Hant` (the manual's Traditional "
        "Chinese), `en`, or `both` side by side.",
    )
    # this machine
    store: Path | None = Field(
        None,
        validation_alias=_env("store"),
        description="The record store (SQLite); default "
        "`$XDG_DATA_HOME/runbooks/records.sqlite3` (`~/.local/share/…`).",
    )
    actor: str | None = Field(
        None,
        validation_alias=_env("actor"),
        description="Who acts when no NetBox token says so; default the OS user.",
    )
    cache_dir: Path = Field(
        Path("/var/cache/runbooks"),
        validation_alias=_env("cache_dir"),
        description="Caches: Ansible collections, the inventory's schema, PostgreSQL binaries.",
    )
    modules: str = Field(
        "",
        validation_alias=_env("modules"),
        description="More runbooks: comma-separated module names or `.py` paths.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=_env("redis_url"),
        description="Redis of the scheduled runs' queue (`runbook schedule`, the worker).",
    )
    ssh_known_hosts: Path | None = Field(
        None,
        validation_alias=_env("ssh_known_hosts"),
        description="The known_hosts file every SSH transport checks; default "
        "`~/.ssh/known_hosts`. Never written to.",
    )
    # network devices
    device_credentials: str = Field(
        "env",
        validation_alias=_env("device_credentials"),
        description="Where device credentials come from: `env`, `file:<path>` (0600 TOML/YAML) "
        "or `keyring`.",
    )
    device_username: str | None = Field(
        None, validation_alias=_env("device_username"), description="Device login (source `env`)."
    )
    device_password: SecretStr | None = Field(
        None, validation_alias=_env("device_password"), description="Device password (`env`)."
    )
    device_key_file: Path | None = Field(
        None, validation_alias=_env("device_key_file"), description="Device SSH key (`env`)."
    )
    device_port: int | None = Field(
        None, validation_alias=_env("device_port"), description="Device SSH port (`env`)."
    )
    device_timeout: int | None = Field(
        None, validation_alias=_env("device_timeout"), description="Device timeout, s (`env`)."
    )
    device_secret: SecretStr | None = Field(
        None,
        validation_alias=_env("device_secret"),
        description="Enable secret of IOS/EOS devices (`env`).",
    )
    config_history: Path | None = Field(
        None,
        validation_alias=_env("config_history"),
        description="network-maintenance's configuration history: a git repository (made "
        "when missing), one file per device, one commit per run; default "
        "`$XDG_STATE_HOME/runbooks/config-history` (`~/.local/state/…`).",
    )
    # servers and PCs, through Ansible
    playbooks: Path | None = Field(
        None,
        validation_alias=_env("playbooks"),
        description="A directory of playbooks and roles to use instead of the installed ones.",
    )
    ansible_inventory: str | None = Field(
        None,
        validation_alias=_env("ansible_inventory"),
        description="Ansible inventory: a file, a directory or inline text; default the "
        "installed NetBox inventory (`netbox.netbox.nb_inventory`).",
    )
    ansible_user: str | None = Field(
        None, validation_alias=_env("ansible_user"), description="The hosts' SSH user."
    )
    ansible_private_key: Path | None = Field(
        None, validation_alias=_env("ansible_private_key"), description="The hosts' SSH key."
    )
    ansible_work_dir: Path | None = Field(
        None,
        validation_alias=_env("ansible_work_dir"),
        description="Parent of each playbook run's private directory; default the temp dir.",
    )
    ansible_pipelining: bool = Field(
        False,
        validation_alias=_env("ansible_pipelining"),
        description="Ansible pipelining: faster, but a cancelled module keeps running.",
    )
    software_source: str = Field(
        "",
        validation_alias=_env("software_source"),
        description="The apt source line of the department's repository; empty: the hosts' own.",
    )
    domain: str = Field(
        "",
        validation_alias=_env("domain"),
        description="The department's DNS domain: pc-install's default `domain` (PCs are "
        "`<name>.<domain>`).",
    )
    baseline_agent_port: int | None = Field(
        None,
        validation_alias=_env("baseline_agent_port"),
        description="The port the servers' baseline status agent listens on: "
        "server-maintenance's default `agent_port`.",
    )
    handover_dir: Path | None = Field(
        None,
        validation_alias=_env("handover_dir"),
        description="Where pc-install leaves the user's handover sheet; default "
        "`$XDG_STATE_HOME/runbooks/handover`.",
    )
    # the lab (`runbook lab`)
    lab_dir: Path = Field(
        Path("/run/runbooks-lab"),
        validation_alias=_env("lab_dir"),
        description="The lab's state directory.",
    )
    lab_topology: Path | None = Field(
        None,
        validation_alias=_env("lab_topology"),
        description="The lab's topology; default the checkout's `inventory/lab.yml`.",
    )
    lab_netbox: bool = Field(
        True, validation_alias=_env("lab_netbox"), description="Off: the lab without NetBox."
    )
    netbox_port: int = Field(
        8765, validation_alias=_env("netbox_port"), description="The lab NetBox's port."
    )
    netbox_instance: str = Field(
        "",
        validation_alias=_env("netbox_instance"),
        description="A second, independent lab NetBox (its own databases; give it its own port).",
    )

    @field_validator("netbox_groups", mode="before")
    @classmethod
    def _groups(cls, value: Any) -> Any:
        try:
            checked = group_authorities(value)
        except ValueError as exc:  # pydantic reports it with the setting's name
            raise ValueError(str(exc)) from None
        return {g: sorted(a) for g, a in checked.items()}

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("sheet_language")
    @classmethod
    def _language(cls, value: str) -> str:
        return language(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment wins over what `load` passes in from the file
        return env_settings, init_settings


SECRET_KEYS = frozenset(
    name for name, info in Config.model_fields.items() if "SecretStr" in str(info.annotation)
)


def env_names(name: str) -> tuple[str, ...]:
    """The variables that set a field, the first its own.

    >>> env_names("netbox_token")
    ('RUNBOOKS_NETBOX_TOKEN', 'NETBOX_TOKEN')
    """
    return (PREFIX + name.upper(), *FALLBACK_ENV.get(name, ()))


def config_path(given: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The configuration file: ``--config``, else ``$RUNBOOKS_CONFIG``, else the user's.

    >>> config_path(env={"HOME": "/home/olivia"}).as_posix()
    '/home/olivia/.config/runbooks/config.toml'
    >>> config_path(env={"RUNBOOKS_CONFIG": "/etc/runbooks.toml"}).as_posix()
    '/etc/runbooks.toml'
    """
    e = os.environ if env is None else env
    if given is not None:
        return given.expanduser()
    if e.get(CONFIG_ENV):
        return Path(e[CONFIG_ENV]).expanduser()
    home = e.get("HOME") or str(Path.home())
    base = e.get("XDG_CONFIG_HOME") or str(Path(home) / ".config")
    return Path(base) / "runbooks" / "config.toml"


@dataclass(frozen=True)
class Setting:
    """One row of ``runbook config show``: a value in effect and where it came from."""

    name: str
    variable: str
    value: str  # masked when secret
    source: str  # "env VAR", "file PATH" or "default"
    secret: bool


@dataclass(frozen=True)
class Loaded:
    """The settings in effect, the file they were read from, and the file's own keys."""

    config: Config
    path: Path
    file_values: Mapping[str, Any]
    env: Mapping[str, str]

    def source(self, name: str) -> str:
        for var in env_names(name):
            if self.env.get(var):
                return f"env {var}"
        if name in self.file_values:
            return f"file {self.path}"
        return "default"

    def rows(self) -> list[Setting]:
        rows = []
        for name in Config.model_fields:
            value = getattr(self.config, name)
            secret = name in SECRET_KEYS
            rows.append(Setting(name, env_names(name)[0], _shown(value), self.source(name), secret))
        return rows


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _exported(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return _shown(value)


def read_file(path: Path) -> dict[str, Any]:
    """The file's keys (none when it does not exist). Unknown keys and bad TOML are errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InputError(f"cannot read the configuration {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(Config.model_fields))
    if unknown:
        raise InputError(f"{path}: unknown setting {unknown[0]!r} (see `runbook config show`)")
    held = sorted(k for k in data if k in SECRET_KEYS)
    if held and path.stat().st_mode & 0o077:
        raise InputError(
            f"{path} holds {held[0]} and is readable by group or others: chmod 600 {path}"
        )
    return data


def load(path: Path | None = None, env: Mapping[str, str] | None = None) -> Loaded:
    """The settings in effect: the environment over the file over the defaults."""
    e = dict(os.environ if env is None else env)
    where = config_path(path, e)
    data = read_file(where)
    saved = dict(os.environ)
    try:
        if env is not None:  # pydantic-settings reads os.environ: let it see this mapping
            os.environ.clear()
            os.environ.update(e)
        config = Config(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(f"setting {field}: {first['msg']} ({where} or its variable)") from exc
    except SettingsError as exc:  # a variable of a table that is not JSON
        raise InputError(
            f"{exc}: a table's variable holds JSON, e.g. "
            """RUNBOOKS_NETBOX_GROUPS='{"it-ops": "handle", "it-leads": ["review", "approve"]}'"""
        ) from None
    finally:
        if env is not None:
            os.environ.clear()
            os.environ.update(saved)
    for name in Config.model_fields:
        value = getattr(config, name)
        if isinstance(value, SecretStr):
            secrets.register(value)
    return Loaded(config, where, data, e)


def apply(loaded: Loaded, environ: MutableMapping[str, str] | None = None) -> None:
    """Hand the file's values to the process as the variables not already set."""
    target = os.environ if environ is None else environ
    for name in loaded.file_values:
        if loaded.source(name).startswith("file"):
            target[env_names(name)[0]] = _exported(getattr(loaded.config, name))


@dataclass(frozen=True)
class NetBoxSettings:
    url: str
    token: str = ""

    def __repr__(self) -> str:  # never show the token
        return f"NetBoxSettings(url={self.url!r}, token=<{len(self.token)} chars>)"

    @property
    def authorization(self) -> str:
        """v2 tokens (``nbt_<key>.<secret>``) are Bearer tokens; v1 tokens use ``Token``."""
        scheme = "Bearer" if self.token.startswith("nbt_") else "Token"
        return f"{scheme} {self.token}"


def netbox_settings() -> NetBoxSettings | None:
    url = os.environ.get("RUNBOOKS_NETBOX_URL") or os.environ.get("NETBOX_URL")
    token = os.environ.get("RUNBOOKS_NETBOX_TOKEN") or os.environ.get("NETBOX_TOKEN") or ""
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise InputError(
            f"RUNBOOKS_NETBOX_URL must start with http:// or https:// (got {url[:60]!r})"
        )
    secrets.register(token)
    return NetBoxSettings(url.rstrip("/"), token)


def ssh_known_hosts(env: Mapping[str, str] | None = None) -> Path:
    """The known_hosts file every SSH transport checks host keys against.

    >>> str(ssh_known_hosts({"RUNBOOKS_SSH_KNOWN_HOSTS": "/etc/runbooks/known_hosts"}))
    '/etc/runbooks/known_hosts'
    >>> ssh_known_hosts({"HOME": "/home/olivia"}).as_posix()
    '/home/olivia/.ssh/known_hosts'
    """
    e = os.environ if env is None else env
    given = e.get("RUNBOOKS_SSH_KNOWN_HOSTS", "").strip()
    if given:
        return Path(given).expanduser()
    home = e.get("HOME") or str(Path.home())
    return Path(home) / ".ssh" / "known_hosts"


def netbox_groups(env: Mapping[str, str] | None = None) -> GroupMap:
    """The department's NetBox groups and their authorities (``RUNBOOKS_NETBOX_GROUPS``, JSON;
    `apply` puts the file's ``[netbox_groups]`` there); default the ``runbook-*`` groups.

    >>> sorted(netbox_groups({"RUNBOOKS_NETBOX_GROUPS": '{"it-ops": "handle"}'})["it-ops"])
    ['handle']
    >>> sorted(netbox_groups({})["runbook-approvers"])
    ['approve']
    """
    e = os.environ if env is None else env
    try:
        return group_authorities(e.get(PREFIX + "NETBOX_GROUPS", ""))
    except ValueError as exc:
        raise InputError(f"RUNBOOKS_NETBOX_GROUPS: {exc}") from None


def asn_field(env: Mapping[str, str] | None = None) -> str:
    """The name of the device custom field holding the BGP AS number (``netbox_asn_field``).

    >>> asn_field({}), asn_field({"RUNBOOKS_NETBOX_ASN_FIELD": "as_number"})
    ('bgp_asn', 'as_number')
    """
    e = os.environ if env is None else env
    return e.get(PREFIX + "NETBOX_ASN_FIELD", "").strip() or "bgp_asn"


def config_history(env: Mapping[str, str] | None = None) -> Path:
    """The git repository of the network configuration backups (``config_history``).

    >>> str(config_history({"RUNBOOKS_CONFIG_HISTORY": "/srv/netconf"}))
    '/srv/netconf'
    >>> config_history({"HOME": "/home/olivia"}).as_posix()
    '/home/olivia/.local/state/runbooks/config-history'
    """
    e = os.environ if env is None else env
    given = e.get(PREFIX + "CONFIG_HISTORY", "").strip()
    if given:
        return Path(given).expanduser()
    state = e.get("XDG_STATE_HOME", "").strip()
    home = e.get("HOME") or str(Path.home())
    return Path(state or Path(home) / ".local" / "state") / "runbooks" / "config-history"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; an unknown one is bad input.

    >>> zone("Asia/Taipei").key
    'Asia/Taipei'
    """
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"time zone {name!r} is not an IANA time zone name (e.g. UTC, Asia/Taipei)"
        ) from None


def time_zone(env: Mapping[str, str] | None = None) -> ZoneInfo:
    """The department's time zone (``RUNBOOKS_TIME_ZONE``), Hong Kong's (UTC+8) by default.

    >>> time_zone({}).key, time_zone({"RUNBOOKS_TIME_ZONE": "Europe/Berlin"}).key
    ('Asia/Hong_Kong', 'Europe/Berlin')
    """
    e = os.environ if env is None else env
    return zone(e.get(PREFIX + "TIME_ZONE", "").strip() or DEPARTMENT_ZONE)


def language(name: str) -> str:
    """A record sheet's language: ``zh-Hant``, ``en`` or ``both``; another is bad input.

    >>> language(" zh-hant ")
    'zh-Hant'
    """
    known = {lang.lower(): lang for lang in SHEET_LANGUAGES}
    if name.strip().lower() not in known:
        raise InputError(f"sheet language {name!r} is not one of {', '.join(SHEET_LANGUAGES)}")
    return known[name.strip().lower()]


def sheet_language(env: Mapping[str, str] | None = None) -> str:
    """The record sheets' language (``RUNBOOKS_SHEET_LANGUAGE``), both side by side by default.

    >>> sheet_language({}), sheet_language({"RUNBOOKS_SHEET_LANGUAGE": "en"})
    ('both', 'en')
    """
    e = os.environ if env is None else env
    return language(e.get(PREFIX + "SHEET_LANGUAGE", "").strip() or "both")


def settings_table() -> str:
    """The README's settings table, made from `Config` (a test keeps the README in step)."""
    lines = ["| key in config.toml | variable | default | what |", "|---|---|---|---|"]
    for name, info in Config.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "" if default in (None, "") else _shown(default)
        also = "".join(f" (or `{v}`)" for v in env_names(name)[1:])
        lines.append(
            f"| `{name}` | `{env_names(name)[0]}`{also} | {f'`{shown}`' if shown else ''} "
            f"| {info.description or ''} |"
        )
    return "\n".join(lines) + "\n"
