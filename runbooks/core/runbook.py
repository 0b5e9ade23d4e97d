"""The Runbook: a work instruction of the manual as ordered steps, with its metadata."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from runbooks.core.errors import InputError
from runbooks.core.steps import Step

if TYPE_CHECKING:
    from runbooks.core.context import RunContext
    from runbooks.core.results import StepResult


class Params(BaseModel):
    """Base of every runbook's parameters: strict about unknown names."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Runbook:
    """Subclass, set the metadata and write the steps in the order of the work instruction.

    Steps are methods decorated with ``@check``, ``@change``, ``@manual`` or ``@wait``
    (``runbooks.core.steps``); their order of definition is the order of execution.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    # the manual's instruction, e.g. "7 網絡設備上架 network device rack-in"
    instruction: ClassVar[str]
    roles: ClassVar[Mapping[str, str]] = {
        "handle": "operator",
        "review": "reviewer",
        "approve": "approver",
        "supervise": "supervisor",
    }
    Params: ClassVar[type[BaseModel]] = Params
    expected_duration: ClassVar[timedelta] = timedelta(minutes=30)

    def __init__(self, params: BaseModel) -> None:
        self.params = params  # and nothing else: a plan's or run's state is its context's

    def new_state(self) -> Any:
        """The scratch of one plan or run (``ctx.state``), made fresh for each; override to
        keep what the steps read once and reuse. What a later step needs from an earlier one
        it takes from ``ctx.results``, which a resumed run rebuilds from the record."""
        return None

    @classmethod
    def steps(cls) -> list[Step]:
        """The steps in definition order (base classes first), each once; a subclass that
        defines a step under a base step's name replaces it in place."""
        names: dict[str, None] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Step):
                    names.setdefault(name, None)
        seen: dict[int, Step] = {}
        for name in names:
            value = getattr(cls, name)
            if isinstance(value, Step) and id(value) not in seen:
                seen[id(value)] = value
        return list(seen.values())

    @classmethod
    def parse_params(cls, raw: Mapping[str, Any]) -> BaseModel:
        """Validate parameters; the first problem becomes one clear InputError line."""
        try:
            return cls.Params.model_validate(dict(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "parameters"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                known = ", ".join(cls.Params.model_fields) or "none"
                msg = f"unknown parameter (known: {known})"
            raise InputError(f"{cls.name}: {where}: {msg}", runbook=cls.name) from exc

    def targets(self) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for step in self.steps():
            for target in step.resolve_targets(self):
                out[target] = None
        return tuple(out)

    # Hooks (processors): override to observe a run. They must not raise.
    def on_step_finished(self, ctx: RunContext, result: StepResult) -> None:
        """Called after a step's result is recorded."""
