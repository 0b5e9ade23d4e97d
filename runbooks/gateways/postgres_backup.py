"""The verified backup, and the guard that no destructive step passes without one.

The manual's red line for a database is data that should have been backed up and cannot be
restored. So a backup counts only once it has been *restored* into a scratch instance and every
table's row count and checksum there equals the source's at the moment of the dump. The
manifest of a backup holds both fingerprints and a sha256 of every file; ``require_verified``
recomputes the comparison and checks the files have not changed since, and every destructive
method of the gateway calls it first. A flag in a file is not trusted: the evidence is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runbooks.core.errors import VerificationError
from runbooks.gateways.postgres_facts import (
    Fingerprints,
    compare_fingerprints,
    fingerprints_from_json,
    fingerprints_to_json,
)

MANIFEST = "manifest.json"


class UnverifiedBackupError(VerificationError):
    """A destructive step was attempted without a verified backup of this cluster."""


@dataclass(frozen=True)
class BackupManifest:
    """What a backup directory holds, of which cluster, and the proof that it restores."""

    run_id: str
    system_identifier: str
    directory: str
    files: dict[str, str]  # file name -> sha256
    source: Fingerprints  # the cluster, in the dump's own snapshot
    taken_at: str
    restored: Fingerprints | None = None  # the scratch instance after restoring
    verified_at: str | None = None
    problems: tuple[str, ...] = field(default=())

    def with_restore(self, restored: Fingerprints, at: str) -> BackupManifest:
        problems = tuple(compare_fingerprints(self.source, restored))
        return replace(self, restored=restored, verified_at=at, problems=problems)

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "run_id": self.run_id,
            "system_identifier": self.system_identifier,
            "directory": self.directory,
            "files": dict(sorted(self.files.items())),
            "source": fingerprints_to_json(self.source),
            "taken_at": self.taken_at,
            "restored": None if self.restored is None else fingerprints_to_json(self.restored),
            "verified_at": self.verified_at,
            "problems": list(self.problems),
        }
        return json.dumps(body, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BackupManifest:
        data = json.loads(text)
        restored = data.get("restored")
        return cls(
            run_id=str(data["run_id"]),
            system_identifier=str(data["system_identifier"]),
            directory=str(data["directory"]),
            files={str(k): str(v) for k, v in data["files"].items()},
            source=fingerprints_from_json(data["source"]),
            taken_at=str(data["taken_at"]),
            restored=None if restored is None else fingerprints_from_json(restored),
            verified_at=data.get("verified_at"),
            problems=tuple(data.get("problems", ())),
        )

    def evidence(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "files": dict(sorted(self.files.items())),
            "taken_at": self.taken_at,
            "verified_at": self.verified_at,
            "databases": sorted(self.source),
            "tables": sum(len(t) for t in self.source.values()),
            "rows": sum(s.rows for t in self.source.values() for s in t.values()),
            "problems": list(self.problems),
        }


def require_verified(
    manifest: BackupManifest | None,
    *,
    run_id: str,
    system_identifier: str,
    files_now: Mapping[str, str],
) -> None:
    """Raise UnverifiedBackupError unless ``manifest`` proves a restorable backup of this
    cluster, taken in this run, whose files are still exactly the ones that were restored."""

    def refuse(reason: str) -> None:
        raise UnverifiedBackupError(
            f"no verified backup: {reason}; refusing to go past the backup step",
            run_id=run_id,
        )

    if manifest is None:
        refuse("no backup manifest was found")
        return
    if manifest.run_id != run_id:
        refuse(f"the backup belongs to run {manifest.run_id}, not to this run {run_id}")
    if manifest.system_identifier != system_identifier:
        refuse(
            f"the backup is of cluster {manifest.system_identifier}, "
            f"this cluster is {system_identifier}"
        )
    if not manifest.source:
        refuse("the backup holds no database")
    if manifest.restored is None:
        refuse("the backup was never restored to prove it")
        return
    problems = compare_fingerprints(manifest.source, manifest.restored)
    if problems:
        refuse(f"the restored copy differs: {'; '.join(problems[:3])}")
    if not manifest.files:
        refuse("the manifest lists no files")
    for name, digest in manifest.files.items():
        now = files_now.get(name)
        if now is None:
            refuse(f"backup file {name} is gone")
        elif now != digest:
            refuse(f"backup file {name} changed since it was verified")
