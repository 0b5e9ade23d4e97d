"""The lab's own error: only the lab raises it, so it lives here and not in runbooks.core.

A `RunbookError` like every other, so the CLI (`runbook lab ...`) shows it as one line with
its exit code.
"""

from __future__ import annotations

from runbooks.core.errors import RunbookError


class LabError(RunbookError):
    """The lab cannot be brought up, reached or torn down."""
