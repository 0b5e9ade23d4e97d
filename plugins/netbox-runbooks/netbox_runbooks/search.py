"""NetBox's global search finds changes by name, runbook, instruction or target, and runs by
their id."""

from __future__ import annotations

from netbox.search import SearchIndex

from netbox_runbooks.models import Change, Run


class ChangeIndex(SearchIndex):
    model = Change
    fields = (("name", 100), ("runbook", 300), ("instruction", 500), ("plan_hash", 600))
    display_attrs = ("runbook", "status", "preparer", "window_start")


class RunIndex(SearchIndex):
    model = Run
    fields = (("run_id", 100), ("head", 600))
    display_attrs = ("change", "status", "operator", "started")


indexes = (ChangeIndex, RunIndex)
