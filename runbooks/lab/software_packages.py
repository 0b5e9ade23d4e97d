"""The lab's own packages in the department's repository: a tiny tool in two versions, so that
an upgrade (and its undo, a downgrade) can be shown without any network.

Debian's packages in the repository come in one version each (``apt-get download``); the
software-install runbook's upgrade needs an older and a newer one of the same package. `build`
makes ``labtool`` 1.0-1 and 1.1-1 with ``dpkg-deb`` (a shell script printing its version, with
the md5sums ``dpkg --verify`` checks) into the repository's ``lab/`` directory; the flat
repository's index covers it (`runbooks.lab.software.ensure`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from runbooks.lab.errors import LabError

SUBDIR = "lab"
PACKAGE = "labtool"
VERSIONS = ("1.0-1", "1.1-1")  # oldest first: an upgrade goes from the first to the last
_EPOCH = "1767225600"  # 2026-01-01: the same bytes on every machine


def deb_name(version: str, package: str = PACKAGE) -> str:
    """The .deb file of a version.

    >>> deb_name("1.0-1")
    'labtool_1.0-1_all.deb'
    """
    return f"{package}_{version}_all.deb"


def missing(directory: Path, versions: Sequence[str] = VERSIONS) -> list[str]:
    """The versions of the lab's package not built into ``directory`` yet."""
    return [v for v in versions if not (directory / SUBDIR / deb_name(v)).is_file()]


def build(directory: Path, versions: Sequence[str] = VERSIONS) -> list[str]:
    """Build the missing versions into ``directory/lab``; returns the .deb files made."""
    todo = missing(directory, versions)
    out = directory / SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for version in todo:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "root"
            _tree(root, version)
            target = out / deb_name(version)
            partial = out / f".{target.name}.tmp"
            try:
                done = subprocess.run(
                    [
                        "dpkg-deb",
                        "--root-owner-group",
                        "-Zgzip",
                        "--build",
                        str(root),
                        str(partial),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=60,
                    env={**os.environ, "SOURCE_DATE_EPOCH": _EPOCH},
                )
            except FileNotFoundError as exc:
                raise LabError(
                    "software repository: dpkg-deb is missing (apt install dpkg)"
                ) from exc
            if done.returncode != 0:
                raise LabError(f"software repository: dpkg-deb failed: {done.stderr.strip()}")
            os.replace(partial, target)
            made.append(target.name)
    return made


def _tree(root: Path, version: str) -> None:
    """The package's files and control data."""
    script = root / "usr" / "bin" / PACKAGE
    script.parent.mkdir(parents=True)
    script.write_text(f'#!/bin/sh\necho "{PACKAGE} {version}"\n', encoding="utf-8")
    script.chmod(0o755)
    control = root / "DEBIAN"
    control.mkdir()
    (control / "control").write_text(
        f"Package: {PACKAGE}\n"
        f"Version: {version}\n"
        "Architecture: all\n"
        "Maintainer: IT Department <it@lab.example>\n"
        "Section: utils\n"
        "Priority: optional\n"
        "Description: the lab department's tiny tool (prints its version)\n"
        " Built by the lab in two versions, to show an upgrade and its undo.\n",
        encoding="utf-8",
    )
    digest = hashlib.md5(script.read_bytes(), usedforsecurity=False).hexdigest()
    (control / "md5sums").write_text(f"{digest}  usr/bin/{PACKAGE}\n", encoding="utf-8")
