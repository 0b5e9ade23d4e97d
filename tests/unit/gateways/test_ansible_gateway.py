"""The Ansible gateway with real ansible-runner and ansible-playbook, against localhost with a
local connection; every playbook touches only files under tmp_path."""

from __future__ import annotations

import json
import logging
import os
import secrets as _random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from runbooks.core import secrets
from runbooks.core.errors import ConnectError, DryRunViolation, RejectedError, VerificationError
from runbooks.core.gateway import Mode
from runbooks.gateways.ansible import AnsibleGateway, AnsibleSettings

LOCAL = f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}"


def local(tmp_path: Path) -> str:
    """localhost, its "remote" temp dir under tmp_path too (else ~/.ansible/tmp)."""
    return f"{LOCAL} ansible_remote_tmp={tmp_path / 'remote-tmp'}"


WRITE_FILE = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Write the greeting
      ansible.builtin.copy:
        dest: "{{ out }}/greeting.txt"
        content: "hello {{ who }}\\n"
    - name: Report evidence
      ansible.builtin.set_fact:
        runbook_evidence: {who: "{{ who }}"}
"""

FAILING = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Must hold
      ansible.builtin.assert:
        that: [1 == 2]
        fail_msg: one is not two
"""

BROKEN = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Run a missing command
      ansible.builtin.command: /nonexistent/command
"""

SECRET_USE = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Write a config holding the password
      ansible.builtin.copy:
        dest: "{{ out }}/app.conf"
        content: "password={{ db_password }}\\n"
    - name: Echo the password (careless on purpose)
      ansible.builtin.command: echo "{{ db_password }}"
      changed_when: false
"""

SLEEPER = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Sleep in a process group of its own, like a remote command
      ansible.builtin.shell: |
        setsid sh -c 'echo $$ > {{ out }}/grandchild.pid; exec sleep 300' &
        echo $$ > {{ out }}/task.pid
        exec sleep 300
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name, text in {
        "write.yml": WRITE_FILE,
        "failing.yml": FAILING,
        "broken.yml": BROKEN,
        "secret.yml": SECRET_USE,
        "sleeper.yml": SLEEPER,
    }.items():
        (project / name).write_text(text)
    return project


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A HOME of its own: a run must leave nothing in it (no ~/.ansible, no known_hosts)."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    yield path
    assert list(path.iterdir()) == []


@pytest.fixture
def settings(tmp_path: Path, project: Path) -> AnsibleSettings:
    work = tmp_path / "work"
    work.mkdir()
    return AnsibleSettings(
        project_dir=project,
        inventory=local(tmp_path),
        work_dir=work,
        keep_artifacts=True,
        timeout_s=60,
    )


@pytest.fixture
def out(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


def test_check_shows_the_diff_and_changes_nothing(settings: AnsibleSettings, out: Path) -> None:
    gw = AnsibleGateway(Mode.PLAN, settings)
    result = gw.check("write.yml", extravars={"out": str(out), "who": "world"})
    assert result.check and result.status == "successful"
    [diff] = result.diffs
    assert diff.target == f"localhost:{out}/greeting.txt"
    assert "+hello world" in diff.text
    assert not (out / "greeting.txt").exists()
    assert result.evidence() == {"localhost": {"who": "world"}}
    gw.close()


def test_run_is_refused_in_a_plan(settings: AnsibleSettings, out: Path) -> None:
    with pytest.raises(DryRunViolation):
        AnsibleGateway(Mode.PLAN, settings).run("write.yml", extravars={"out": str(out)})
    assert not (out / "greeting.txt").exists()


def test_run_records_each_task_and_a_second_run_changes_nothing(
    settings: AnsibleSettings, out: Path
) -> None:
    gw = AnsibleGateway(Mode.RUN, settings)
    first = gw.run("write.yml", extravars={"out": str(out), "who": "world"})
    assert (out / "greeting.txt").read_text() == "hello world\n"
    write = first.tasks[0]
    assert (write.host, write.task, write.status, write.changed) == (
        "localhost",
        "Write the greeting",
        "changed",
        True,
    )
    assert write.duration_s is not None and write.duration_s > 0
    assert "+hello world" in write.diffs[0].text
    assert first.recap["localhost"]["changed"] == 1
    summary = json.loads(json.dumps(first.summary()))  # JSON-safe for the record
    assert summary["tasks"][0]["status"] == "changed"
    second = gw.run("write.yml", extravars={"out": str(out), "who": "world"})
    assert not second.changed and second.diffs == []
    gw.close()


def test_given_hosts_replace_the_inventory(
    settings: AnsibleSettings, out: Path, tmp_path: Path
) -> None:
    """A host NetBox does not list yet (a PC on its install bench): the playbook runs on the
    given hosts only, and the configured inventory is not even read."""
    from dataclasses import replace

    gw = AnsibleGateway(Mode.RUN, replace(settings, inventory="/nonexistent/inventory.yml"))
    bench = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_remote_tmp": str(tmp_path / "remote-tmp"),
    }
    result = gw.run(
        "write.yml", hosts={"bench1": bench}, extravars={"out": str(out), "who": "bench"}
    )
    assert [t.host for t in result.tasks if t.changed] == ["bench1"]
    assert (out / "greeting.txt").read_text() == "hello bench\n"
    assert result.evidence() == {"bench1": {"who": "bench"}}
    gw.close()


