"""10 應用系統維護 application maintenance: deploy a release of an application to its hosts,
one host at a time with a health check, and roll back to the release before on failure.

The procedure, in order (the playbook ``playbooks/app_deploy.yml`` does the host work and also
runs on its own with plain ``ansible-playbook``):

1. The application's hosts: the devices with its NetBox service (``ipam.service`` of that
   name: its one TCP port is where it listens, on each host's primary address), each in
   NetBox's inventory (netbox.netbox ``nb_inventory``). ``hosts`` picks some of them.
2. The release: ``<app>-<version>.tar.gz`` in the artifacts directory on this machine (the
   department's build output; hosts need no network: the playbook copies it). Its SHA-256
   is recorded and checked against ``SHA256SUMS`` there when that file lists it, and it is
   in each host's diff: the approval covers these bytes (another tarball is another plan),
   and the playbook checks the copy on each host against it before unpacking or switching.
3. Deploy. In a plan this is Ansible's check mode: per host, the release from → to and each
   file the playbook would change. The hosts roll one at a time in name order: the release
   unpacked under ``/opt/<app>/releases/<version>``, the link ``current`` switched to it,
   the service restarted, then its health URL must answer 200 within ``health_timeout_s``.
   A host that fails is rolled back there and then by the playbook (the link back to its
   release before, restarted, health-checked) and stops the roll. The step's undo then puts
   every planned host back to its release before, all at once (a host that had none: the
   application removed), and checks each one healthy; the record holds the failure and the rollback.
   The post-check: every host at the new release, running, its health URL answering 200.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from runbooks.core.context import RunContext
from runbooks.core.errors import InputError, RollbackError, VerificationError
from runbooks.core.results import Diff, FieldChange
from runbooks.core.steps import change, check
from runbooks.gateways.ansible_events import PlaybookResult
from runbooks.library.app_common import (
    AppParams,
    health_line,
    healthy,
    placement,
    play_vars,
)
from runbooks.library.base import LibraryRunbook
from runbooks.library.fault_common import evidence_of
from runbooks.library.hosts_common import run_restore

PLAYBOOK = "app_deploy.yml"
ALL_AT_ONCE = "100%"  # the play's serial for what does not roll: plans, reads, the undo
VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,40}$"


def artifacts_setting() -> str:
    """The directory of release artifacts: ``RUNBOOKS_APP_ARTIFACTS`` (the lab's: the cache's
    ``labapp`` directory, `runbooks.lab.labapp`)."""
    return os.environ.get("RUNBOOKS_APP_ARTIFACTS", "").strip()


class AppMaintenanceParams(AppParams):
    version: str = Field(pattern=VERSION, description="the release to deploy (1.1)")
    artifacts: str = Field(
        default_factory=artifacts_setting,
        validate_default=True,
        description="the directory holding <app>-<version>.tar.gz on this machine (default: "
        "the setting RUNBOOKS_APP_ARTIFACTS)",
    )
    health_timeout_s: int = Field(
        default=10, ge=1, le=600, description="how long a restarted release may take to answer 200"
    )

    @field_validator("artifacts")
    @classmethod
    def _artifacts_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "give artifacts=<the directory of release tarballs> or set RUNBOOKS_APP_ARTIFACTS"
            )
        return value.strip()


def artifact_of(directory: Path, app: str, version: str) -> dict[str, Any]:
    """The release tarball: its path and SHA-256, checked against ``SHA256SUMS`` when that
    lists it; a missing or mismatching one is one line."""
    path = directory / f"{app}-{version}.tar.gz"
    if not path.is_file():
        have = sorted(
            p.name.removeprefix(f"{app}-").removesuffix(".tar.gz")
            for p in directory.glob(f"{app}-*.tar.gz")
        )
        raise InputError(
            f"{path.name} is not in {directory}"
            + (f" (it has {app} {', '.join(have)})" if have else "")
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    sums = directory / "SHA256SUMS"
    listed = {}
    if sums.is_file():
        for line in sums.read_text(encoding="utf-8").splitlines():
            value, _, name = line.partition("  ")
            listed[name.strip()] = value.strip()
    if path.name in listed and listed[path.name] != digest:
        raise InputError(f"{path.name}: SHA-256 {digest} differs from SHA256SUMS's")
    return {"path": str(path), "sha256": digest, "listed_in_sha256sums": path.name in listed}


def host_diff(
    app: str, host: str, version: str, sha256: str, state: dict[str, Any], said: str
) -> Diff:
    """What the deploy would change on ``host``: the release from → to (``before``: what the
    undo restores; None: not installed), the SHA-256 of the tarball it deploys (the approval
    binds to it), and the playbook's own words.

    >>> d = host_diff("shop", "web1", "1.2", "ab12", {"version": "1.1", "running": True}, "")
    >>> d.summary, d.before, d.after
    ('shop 1.1 → 1.2', {'version': '1.1'}, {'version': '1.2', 'sha256': 'ab12'})
    >>> [f.name for f in d.fields]
    ['release', 'artifact sha256']
    >>> host_diff("shop", "web2", "1.1", "ab12", {"version": "1.1", "running": False}, "").summary
    'shop 1.1, not running: restarted'
    """
    before = state.get("version")
    if before == version:
        summary = f"{app} {version}, not running: restarted"
    else:
        summary = f"{app} {before or 'not installed'} → {version}"
    return Diff(
        target=f"{host}: {app}",
        kind="fields",
        summary=summary,
        fields=(
            FieldChange("release", before, version),
            FieldChange("artifact sha256", None, sha256),
        ),
        text=said,
        before={"version": before},
        after={"version": version, "sha256": sha256},
    )


def _host(diff: Diff) -> str:
    return diff.target.split(":")[0]


def states(result: PlaybookResult, key: str, hosts: list[str]) -> dict[str, dict[str, Any]]:
    """Each host's state as the play read it (``key``: app_before or app_after)."""
    return {h: dict(s) for h, s in result.evidence_under(key, hosts, "state").items()}


