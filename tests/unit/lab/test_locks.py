"""The lab's machine-wide lock: exclusive between processes, reentrant within one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runbooks.lab.errors import LabError
from runbooks.lab.locks import MachineLock

OTHER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from runbooks.lab.errors import LabError
    from runbooks.lab.locks import MachineLock
    lock = MachineLock(lambda: Path(sys.argv[1]), "test lock")
    try:
        with lock(timeout=float(sys.argv[2])):
            print("got it")
    except LabError as exc:
        print(exc)
    """
)


def other_process(path: Path, timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OTHER, str(path), str(timeout)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def test_a_holder_goes_ahead_and_another_process_waits(tmp_path: Path) -> None:
    path = tmp_path / "lab.lock"
    lock = MachineLock(lambda: path, "test lock")
    with lock(), lock(), lock():  # reentrant: the holder's own operations go ahead
        said = other_process(path, 0.5)
    assert said == f"another process holds the test lock ({path})"
    assert other_process(path, 0.5) == "got it"  # released by the outermost exit


def test_released_after_an_error(tmp_path: Path) -> None:
    path = tmp_path / "lab.lock"
    lock = MachineLock(lambda: path, "test lock")
    with pytest.raises(LabError), lock(), lock():
        raise LabError("boom")
    assert other_process(path, 0.5) == "got it"
