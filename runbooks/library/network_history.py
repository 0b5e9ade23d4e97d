"""The configuration history of network maintenance: a git repository, as engineers already
use one (``git log -p core-a.cfg``, ``git diff HEAD~1``), one file per device holding its
sanitised running configuration, one commit per run whose message names the run.

Written with dulwich (pure Python), not the ``git`` command: a machine where runbooks is
installed from its wheel need not have git, and nothing of the operator's own git set-up
(hooks, commit signing, identity, aliases) takes part in a commit a run makes. The author is
the run's actor, the committer runbooks. A lock on the repository's folder itself (flock on
the directory: no file beside it, so its parent, ``/srv`` say, need not be writable) is
taken before the repository is opened or made: two runs on one machine never mix their
files in one commit, and two first runs at once make it once. A file is written to a
temporary name and renamed, so an engineer reading it never sees half of it.

What goes in is masked once more with every secret the process has seen
(`runbooks.core.secrets`), after the device gateway's own sanitising: a secret never
reaches a commit.

>>> file_name("core-a"), file_name("edge/1 (old)"), file_name(".hidden")
('core-a.cfg', 'edge_1__old_.cfg', '_hidden.cfg')

Devices whose names give one file ("core sw1", "core/sw1", "core_sw1") are refused together,
before anything is written: one's backup would overwrite another's (`refuse_collisions`).
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dulwich import porcelain
from dulwich.errors import NotGitRepository
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from runbooks.core import secrets
from runbooks.core.errors import InputError

SUFFIX = ".cfg"
COMMITTER = "runbooks <runbooks@runbooks.invalid>"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name(device: str) -> str:
    """The file of a device's configuration: its name, safe as a file name, ``.cfg``."""
    safe = _UNSAFE.sub("_", device)
    return ("_" + safe[1:] if safe.startswith(".") else safe) + SUFFIX


def collisions(devices: Iterable[str]) -> list[str]:
    """Each file that more than one of ``devices`` would be written to, with those devices.

    >>> collisions(["core sw1", "core-a", "core/sw1", "core_sw1"])
    ["core_sw1.cfg: 'core sw1', 'core/sw1', 'core_sw1'"]
    >>> collisions(["core-a", "core-b"])
    []
    """
    by_file: dict[str, list[str]] = {}
    for device in dict.fromkeys(devices):
        by_file.setdefault(file_name(device), []).append(device)
    return [
        f"{name}: {', '.join(map(repr, named))}"
        for name, named in sorted(by_file.items())
        if len(named) > 1
    ]


def refuse_collisions(devices: Iterable[str]) -> None:
    """One InputError line when devices' names give one file (a plan can call it too)."""
    found = collisions(devices)
    if found:
        raise InputError(
            "device names that give one configuration history file (one backup would "
            f"overwrite another's; rename one in NetBox or select them apart): {'; '.join(found)}"
        )


def author_of(actor: str) -> str:
    """Git's ``Name <address>`` for the run's actor (``.invalid``: no mail goes there).

    >>> author_of("olivia")
    'olivia <olivia@runbooks.invalid>'
    """
    name = re.sub(r"[<>\n]", "", actor).strip() or "runbooks"
    return f"{name} <{_UNSAFE.sub('_', name)}@runbooks.invalid>"


@dataclass(frozen=True)
class Committed:
    """A run's commit: its id, the files it wrote (those whose content changed), the
    repository."""

    sha: str
    changed: tuple[str, ...]
    repository: str

    def evidence(self) -> dict[str, object]:
        return {"commit": self.sha, "changed": list(self.changed), "repository": self.repository}


class ConfigHistory:
    """The git repository at ``path`` (made on the first commit if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def commit(self, configs: Mapping[str, str], message: str, actor: str) -> Committed:
        """Write each device's configuration (device name → sanitised text) to its file and
        commit them with ``message``: one commit, also when no file changed (the run is in
        the history either way). Devices whose names give one file are refused
        (`refuse_collisions`), nothing written."""
        refuse_collisions(configs)
        with self._locked() as repo:
            head_files = _files(repo, _head(repo))
            changed = []
            paths = []
            for device, text in sorted(configs.items()):
                name = file_name(device)
                data = secrets.mask_text(text).encode()
                if head_files.get(name) != data:
                    changed.append(name)
                _write(self.path / name, data)
                paths.append(str(self.path / name))
            porcelain.add(repo, paths=paths)
            sha = porcelain.commit(
                repo,
                message=secrets.mask_text(message).encode(),
                author=author_of(actor).encode(),
                committer=COMMITTER.encode(),
                sign=False,
                no_verify=True,
            )
        return Committed(sha.decode(), tuple(changed), str(self.path))

    def commit_naming(self, words: str, depth: int = 200) -> str | None:
        """The newest commit among the last ``depth`` whose message's first line holds
        ``words`` (``run <id>``), or None; a repository not made yet has none."""
        try:
            repo = Repo(str(self.path))
        except NotGitRepository:
            return None
        with repo:
            if _head(repo) is None:
                return None
            for entry in repo.get_walker(max_entries=depth):
                first = entry.commit.message.decode(errors="replace").split("\n", 1)[0]
                if words in first:
                    return entry.commit.id.decode()
        return None

    def files(self, sha: str | None = None) -> dict[str, bytes]:
        """The files of a commit (default HEAD): file name → content."""
        with Repo(str(self.path)) as repo:
            return _files(repo, sha.encode() if sha else _head(repo))

    @contextmanager
    def _locked(self) -> Iterator[Repo]:
        """The repository, opened or made under the folder's lock, held for the block."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            folder = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except (FileExistsError, NotADirectoryError):
            raise InputError(
                f"{self.path} is not a directory: the configuration history (setting "
                "config_history) needs a repository or an empty directory"
            ) from None
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            with self._open_or_init() as repo:
                yield repo
        finally:
            os.close(folder)  # the lock goes with it

    def _open_or_init(self) -> Repo:
        """The repository in the folder, made when the folder is empty (under `_locked`)."""
        try:
            return Repo(str(self.path))
        except NotGitRepository:
            pass
        if any(self.path.iterdir()):
            raise InputError(
                f"{self.path} is not a git repository and not empty: the configuration "
                "history (setting config_history) needs a repository or an empty directory"
            ) from None
        return porcelain.init(str(self.path))


def _head(repo: Repo) -> bytes | None:
    try:
        return repo.head()
    except KeyError:
        return None


def _files(repo: Repo, sha: bytes | None) -> dict[str, bytes]:
    if sha is None:
        return {}
    commit = repo[sha]
    assert isinstance(commit, Commit)
    tree = repo[commit.tree]
    assert isinstance(tree, Tree)
    out = {}
    for entry in tree.items():
        blob = repo[entry.sha]
        if isinstance(blob, Blob):
            out[entry.path.decode()] = blob.data
    return out


def _write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