def _hosts(runbook: Any) -> list[str]:
    return list(runbook.params.hosts) or [f"{runbook.params.app} hosts"]


class AppMaintenance(LibraryRunbook[AppMaintenanceParams]):
    """Deploy a release of an application to its hosts, rolling, health-checked, rolled back
    on failure."""

    name = "app-maintenance"
    title = "Application maintenance: deploy a release, health-checked, rolled back on failure"
    instruction = "10 應用系統維護 application maintenance"
    expected_duration = timedelta(minutes=15)
    Params = AppMaintenanceParams

    def play_vars(self, ctx: RunContext, **more: Any) -> dict[str, Any]:
        return play_vars(
            evidence_of(ctx, "app_hosts"),
            self.p.health_path,
            app_version=self.p.version,
            app_artifacts=self.p.artifacts,
            app_health_retries=self.p.health_timeout_s,
            **more,
        )

    def read(self, ctx: RunContext, hosts: list[str]) -> dict[str, dict[str, Any]]:
        """Each host's state now (check mode, the deploy left out)."""
        extravars = self.play_vars(ctx, app_action="read", app_serial=ALL_AT_ONCE)
        result = self.ansible(ctx).check(PLAYBOOK, limit=hosts, extravars=extravars)
        return states(result, "app_before", hosts)

    # ------------------------------------------------------------------ 1. where it runs
    @check("The application's hosts: its NetBox service, in the inventory", targets=_hosts)
    def app_hosts(self, ctx: RunContext) -> dict[str, Any]:
        return placement(self.netbox(ctx), self.ansible(ctx), self.p.app, self.p.hosts)

    # ------------------------------------------------------------------ 2. the release
    @check("The release is in the artifacts directory, its checksum recorded", targets=_hosts)
    def release_available(self, ctx: RunContext) -> dict[str, Any]:
        return artifact_of(Path(self.p.artifacts), self.p.app, self.p.version)

    # ------------------------------------------------------------------ 3. deploy
    @change(
        "Deploy the release, one host at a time, each health-checked",
        targets=_hosts,
        duration=timedelta(minutes=10),
        undo_on_failure=True,  # the undo returns every planned host to its release before
    )
    def plan_release(self, ctx: RunContext) -> list[Diff]:
        hosts = list(evidence_of(ctx, "app_hosts")["hosts"])
        extravars = self.play_vars(ctx, app_serial=ALL_AT_ONCE)  # check mode: nothing rolls
        result = self.ansible(ctx).check(PLAYBOOK, limit=hosts, extravars=extravars)
        before = states(result, "app_before", hosts)
        sha256 = str(evidence_of(ctx, "release_available")["sha256"])
        said: dict[str, list[str]] = {}
        for task in result.tasks:
            if task.changed:
                lines = [d.text or d.summary for d in task.diffs] or [task.task]
                said.setdefault(task.host, []).extend(lines)
        return [
            host_diff(self.p.app, h, self.p.version, sha256, before[h], "\n".join(said[h]))
            for h in hosts
            if h in said
        ]

    @plan_release.apply
    def deploy_release(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        hosts = [_host(d) for d in diffs]
        approved = {str(d.after["sha256"]) for d in diffs}  # the bytes the approval names
        if len(approved) != 1:
            raise VerificationError(f"the plan names {len(approved)} tarballs: {sorted(approved)}")
        extravars = self.play_vars(ctx, app_sha256=approved.pop())
        result = self.ansible(ctx).run(PLAYBOOK, limit=hosts, extravars=extravars)
        after = states(result, "app_after", hosts)
        return {
            **result.summary(),
            "releases": {
                _host(d): {
                    "before": d.before["version"],
                    "after": after[_host(d)].get("version"),
                    "health": health_line(after[_host(d)]),
                }
                for d in diffs
            },
        }

    @plan_release.verify
    def release_healthy(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        """The post-check: every host at the new release, running, its health URL 200."""
        now = self.read(ctx, [_host(d) for d in diffs])
        wrong = [
            f"{h}: {s.get('version')}, {'running' if s.get('running') else 'not running'}, "
            f"{health_line(s)}"
            for h, s in now.items()
            if not healthy(s, self.p.version)
        ]
        if wrong:
            raise VerificationError(
                f"post-check, {self.p.app} {self.p.version}: {'; '.join(wrong)}"
            )
        return True

    @plan_release.undo
    def roll_back_release(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        restore = {_host(d): d.before["version"] or "" for d in diffs}
        extravars = self.play_vars(ctx, app_restore=restore, app_serial=ALL_AT_ONCE)
        result = run_restore(
            self.ansible(ctx), PLAYBOOK, list(restore), extravars,
            f"{self.p.app} back to the releases before", f"-e {shlex.quote(json.dumps(extravars))}",
        )  # fmt: skip
        now = states(result, "app_after", list(restore))
        wrong = [
            f"{h}: {now[h].get('version') or 'not installed'}, was {v or 'not installed'}"
            + (f", {health_line(now[h])}" if v else "")
            for h, v in restore.items()
            if (now[h].get("version") or "") != v or (v and not healthy(now[h]))
        ]
        if wrong:
            raise RollbackError(f"{self.p.app} not restored: {'; '.join(wrong)}")
        return {
            "rollback": result.outcome(),
            "releases": {
                h: {"version": now[h].get("version"), "health": health_line(now[h])}
                for h in restore
            },
        }
