"""One exception root for everything runbooks raises on purpose.

Each subclass carries the context a person needs to act on it; the CLI turns any
`RunbookError` into one line on stderr and the subclass's exit code. A traceback
reaching a user is a bug.
"""

from __future__ import annotations

from typing import Any


class RunbookError(Exception):
    """Root of every deliberate error. `context` holds the facts behind the message."""

    exit_code: int = 1

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context

    def __str__(self) -> str:
        return self.message


class InputError(RunbookError):
    """Bad input from a person: unknown runbook, invalid parameter, unreadable file."""

    exit_code = 2


class InventoryError(RunbookError):
    """The source of truth (NetBox) does not hold what the runbook needs."""


class GatewayError(RunbookError):
    """Talking to the outside world failed."""


class ConnectError(GatewayError):
    """A device, host or service could not be reached."""


class AuthenticationError(ConnectError):
    """Credentials were refused."""


class GatewayTimeout(ConnectError):
    """A device or service did not answer in time."""


class RejectedError(GatewayError):
    """A device or service refused what we sent (configuration, request)."""


class DryRunViolation(RunbookError):
    """Something tried to write while planning. Planning never changes anything."""


class ReadOnlyViolation(DryRunViolation):
    """A write tried through a read path: a plan's device session, or a command that is not
    read-only sent through a device's ``cli`` (which only reads, in runs too)."""


class ApprovalError(RunbookError):
    """The change is not approved, or an approval breaks separation of duties."""

    exit_code = 3


class WindowError(RunbookError):
    """The maintenance window does not allow this step now."""

    exit_code = 3


class DriftError(RunbookError):
    """The world changed between plan and run."""

    exit_code = 3


class VerificationError(RunbookError):
    """A check or a post-check found the world not as it must be."""


class RollbackError(RunbookError):
    """Undoing a completed step failed: a person must look now."""

    exit_code = 4


class StoreError(RunbookError):
    """The record store cannot be read or written."""

    exit_code = 2


class IntegrityError(StoreError):
    """The record chain does not verify: an entry was edited, deleted or reordered."""

    exit_code = 5


class LockedError(RunbookError):
    """Another run holds a target: two runs never touch one device at once."""

    exit_code = 3


class UnsupportedError(GatewayError):
    """A device's driver cannot do what was asked (a getter it does not implement).

    Never a silent pass: whoever checks turns it into a named, visible "cannot check".
    """


class SecretUnavailable(InventoryError):
    """A placeholder in a sanitised configuration has no secret to put back."""
