"""The configuration history's file names: readable, and never one file for two devices;
its repository made once under a lock, by however many runs at once."""

from __future__ import annotations

import doctest
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dulwich import porcelain

from runbooks.core.errors import InputError
from runbooks.library import network_history
from runbooks.library.network_history import ConfigHistory, file_name


def test_doctests() -> None:
    assert doctest.testmod(network_history).failed == 0


def test_ordinary_names_stay_readable() -> None:
    assert [file_name(n) for n in ("core-a", "leaf1", "sw1.dc1")] == [
        "core-a.cfg",
        "leaf1.cfg",
        "sw1.dc1.cfg",
    ]


def test_devices_whose_names_give_one_file_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    history = ConfigHistory(tmp_path / "h")
    configs = {"core sw1": "a\n", "core/sw1": "b\n", "core_sw1": "c\n", "core-a": "d\n"}
    with pytest.raises(InputError) as refused:
        history.commit(configs, "run r1", "olivia")
    assert "\n" not in str(refused.value)
    assert "core_sw1.cfg: 'core sw1', 'core/sw1', 'core_sw1'" in str(refused.value)
    assert not (tmp_path / "h").exists()  # nothing written, no repository made

    done = history.commit({"core_sw1": "c\n", "core-a": "d\n"}, "run r2", "olivia")
    assert done.changed == ("core-a.cfg", "core_sw1.cfg")


def slow_init(monkeypatch: pytest.MonkeyPatch, started: threading.Event) -> None:
    """dulwich's init made slow: the folder holds ``.git`` a while before it is a
    repository, as while dulwich writes it; ``started`` is set then."""
    init = porcelain.init

    def slow(path: str, *args: Any, **kwargs: Any) -> Any:
        partial = Path(path) / ".git"
        partial.mkdir()
        started.set()
        time.sleep(0.3)
        partial.rmdir()
        return init(path, *args, **kwargs)

    monkeypatch.setattr(porcelain, "init", slow)


def test_two_first_runs_at_once_make_the_repository_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second run waits on the folder's lock while the first makes the repository, then
    commits into it: never "not a git repository and not empty"."""
    started = threading.Event()
    slow_init(monkeypatch, started)
    history = ConfigHistory(tmp_path / "h")
    failed: list[BaseException] = []

    def run(name: str) -> None:
        try:
            history.commit({name: f"hostname {name}\n"}, f"run {name}", "olivia")
        except BaseException as exc:
            failed.append(exc)

    first = threading.Thread(target=run, args=("r1",))
    first.start()
    assert started.wait(timeout=10)  # the first is making the repository
    run("r2")
    first.join(timeout=10)
    assert failed == []
    assert history.commit_naming("run r1") and history.commit_naming("run r2")
    assert sorted(history.files()) == ["r1.cfg", "r2.cfg"]


def test_another_process_making_the_repository_is_waited_for(tmp_path: Path) -> None:
    """As two `runbook run` processes: one makes the repository (slowly), the other waits."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "h")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "making"
        ConfigHistory(tmp_path / "h").commit({"r2": "hostname r2\n"}, "run r2", "olivia")
    finally:
        assert child.wait(timeout=30) == 0
    history = ConfigHistory(tmp_path / "h")
    assert history.commit_naming("run r1") and history.commit_naming("run r2")
    assert sorted(history.files()) == ["r1.cfg", "r2.cfg"]


CHILD = """
import sys, time
from pathlib import Path
from dulwich import porcelain
from runbooks.library.network_history import ConfigHistory

init = porcelain.init

def slow(path, *args, **kwargs):
    (Path(path) / ".git").mkdir()
    print("making", flush=True)
    time.sleep(0.5)
    (Path(path) / ".git").rmdir()
    return init(path, *args, **kwargs)

porcelain.init = slow
ConfigHistory(Path(sys.argv[1])).commit({"r1": "hostname r1\\n"}, "run r1", "olivia")
"""


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "h").write_text("mine")
    with pytest.raises(InputError, match="is not a directory"):
        ConfigHistory(tmp_path / "h").commit({"a": "x\n"}, "run r1", "olivia")
    assert (tmp_path / "h").read_text() == "mine"
