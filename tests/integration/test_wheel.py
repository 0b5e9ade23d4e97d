"""The wheel: built from the repository, installed into a new venv in a temporary directory
with no checkout on its path, `runbook` lists and shows the runbooks, finds its playbooks, and
(with the lab) plans server-maintenance against the lab's NetBox and hosts, and takes a change
(rack-in) through plan, review and approval by two other people, run and record.

Marked slow: building and installing take about half a minute (pip's cache warm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# what the runbooks wheel needs that PyPI does not have: the rules package beside it, and the
# FRR driver a department with FRR devices installs (the lab's leaves and spines)
LOCAL_WHEELS = (".", "plugins/runbooks-rules", "plugins/napalm-frr")


def _sources(into: Path) -> Path:
    """The repository's files (tracked or new, not ignored) copied, so the build writes
    nothing into the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = REPO / name
        if src.is_file():
            dst = into / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return into


def _clean_env(home: Path) -> dict[str, str]:
    """No checkout on the path, no RUNBOOKS_* of the session running the tests."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNBOOKS_", "PYTHON", "VIRTUAL_ENV", "NETBOX_"))
    }
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and not Path(p).is_relative_to(REPO)
    )
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The venv's bin directory, runbooks installed from its freshly built wheel."""
    root = tmp_path_factory.mktemp("wheel")
    src = _sources(root / "src")
    dist = root / "dist"
    for project in LOCAL_WHEELS:
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src / project)],
            check=True,
            capture_output=True,
        )
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["napalm_frr", "runbooks", "runbooks_rules"]
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    bin_dir = root / "venv" / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", *map(str, wheels)],
        check=True,
        capture_output=True,
        env=_clean_env(root),
    )
    shutil.rmtree(src)  # what runs from here on cannot be reading the copy
    yield bin_dir


def runbook(bin_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    home = bin_dir.parent.parent / "home"
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [str(bin_dir / "runbook"), *args],
        capture_output=True,
        text=True,
        cwd=home,
        env={**_clean_env(home), **(env or {})},
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    token = (env or {}).get("RUNBOOKS_NETBOX_TOKEN")
    assert not token or token not in done.stdout + done.stderr
    return done.stdout


def test_the_installed_runbook_lists_and_shows_without_the_checkout(installed: Path) -> None:
    where = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import runbooks; from runbooks.gateways import ansible_settings as a; "
            "print(runbooks.__file__); print(a.PLAYBOOKS); print(a.NETBOX_INVENTORY)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(installed),
        cwd=installed,
    ).stdout.split()
    assert all(not Path(p).is_relative_to(REPO) for p in where), where
    playbooks, inventory = Path(where[1]), Path(where[2])
    assert (playbooks / "server_maintenance.yml").is_file()
    assert (playbooks / "roles" / "baseline" / "templates" / "motd.j2").is_file()
    assert (playbooks / "roles" / "pc_facts" / "files" / "pc_facts.py").is_file()
    assert inventory.is_file()
    listed = runbook(installed, "list")
    for name in ("db-upgrade", "pc-install", "rack-in", "rack-out", "server-maintenance"):
        assert name in listed
    assert "param hosts" in runbook(installed, "show", "server-maintenance")
    assert "(default; RUNBOOKS_REDIS_URL)" in runbook(installed, "config", "show")
    # the shell's TAB (Typer's completion) offers the installed runbooks' names
    tab = {
        "_RUNBOOK_COMPLETE": "complete_bash",
        "COMP_WORDS": "runbook plan rack-",
        "COMP_CWORD": "2",
    }
    offered = runbook(installed, env=tab).split()
    assert {"rack-in", "rack-out"} <= set(offered)
    assert all(n.startswith("rack-") for n in offered)


@pytest.mark.lab
def test_the_installed_runbook_plans_and_runs_changes_against_the_lab(installed: Path) -> None:
    """config check and a plan of server-maintenance; then a change end to end, each person at
    a home of their own: olivia plans the rack-in of the planned leaf (the cheapest runbook
    that changes the lab: NetBox, the leaf's and its peers' configurations), rachel reviews it,
    arthur approves it (separation of duties), olivia runs it; her record shows the run
    finished, and the spine reaches the leaf's loopback. The lab is reset first."""
    from runbooks.lab import frr, lab, netbox, topology

    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in subprocess.run(
            [sys.executable, "-m", "runbooks.cli", "lab", "env"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    )
    homes = installed.parent.parent

    def person(role: str) -> dict[str, str]:
        url, token = netbox.credentials(role)
        return env | {
            "RUNBOOKS_NETBOX_URL": url,
            "RUNBOOKS_NETBOX_TOKEN": token,
            "HOME": str(homes / f"home-{role}"),
        }

    olivia, rachel, arthur = person("operator"), person("reviewer"), person("approver")
    lab_map = topology.load()
    leaf = next(d for d in lab_map.devices if d.status == "planned" and d.role == "leaf")
    spine = next(d for d in lab_map.devices if d.status == "active" and d.role == "spine")
    with lab.held():  # the seeded state: the leaf is still planned
        checked = runbook(installed, "config", "check", env=olivia)
        assert "the token of olivia" in checked
        planned = runbook(
            installed,
            "plan",
            "server-maintenance",
            "hosts=srv1",
            "packages=pv",
            "agent_port=9100",
            "--no-save",
            env=olivia,
        )
        assert "srv1:/etc/motd" in planned
        assert "plan hash" in planned

        window = ("--window-start", "-1m", "--window-end", "+2h")
        change = json.loads(
            runbook(
                installed, "plan", "rack-in", f"device={leaf.name}", *window, "--json", env=olivia
            )
        )
        assert change["change"] and change["refusal"] is None, change
        signed = (change["change"], "--hash", change["hash"])
        runbook(installed, "review", signed[0], "--accept", *signed[1:], env=rachel)
        runbook(installed, "approve", *signed, env=arthur)
        ran = json.loads(runbook(installed, "run", signed[0], "--yes", "--json", env=olivia))
        assert ran["status"] == "succeeded", ran
        record = runbook(installed, "records", "show", ran["run_id"], env=olivia)
        finished = [line for line in record.splitlines() if " run.finished " in line]
        assert len(finished) == 1 and finished[0].endswith(" succeeded"), record
        ping = frr.run_on_device(
            spine.name,
            ["ping", "-c", "1", "-W", "2", "-I", str(spine.loopback), str(leaf.loopback)],
        )
        assert ping.returncode == 0, ping.stdout
