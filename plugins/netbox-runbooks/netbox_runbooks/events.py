"""The plugin's NetBox event types: what a notification tells the people who can act next.
Registered once, from `RunbooksConfig.ready()`. Texts are translated eagerly: NetBox renders
`str(event_type)`, which a lazy proxy breaks (netbox-change-control found this the hard way)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from netbox.events import (
    EVENT_TYPE_KIND_INFO,
    EVENT_TYPE_KIND_SUCCESS,
    EVENT_TYPE_KIND_WARNING,
    EventType,
)

REVIEW_REQUESTED = "runbooks_review_requested"
APPROVAL_REQUESTED = "runbooks_approval_requested"
CHANGE_APPROVED = "runbooks_change_approved"
CHANGE_REFUSED = "runbooks_change_refused"
SIGNOFF_REQUESTED = "runbooks_signoff_requested"


def register() -> None:
    for name, text, kind in (
        (REVIEW_REQUESTED, _("Runbook change waits for review"), EVENT_TYPE_KIND_INFO),
        (APPROVAL_REQUESTED, _("Runbook change waits for approval"), EVENT_TYPE_KIND_INFO),
        (CHANGE_APPROVED, _("Runbook change approved: ready to run"), EVENT_TYPE_KIND_SUCCESS),
        (CHANGE_REFUSED, _("Runbook change refused"), EVENT_TYPE_KIND_WARNING),
        (SIGNOFF_REQUESTED, _("Runbook record waits for sign-off"), EVENT_TYPE_KIND_INFO),
    ):
        EventType(name, text, kind=kind).register()
