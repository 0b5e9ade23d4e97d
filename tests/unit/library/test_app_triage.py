"""fault-application without a lab: labapp's release started here on 127.0.0.1, read by the
playbooks' host-side state script as Ansible runs it, and the diagnosis of what it read —
healthy, then answering errors (its state file corrupt), then stopped; each difference from
a healthy application named per host, and the parameters as one line each."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.errors import InputError
from runbooks.core.results import RunStatus, Status
from runbooks.gateways.ansible_settings import PLAYBOOKS
from runbooks.lab import labapp
from runbooks.library.fault_application import (
    TRIAGE,
    FaultApplication,
    FaultApplicationParams,
    app_findings,
    redacted,
    unread,
)
from runbooks.library.fault_common import RESTART
from tests.support.app_world import World, engine

STATE_SCRIPT = PLAYBOOKS / "roles" / "app_release" / "files" / "app_state.py"
_spec = importlib.util.spec_from_file_location("app_state", STATE_SCRIPT)
assert _spec is not None and _spec.loader is not None
SCRIPT = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(SCRIPT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Release:
    """labapp 1.1 unpacked under root/releases/1.1, current linked to it, run on a port."""

    def __init__(self, tmp: Path) -> None:
        labapp.ensure(tmp / "artifacts")
        self.root, self.data, self.log = tmp / "opt", tmp / "data", tmp / "log" / "labapp.log"
        release = self.root / "releases" / "1.1"
        release.mkdir(parents=True)
        with tarfile.open(tmp / "artifacts" / labapp.artifact_name("1.1")) as tar:
            tar.extractall(release, filter="data")
        (self.root / "current").symlink_to(release)
        self.data.mkdir()
        (self.data / "state.json").write_text('{"schema": 1}')
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(self.root / "current" / "labapp.py"), "--bind", "127.0.0.1",
             "--port", str(self.port), "--data", str(self.data), "--log", str(self.log)],
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("labapp did not start")

    def state(self) -> dict[str, Any]:
        """What the playbook's state script reads (no init script here: not installed)."""
        done = subprocess.run(
            [sys.executable, str(STATE_SCRIPT), "labapp-unit-test", str(self.root), "127.0.0.1",
             str(self.port), "/health", str(self.log), "3600", "20"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        state: dict[str, Any] = json.loads(done.stdout)
        running = self.proc.poll() is None
        # no init script nor pid file here: the process's own sockets, by the script's code
        sockets = SCRIPT.listening()
        own = SCRIPT.process_sockets(self.proc.pid) if running else set()
        mine = sorted(a for i, a in sockets.items() if i in own)
        return {**state, "installed": True, "running": running, "process_listens": mine}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def release(tmp_path: Path) -> Iterator[Release]:
    started = Release(tmp_path)
    yield started
    started.stop()


def findings(release: Release, state: dict[str, Any]) -> list[str]:
    p = FaultApplicationParams(app="labapp")
    return app_findings("labapp", "web1", "127.0.0.1", release.port, state, p)


def test_healthy_then_errors_then_stopped(release: Release) -> None:
    healthy = release.state()
    assert healthy["version"] == "1.1" and healthy["releases"] == ["1.1"]
    assert healthy["health"]["code"] == 200 and healthy["health"]["latency_ms"] > 0
    assert healthy["listening_on_port"] == [f"127.0.0.1:{release.port}"]
    assert healthy["process_listens"] == [f"127.0.0.1:{release.port}"]
    assert findings(release, healthy) == []
    assert unread("labapp", "web1", healthy) == []

    (release.data / "state.json").write_text("not json")  # the fault: it answers errors
    broken = release.state()
    assert broken["health"]["code"] == 500
    found = findings(release, broken)
    assert found[0] == "labapp on web1: /health answers 500 (healthy baseline 200)"
    assert found[1].startswith("labapp on web1: 1 error line(s) in its log, the last: ")
    assert "ERROR GET /health 500 state.json unreadable" in found[1]

    release.stop()
    down = release.state()
    assert down["listening_on_port"] == [] and down["health"]["code"] is None
    assert findings(release, down)[:3] == [
        "labapp on web1: its service is not running",
        f"labapp not listening on 127.0.0.1:{release.port} (web1)",
        f"labapp on web1: /health does not answer: {down['health']['error']} "
        "(healthy baseline 200)",
    ]


@pytest.mark.parametrize(
    ("change", "finding"),
    [
        ({"reachable": False, "why": "timed out"}, "web1 cannot be reached: timed out"),
        ({"installed": False}, "labapp on web1: not installed (no init script; release 1.1)"),
        ({"health": {"code": 200, "latency_ms": 2500.0}},
         "labapp on web1: /health took 2500.0 ms (healthy baseline ≤ 1000 ms)"),
        ({"process_listens": []}, "labapp on web1: 127.0.0.1:8080 is held by another process, "
         "not the service's"),
    ],
)  # fmt: skip
def test_each_difference_from_a_healthy_application_is_named(
    change: dict[str, Any], finding: str
) -> None:
    healthy = {
        "reachable": True, "installed": True, "running": True, "version": "1.1",
        "process_listens": ["127.0.0.1:8080"], "listening_on_port": ["127.0.0.1:8080"],
        "health": {"code": 200, "latency_ms": 3.0}, "log_errors": [],
    }  # fmt: skip
    p = FaultApplicationParams(app="labapp")
    assert app_findings("labapp", "web1", "127.0.0.1", 8080, {**healthy, **change}, p) == [finding]


@pytest.mark.parametrize("wildcard", ["0.0.0.0:8080", ":::8080", "[::]:8080"])
def test_a_listener_on_every_address_is_listening(wildcard: str) -> None:
    """A dual-stack application bound to [::] reads ``:::8080`` in the host's state."""
    healthy = {
        "reachable": True, "installed": True, "running": True, "version": "1.1",
        "process_listens": [wildcard], "listening_on_port": [wildcard],
        "health": {"code": 200, "latency_ms": 3.0}, "log_errors": [],
    }  # fmt: skip
    p = FaultApplicationParams(app="labapp")
    assert app_findings("labapp", "web1", "127.0.0.1", 8080, healthy, p) == []
    elsewhere = {**healthy, "listening_on_port": [wildcard.replace("8080", "8081")]}
    assert app_findings("labapp", "web1", "127.0.0.1", 8080, elsewhere, p) == [
        "labapp not listening on 127.0.0.1:8080 (web1)"
    ]


def test_log_lines_are_redacted_before_the_record() -> None:
    state = {"log_errors": ["2026-12-07T17:00:00+00:00 ERROR login token=abc123def for bob"],
             "log": "/var/log/x.log"}  # fmt: skip
    assert redacted(state) == {
        "log_errors": ["2026-12-07T17:00:00+00:00 ERROR login token=******** for bob"],
        "log": "/var/log/x.log",
    }
    assert redacted({"log_errors": None}) == {"log_errors": None}  # not read stays not read


def test_an_unreadable_log_is_said_not_checked() -> None:
    state = {"reachable": True, "log": "/var/log/x.log", "log_errors": None}
    assert unread("labapp", "web1", state) == ["labapp on web1: log /var/log/x.log not readable"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"max_latency_ms": 0}, "max_latency_ms: Input should be greater than 0"),
        ({"hosts": "web1,"}, None),
        ({"incident": "x" * 101}, "incident: String should have at most 100 characters"),
    ],
)
def test_parameters(given: dict[str, Any], message: str | None) -> None:
    if message is None:
        parsed = FaultApplication.parse_params({"app": "labapp", **given})
        assert isinstance(parsed, FaultApplicationParams) and parsed.hosts == ["web1"]
        return
    with pytest.raises(InputError, match=message):
        FaultApplication.parse_params({"app": "labapp", **given})


