"""What every runbook of the library reaches the same way: its parameters, typed, and the run's
one NetBox and one Ansible gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from runbooks.core.runbook import Runbook
from runbooks.gateways.ansible import AnsibleGateway
from runbooks.gateways.netbox import NetBoxGateway

if TYPE_CHECKING:
    from runbooks.core.context import RunContext


def comma_list(value: Any) -> Any:
    """A list parameter given on the command line as ``hosts=web1,web2``: its items, blanks
    dropped (a pydantic ``mode="before"`` validator: ``field_validator("hosts",
    mode="before")(comma_list)``); anything but a string as it is.

    >>> comma_list("web1, web2,"), comma_list(["web1"])
    (['web1', 'web2'], ['web1'])
    """
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def netbox(ctx: RunContext) -> NetBoxGateway:
    """The run's NetBox gateway (one session for the whole plan or run)."""
    return ctx.gateway(NetBoxGateway)


def ansible(ctx: RunContext) -> AnsibleGateway:
    """The run's Ansible gateway."""
    return ctx.gateway(AnsibleGateway)


class LibraryRunbook[P: BaseModel](Runbook):
    """A runbook of the library, e.g. ``class RackIn(LibraryRunbook[RackInParams])``:
    ``self.p`` is its parameters as its own ``Params`` type."""

    @property
    def p(self) -> P:
        assert isinstance(self.params, self.Params), f"{type(self).__name__}: wrong parameters"
        return cast(P, self.params)

    def netbox(self, ctx: RunContext) -> NetBoxGateway:
        return netbox(ctx)

    def ansible(self, ctx: RunContext) -> AnsibleGateway:
        return ansible(ctx)
