"""17 軟件安裝 software install: install, upgrade or remove named packages on hosts from NetBox.

The procedure, in order (the playbook ``playbooks/software_install.yml`` does the host work and
also runs on its own with plain ``ansible-playbook``):

1. The hosts are in NetBox's inventory (netbox.netbox ``nb_inventory``), with an address.
2. The packages: on each host, the versions installed and the versions the department's
   repository holds are read; a package or version the repository does not hold stops the plan
   (packages come from that repository only: apt sees it alone, through a private view). In a
   plan this is Ansible's check mode: per host, each package from-version → to-version and
   what apt would do. The run records each package's version before and after. Its post-check:
   every host has the planned versions and ``dpkg --verify`` finds the packages' files intact.
   The undo puts each host back to its versions before: a new package is removed (with what
   apt installed for it), an upgraded one downgraded, a removed one reinstalled, each at its
   recorded version; where the repository no longer holds that version the plan says so and
   the undo reports it not restored.
3. Witness the run in each host's NetBox journal: what it changed there and the record's head.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from runbooks.core.context import RunContext
from runbooks.core.errors import (
    InputError,
    RejectedError,
    RollbackError,
    VerificationError,
)
from runbooks.core.results import Diff, FieldChange
from runbooks.core.runbook import Params
from runbooks.core.steps import change, check
from runbooks.gateways.ansible_events import PlaybookResult
from runbooks.gateways.ansible_settings import software_source
from runbooks.library.base import LibraryRunbook, comma_list
from runbooks.library.hosts_common import device_ids, in_inventory, run_restore
from runbooks.library.witness import HostJournalWitness, Witnessed

PLAYBOOK = "software_install.yml"
Action = Literal["install", "upgrade", "remove"]
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$")
_NEW = re.compile(r"The following NEW packages will be installed:\n((?:  .*\n?)+)")


class SoftwareInstallParams(Params):
    hosts: list[str] = Field(min_length=1, description="hosts by NetBox device name")
    packages: list[str] = Field(
        min_length=1,
        description="packages, each a name or name=version (packages=tree,labtool=1.0-1)",
    )
    action: Action = Field("install", description="install, upgrade or remove")
    reason: str = Field("software install", description="why, for the hosts' NetBox journal")
    source: str = Field(
        default_factory=software_source,
        validate_default=True,
        description="the department repository's apt source line (default: the setting "
        "software_source, RUNBOOKS_SOFTWARE_SOURCE)",
    )

    _comma_list = field_validator("hosts", "packages", mode="before")(comma_list)

    @field_validator("packages")
    @classmethod
    def _package_names(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not _PACKAGE.match(p)]
        if bad:
            raise ValueError(f"not a package name or name=version: {', '.join(bad)}")
        names = [name_of(p) for p in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"named twice: {', '.join(twice)}")
        return value

    @field_validator("source")
    @classmethod
    def _source_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "give source=<the department repository's apt source line> or set the "
                "setting software_source (RUNBOOKS_SOFTWARE_SOURCE)"
            )
        return value.strip()

    @model_validator(mode="after")
    def _remove_takes_names(self) -> SoftwareInstallParams:
        if self.action == "remove" and any("=" in p for p in self.packages):
            raise ValueError("remove takes package names only, no version")
        return self


def name_of(spec: str) -> str:
    """The package's name, without its version.

    >>> name_of("labtool=1.0-1"), name_of("tree")
    ('labtool', 'tree')
    """
    return spec.partition("=")[0]


@dataclass(frozen=True)
class Package:
    """One package on one host, as the playbook read it."""

    name: str
    installed: str | None  # the installed version; None: not installed
    available: tuple[str, ...]  # the repository's versions, newest first (apt-cache madison)
    changed_files: str = ""  # what dpkg --verify finds changed since it was installed


def parse_versions(lines: list[str]) -> dict[str, Package]:
    """The playbook's lines (name, dpkg status and version, repository versions, dpkg --verify).

    >>> p = parse_versions(["labtool\\tii 1.0-1\\t1.1-1,1.0-1\\t", "pv\\trc 1.6\\t\\t"])
    >>> p["labtool"].installed, p["labtool"].available, p["pv"].installed, p["pv"].available
    ('1.0-1', ('1.1-1', '1.0-1'), None, ())
    """
    out = {}
    for line in lines:
        name, status, available, changed = [*line.split("\t"), "", "", ""][:4]
        state, _, version = status.partition(" ")
        installed = version.strip() if len(state) >= 2 and state[1] == "i" else None
        out[name] = Package(
            name, installed, tuple(v for v in available.split(",") if v), changed.strip()
        )
    return out


def target_version(action: str, spec: str, package: Package) -> str | None:
    """The version apt is to leave: a named one, the repository's newest, or none (removed).

    >>> p = Package("labtool", "1.0-1", ("1.1-1", "1.0-1"))
    >>> target_version("install", "labtool", p), target_version("upgrade", "labtool", p)
    ('1.0-1', '1.1-1')
    >>> target_version("install", "labtool=1.1-1", p), target_version("remove", "labtool", p)
    ('1.1-1', None)
    """
    if action == "remove":
        return None
    _, _, version = spec.partition("=")
    if version:
        return version
    if action == "install" and package.installed:
        return package.installed
    return package.available[0] if package.available else None


def refusal(action: str, specs: list[str], hosts: dict[str, dict[str, Package]]) -> str | None:
    """Why the plan cannot go on, in one line, or None.

    >>> lt = Package("labtool", None, ("1.1-1", "1.0-1"))
    >>> refusal("install", ["labtool=0.9"], {"web1": {"labtool": lt}})
    "labtool=0.9: the department's repository has labtool 1.1-1, 1.0-1 only"
    >>> refusal("upgrade", ["labtool"], {"web1": {"labtool": lt}})
    'labtool is not installed on web1: upgrade it? install it (action=install)'
    """
    unknown = sorted(
        {name_of(s) for s in specs for h in hosts.values() if not h[name_of(s)].available}
    )
    if unknown:
        return f"not in the department's repository: {', '.join(unknown)}"
    for spec in specs:
        name, _, version = spec.partition("=")
        for host, packages in sorted(hosts.items()):
            package = packages[name]
            if version and version not in package.available:
                have = ", ".join(package.available)
                return f"{spec}: the department's repository has {name} {have} only"
            if action == "upgrade" and package.installed is None:
                return f"{name} is not installed on {host}: upgrade it? install it (action=install)"
    return None


def new_packages(apt_said: str) -> list[str]:
    """The packages apt would install anew (the named ones and what they need).

    >>> new_packages("The following NEW packages will be installed:\\n  labtool tree\\n0 upgraded")
    ['labtool', 'tree']
    """
    found = _NEW.search(apt_said)
    return found.group(1).split() if found else []


def host_diff(
    host: str, action: str, specs: list[str], packages: dict[str, Package], apt_said: str
) -> Diff:
    """What apt would do on ``host``: each package from-version → to-version; ``before`` holds
    the versions the undo restores (None: not installed before), ``after`` the planned ones and
    what the undo could not restore (a version the repository no longer holds)."""
    fields, before, after, lost = [], {}, {}, []
    for spec in specs:
        package = packages[name_of(spec)]
        planned = target_version(action, spec, package)
        if planned == package.installed:
            continue
        fields.append(FieldChange(package.name, package.installed, planned))
        before[package.name], after[package.name] = package.installed, planned
        if package.installed and package.installed not in package.available:
            lost.append(package.name)
    for extra in new_packages(apt_said):  # what apt installs for them: the undo removes it
        before.setdefault(extra, None)
    summary = "; ".join(_says(f) for f in fields)
    if lost:
        summary += (
            f". The undo cannot restore {', '.join(f'{n} {before[n]}' for n in lost)}: "
            "the repository no longer holds it"
        )
    return Diff(
        target=f"{host}: packages",
        kind="fields",
        summary=summary or f"apt: {' '.join(apt_said.split())}",
        fields=tuple(fields),
        text=apt_said,
        before=before,
        after={"versions": after, "undo_cannot_restore": lost},
    )


def _says(change: FieldChange) -> str:
    """A package's change in words.

    >>> _says(FieldChange("labtool", "1.0-1", "1.1-1")), _says(FieldChange("pv", "1.6", None))
    ('labtool 1.0-1 → 1.1-1', 'remove pv 1.6')
    """
    if change.after is None:
        return f"remove {change.name} {change.before}"
    if change.before is None:
        return f"install {change.name} {change.after}"
    return f"{change.name} {change.before} → {change.after}"


def _host(diff: Diff) -> str:
    return diff.target.split(":")[0]


def versions(result: PlaybookResult, key: str, hosts: list[str]) -> dict[str, dict[str, Package]]:
    """Each host's packages as the play read them (``key``: before or after its action)."""
    read = result.evidence_under(key, hosts, "versions")
    return {h: parse_versions(list(lines)) for h, lines in read.items()}


