"""The lab repository's own package for software-install: labtool built in two versions and
added to the index the fetched packages already have."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runbooks.lab import software, software_packages

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("dpkg-scanpackages") is None,
    reason="needs dpkg-dev",
)


def stanzas(repo: Path) -> list[tuple[str, str, str]]:
    out = []
    for block in (repo / "Packages").read_text().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((fields["Package"], fields["Version"], fields["Filename"]))
    return out


def test_both_versions_are_built_once_and_indexed(tmp_path: Path) -> None:
    assert software_packages.missing(tmp_path) == ["1.0-1", "1.1-1"]
    software.index(tmp_path)  # the repository as fetched: an index of its own
    assert software.ensure([], tmp_path) == ["labtool_1.0-1_all.deb", "labtool_1.1-1_all.deb"]
    assert stanzas(tmp_path) == [
        ("labtool", "1.0-1", "lab/labtool_1.0-1_all.deb"),
        ("labtool", "1.1-1", "lab/labtool_1.1-1_all.deb"),
    ]
    assert software.ensure([], tmp_path) == []  # built once
    deb = tmp_path / "lab" / "labtool_1.1-1_all.deb"
    listed = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    )
    assert "root/root" in listed.stdout and "./usr/bin/labtool" in listed.stdout
    info = subprocess.run(
        ["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    assert "md5sums" in info  # what dpkg --verify checks on the hosts


def test_appending_keeps_the_fetched_packages_and_replaces_its_own(tmp_path: Path) -> None:
    fetched = "Package: tree\nVersion: 2.1.0-1\nFilename: ./tree_2.1.0-1_amd64.deb\n"
    stale = "Package: labtool\nVersion: 0.1\nFilename: lab/labtool_0.1_all.deb\n"
    (tmp_path / "Packages").write_text(f"{fetched}\n{stale}")
    software_packages.build(tmp_path, ["1.0-1"])
    software.index(tmp_path, software_packages.SUBDIR, append=True)
    assert stanzas(tmp_path) == [
        ("tree", "2.1.0-1", "./tree_2.1.0-1_amd64.deb"),
        ("labtool", "1.0-1", "lab/labtool_1.0-1_all.deb"),
    ]
