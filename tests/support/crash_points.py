"""Pause points for the crash-consistency suite, loaded into the `runbook` process through
RUNBOOKS_MODULES (it defines no runbook; importing it installs the hooks).

``RUNBOOKS_CRASH_AT`` names where the process stops and waits to be killed, the first of a
``;``-separated list that it reaches:

- ``entry:<kind>:<step>`` right after that record entry is durable (``-`` for no step), e.g.
  ``entry:step.finished:plan_cables_connected`` — a kill at a step boundary;
- ``replan:<step>`` when the re-plan of a begun run reaches that step (``*`` for any; a
  plan made before the run began, as `run --no-change-control` makes one, does not count);
- ``before:<step>:<n>`` / ``after:<step>:<n>`` before or after the n-th write a gateway
  makes inside that step (only outermost writes count): a kill inside a change step;
- ``task:<step>:<text>`` when a playbook run inside that step reports a task whose name
  holds ``text`` (the playbook is killed a moment later, in the middle of its work).

On reaching one it writes the point to ``$RUNBOOKS_CRASH_DIR/paused`` and sleeps; the test
kills the process group. Without RUNBOOKS_CRASH_AT nothing is patched.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

POINTS = [p for p in os.environ.get("RUNBOOKS_CRASH_AT", "").split(";") if p]
_state: dict[str, Any] = {"step": None, "writes": 0, "depth": 0, "begun": False}


def _pause(point: str) -> None:
    folder = Path(os.environ.get("RUNBOOKS_CRASH_DIR", "."))
    tmp = folder / "paused.tmp"
    tmp.write_text(point, encoding="utf-8")
    os.replace(tmp, folder / "paused")
    while True:
        time.sleep(60)


def _hit(point: str) -> None:
    if point in POINTS:
        _pause(point)


def _install() -> None:
    from runbooks.core import planning, store
    from runbooks.core.gateway import _ACCESS
    from runbooks.gateways.ansible import AnsibleGateway
    from runbooks.gateways.netbox import NetBoxGateway
    from runbooks.gateways.network import NetworkGateway

    append = store.RecordStore.append

    @functools.wraps(append)
    def hooked_append(self: Any, run_id: str, kind: str, payload: Any, **kw: Any) -> Any:
        entry = append(self, run_id, kind, payload, **kw)
        if kind == "step.started":
            _state["step"], _state["writes"] = kw.get("step"), 0
        if kind in ("run.started", "run.resumed"):
            _state["begun"] = True
        _hit(f"entry:{kind}:{kw.get('step') or '-'}")
        return entry

    store.RecordStore.append = hooked_append  # type: ignore[method-assign]

    plan_step = planning._plan_step

    @functools.wraps(plan_step)
    def hooked_plan_step(runbook: Any, step: Any, ctx: Any, after: bool) -> Any:
        if _state["begun"]:
            _hit(f"replan:{step.name}")
            _hit("replan:*")
        return plan_step(runbook, step, ctx, after)

    planning._plan_step = hooked_plan_step

    def wrap(method: Any) -> Any:
        @functools.wraps(method)
        def hooked(self: Any, *args: Any, **kwargs: Any) -> Any:
            outer = _state["depth"] == 0 and getattr(self, "mode", None) == "run"
            if outer:
                _state["writes"] += 1
                _hit(f"before:{_state['step']}:{_state['writes']}")
            _state["depth"] += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                _state["depth"] -= 1
                if outer:
                    _hit(f"after:{_state['step']}:{_state['writes']}")

        setattr(hooked, _ACCESS, "write")
        return hooked

    from runbooks.gateways import ansible_events

    task_result = ansible_events.task_result

    @functools.wraps(task_result)
    def hooked_task_result(event: Any) -> Any:
        result = task_result(event)
        if result is not None and _state["depth"]:  # inside a write: a real run, not a check
            for point in POINTS:
                kind, _, rest = point.partition(":")
                step, _, text = rest.partition(":")
                if kind == "task" and step == _state["step"] and text in result.task:
                    _pause(point)
        return result

    ansible_events.task_result = hooked_task_result

    for cls in (NetworkGateway, NetBoxGateway, AnsibleGateway):
        for name, value in list(vars(cls).items()):
            if getattr(value, _ACCESS, None) == "write":
                setattr(cls, name, wrap(value))


if POINTS:
    _install()
