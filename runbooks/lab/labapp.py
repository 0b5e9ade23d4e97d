"""The lab's application, labapp: its release artifacts and its place in NetBox.

labapp (`runbooks.lab.labapp_server`, a stdlib web app) is shipped as release tarballs, as a
department's build server would leave them: ``<cache>/labapp/labapp-<version>.tar.gz`` with
``labapp.py`` and ``release.json``, and ``SHA256SUMS`` beside them. Three releases: 1.0 and
1.1 are good; 1.2-bad needs a state schema no deployment migrates to, so its ``/health``
answers 500 (the failing version application maintenance must roll back). The tarballs are
built here, byte for byte the same on every machine; the hosts have no network, the playbook
copies a tarball from this directory (on the machine running the runbook) to each host.

In NetBox labapp is an application service (``ipam.service`` labapp, tcp/8080) on srv1 and
srv2 (`services`, seeded by `runbooks.lab.netbox_seed`): the application's hosts and port
come from there.

    python -m runbooks.lab.labapp      # builds what is missing, prints the directory
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runbooks.lab import paths

NAME = "labapp"
PORT = 8080
HEALTH = "/health"
HOSTS = ("srv1", "srv2")
# version -> the state schema it needs (the deployment writes schema 1)
RELEASES: Mapping[str, int] = {"1.0": 1, "1.1": 1, "1.2-bad": 2}
SUMS = "SHA256SUMS"
_SOURCE = Path(__file__).resolve().parent / "labapp_server.py"
_MTIME = 1767225600  # 2026-01-01: the same bytes on every machine


def artifact_dir() -> Path:
    return paths.cache_dir() / NAME


def artifact_name(version: str, name: str = NAME) -> str:
    """The release tarball of a version.

    >>> artifact_name("1.1")
    'labapp-1.1.tar.gz'
    """
    return f"{name}-{version}.tar.gz"


def release_bytes(version: str) -> bytes:
    """The tarball of ``version``: labapp.py and release.json, fixed owners and times."""
    files = {
        "labapp.py": _SOURCE.read_bytes(),
        "release.json": (
            json.dumps({"version": version, "schema": RELEASES[version]}) + "\n"
        ).encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=_MTIME) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def ensure(directory: Path | None = None) -> list[str]:
    """Build the releases missing or different in ``directory``; returns the files written."""
    where = directory or artifact_dir()
    where.mkdir(parents=True, exist_ok=True)
    written, sums = [], []
    for version in RELEASES:
        data = release_bytes(version)
        target = where / artifact_name(version)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {target.name}\n")
        if target.is_file() and target.read_bytes() == data:
            continue
        partial = where / f".{target.name}.tmp"
        partial.write_bytes(data)
        os.replace(partial, target)
        written.append(target.name)
    text = "".join(sums)
    if not (where / SUMS).is_file() or (where / SUMS).read_text(encoding="utf-8") != text:
        (where / SUMS).write_text(text, encoding="utf-8")
        written.append(SUMS)
    return written


def services(hosts: list[str]) -> list[dict[str, Any]]:
    """labapp's NetBox services on those of its hosts the lab has (the seed's spec).

    >>> services(["srv1", "db1"])
    [{'parent': 'srv1', 'name': 'labapp', 'port_mappings': ['tcp/8080'], \
'description': 'labapp web application (health: /health)'}]
    """
    return [
        {
            "parent": host,
            "name": NAME,
            "port_mappings": [f"tcp/{PORT}"],
            "description": f"{NAME} web application (health: {HEALTH})",
        }
        for host in HOSTS
        if host in hosts
    ]


if __name__ == "__main__":  # pragma: no cover
    ensure()
    print(artifact_dir())  # noqa: T201 - a developer's command
