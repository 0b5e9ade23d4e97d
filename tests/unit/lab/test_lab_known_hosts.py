"""The lab's known_hosts: every node's host key by address and name, replaced (never
duplicated) when a node comes back with another key; `runbook lab env` points runbooks at it.
And the lab's error lives in the lab."""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runbooks.core import errors
from runbooks.lab import cli, labapp, node, software
from runbooks.lab.errors import LabError


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNBOOKS_LAB_DIR", str(tmp_path / "lab"))
    return tmp_path / "lab"


def host_key(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def found(known_hosts: Path, host: str) -> str:
    """The key ssh itself finds for host in the file ("" if none)."""
    done = subprocess.run(
        ["ssh-keygen", "-F", host, "-f", str(known_hosts)],
        capture_output=True,
        text=True,
        check=False,
    )
    return " ".join(ln.split(" ", 1)[1] for ln in done.stdout.splitlines() if ln[:1] != "#")


def pub(key: Path) -> str:
    return " ".join(key.with_name(key.name + ".pub").read_text().split()[:2])


def test_every_node_is_known_by_address_and_name_once(lab_dir: Path, tmp_path: Path) -> None:
    leaf1 = host_key(tmp_path / "leaf1" / "ssh_host_ed25519_key")
    db1 = host_key(tmp_path / "db1" / "ssh_host_ed25519_key")
    node.trust_host_key("198.18.0.21", "leaf1", leaf1)
    node.trust_host_key("198.18.0.41", "db1", db1)
    node.trust_host_key("198.18.0.21", "leaf1", leaf1)  # a restart: nothing doubles
    known = node.known_hosts_file()
    assert known == lab_dir / "ssh" / "known_hosts"
    assert len(known.read_text().splitlines()) == 2
    assert found(known, "198.18.0.21") == found(known, "leaf1") == pub(leaf1)
    assert found(known, "198.18.0.41") == pub(db1)
    assert stat.S_IMODE(known.stat().st_mode) == 0o644  # public keys only
    assert "PRIVATE" not in known.read_text()
    # the node comes back with a new key (a lab torn down and rebuilt): its line is replaced
    again = host_key(tmp_path / "leaf1-new" / "ssh_host_ed25519_key")
    node.trust_host_key("198.18.0.21", "leaf1", again)
    assert found(known, "198.18.0.21") == pub(again)
    assert found(known, "198.18.0.41") == pub(db1)
    assert len(known.read_text().splitlines()) == 2


def test_login_params_and_lab_env_point_at_the_labs_known_hosts(lab_dir: Path) -> None:
    known = str(lab_dir / "ssh" / "known_hosts")
    assert node.login_params("198.18.0.21")["known_hosts"] == known
    result = CliRunner().invoke(cli.app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    settings = json.loads(result.output)
    assert settings["RUNBOOKS_SSH_KNOWN_HOSTS"] == known
    assert settings["RUNBOOKS_DEVICE_KEY_FILE"] == str(lab_dir / "ssh" / "id_ed25519")
    shell = CliRunner().invoke(cli.app, ["env"])
    assert f"export RUNBOOKS_SSH_KNOWN_HOSTS={known}\n" in shell.output
    # the lab's values of settings production runbooks have no default for (issue 17)
    assert settings["RUNBOOKS_DOMAIN"] == "lab.example"
    assert settings["RUNBOOKS_BASELINE_AGENT_PORT"] == "9100"
    # software-install's source: the lab's department repository, quoted for the shell
    assert settings["RUNBOOKS_SOFTWARE_SOURCE"] == software.source_line()
    assert settings["RUNBOOKS_APP_ARTIFACTS"] == str(labapp.artifact_dir())  # app-maintenance's
    quoted = shlex.quote(software.source_line())
    assert f"export RUNBOOKS_SOFTWARE_SOURCE={quoted}\n" in shell.output


def test_the_lab_error_is_the_labs_and_still_one_runbook_error() -> None:
    assert not hasattr(errors, "LabError")  # runbooks.core knows nothing of the lab
    assert issubclass(LabError, errors.RunbookError)
    assert LabError.__module__ == "runbooks.lab.errors"
