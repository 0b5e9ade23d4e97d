"""A lock file shared by every process on the machine, reentrant within one process.

The lab is one per machine; test sessions and people share it. `up`, `down` and `reset` take
the lab's lock; a holder (`lab.held()`) keeps it for a while, and its own operations inside go
ahead while other processes wait.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from runbooks.lab.errors import LabError


class MachineLock:
    """``with lock():`` — an exclusive flock on ``path()``; reentrant in this process."""

    def __init__(self, path: Callable[[], Path], what: str) -> None:
        self.path = path
        self.what = what
        self._depth = 0
        self._guard = threading.RLock()

    @contextmanager
    def __call__(self, timeout: float | None = None) -> Iterator[None]:
        with self._guard:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            lock = self.path()
            lock.parent.mkdir(parents=True, exist_ok=True)
            with lock.open("a") as fh:
                deadline = None if timeout is None else time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if deadline is not None and time.monotonic() > deadline:
                            raise LabError(
                                f"another process holds the {self.what} ({lock})"
                            ) from None
                        time.sleep(0.2)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
                    fcntl.flock(fh, fcntl.LOCK_UN)
