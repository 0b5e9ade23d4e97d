"""The department's software repository, as the lab mirrors it: a flat apt repository.

Lab hosts have no network, so what a playbook installs must come from a repository they can
read. ``software:`` in inventory/lab.yml lists the Debian packages the department's repository
holds (the PC standard set, server packages); `ensure()` fetches each once with
``apt-get download`` into ``cache_dir()/software`` (kept across runs, like the NetBox venv),
builds the lab's own package in two versions (`runbooks.lab.software_packages`: an upgrade to
show) and indexes them with ``dpkg-scanpackages``. Every lab host sees the cache directory
through its overlay root, so the apt source ``deb [trusted=yes] file:<dir> ./`` works inside
each host.

    runbook lab software      # scripts/setup runs it; `runbook lab up` fetches what is missing
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from runbooks.lab import paths, software_packages, topology
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
    """Fetch what the repository lacks, build the lab's own package, index them; returns the
    packages fetched and the .deb files built."""
    wanted = list(packages if packages is not None else topology.load().software)
    where = directory or repo_dir()
    todo = missing(wanted, where)
    to_build = software_packages.missing(where)
    if not todo and not to_build:
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
    built = software_packages.build(where) if to_build else []
    if built:
        progress(f"software repository: built {', '.join(built)}")
    if todo or not (where / INDEX).is_file():
        index(where)
    else:  # only the lab's own package is new: add it to the index the fetched ones have
        index(where, software_packages.SUBDIR, append=True)
    return todo + built


def index(directory: Path, scan: str = ".", append: bool = False) -> None:
    """Write the flat repository's ``Packages`` index (atomically): of everything under it, or
    (``append``) the index it has plus the packages under ``scan``, a subdirectory."""
    try:
        done = subprocess.run(
            ["dpkg-scanpackages", "--multiversion", scan, "/dev/null"],
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
    text = done.stdout
    if append:  # the index's stanzas of other directories, then the scan's
        stanzas = (directory / INDEX).read_text(encoding="utf-8").split("\n\n")
        ours = (f"Filename: {scan}/", f"Filename: ./{scan}/")
        kept = [s.strip("\n") for s in stanzas if s.strip() and not any(o in s for o in ours)]
        text = "\n\n".join([*kept, text.strip("\n")]) + "\n"
    tmp = directory / f".{INDEX}.tmp"
    tmp.write_text(text, encoding="utf-8")
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
