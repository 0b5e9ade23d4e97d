"""software-install with stand-in gateways: a pretend apt on two hosts, no lab, no Ansible run.

The stand-in plays software_install.yml as the playbook does: each host's lines (name, dpkg
status and version, the repository's versions, dpkg --verify), then the action (in check mode
only what apt would say), then the lines again after it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from runbooks.config import NetBoxSettings
from runbooks.core.engine import Engine
from runbooks.core.errors import InputError
from runbooks.core.gateway import reads, writes
from runbooks.core.results import Diff, RunStatus, Status
from runbooks.core.store import RecordStore
from runbooks.gateways.ansible import AnsibleGateway
from runbooks.gateways.ansible_events import PlaybookResult, TaskResult
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.library.software_install import PLAYBOOK, SoftwareInstall
from tests.support.fake_ansible import FakeAnsible as SharedFakeAnsible
from tests.support.fake_ansible import Play, factory

SOURCE = "deb [trusted=yes] file:/srv/repo ./"
REPO = {"labtool": ["1.1-1", "1.0-1"], "tree": ["2.1.0-1"], "libtree0": ["1"]}
NEEDS = {"tree": ["libtree0"]}  # what apt installs along


class World:
    """The pretend hosts' packages, what the plays were asked, NetBox's journal."""

    def __init__(self, **installed: dict[str, str]) -> None:
        self.hosts: dict[str, dict[str, str]] = {h: {} for h in ("srv1", "srv2")}
        self.hosts.update(installed)
        self.repo = {k: list(v) for k, v in REPO.items()}
        self.tampered: set[str] = set()  # hosts whose packages' files were changed by hand
        self.fault: Callable[[World], None] | None = None  # once an action is applied
        self.plays: list[tuple[bool, tuple[str, ...], dict[str, Any]]] = []
        self.journal: list[tuple[int, str]] = []


def lines(world: World, host: str, names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        version = world.hosts[host].get(name)
        status = f"ii {version}" if version else ""
        changed = f"??5?????? /usr/bin/{name}" if version and host in world.tampered else ""
        out.append(f"{name}\t{status}\t{','.join(world.repo.get(name, []))}\t{changed}")
    return out


def apt(world: World, host: str, ev: Mapping[str, Any]) -> tuple[dict[str, str | None], str]:
    """What apt does on one host: the new versions (None: removed) and its words."""
    now = world.hosts[host]
    wanted: dict[str, str | None] = {}
    action = ev["software_action"]
    if action == "restore":
        spec = ev["software_restore"][host]
        wanted |= {s.split("=")[0]: s.split("=")[1] for s in spec["install"]}
        wanted |= dict.fromkeys(spec["remove"])
    for spec in ev["software_packages"] if action != "restore" else []:
        name, _, version = spec.partition("=")
        if name not in world.repo:
            raise LookupError(f"No package matching '{name}' is available")
        if action == "remove":
            wanted[name] = None
        elif version:
            wanted[name] = version
        elif action == "upgrade" and name in now:
            wanted[name] = world.repo[name][0]
        elif name not in now:
            wanted[name] = world.repo[name][0]
            wanted |= {d: world.repo[d][0] for d in NEEDS.get(name, []) if d not in now}
    changes = {n: v for n, v in wanted.items() if now.get(n) != v}
    new = [n for n, v in changes.items() if v and n not in now]
    said = f"The following NEW packages will be installed:\n  {' '.join(new)}\n" if new else ""
    return changes, said + f"{len(changes)} changed."


class FakeAnsible(SharedFakeAnsible[World]):
    def _fake_hosts(self) -> dict[str, dict[str, Any]]:
        return {h: {"ansible_host": "198.18.0.31", "role": "server"} for h in self.world.hosts}

    def _fake_play(self, play: Play) -> PlaybookResult:
        playbook, check, limit, extravars, tags = play
        assert playbook == PLAYBOOK
        ev = extravars
        self.world.plays.append((check, tuple(tags), ev))
        names = [s.split("=")[0] for s in ev["software_packages"]]
        tasks = []
        for host in limit:
            before = lines(self.world, host, names)
            tasks.append(task(host, "Versions", evidence={"software_versions": before}))
            if tags and "packages" not in tags:
                continue
            try:
                changes, said = apt(self.world, host, ev)
            except LookupError as exc:
                failed = TaskResult(host, "Packages | install", "play", "failed", msg=str(exc))
                return PlaybookResult(playbook, check, "failed", 2, (*tasks, failed))
            diff = Diff(target=f"{host}:Packages", kind="text", text=said)
            tasks.append(task(host, "Packages", bool(changes), diffs=(diff,) if changes else ()))
            if check:
                continue
            for name, version in changes.items():
                if version is None:
                    self.world.hosts[host].pop(name, None)
                else:
                    self.world.hosts[host][name] = version
                self.world.tampered.discard(host)  # the package's files written anew
            after = {
                "software_versions": before,
                "software_after": lines(self.world, host, names),
            }
            tasks.append(task(host, "Versions | after", evidence=after))
        if not check and ev["software_action"] != "restore" and self.world.fault:
            self.world.fault(self.world)
            self.world.fault = None
        return PlaybookResult(playbook, check, "successful", 0, tuple(tasks))


def task(host: str, name: str, changed: bool = False, **kw: Any) -> TaskResult:
    return TaskResult(host, name, "play", "changed" if changed else "ok", changed, **kw)


class FakeNetBox(NetBoxGateway):
    world: World

    @reads
    def find(self, obj_type: str, **filters: Any) -> list[dict[str, Any]]:
        if obj_type == "dcim.device":
            return [{"name": h, "id": i} for i, h in enumerate(self.world.hosts, 1)]
        return [
            {"comments": c} for i, c in self.world.journal if i == filters["assigned_object_id"]
        ]

    @writes
    def journal(
        self,
        obj_type: str,
        obj_id: int,
        comments: str,
        kind: str = "info",
        *,
        marker: str | None = None,
    ) -> dict[str, Any]:
        self.world.journal.append((obj_id, comments))
        return {"id": len(self.world.journal)}


def engine(tmp_path: Path, world: World) -> Engine:
    def nb(ctx: Any, key: str) -> NetBoxGateway:
        settings = NetBoxSettings("http://127.0.0.1:9", "nbt_" + secrets.token_hex(8) + ".x")
        gw = FakeNetBox(settings, ctx.mode, run_id=ctx.run_id)
        gw.world = world
        return gw

    return Engine(
        RecordStore(tmp_path / "r.sqlite3"),
        "olivia",
        gateway_factories={AnsibleGateway: factory(FakeAnsible, world), NetBoxGateway: nb},
    )


def book(**params: Any) -> SoftwareInstall:
    return SoftwareInstall(
        SoftwareInstall.parse_params({"hosts": "srv1,srv2", "source": SOURCE, **params})
    )


def fields(diff: Diff) -> list[tuple[str, Any, Any]]:
    return [(f.name, f.before, f.after) for f in diff.fields]


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"packages": "Tree!"}, "not a package name or name=version: Tree!"),
        ({"packages": "tree,tree=2"}, "named twice: tree"),
        ({"packages": "tree=2", "action": "remove"}, "remove takes package names only"),
        ({"packages": "tree", "action": "purge"}, "action"),
        ({"packages": "tree", "source": " "}, "give source="),
        ({"packages": ""}, "packages"),
    ],
)
def test_bad_parameters_are_one_line(params: dict[str, Any], said: str) -> None:
    with pytest.raises(InputError, match=said.replace("?", r"\?")) as caught:
        SoftwareInstall.parse_params({"hosts": "srv1", "source": SOURCE, **params})
    assert "\n" not in str(caught.value)


def test_the_source_defaults_to_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOKS_SOFTWARE_SOURCE", SOURCE)
    params = SoftwareInstall.parse_params({"hosts": "srv1", "packages": "tree, labtool=1.0-1"})
    assert params.source == SOURCE  # type: ignore[attr-defined]
    assert params.packages == ["tree", "labtool=1.0-1"]  # type: ignore[attr-defined]


def test_plan_shows_each_host_from_to_and_changes_nothing(tmp_path: Path) -> None:
    world = World(srv2={"labtool": "1.0-1"})
    plan = engine(tmp_path, world).plan(book(packages="labtool=1.0-1,tree"))
    assert plan.refusal is None, plan.refusal
    diffs = {d.target: d for d in {s.step: s for s in plan.steps}["plan_packages"].diffs}
    assert fields(diffs["srv1: packages"]) == [
        ("labtool", None, "1.0-1"),
        ("tree", None, "2.1.0-1"),
    ]
    assert fields(diffs["srv2: packages"]) == [("tree", None, "2.1.0-1")]
    # the undo removes what apt would install along (libtree0), restores nothing else
    assert diffs["srv2: packages"].before == {"tree": None, "libtree0": None}
    assert "NEW packages will be installed:\n  tree libtree0" in diffs["srv2: packages"].text
    assert diffs["srv1: packages"].summary == "install labtool 1.0-1; install tree 2.1.0-1"
    assert all(check for check, _, _ in world.plays)
    assert world.hosts == {"srv1": {}, "srv2": {"labtool": "1.0-1"}} and not world.journal


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"packages": "nosuch,tree"}, "not in the department's repository: nosuch"),
        ({"packages": "labtool=0.9"}, "labtool=0.9: the department's repository has labtool"),
        (
            {"packages": "labtool", "action": "upgrade"},
            "labtool is not installed on srv1: upgrade it? install it (action=install)",
        ),
    ],
)
def test_what_the_repository_lacks_is_refused_at_plan_time(
    tmp_path: Path, params: dict[str, Any], said: str
) -> None:
    plan = engine(tmp_path, World(srv2={"labtool": "1.0-1"})).plan(book(**params))
    assert plan.refusal is not None and said in plan.refusal, plan.refusal


def test_run_records_versions_before_and_after_then_nothing_to_change(tmp_path: Path) -> None:
    world = World(srv2={"labtool": "1.0-1"})
    eng = engine(tmp_path, world)
    result = eng.run(book(packages="labtool", action="upgrade", hosts="srv2"))
    assert result.status is RunStatus.SUCCEEDED, result.error
    done = {s.step: s for s in result.steps}
    assert done["plan_packages"].evidence["versions"] == {
        "srv2": {"labtool": {"before": "1.0-1", "after": "1.1-1"}}
    }
    assert world.hosts["srv2"] == {"labtool": "1.1-1"}
    [(_, witness)] = world.journal  # srv2's journal witnesses the run
    assert "**Software upgrade**" in witness and "srv2: packages: labtool 1.0-1 → 1.1-1" in witness
    again = eng.run(book(packages="labtool", action="upgrade", hosts="srv2"))
    steps = {s.step: s for s in again.steps}
    assert steps["plan_packages"].status is Status.NO_CHANGE
    assert steps["plan_witness"].status is Status.NO_CHANGE and len(world.journal) == 1
    assert eng.store.verify().ok


def test_a_failed_post_check_restores_every_host_at_its_versions_before(tmp_path: Path) -> None:
    world = World(
        srv1={"labtool": "1.0-1", "tree": "2.1.0-1"}, srv2={"labtool": "1.0-1", "tree": "2.1.0-1"}
    )
    world.fault = lambda w: w.tampered.add("srv2")
    eng = engine(tmp_path, world)
    result = eng.run(book(packages="labtool,tree", action="upgrade"))
    assert result.status is RunStatus.ROLLED_BACK
    assert result.error and "post-check: srv2 labtool: dpkg --verify: ??5??????" in result.error
    assert world.hosts == {
        "srv1": {"labtool": "1.0-1", "tree": "2.1.0-1"},
        "srv2": {"labtool": "1.0-1", "tree": "2.1.0-1"},
    }
    assert not world.tampered  # the downgrade wrote labtool's files anew
    [restore] = [ev for check, _, ev in world.plays if ev["software_action"] == "restore"]
    assert restore["software_restore"] == {
        "srv1": {"install": ["labtool=1.0-1"], "remove": []},
        "srv2": {"install": ["labtool=1.0-1"], "remove": []},
    }
    [undone] = [e for e in eng.store.entries(result.run_id) if e.kind == "undo.finished"]
    assert undone.payload["evidence"]["versions"]["srv2"] == {"labtool": "1.0-1"}


def test_undo_removes_new_packages_with_what_came_along(tmp_path: Path) -> None:
    world = World(srv1={"labtool": "1.0-1"})
    world.fault = lambda w: w.tampered.add("srv1")
    result = engine(tmp_path, world).run(book(packages="tree", hosts="srv1"))
    assert result.status is RunStatus.ROLLED_BACK
    assert world.hosts["srv1"] == {"labtool": "1.0-1"}  # tree and libtree0 removed
    [restore] = [ev for _, _, ev in world.plays if ev["software_action"] == "restore"]
    assert restore["software_restore"]["srv1"] == {"install": [], "remove": ["tree", "libtree0"]}


def test_undo_reinstalls_a_removed_package_at_its_version(tmp_path: Path) -> None:
    world = World(srv1={"labtool": "1.0-1"}, srv2={"labtool": "1.0-1"})
    world.fault = lambda w: w.hosts["srv2"].update(labtool="1.1-1")  # someone put it back
    result = engine(tmp_path, world).run(book(packages="labtool", action="remove"))
    assert result.status is RunStatus.ROLLED_BACK
    assert result.error and "post-check: srv2 labtool is 1.1-1, planned None" in result.error
    assert world.hosts == {"srv1": {"labtool": "1.0-1"}, "srv2": {"labtool": "1.0-1"}}


def test_an_undo_that_cannot_downgrade_says_so_in_the_plan_and_fails_loudly(
    tmp_path: Path,
) -> None:
    world = World(srv1={"labtool": "0.9-1"})  # a version the repository no longer holds
    eng = engine(tmp_path, world)
    plan = eng.plan(book(packages="labtool", action="upgrade", hosts="srv1"))
    [diff] = {s.step: s for s in plan.steps}["plan_packages"].diffs
    assert diff.summary == (
        "labtool 0.9-1 → 1.1-1. The undo cannot restore labtool 0.9-1: the repository no "
        "longer holds it"
    )
    world.fault = lambda w: w.tampered.add("srv1")
    result = eng.run(book(packages="labtool", action="upgrade", hosts="srv1"))
    assert result.status is RunStatus.ROLLBACK_FAILED
    [failed] = [e for e in eng.store.entries(result.run_id) if e.kind == "undo.failed"]
    assert "not restored: srv1 labtool is 1.1-1, was 0.9-1" in failed.payload["error"]
    assert "the repository no longer holds srv1 labtool 0.9-1" in failed.payload["error"]
