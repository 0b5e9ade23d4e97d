"""The change and run lists (django-tables2, as NetBox's own lists). No edit or delete
actions: changes and runs are written only by the server's operations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import django_tables2 as tables
from django.utils.translation import gettext_lazy as _
from netbox.tables import NetBoxTable, columns

from netbox_runbooks.models import Change, Run

__all__ = ("ChangeTable", "RunTable", "embedded")

WINDOW = """
{% load helpers %}
{% if record.window_start %}
  {{ record.window_start|isodatetime:"minutes" }} → {{ record.window_end|isodatetime:"minutes" }}
{% else %}{{ ''|placeholder }}{% endif %}
"""
SHORT_HASH = '<code title="{{ value }}">{{ value|slice:":12" }}…</code>'


class ChangeTable(NetBoxTable):
    name = tables.Column(linkify=True, verbose_name=_("Change"))
    status = columns.ChoiceFieldColumn(verbose_name=_("Status"))
    runbook = tables.Column(verbose_name=_("Runbook"))
    instruction = tables.Column(verbose_name=_("Instruction"))
    targets = columns.ArrayColumn(verbose_name=_("Targets"), orderable=False)
    window = columns.TemplateColumn(
        template_code=WINDOW, order_by=("window_start",), verbose_name=_("Window")
    )
    window_start = columns.DateTimeColumn(timespec="minutes", verbose_name=_("Window start"))
    window_end = columns.DateTimeColumn(timespec="minutes", verbose_name=_("Window end"))
    preparer = tables.Column(accessor="preparer__username", verbose_name=_("Preparer"))
    plan_hash = columns.TemplateColumn(
        template_code=SHORT_HASH, export_raw=True, verbose_name=_("Plan hash")
    )
    unreviewed = columns.BooleanColumn(verbose_name=_("Unreviewed"))
    stale = columns.BooleanColumn(verbose_name=_("Stale"))
    refusal = tables.Column(verbose_name=_("Refusal"))
    actions = columns.ActionsColumn(actions=("changelog",))

    class Meta(NetBoxTable.Meta):
        model = Change
        fields = (
            "pk",
            "id",
            "name",
            "status",
            "runbook",
            "instruction",
            "targets",
            "window",
            "window_start",
            "window_end",
            "preparer",
            "plan_hash",
            "unreviewed",
            "stale",
            "refusal",
            "created",
            "last_updated",
            "actions",
        )
        default_columns = ("name", "status", "runbook", "targets", "window", "preparer")


class RunTable(NetBoxTable):
    run_id = tables.Column(linkify=True, verbose_name=_("Run"))
    change = tables.Column(linkify=True, verbose_name=_("Change"))
    runbook = tables.Column(accessor="change__runbook", verbose_name=_("Runbook"))
    targets = columns.ArrayColumn(
        accessor="change__targets", verbose_name=_("Targets"), orderable=False
    )
    status = columns.ChoiceFieldColumn(verbose_name=_("Status"))
    operator = tables.Column(accessor="operator__username", verbose_name=_("Operator"))
    started = columns.DateTimeColumn(verbose_name=_("Started"))
    finished = columns.DateTimeColumn(verbose_name=_("Finished"))
    emergency = columns.BooleanColumn(verbose_name=_("Emergency"))
    scheduled = columns.BooleanColumn(verbose_name=_("Scheduled"))
    worker = tables.Column(verbose_name=_("Worker"))
    length = tables.Column(verbose_name=_("Entries"))
    head = columns.TemplateColumn(template_code=SHORT_HASH, export_raw=True, verbose_name=_("Head"))
    actions = columns.ActionsColumn(actions=("changelog",))

    class Meta(NetBoxTable.Meta):
        model = Run
        fields = (
            "pk",
            "id",
            "run_id",
            "change",
            "runbook",
            "targets",
            "status",
            "operator",
            "started",
            "finished",
            "emergency",
            "scheduled",
            "worker",
            "length",
            "head",
            "actions",
        )
        default_columns = (
            "run_id",
            "change",
            "runbook",
            "targets",
            "status",
            "operator",
            "started",
            "finished",
            "emergency",
        )


def embedded(table_class: type[NetBoxTable], data: Any, hide: Iterable[str] = ()) -> NetBoxTable:
    """A list inside another object's page: the default columns without ``hide``, no ordering
    links (the page has one table's worth of query string), no pagination."""
    table = table_class(data, orderable=False)
    shown = set(table_class.Meta.default_columns) - set(hide)
    for name in table.columns.names():
        if name not in shown and name not in table.exempt_columns:
            table.columns.hide(name)
    return table