def test_failed_assertion_is_a_verification_error(settings: AnsibleSettings) -> None:
    with pytest.raises(VerificationError, match="one is not two") as info:
        AnsibleGateway(Mode.PLAN, settings).check("failing.yml")
    assert info.value.context["result"].failures[0].task == "Must hold"


def test_failed_module_is_rejected(settings: AnsibleSettings) -> None:
    with pytest.raises(RejectedError, match="Run a missing command"):
        AnsibleGateway(Mode.RUN, settings).run("broken.yml")


def test_unreachable_host_is_a_connect_error(settings: AnsibleSettings, out: Path) -> None:
    # loopback, a port nothing listens on: refused at once
    inventory = "srv9 ansible_host=127.0.0.1 ansible_port=9 ansible_user=nobody"
    gw = AnsibleGateway(Mode.RUN, AnsibleSettings(**{**settings.__dict__, "inventory": inventory}))
    with pytest.raises(ConnectError, match="unreachable: srv9") as info:
        gw.run("write.yml", extravars={"out": str(out), "who": "x"})
    assert info.value.context["hosts"] == ["srv9"]


def test_no_secret_in_any_file_record_or_log(
    settings: AnsibleSettings,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env_secret = "envtok-" + _random.token_hex(16)
    var_secret = "dbpw-" + _random.token_hex(16)
    monkeypatch.setenv("RUNBOOKS_TEST_API_TOKEN", env_secret)
    secrets.register_environment()
    caplog.set_level(logging.DEBUG)
    gw = AnsibleGateway(Mode.RUN, settings)
    result = gw.run("secret.yml", extravars={"out": str(out), "db_password": SecretStr(var_secret)})
    assert (out / "app.conf").read_text() == f"password={var_secret}\n"  # it did reach the host
    private = gw.last_private_dir
    assert private is not None
    files = [p for p in private.rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in files)
    assert len([p for p in files if "job_events" in p.parts]) >= 5
    for path in files:
        data = path.read_bytes()
        assert env_secret.encode() not in data, path
        assert var_secret.encode() not in data, path
    command = json.loads(next(p for p in files if p.name == "command").read_text())
    assert "RUNBOOKS_TEST_API_TOKEN" not in command["env"]
    record = json.dumps(result.summary())
    assert var_secret not in record and env_secret not in record
    assert "********" in record  # the diff was there, masked
    assert var_secret not in caplog.text and env_secret not in caplog.text
    # the extra-vars file (outside the private data dir, 0600, in memory) is gone
    [vars_file] = [a[1:] for a in command["command"] if a.startswith("@")]
    assert vars_file.endswith("extravars.json") and not Path(vars_file).exists()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_cancel_kills_the_whole_process_tree(settings: AnsibleSettings, out: Path) -> None:
    gw = AnsibleGateway(Mode.RUN, settings)
    outcome: dict[str, BaseException] = {}

    def play() -> None:
        try:
            gw.run("sleeper.yml", extravars={"out": str(out)})
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=play)
    thread.start()
    deadline = time.monotonic() + 30
    while not ((out / "task.pid").exists() and (out / "grandchild.pid").exists()):
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    time.sleep(0.2)
    pids = [int((out / f).read_text()) for f in ("task.pid", "grandchild.pid")]
    assert all(_alive(p) for p in pids)
    assert os.getpgid(pids[1]) != os.getpgid(pids[0])  # a process group of its own
    started = time.monotonic()
    gw.cancel()
    thread.join(15)
    assert not thread.is_alive()
    assert time.monotonic() - started < 10
    assert "cancelled" in str(outcome["error"])
    time.sleep(0.2)
    assert not any(_alive(p) for p in pids), "a process of the playbook survived the cancel"


def test_interrupt_in_the_caller_leaves_no_process_behind(
    settings: AnsibleSettings, out: Path
) -> None:
    """Ctrl-C (SIGINT -> KeyboardInterrupt in the main thread) while a playbook runs: the whole
    tree goes, and the interrupt propagates."""

    def interrupt_once_started() -> None:
        deadline = time.monotonic() + 30
        while not ((out / "task.pid").exists() and (out / "grandchild.pid").exists()):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_started, daemon=True).start()
    gw = AnsibleGateway(Mode.RUN, settings)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        gw.run("sleeper.yml", extravars={"out": str(out)})
    assert time.monotonic() - started < 30
    time.sleep(0.3)
    pids = [int((out / f).read_text()) for f in ("task.pid", "grandchild.pid")]
    assert not any(_alive(p) for p in pids)
