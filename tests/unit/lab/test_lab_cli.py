"""`runbook lab …` without a lab: errors are one line, progress goes to stderr, status exits 1."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from runbooks.lab import cli, lab
from runbooks.lab.errors import LabError
from runbooks.lab.lab import Progress, Timings
from runbooks.lab.status import ComponentStatus


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_a_refused_up_is_one_line_and_exit_1(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(progress: Progress) -> Timings:
        progress("address check")
        raise LabError(
            "refusing to add lab addresses: route 198.18.0.0/16 dev eth1 overlaps "
            "lab prefix 198.18.0.0/24"
        )

    monkeypatch.setattr(lab, "up", refuse)
    result = runner.invoke(cli.app, ["up"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if "error" in ln]
    assert len(lines) == 1 and "refusing to add lab addresses" in lines[0]
    assert "Traceback" not in result.output


def test_up_reports_phases_as_json(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab, "up", lambda progress: Timings({"bridge": 0.1, "devices": 1.5}))
    result = runner.invoke(cli.app, ["up", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "action": "up",
        "seconds": {"bridge": 0.1, "devices": 1.5},
        "total": 1.6,
    }


def test_status_exits_1_when_a_component_is_silent(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        lab,
        "status",
        lambda: [
            ComponentStatus("bridge", True, "rblab-mgmt 198.18.0.1/24"),
            ComponentStatus("device leaf1", False, "not running"),
        ],
    )
    result = runner.invoke(cli.app, ["status", "--json"])
    assert result.exit_code == 1
    assert [c["ok"] for c in json.loads(result.stdout)] == [True, False]
    table = runner.invoke(cli.app, ["status"])
    assert "device leaf1" in table.output and "not running" in table.output
