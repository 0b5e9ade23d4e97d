"""The lab NetBox's configuration, secrets, port and pid bookkeeping, without NetBox."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.core.errors import InputError
from runbooks.lab import netbox
from runbooks.lab.errors import LabError


@pytest.fixture
def lab_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNBOOKS_LAB_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOKS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_configuration_reads_its_secrets_from_private_files(lab_dirs):
    conf = netbox.write_configuration()
    text = conf.read_text()
    key = (netbox.root() / "secret_key").read_text()
    pepper = (netbox.root() / "pepper").read_text()
    assert len(key) >= 50 and len(pepper) >= 50
    assert key not in text and pepper not in text
    for path in (conf, netbox.root() / "secret_key", netbox.root() / "pepper"):
        assert _mode(path) == 0o600, path
    assert _mode(netbox.paths.state_dir()) == 0o700
    assert '"CONN_HEALTH_CHECKS": True' in text
    assert 'ALLOWED_HOSTS = ["127.0.0.1", "localhost"]' in text


def test_configuration_is_valid_python_naming_the_lab_database_and_redis_dbs(lab_dirs):
    conf = netbox.write_configuration()
    namespace: dict[str, object] = {}
    exec(compile(conf.read_text(), str(conf), "exec"), namespace)
    assert namespace["DATABASES"]["default"]["NAME"] == netbox._db()  # type: ignore[index]
    redis = namespace["REDIS"]
    assert redis["tasks"]["DATABASE"] == 10 and redis["caching"]["DATABASE"] == 11  # type: ignore[index]
    assert namespace["API_TOKEN_PEPPERS"][1] == (netbox.root() / "pepper").read_text()  # type: ignore[index]


def test_secrets_are_generated_once_and_kept(lab_dirs):
    netbox.write_configuration()
    first = (netbox.root() / "secret_key").read_text()
    netbox.write_configuration()
    assert (netbox.root() / "secret_key").read_text() == first


@pytest.mark.parametrize(
    ("raw", "ok"), [("8765", True), ("80", False), ("abc", False), ("70000", False)]
)
def test_port_comes_from_the_environment_and_is_checked(monkeypatch, raw, ok):
    monkeypatch.setenv("RUNBOOKS_NETBOX_PORT", raw)
    if ok:
        assert netbox.url() == f"http://127.0.0.1:{raw}"
    else:
        with pytest.raises(InputError, match="RUNBOOKS_NETBOX_PORT"):
            netbox.port()


def test_server_pid_is_trusted_only_while_the_recorded_process_lives(lab_dirs):
    netbox.root().mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True
    )
    try:
        netbox._pid_file().write_text(f"{proc.pid} {netbox._start_time(proc.pid)}")
        assert netbox._server_pid() == proc.pid
        netbox._pid_file().write_text(f"{proc.pid} 1")  # same pid, another start time: recycled
        assert netbox._server_pid() is None
        netbox._pid_file().write_text(f"{proc.pid} {netbox._start_time(proc.pid)}")
        netbox.stop()
        assert netbox._start_time(proc.pid) is None  # gone (and reaped by stop)
        assert not netbox._pid_file().exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stop_without_a_recorded_server_does_nothing(lab_dirs):
    netbox.stop()  # no pid file: nothing to stop, nothing raised


def test_credentials_before_up_say_what_to_do(lab_dirs):
    with pytest.raises(LabError, match="lab up"):
        netbox.credentials("operator")


def test_find_python_returns_an_interpreter_of_at_least_3_12():
    python = netbox.find_python()
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2] >= (3, 12))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "True"
    assert os.access(python, os.X_OK)


def test_an_instance_has_its_own_databases_state_and_redis(lab_dirs, monkeypatch):
    main = (netbox._db(), netbox._db_seeded(), netbox.root(), netbox._redis_dbs())
    assert main[0] == "runbooks_lab_netbox" and main[3] == (10, 11)
    monkeypatch.setenv("RUNBOOKS_NETBOX_INSTANCE", "ci2")
    assert netbox._db() == "runbooks_lab_netbox_ci2"
    assert netbox._db_seeded() == "runbooks_lab_netbox_ci2_seeded"
    assert netbox.root().name == "netbox-ci2"
    assert netbox._redis_dbs() in ((12, 13), (14, 15))


@pytest.mark.parametrize("name", ["Bad", "seeded", "a-b", "x" * 17])
def test_instance_names_are_checked(monkeypatch, name):
    monkeypatch.setenv("RUNBOOKS_NETBOX_INSTANCE", name)
    with pytest.raises(InputError, match="RUNBOOKS_NETBOX_INSTANCE"):
        netbox._db()