def _hosts(runbook: Any) -> list[str]:
    return list(runbook.params.hosts)


class SoftwareInstall(HostJournalWitness, LibraryRunbook[SoftwareInstallParams]):
    """Install, upgrade or remove packages on hosts from NetBox, versions before and after."""

    name = "software-install"
    title = "Software install: install, upgrade or remove packages on hosts"
    instruction = "17 軟件安裝 software install"
    expected_duration = timedelta(minutes=15)
    Params = SoftwareInstallParams
    journaled = ("plan_packages",)
    journal_kind = "success"

    def extravars(self, **more: Any) -> dict[str, Any]:
        return {
            "software_targets": ",".join(self.p.hosts),
            "software_action": self.p.action,
            "software_packages": list(self.p.packages),
            "software_source": self.p.source,
            **more,
        }

    def read(self, ctx: RunContext, tags: list[str]) -> tuple[PlaybookResult, dict[str, Any]]:
        """A check-mode play and, per host, its packages; a package or version the repository
        lacks refuses the plan in one line."""
        try:
            result = self.ansible(ctx).check(
                PLAYBOOK, limit=self.p.hosts, tags=tags, extravars=self.extravars()
            )
        except RejectedError as exc:  # apt refuses a package it cannot find: say which
            said = exc.context.get("result")
            if not isinstance(said, PlaybookResult):
                raise
            self.refuse(said)
            raise
        self.refuse(result)
        return result, versions(result, "software_versions", self.p.hosts)

    def refuse(self, result: PlaybookResult) -> None:
        read = {
            h: parse_versions(list(e["software_versions"]))
            for h, e in result.evidence().items()
            if "software_versions" in e
        }
        why = refusal(self.p.action, list(self.p.packages), read) if read else None
        if why:
            raise InputError(why)

    # ------------------------------------------------------------------ 1. inventory
    @check("The hosts are in NetBox's inventory, with an address", targets=_hosts)
    def hosts_in_inventory(self, ctx: RunContext) -> dict[str, Any]:
        return in_inventory(self.ansible(ctx), self.p.hosts)

    # ------------------------------------------------------------------ 2. packages
    @change(
        "The packages installed, upgraded or removed, from the department's repository",
        targets=_hosts,
        duration=timedelta(minutes=10),
        undo_on_failure=True,  # the undo restores each host's recorded versions
    )
    def plan_packages(self, ctx: RunContext) -> list[Diff]:
        result, hosts = self.read(ctx, ["packages"])
        said: dict[str, str] = {}
        for task in result.tasks:
            if task.changed:
                said[task.host] = "\n".join(d.text for d in task.diffs if d.text)
        diffs = [
            host_diff(h, self.p.action, list(self.p.packages), hosts[h], said.get(h, ""))
            for h in self.p.hosts
        ]
        return [d for d in diffs if d.fields or _host(d) in said]

    @plan_packages.apply
    def apply_packages(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        changed = [_host(d) for d in diffs]
        result = self.ansible(ctx).run(
            PLAYBOOK, limit=changed, tags=["packages"], extravars=self.extravars()
        )
        before = versions(result, "software_versions", changed)
        after = versions(result, "software_after", changed)
        return {
            **result.summary(),
            "versions": {
                h: {
                    n: {"before": p.installed, "after": after[h][n].installed}
                    for n, p in before[h].items()
                }
                for h in before
            },
        }

    @plan_packages.verify
    def packages_in_place(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        """The post-check: the planned versions on every host, their files intact."""
        _, hosts = self.read(ctx, ["versions"])
        wrong = []
        for diff in diffs:
            host = _host(diff)
            for name, planned in dict(diff.after["versions"]).items():
                package = hosts[host][name]
                if package.installed != planned:
                    wrong.append(f"{host} {name} is {package.installed}, planned {planned}")
                elif package.changed_files:
                    wrong.append(f"{host} {name}: dpkg --verify: {package.changed_files}")
        if wrong:
            raise VerificationError(f"post-check: {'; '.join(wrong)}")
        return True

    @plan_packages.undo
    def restore_packages(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        restore: dict[str, dict[str, list[str]]] = {}
        lost = []
        for diff in diffs:
            host = _host(diff)
            cannot = set(diff.after.get("undo_cannot_restore") or [])
            lost += [f"{host} {n} {diff.before[n]}" for n in sorted(cannot)]
            restore[host] = {
                "install": [f"{n}={v}" for n, v in diff.before.items() if v and n not in cannot],
                "remove": [n for n, v in diff.before.items() if v is None],
            }
        names = sorted({n for d in diffs for n in d.before})
        extravars = self.extravars(
            software_action="restore", software_packages=names, software_restore=restore
        )
        result = run_restore(
            self.ansible(ctx), PLAYBOOK, list(restore), extravars,
            "restoring the versions before", f"-e {shlex.quote(json.dumps(extravars))}",
        )  # fmt: skip
        now = versions(result, "software_after", list(restore))
        wrong = [
            f"{_host(d)} {n} is {now[_host(d)][n].installed}, was {v}"
            for d in diffs
            for n, v in d.before.items()
            if now[_host(d)][n].installed != v
        ]
        if wrong:
            raise RollbackError(
                f"not restored: {'; '.join(wrong)}"
                + (f" (the repository no longer holds {', '.join(lost)})" if lost else "")
            )
        return {
            "rollback": result.outcome(),
            "versions": {h: {n: p.installed for n, p in now[h].items()} for h in restore},
        }

    # ------------------------------------------------------------------ 3. journal
    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        headline = f"**Software {self.p.action}** ({self.p.reason}): {', '.join(self.p.packages)}"
        ids = device_ids(self.netbox(ctx), self.p.hosts)
        return [Witnessed("dcim.device", i, h, headline) for h, i in ids.items()]

    @change("Witness the run in the hosts' NetBox journal", targets=_hosts)
    def plan_witness(self, ctx: RunContext) -> list[Diff]:
        return self.journal_diffs(ctx)

    @plan_witness.apply
    def write_witness(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return self.write_journal(ctx, diffs)

    @plan_witness.verify
    def witness_written(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.journal_written(ctx, diffs)

    @plan_witness.undo
    def witness_withdrawn(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.remove_journal(ctx, diffs)
