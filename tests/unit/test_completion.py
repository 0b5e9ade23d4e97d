"""Shell completion of `runbook` (Typer's): the shell's TAB runs the command with the completion
variables set, as the script `runbook --show-completion` prints does; subcommands complete, and
a runbook-name argument completes to the registered runbooks, the settings file's included."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.cli import main
from runbooks.core import registry
from tests.conftest import LEDGER


@pytest.fixture
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings file of the machine's user leaks into a completion."""
    monkeypatch.setenv("RUNBOOKS_CONFIG", str(tmp_path / "absent.toml"))


def complete_bash(
    line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """What bash offers for the last word of ``line`` (empty after a trailing space)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    monkeypatch.setenv("_RUNBOOK_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", line)
    monkeypatch.setenv("COMP_CWORD", str(cword))
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main([])
    assert done.value.code == 0
    return capsys.readouterr().out.split()


@pytest.mark.usefixtures("no_user_config")
def test_bash_completes_subcommands_and_runbook_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert complete_bash("runbook pl", monkeypatch, capsys) == ["plan"]
    assert complete_bash("runbook reco", monkeypatch, capsys) == ["records"]
    registered = list(registry.discover())
    assert complete_bash("runbook plan ", monkeypatch, capsys) == registered
    assert {"rack-in", "rack-out", "server-maintenance", "db-upgrade", "test-ledger"} <= set(
        registered
    )
    racks = complete_bash("runbook plan rack-", monkeypatch, capsys)
    assert racks == [n for n in registered if n.startswith("rack-")] and "rack-out" in racks
    assert complete_bash("runbook show server-m", monkeypatch, capsys) == ["server-maintenance"]
    assert complete_bash("runbook run db-up", monkeypatch, capsys) == ["db-upgrade"]


@pytest.mark.usefixtures("no_user_config")
def test_zsh_completes_runbook_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("_RUNBOOK_COMPLETE", "complete_zsh")
    monkeypatch.setenv("_TYPER_COMPLETE_ARGS", "runbook plan rack-")
    with pytest.raises(SystemExit):
        main([])
    answer = capsys.readouterr().out
    assert '"rack-in"' in answer and '"rack-out"' in answer
    assert "server-maintenance" not in answer


def test_the_settings_files_runbooks_complete_and_a_broken_file_completes_to_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'modules = "{LEDGER}"\n')  # the test runbook, named by the file only
    monkeypatch.delenv("RUNBOOKS_MODULES", raising=False)
    monkeypatch.setenv("RUNBOOKS_CONFIG", str(tmp_path / "absent.toml"))
    line = f"runbook --config {path} plan test-"
    assert complete_bash(line, monkeypatch, capsys) == ["test-ledger"]
    path.write_text("modules = [not toml\n")
    assert complete_bash(line, monkeypatch, capsys) == []
    assert complete_bash(f"runbook --config {path} pl", monkeypatch, capsys) == ["plan"]


def test_show_completion_prints_the_script_the_shell_sources(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    with pytest.raises(SystemExit) as done:
        main(["--show-completion", "bash"])
    assert done.value.code == 0
    script = capsys.readouterr().out
    assert "_RUNBOOK_COMPLETE=complete_bash" in script
    assert "complete -o default -F _runbook_completion runbook" in script
