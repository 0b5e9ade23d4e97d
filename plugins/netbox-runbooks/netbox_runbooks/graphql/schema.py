"""The plugin's part of NetBox's GraphQL query (`/graphql/`)."""

import strawberry
import strawberry_django

from netbox_runbooks.graphql.types import ChangeType, RunType


@strawberry.type(name="Query")
class RunbooksQuery:
    runbook_change: ChangeType = strawberry_django.field()
    runbook_change_list: list[ChangeType] = strawberry_django.field()
    runbook_run: RunType = strawberry_django.field()
    runbook_run_list: list[RunType] = strawberry_django.field()


schema = [RunbooksQuery]
