"""How the PostgreSQL gateway runs commands on the database server, as the cluster's OS user.

PostgreSQL refuses to run as root, and a cluster may live on this machine, inside a lab host's
namespaces, or on a server reached over SSH. The gateway does everything through one ``Shell``:
client programs (psql, pg_dump) run *on the server* and talk to the cluster over its unix
socket, so no TCP port is ever needed and the same code serves all three places.

Over SSH the server's host key is checked against the known_hosts file of the settings
(``RUNBOOKS_SSH_KNOWN_HOSTS``, default ``~/.ssh/known_hosts``): a server that is not in it, or
whose key differs, is refused before any command (or credential) is sent.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from runbooks.config import ssh_known_hosts
from runbooks.core.errors import ConnectError, GatewayError, GatewayTimeout
from runbooks.gateways.ssh_host_keys import key_refusal

log = logging.getLogger(__name__)


class CommandError(GatewayError):
    """A command on the database server exited non-zero."""


class Shell(Protocol):
    """Runs argv on the database server as the cluster's OS user."""

    where: str

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]: ...

    def close(self) -> None: ...


def _as_user(os_user: str) -> list[str]:
    return ["runuser", "-u", os_user, "--"]


class _ShellBase:
    where = "?"

    def _prefix(self, argv: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        full = self._prefix(argv)
        log.debug("%s: %s", self.where, shlex.join(argv))
        try:
            proc = subprocess.run(
                full, capture_output=True, text=True, timeout=timeout, check=False, input=input
            )
        except FileNotFoundError as exc:
            raise ConnectError(f"{self.where}: {full[0]} not found") from exc
        except subprocess.TimeoutExpired as exc:
            raise GatewayTimeout(
                f"{self.where}: `{shlex.join(argv)}` did not finish within {timeout:.0f} s"
            ) from exc
        self._refused(proc)
        if check and proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-5:]
            raise CommandError(
                f"{self.where}: `{shlex.join(argv)[:200]}` failed ({proc.returncode}): "
                + " | ".join(tail),
                returncode=proc.returncode,
                stdout=proc.stdout[-4000:],
                stderr=proc.stderr[-4000:],
            )
        return proc

    def _refused(self, proc: subprocess.CompletedProcess[str]) -> None:
        """Raise when the transport itself refused to connect (nothing ran)."""

    def close(self) -> None:
        pass


class LocalShell(_ShellBase):
    """This machine; as root, commands run through ``runuser -u <os_user>``."""

    def __init__(self, os_user: str = "postgres") -> None:
        self.os_user = os_user
        self.where = "local"

    def _prefix(self, argv: Sequence[str]) -> list[str]:
        if os.geteuid() == 0:
            return [*_as_user(self.os_user), *argv]
        return list(argv)


class NsenterShell(_ShellBase):
    """Inside the namespaces (network, mount, UTS, IPC) of a process: a lab host's holder."""

    def __init__(self, pid: int, os_user: str = "postgres", name: str = "") -> None:
        self.pid = pid
        self.os_user = os_user
        self.where = name or f"nsenter:{pid}"

    def _prefix(self, argv: Sequence[str]) -> list[str]:
        ns = ["nsenter", "-t", str(self.pid), "-n", "-m", "-u", "-i", "--"]
        return [*ns, *_as_user(self.os_user), *argv]


class SshShell(_ShellBase):
    """A server over SSH, one multiplexed connection per gateway (logins are the costly part).

    The login is ``user`` when given, else whatever ssh itself picks (``User`` of the caller's
    ssh configuration, else the caller's own name): no account is assumed."""

    def __init__(
        self,
        host: str,
        key_file: str,
        *,
        user: str | None = None,
        port: int = 22,
        os_user: str = "postgres",
        known_hosts: str | Path | None = None,
    ) -> None:
        self.host, self.key_file, self.user, self.port = host, key_file, user, port
        self.os_user = os_user
        self.known_hosts = Path(known_hosts) if known_hosts else ssh_known_hosts()
        self.where = f"{user}@{host}" if user else host
        self._control_dir = Path(tempfile.mkdtemp(prefix="rb-ssh-"))
        self._control = self._control_dir / "ctl"

    def _ssh(self) -> list[str]:
        return [
            "ssh",
            "-i",
            self.key_file,
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",  # never ask, never add: unknown or changed is refused
            "-o",
            f'UserKnownHostsFile="{self.known_hosts}"',
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self._control}",
            "-o",
            "ControlPersist=120",
        ]

    def _refused(self, proc: subprocess.CompletedProcess[str]) -> None:
        why = key_refusal(proc.stderr) if proc.returncode == 255 else ""  # 255: ssh itself
        if not why:
            return
        raise ConnectError(
            f"{self.where}: refused: the host key of {self.host} {why} {self.known_hosts}",
            host=self.host,
            known_hosts=str(self.known_hosts),
        )

    def _prefix(self, argv: Sequence[str]) -> list[str]:
        remote = list(argv) if self.user == self.os_user else [*_as_user(self.os_user), *argv]
        return [*self._ssh(), self._destination, "--", shlex.join(remote)]

    @property
    def _destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def close(self) -> None:
        if self._control.exists():
            subprocess.run(
                [*self._ssh(), "-O", "exit", self._destination],
                capture_output=True,
                timeout=10,
                check=False,
            )
        try:
            self._control.unlink(missing_ok=True)
            self._control_dir.rmdir()
        except OSError:
            pass
