"""GraphQL types of changes and runs, with their signatures and the devices and virtual
machines a change targets. Record entries stay in the REST API (they are many)."""

from typing import TYPE_CHECKING, Annotated

import strawberry
from netbox.graphql.types import BaseObjectType, NetBoxObjectType, register_type

from netbox_runbooks import models
from netbox_runbooks.graphql.filters import ChangeFilter, RunFilter

if TYPE_CHECKING:
    from dcim.graphql.types import DeviceType
    from users.graphql.types import UserType
    from virtualization.graphql.types import VirtualMachineType

__all__ = ("ChangeType", "RunType", "SignatureType")

USER = Annotated["UserType", strawberry.lazy("users.graphql.types")]


@register_type(models.Signature, fields="__all__")
class SignatureType(BaseObjectType):
    user: USER
    change: Annotated["ChangeType", strawberry.lazy("netbox_runbooks.graphql.types")]
    run: Annotated["RunType", strawberry.lazy("netbox_runbooks.graphql.types")] | None


@register_type(models.Change, exclude=["entries"], filters=ChangeFilter, pagination=True)
class ChangeType(NetBoxObjectType):
    preparer: USER
    scheduled_by: USER | None
    targets: list[str]
    devices: list[Annotated["DeviceType", strawberry.lazy("dcim.graphql.types")]]
    virtual_machines: list[
        Annotated["VirtualMachineType", strawberry.lazy("virtualization.graphql.types")]
    ]
    signatures: list[SignatureType]
    runs: list[Annotated["RunType", strawberry.lazy("netbox_runbooks.graphql.types")]]


@register_type(models.Run, exclude=["entries"], filters=RunFilter, pagination=True)
class RunType(NetBoxObjectType):
    change: ChangeType
    operator: USER
    signatures: list[SignatureType]
