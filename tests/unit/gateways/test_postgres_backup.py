"""The guard: no destructive step without a verified backup of this cluster from this run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runbooks.gateways.postgres_backup import (
    BackupManifest,
    UnverifiedBackupError,
    require_verified,
)
from runbooks.gateways.postgres_facts import TableSum

SOURCE = {"app": {"public.orders": TableSum(500, "abc")}}
FILES = {"globals.sql": "h1", "db-617070.dump": "h2"}
TAKEN = BackupManifest("run-1", "7441", "/b", FILES, SOURCE, "2026-11-28T10:00:00+00:00")
VERIFIED = TAKEN.with_restore(SOURCE, "2026-11-28T10:01:00+00:00")


def guard(manifest: BackupManifest | None, **overrides: object) -> None:
    kwargs: dict[str, object] = {"run_id": "run-1", "system_identifier": "7441", "files_now": FILES}
    kwargs.update(overrides)
    require_verified(manifest, **kwargs)  # type: ignore[arg-type]


def test_a_verified_backup_passes() -> None:
    guard(VERIFIED)
    assert VERIFIED.problems == ()


@pytest.mark.parametrize(
    ("manifest", "overrides", "reason"),
    [
        (None, {}, "no backup manifest"),
        (TAKEN, {}, "never restored"),
        (VERIFIED, {"run_id": "run-2"}, "belongs to run run-1"),
        (VERIFIED, {"system_identifier": "9999"}, "is of cluster 7441"),
        (
            TAKEN.with_restore({"app": {"public.orders": TableSum(499, "abd")}}, "t"),
            {},
            "has 499 rows, expected 500",
        ),
        (TAKEN.with_restore({}, "t"), {}, "database app is missing"),
        (VERIFIED, {"files_now": {"globals.sql": "h1"}}, "db-617070.dump is gone"),
        (VERIFIED, {"files_now": {**FILES, "globals.sql": "x"}}, "globals.sql changed"),
        (replace(VERIFIED, source={}, restored={}), {}, "holds no database"),
        (replace(VERIFIED, files={}), {}, "lists no files"),
    ],
)
def test_anything_less_is_refused(
    manifest: BackupManifest | None, overrides: dict[str, object], reason: str
) -> None:
    with pytest.raises(UnverifiedBackupError, match=reason) as info:
        guard(manifest, **overrides)
    assert "refusing to go past the backup step" in str(info.value)


def test_a_verified_flag_is_not_trusted_the_fingerprints_are() -> None:
    """An edited manifest that claims verification but whose restored side differs fails."""
    forged = replace(VERIFIED, restored={"app": {"public.orders": TableSum(1, "x")}}, problems=())
    with pytest.raises(UnverifiedBackupError, match="restored copy differs"):
        guard(forged)


def test_manifest_round_trips_through_json() -> None:
    assert BackupManifest.from_json(VERIFIED.to_json()) == VERIFIED
    assert BackupManifest.from_json(TAKEN.to_json()) == TAKEN
    evidence = VERIFIED.evidence()
    assert evidence["rows"] == 500 and evidence["databases"] == ["app"]
