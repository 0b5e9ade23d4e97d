"""Exceptions of the FRR driver; all are NAPALM exceptions so callers need no new names."""

from napalm.base.exceptions import CommandErrorException


class FRROutputError(CommandErrorException):  # type: ignore[misc]
    """A command printed something the driver cannot read (daemon down, FRR too old, ...)."""
