"""The configuration history's file names: readable, and never one file for two devices."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

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
