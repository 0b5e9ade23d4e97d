"""The state of one lab component, as `lab status` shows it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ComponentStatus:
    """One line of `lab status`: a component, whether it answers, and why (version, pid, error).

    >>> ComponentStatus("redis", True, "127.0.0.1:6379 db 10/11")
    ComponentStatus(name='redis', ok=True, detail='127.0.0.1:6379 db 10/11')
    """

    name: str
    ok: bool
    detail: str
