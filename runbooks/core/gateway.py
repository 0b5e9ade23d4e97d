"""The base of every adapter to the outside world, enforcing dry-run.

Every public method of a gateway declares itself ``@reads`` or ``@writes``; a class
that leaves one undeclared fails at import time, so no author can forget. In a plan,
a ``@writes`` method raises ``DryRunViolation`` before it does anything.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar

from runbooks.core.errors import DryRunViolation

if TYPE_CHECKING:
    from runbooks.core.context import RunContext

P = ParamSpec("P")
R = TypeVar("R")

_ACCESS = "_runbooks_access"
_EXEMPT = frozenset({"open", "close", "reopen"})


class Mode(enum.StrEnum):
    PLAN = "plan"
    RUN = "run"


def reads[**P, R](func: Callable[P, R]) -> Callable[P, R]:
    """Mark a gateway method as read-only: allowed in plans."""
    setattr(func, _ACCESS, "read")
    return func


def writes[**P, R](func: Callable[P, R]) -> Callable[P, R]:
    """Mark a gateway method as a write: it raises DryRunViolation during a plan."""

    @functools.wraps(func)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        self = args[0]
        if getattr(self, "mode", Mode.PLAN) is not Mode.RUN:
            raise DryRunViolation(
                f"{type(self).__name__}.{func.__name__} tried to write during a plan",
                gateway=type(self).__name__,
                method=func.__name__,
            )
        return func(*args, **kwargs)

    setattr(guarded, _ACCESS, "write")
    return guarded


class Gateway:
    """Base of the adapters. Subclasses declare each public method ``@reads`` or ``@writes``."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            # classmethods build gateways (open, for_device); they act on no instance
            if name.startswith("_") or name in _EXEMPT or isinstance(value, classmethod):
                continue
            func = value.__func__ if isinstance(value, staticmethod) else value
            if inspect.isfunction(func) and not hasattr(func, _ACCESS):
                raise TypeError(
                    f"{cls.__name__}.{name} must be declared @reads or @writes "
                    "so that plans can refuse writes"
                )

    @classmethod
    def open(cls, ctx: RunContext, key: str) -> Self:
        """Build the gateway for one run (``key`` names e.g. a device); override to connect."""
        return cls(ctx.mode)

    def reopen(self, ctx: RunContext) -> Gateway | None:
        """This gateway's connection handed to ``ctx`` (another mode, another run id): a
        gateway for ``ctx`` that takes the connection over (this one then holds nothing), or
        None: it cannot be handed over (the default), and is closed; ``ctx`` opens its own.

        A run of a change re-plans just before it runs (`Engine.replan`): the re-plan's
        gateways go on to the run through this, so a device the re-plan logged in to is not
        logged in to again. The gateway built must behave as one ``ctx`` would open (its mode's
        guards); one that cannot promise it answers None."""
        return None

    def close(self) -> None:
        """Release connections; called once at the end of the run."""
