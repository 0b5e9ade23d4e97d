"""The run context handed to every step: mode, identity, gateways, confirmations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from runbooks.core.errors import InputError
from runbooks.core.gateway import Gateway, Mode

if TYPE_CHECKING:
    from pydantic import BaseModel

    from runbooks.core.results import StepResult
    from runbooks.core.runbook import Runbook

G = TypeVar("G", bound=Gateway)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Confirmation:
    """A person's answer to a manual step: who, when, what they confirmed."""

    confirmed: bool
    actor: str
    at: datetime
    note: str = ""


class Confirmer(Protocol):
    def __call__(self, step_title: str, instruction: str, actor: str) -> Confirmation: ...


def refuse_all(step_title: str, instruction: str, actor: str) -> Confirmation:
    """Non-interactive default: nobody is there to confirm."""
    return Confirmation(False, actor, datetime.now(UTC), "no one confirmed (non-interactive)")


def confirm_all(note: str = "confirmed with --yes") -> Confirmer:
    def confirmer(step_title: str, instruction: str, actor: str) -> Confirmation:
        return Confirmation(True, actor, datetime.now(UTC), note)

    return confirmer


@dataclass
class RunContext:
    """What a step sees. ``mode`` is PLAN while planning: gateways then refuse writes.

    A plan or run owns its state here, never on the runbook object (which holds parameters
    only, so one object can be planned and run any number of times): ``results`` are the
    steps done so far, in order — in a resumed run rebuilt from the record, so what a later
    step derives from them is what an uninterrupted run would derive — and ``state`` is the
    runbook's own scratch for this plan or run (`Runbook.new_state`), e.g. what it has read."""

    mode: Mode
    run_id: str
    actor: str
    runbook: Runbook
    confirmer: Confirmer = refuse_all
    gateway_factories: dict[type[Gateway], Callable[[RunContext, str], Gateway]] = field(
        default_factory=dict
    )
    # the hash of the run's newest record entry, for a witness outside the store (a NetBox
    # journal entry): everything recorded so far is bound to it; "" in a plan
    record_head: Callable[[], str] = lambda: ""
    results: dict[str, StepResult] = field(default_factory=dict)
    state: Any = None
    _gateways: dict[tuple[type[Gateway], str], Gateway] = field(default_factory=dict)

    @property
    def planning(self) -> bool:
        return self.mode is Mode.PLAN

    @property
    def params(self) -> BaseModel:
        return self.runbook.params

    def gateway(
        self,
        kind: type[G],
        key: str = "",
        factory: Callable[[RunContext, str], Gateway] | None = None,
    ) -> G:
        """One gateway per (kind, key) per run: connections are reused, never re-opened.

        ``factory`` builds it the first time (default ``kind.open``); a factory registered
        for the kind in ``gateway_factories`` (tests, other transports) takes precedence."""
        cached = self._gateways.get((kind, key))
        if cached is None:
            factory = self.gateway_factories.get(kind) or factory or kind.open
            cached = factory(self, key)
            if cached.mode is not self.mode:
                raise InputError(
                    f"gateway {kind.__name__} built for {cached.mode}, run is {self.mode}"
                )
            self._gateways[(kind, key)] = cached
        if not isinstance(cached, kind):
            raise TypeError(f"factory for {kind.__name__} built a {type(cached).__name__}")
        return cached

    def take_over(self, other: RunContext) -> list[str]:
        """The gateways ``other`` opened, handed to this context (`Gateway.reopen`); those that
        cannot be are closed. ``other`` holds none afterwards. The keys taken over, as
        ``Kind:key``."""
        taken = []
        for (kind, key), gw in list(other._gateways.items()):
            moved: Gateway | None = None
            try:
                moved = gw.reopen(self)
            except Exception:
                log.exception("handing %s over failed", kind.__name__)
            if moved is None or (kind, key) in self._gateways or moved.mode is not self.mode:
                _close(gw)  # not handed over: whichever of the two holds the connection
                if moved is not None and moved is not gw:
                    _close(moved)
                continue
            self._gateways[(kind, key)] = moved
            taken.append(f"{kind.__name__}:{key}" if key else kind.__name__)
        other._gateways.clear()
        return taken

    def release(self, kind: type[G], key: str = "") -> G | None:
        """The cached gateway of (kind, key), no longer this context's (the caller closes it),
        or None when there is none."""
        cached = self._gateways.get((kind, key))
        if not isinstance(cached, kind):
            return None
        del self._gateways[(kind, key)]
        return cached

    def close(self) -> None:
        for gw in self._gateways.values():
            _close(gw)
        self._gateways.clear()


def _close(gw: Gateway | None) -> None:
    if gw is None:
        return
    try:
        gw.close()
    except Exception:
        log.exception("closing %s failed", type(gw).__name__)
