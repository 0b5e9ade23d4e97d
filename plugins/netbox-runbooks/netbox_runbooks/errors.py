"""What the server-side operations raise; the API turns each into its status code with one
sentence in ``detail``, and the web UI into a message. Rule refusals themselves are
`runbooks_rules.policy.Refusal`; by the time one leaves `netbox_runbooks.changes` it has
been recorded on the change and is re-raised as `Refused`."""

from __future__ import annotations


class RunbooksError(Exception):
    """The root: one sentence a person can act on."""

    status = 400


class Invalid(RunbooksError):
    """Malformed input (400): a plan without its hash, a window that ends before it starts."""


class Refused(RunbooksError):
    """A rule refused the request (403); the refusal is already recorded on the change."""

    status = 403


class ChainConflict(RunbooksError):
    """Record entries that do not continue their chain (409); nothing was written."""

    status = 409


class Taken(RunbooksError):
    """An id that is already in use (409): a run id given twice; nothing was written."""

    status = 409
