"""app-maintenance without a lab: the release's artifact and checksum, the parameters, and runs
through the engine with NetBox and Ansible in memory (hosts as a table of releases): the plan
per host, a second plan with nothing to change, a failing release rolled back to the one
before on every planned host, a host that had none left with none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.errors import InputError
from runbooks.core.results import RunStatus, Status
from runbooks.gateways.ansible_settings import PLAYBOOKS
from runbooks.lab import labapp
from runbooks.library.app_maintenance import AppMaintenance, artifact_of
from tests.support.app_world import World, engine


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    where = tmp_path / "artifacts"
    where.mkdir()
    for version in ("1.0", "1.1", "1.2-bad"):
        (where / f"shop-{version}.tar.gz").write_bytes(f"release {version}".encode())
    return where


def deploy(artifacts: Path, version: str, **more: Any) -> AppMaintenance:
    raw = {"app": "shop", "version": version, "artifacts": str(artifacts), **more}
    return AppMaintenance(AppMaintenance.parse_params(raw))


def test_the_plan_says_per_host_from_to_and_a_second_plan_nothing(
    tmp_path: Path, artifacts: Path
) -> None:
    world = World(web1=("1.0", True), web2=(None, False))
    plan = engine(tmp_path, world).plan(deploy(artifacts, "1.1"))
    assert plan.refusal is None
    diffs = {d.target: d for d in next(s for s in plan.steps if s.step == "plan_release").diffs}
    assert {t: d.summary for t, d in diffs.items()} == {
        "web1: shop": "shop 1.0 → 1.1",
        "web2: shop": "shop not installed → 1.1",
    }
    assert world.hosts == {"web1": ("1.0", True), "web2": (None, False)}  # the plan: no write
    assert all(check for _, check, _ in world.calls)
    result = engine(tmp_path, world).run(deploy(artifacts, "1.1"))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert world.hosts == {"web1": ("1.1", True), "web2": ("1.1", True)}
    again = engine(tmp_path, world).run(deploy(artifacts, "1.1"))
    assert {s.step: s.status for s in again.steps}["plan_release"] is Status.NO_CHANGE


def test_a_failing_release_is_rolled_back_on_every_planned_host(
    tmp_path: Path, artifacts: Path
) -> None:
    world = World(web1=("1.1", True), web2=(None, False))
    eng = engine(tmp_path, world)
    result = eng.run(deploy(artifacts, "1.2-bad"))
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert result.error and "shop 1.2-bad failed on web1: rolled back to 1.1" in result.error
    assert world.hosts == {"web1": ("1.1", True), "web2": (None, False)}
    restore = [given["app_restore"] for _, check, given in world.calls if "app_restore" in given]
    assert restore == [{"web1": "1.1", "web2": ""}]  # web2 had none: it is left with none
    [undo] = [e for e in eng.store.entries(result.run_id) if e.kind == "undo.finished"]
    assert undo.payload["evidence"]["releases"]["web1"] == {
        "version": "1.1",
        "health": "/health answers 200 in 2.0 ms",
    }


def test_hosts_and_port_come_from_netbox_and_a_stranger_is_one_line(
    tmp_path: Path, artifacts: Path
) -> None:
    world = World(web1=("1.0", True), web2=("1.0", True))
    plan = engine(tmp_path, world).plan(deploy(artifacts, "1.1", hosts="web2"))
    placed = next(s for s in plan.steps if s.step == "app_hosts").evidence
    assert placed["port"] == 8080 and list(placed["hosts"]) == ["web2"]
    assert world.calls[-1][2]["app_targets"] == "web2"
    refused = engine(tmp_path, world).plan(deploy(artifacts, "1.1", hosts="db9"))
    assert refused.refusal and "db9: no 'shop' service there in NetBox" in refused.refusal
    world.services.append(
        {"id": 9, "name": "shop", "parent": {"__typename": "DeviceType", "name": "web9"},
         "port_mappings": ["tcp/8080"]}
    )  # fmt: skip
    unplaced = engine(tmp_path, world).plan(deploy(artifacts, "1.1", hosts="web9"))
    assert unplaced.refusal and (
        "not in the NetBox inventory (Linux platform, primary IP): web9" in unplaced.refusal
    )


def test_the_artifact_must_exist_and_match_its_checksum(artifacts: Path) -> None:
    with pytest.raises(InputError, match=r"shop-9.9.tar.gz is not in .* \(it has shop 1.0, "):
        artifact_of(artifacts, "shop", "9.9")
    found = artifact_of(artifacts, "shop", "1.1")
    assert found["listed_in_sha256sums"] is False and len(found["sha256"]) == 64
    (artifacts / "SHA256SUMS").write_text(f"{'0' * 64}  shop-1.1.tar.gz\n")
    with pytest.raises(InputError, match="differs from SHA256SUMS"):
        artifact_of(artifacts, "shop", "1.1")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"version": "1.1; reboot"}, "version: String should match"),
        ({"app": "Shop Front"}, "app: String should match"),
        ({"artifacts": " "}, "give artifacts=<the directory of release tarballs>"),
        ({"health_path": "health"}, "health_path: String should match"),
    ],
)
def test_bad_parameters_are_one_line(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        AppMaintenance.parse_params({"app": "shop", "version": "1.1", "artifacts": "/x", **given})


def test_the_lab_releases_are_the_same_bytes_everywhere(tmp_path: Path) -> None:
    assert labapp.ensure(tmp_path / "a") == [
        *map(labapp.artifact_name, labapp.RELEASES),
        "SHA256SUMS",
    ]
    assert labapp.ensure(tmp_path / "a") == []  # built once
    labapp.ensure(tmp_path / "b")
    for name in ["SHA256SUMS", *map(labapp.artifact_name, labapp.RELEASES)]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert artifact_of(tmp_path / "a", "labapp", "1.2-bad")["listed_in_sha256sums"]


def test_the_approval_binds_the_tarball_and_the_play_is_given_its_digest(
    tmp_path: Path, artifacts: Path
) -> None:
    world = World(web1=("1.0", True))
    plan = engine(tmp_path, world).plan(deploy(artifacts, "1.1"))
    [diff] = next(s for s in plan.steps if s.step == "plan_release").diffs
    digest = artifact_of(artifacts, "shop", "1.1")["sha256"]
    assert diff.after["sha256"] == digest
    (artifacts / "shop-1.1.tar.gz").write_bytes(b"a release nobody reviewed")
    replaced = engine(tmp_path, world).plan(deploy(artifacts, "1.1"))
    assert replaced.content_hash != plan.content_hash  # the approval does not cover it
    result = engine(tmp_path, world).run(deploy(artifacts, "1.1"))
    assert result.status is RunStatus.SUCCEEDED, result.error
    [deployed] = [given for _, check, given in world.calls if not check]
    assert deployed["app_sha256"] == artifact_of(artifacts, "shop", "1.1")["sha256"] != digest


ARTIFACT_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.import_role:
        name: app_release
        tasks_from: artifact
"""


