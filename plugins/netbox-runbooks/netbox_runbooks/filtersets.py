"""Filters of the change and run lists (the REST API and the web UI's lists).
NetBox adds the lookups (``name__isw``, ``status__n``, …) to every declared field."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _
from netbox.filtersets import NetBoxModelFilterSet
from users.models import User
from utilities.filtersets import register_filterset

from netbox_runbooks.choices import ChangeStatusChoices, RunStatusChoices
from netbox_runbooks.models import Change, Run

__all__ = ("ChangeFilterSet", "RunFilterSet")


class CommaSeparatedFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    """``run_id__in=a,b,c``: one query for the runs a client holds locally."""


def _users(field: str, label: str) -> django_filters.ModelMultipleChoiceFilter:
    return django_filters.ModelMultipleChoiceFilter(
        field_name=f"{field}__username",
        queryset=User.objects.all(),
        to_field_name="username",
        distinct=False,
        label=label,
    )


@register_filterset
class ChangeFilterSet(NetBoxModelFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ChangeStatusChoices, distinct=False)
    preparer = _users("preparer", _("Preparer (username)"))
    target = django_filters.CharFilter(method="filter_target", label=_("Target (name)"))

    class Meta:
        model = Change
        fields = ("id", "name", "runbook", "plan_hash", "unreviewed", "stale")

    def filter_target(self, queryset: QuerySet[Change], name: str, value: str) -> Any:
        return queryset.filter(targets__contains=[value])

    def search(self, queryset: QuerySet[Change], name: str, value: str) -> Any:
        if not value.strip():
            return queryset
        return queryset.filter(
            Q(name__icontains=value)
            | Q(runbook__icontains=value)
            | Q(instruction__icontains=value)
            | Q(targets__contains=[value])
            | Q(plan_hash__istartswith=value)
        )


@register_filterset
class RunFilterSet(NetBoxModelFilterSet):
    run_id__in = CommaSeparatedFilter(field_name="run_id", lookup_expr="in")
    change_id = django_filters.ModelMultipleChoiceFilter(
        queryset=Change.objects.all(), distinct=False, label=_("Change (ID)")
    )
    change = django_filters.ModelMultipleChoiceFilter(
        field_name="change__name",
        queryset=Change.objects.all(),
        to_field_name="name",
        distinct=False,
        label=_("Change (name)"),
    )
    status = django_filters.MultipleChoiceFilter(choices=RunStatusChoices, distinct=False)
    operator = _users("operator", _("Operator (username)"))
    runbook = django_filters.CharFilter(field_name="change__runbook", label=_("Runbook"))
    target = django_filters.CharFilter(method="filter_target", label=_("Target (name)"))

    class Meta:
        model = Run
        fields = ("id", "run_id", "emergency", "scheduled", "head")

    def filter_target(self, queryset: QuerySet[Run], name: str, value: str) -> Any:
        return queryset.filter(change__targets__contains=[value])

    def search(self, queryset: QuerySet[Run], name: str, value: str) -> Any:
        if not value.strip():
            return queryset
        return queryset.filter(
            Q(run_id__icontains=value)
            | Q(change__name__icontains=value)
            | Q(change__runbook__icontains=value)
            | Q(head__istartswith=value)
        )
