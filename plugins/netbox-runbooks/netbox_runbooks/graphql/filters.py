"""GraphQL filters of changes and runs (NetBox's lookups: ``{name: {starts_with: "CHG-"}}``)."""

from typing import TYPE_CHECKING, Annotated

import strawberry
import strawberry_django
from netbox.graphql.filters import NetBoxModelFilter, register_filter
from strawberry.scalars import ID
from strawberry_django import FilterLookup, StrFilterLookup

from netbox_runbooks import models

if TYPE_CHECKING:
    from users.graphql.filters import UserFilter

__all__ = ("ChangeFilter", "RunFilter")


@register_filter(models.Change, lookups=True)
class ChangeFilter(NetBoxModelFilter):
    name: StrFilterLookup | None = strawberry_django.filter_field()
    runbook: StrFilterLookup | None = strawberry_django.filter_field()
    status: StrFilterLookup | None = strawberry_django.filter_field()
    plan_hash: StrFilterLookup | None = strawberry_django.filter_field()
    unreviewed: FilterLookup[bool] | None = strawberry_django.filter_field()
    stale: FilterLookup[bool] | None = strawberry_django.filter_field()
    preparer: Annotated["UserFilter", strawberry.lazy("users.graphql.filters")] | None = (
        strawberry_django.filter_field()
    )
    preparer_id: ID | None = strawberry_django.filter_field()


@register_filter(models.Run, lookups=True)
class RunFilter(NetBoxModelFilter):
    run_id: StrFilterLookup | None = strawberry_django.filter_field()
    status: StrFilterLookup | None = strawberry_django.filter_field()
    emergency: FilterLookup[bool] | None = strawberry_django.filter_field()
    change: Annotated["ChangeFilter", strawberry.lazy("netbox_runbooks.graphql.filters")] | None = (
        strawberry_django.filter_field()
    )
    change_id: ID | None = strawberry_django.filter_field()
    operator: Annotated["UserFilter", strawberry.lazy("users.graphql.filters")] | None = (
        strawberry_django.filter_field()
    )
    operator_id: ID | None = strawberry_django.filter_field()