def test_the_restart_remedy_is_a_planned_change_then_the_health_url_answers(
    tmp_path: Path,
) -> None:
    world = World(web1=("1.1", False), web2=("1.1", True))
    triage = FaultApplication(FaultApplication.parse_params({"app": "shop", "incident": "INC-4"}))
    found = engine(tmp_path, world).run(triage)
    assert found.status is RunStatus.SUCCEEDED, found.error
    steps = {s.step: s for s in found.steps}
    assert steps["diagnosis"].evidence["findings"][0] == "shop on web1: its service is not running"
    assert steps["plan_remedy"].status is Status.NO_CHANGE  # no remedy named: only reads
    assert {(playbook, check) for playbook, check, _ in world.calls} == {(TRIAGE, True)}

    raw = {"app": "shop", "remedy": "restart-service"}
    remedy = FaultApplication(FaultApplication.parse_params(raw))
    plan = engine(tmp_path, world).plan(remedy)
    (planned,) = [s for s in plan.steps if s.step == "plan_remedy"]
    assert planned.title == "Remedy (restart-service): restart the service shop"
    assert [d.target for d in planned.diffs] == [
        f"{h}:Remedy | restart the service (init script)" for h in ("web1", "web2")
    ]
    assert world.hosts["web1"] == ("1.1", False)  # the plan restarted nothing
    result = engine(tmp_path, world).run(remedy)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert [s.step for s in result.steps if s.changed] == ["plan_remedy"]
    assert [(p, c) for p, c, _ in world.calls[-2:]] == [(RESTART, False), (TRIAGE, True)]
    assert world.hosts["web1"] == ("1.1", True)


def test_a_restart_that_leaves_the_health_url_failing_is_a_failed_verification(
    tmp_path: Path,
) -> None:
    world = World(web1=("1.2-bad", False))  # starts, but answers 500
    raw = {"app": "shop", "remedy": "restart-service", "health_timeout_s": 1}
    result = engine(tmp_path, world).run(FaultApplication(FaultApplication.parse_params(raw)))
    assert result.status is not RunStatus.SUCCEEDED
    assert result.error and "shop restarted but: web1: running, /health answers 500" in result.error
