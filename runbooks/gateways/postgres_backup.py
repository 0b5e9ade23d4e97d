"""The verified backup, and the guard that no destructive step passes without one.

The manual's red line for a database is data that should have been backed up and cannot be
restored. So a backup counts only once it has been *restored* into a scratch instance and every
table's row count and checksum there equals the source's at the moment of the dump. The
manifest of a backup holds both fingerprints and a sha256 of every file; ``require_verified``
recomputes the comparison and checks the files have not changed since, and every destructive
method of the gateway calls it first. A flag in a file is not trusted: the evidence is.

Hashing the files costs time that grows with the backup. The guard at the stop of the writers
hashes them; pg_upgrade's guard, inside the downtime, hashes again only what changed since by
its stamp (size, modification and change time, inode: `unchanged_since`), as git trusts its
index.
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
# A file changed this close before its stamp was taken may change again within the same tick
# of its file system's clock, after the hash, without its stamp changing ("racily clean", in
# git's words): it is hashed again. One second covers file systems that keep whole seconds.
RACY_S = 1.0


def unchanged_since(stamped: Mapping[str, str] | None, now: Mapping[str, str]) -> bool:
    """Whether every file of a backup directory has the stamp it had when ``stamped`` was taken
    (just before the files were hashed and found as verified): same names, and each file's
    ``"<size> <mtime> <ctime> <inode>"`` equal (the change time moves on any write, and on a
    modification time set back). ``stamped`` holds the moment it was taken under ``"."``; a
    file changed less than `RACY_S` before that moment does not count as unchanged.

    >>> then = {".": "100.0", "a": "5 90.0 90.0 7"}
    >>> unchanged_since(then, {".": "130.0", "a": "5 90.0 90.0 7"})
    True
    >>> unchanged_since(then, {".": "130.0", "a": "5 90.0 120.0 7"})  # written since
    False
    >>> unchanged_since({".": "100.0", "a": "5 99.5 99.5 7"}, {".": "130.0", "a": "5 99.5 99.5 7"})
    False
    """
    files = {k: v for k, v in (stamped or {}).items() if k != "."}
    if not files or files != {k: v for k, v in now.items() if k != "."}:
        return False
    try:
        taken = float((stamped or {})["."])
        return all(float(stamp.split()[2]) < taken - RACY_S for stamp in files.values())
    except (KeyError, ValueError, IndexError):  # not as `file_stamps` writes it: hash again
        return False


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