def run_artifact_tasks(
    tmp_path: Path, artifacts: Path, sha256: str
) -> subprocess.CompletedProcess[str]:
    """The role's artifact.yml on this machine (connection local, everything under tmp_path)."""
    play = tmp_path / "artifact.yml"
    play.write_text(ARTIFACT_PLAY)
    (tmp_path / "opt" / "releases" / "1.1").mkdir(parents=True, exist_ok=True)
    given = {"app_name": "shop", "app_root": str(tmp_path / "opt"), "app_target": "1.1",
             "app_version": "1.1", "app_artifacts": str(artifacts), "app_sha256": sha256,
             "ansible_python_interpreter": sys.executable}  # fmt: skip
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_NOCOLOR": "1"}  # fmt: skip
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(play),
         "-e", json.dumps(given)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_the_play_unpacks_only_the_approved_tarball(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    labapp.ensure(artifacts)
    (artifacts / "shop-1.1.tar.gz").write_bytes(
        (artifacts / labapp.artifact_name("1.1")).read_bytes()
    )
    approved = artifact_of(artifacts, "shop", "1.1")["sha256"]
    unpacked = tmp_path / "opt" / "releases" / "1.1" / "release.json"
    (artifacts / "shop-1.1.tar.gz").write_bytes(
        (artifacts / labapp.artifact_name("1.0")).read_bytes()
    )
    refused = run_artifact_tasks(tmp_path, artifacts, approved)
    assert refused.returncode != 0, refused.stdout
    assert "the approved plan " + approved in refused.stdout
    assert not unpacked.exists()  # nothing unpacked
    (artifacts / "shop-1.1.tar.gz").write_bytes(
        (artifacts / labapp.artifact_name("1.1")).read_bytes()
    )
    done = run_artifact_tasks(tmp_path, artifacts, approved)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(unpacked.read_text())["version"] == "1.1"
