"""The department's software repository, as the lab mirrors it: a flat apt repository.

Lab hosts have no network, so what a playbook installs must come from a repository they can
read. ``software:`` in inventory/lab.yml lists the Debian packages the department's repository
holds (the PC standard set, server packages); `ensure()` fetches each once with
``apt-get download`` into ``cache_dir()/software`` (kept across runs, like the NetBox venv) and
indexes them with ``dpkg-scanpackages``. Every lab host sees the cache directory through its
overlay root, so the apt source ``deb [trusted=yes] file:<dir> ./`` works inside each host.

    runbook lab software      # scripts/setup runs it; `runbook lab up` fetches what is missing
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from runbooks.lab import paths, topology
from runbooks.lab.errors import LabError

log = logging.getLogger(__name__)

INDEX = "Packages"


def repo_dir() -> Path:
    return paths.cache_dir() / "software"


def source_line(directory: Path | None = None) -> str:
    """The apt source a lab host uses for the department's repository."""
    return f"deb [trusted=yes] file:{directory or repo_dir()} ./"


def missing(packages: Sequence[str], directory: Path | None = None) -> list[str]:
    """The packages with no .deb in the repository, or all when it has no index yet."""
    where = directory or repo_dir()
    if not (where / INDEX).is_file():
        return list(packages)
    return [p for p in packages if not any(where.glob(f"{p}_*.deb"))]


def ensure(
    packages: Sequence[str] | None = None,
    directory: Path | None = None,
    progress: Callable[[str], None] = log.info,
) -> list[str]:
    """Fetch what the repository lacks and index it; returns the packages fetched."""
    wanted = list(packages if packages is not None else topology.load().software)
    where = directory or repo_dir()
    todo = missing(wanted, where)
    if not todo:
        return []
    where.mkdir(parents=True, exist_ok=True)
    fetch = [p for p in todo if not any(where.glob(f"{p}_*.deb"))]
    if fetch:
        progress(f"software repository: fetching {', '.join(fetch)}")
        if _download(fetch, where) != 0:
            _run(["apt-get", "update", "-qq"], where)  # stale package lists: refresh, once
            if _download(fetch, where) != 0:
                raise LabError(
                    f"software repository: apt-get download {' '.join(fetch)} failed in {where}"
                )
    index(where)
    return todo


def index(directory: Path) -> None:
    """Write the flat repository's ``Packages`` index (atomically)."""
    try:
        done = subprocess.run(
            ["dpkg-scanpackages", "--multiversion", ".", "/dev/null"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError as exc:
        raise LabError(
            "software repository: dpkg-scanpackages is missing (apt install dpkg-dev)"
        ) from exc
    if done.returncode != 0:
        raise LabError(f"software repository: dpkg-scanpackages failed: {done.stderr.strip()}")
    tmp = directory / f".{INDEX}.tmp"
    tmp.write_text(done.stdout, encoding="utf-8")
    os.replace(tmp, directory / INDEX)


def _download(packages: list[str], directory: Path) -> int:
    # as root, apt's _apt sandbox user cannot write into a root-owned cache dir: say so
    return _run(
        ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *packages], directory
    )


def _run(argv: list[str], cwd: Path) -> int:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        log.warning("%s: %s", " ".join(argv[:2]), done.stderr.strip()[-400:])
    return done.returncode
