"""The lab's software repository: what is missing, the index, the apt source it prints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runbooks.lab import software


def test_missing_until_indexed_and_fetched(tmp_path: Path) -> None:
    assert software.missing(["tree", "pv"], tmp_path) == ["tree", "pv"]  # no index yet
    (tmp_path / "Packages").write_text("")
    (tmp_path / "tree_2.1.0-1_amd64.deb").write_bytes(b"")
    assert software.missing(["tree", "pv"], tmp_path) == ["pv"]


@pytest.mark.skipif(shutil.which("dpkg-scanpackages") is None, reason="needs dpkg-dev")
def test_index_of_an_empty_repository(tmp_path: Path) -> None:
    software.index(tmp_path)
    assert (tmp_path / "Packages").read_text() == ""
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_cli_prints_the_apt_source_raw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`export RUNBOOKS_SOFTWARE_SOURCE="$(runbook lab software)"` must get the whole line,
    "[trusted=yes]" included (rich would take it for markup)."""
    from runbooks.cli import main

    repo = tmp_path / "software"
    repo.mkdir()
    (repo / "Packages").write_text("")
    for name in ("tree", "ncdu", "pv"):
        (repo / f"{name}_1_amd64.deb").write_bytes(b"")
    monkeypatch.setenv("RUNBOOKS_CACHE_DIR", str(tmp_path))
    assert main(["lab", "software"]) == 0
    assert capsys.readouterr().out == f"deb [trusted=yes] file:{repo} ./\n"
