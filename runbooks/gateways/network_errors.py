"""NAPALM's, Netmiko's and paramiko's exceptions as the project's one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from napalm.base import exceptions as napalm_errors
from netmiko import exceptions as netmiko_errors
from paramiko.ssh_exception import BadHostKeyException

from runbooks.core import secrets
from runbooks.core.errors import AuthenticationError, ConnectError, GatewayTimeout, RejectedError


def key_refusal(exc: BaseException) -> str:
    """How paramiko refused the device's host key (somewhere in the chain); "" if it did not."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BadHostKeyException):
            return "does not match the one in"
        if "not found in known_hosts" in str(seen):
            return "is not in"
        seen = seen.__cause__ or seen.__context__
    return ""


@contextmanager
def translated(device: str, action: str, known_hosts: Path | None = None) -> Iterator[None]:
    """NAPALM's and Netmiko's exceptions as our one-line errors."""
    try:
        yield
    except (napalm_errors.ConnectAuthError, netmiko_errors.NetmikoAuthenticationException) as e:
        raise AuthenticationError(
            f"{device}: credentials refused while {action}", device=device
        ) from e
    except (
        napalm_errors.CommandTimeoutException,
        netmiko_errors.NetmikoTimeoutException,
        TimeoutError,
    ) as e:
        raise GatewayTimeout(f"{device}: timed out while {action}", device=device) from e
    except (
        napalm_errors.MergeConfigException,
        napalm_errors.ReplaceConfigException,
        napalm_errors.CommitError,
        napalm_errors.CommitConfirmException,
    ) as e:
        raise RejectedError(
            f"{device}: configuration rejected while {action}: "
            f"{secrets.mask_text(str(e)).splitlines()[0] if str(e) else ''}",
            device=device,
        ) from e
    except (
        napalm_errors.ConnectionException,
        napalm_errors.ConnectionClosedException,
        ConnectionError,
        OSError,
        EOFError,
    ) as e:
        why = key_refusal(e)
        if why:
            raise ConnectError(
                f"{device}: refused while {action}: its host key {why} {known_hosts}",
                device=device,
            ) from e
        raise ConnectError(
            f"{device}: unreachable while {action} ({type(e).__name__})", device=device
        ) from e
