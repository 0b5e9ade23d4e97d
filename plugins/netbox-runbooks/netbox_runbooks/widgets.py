"""The dashboard widget *Runbooks: waiting for me*: the changes the viewer may review, approve
or emergency-approve now, and the finished runs whose record they may sign off — each as the
rules decide it for them (`netbox_runbooks.allowed`), the buttons on the pages agreeing.

The database narrows first, by what no one could sign (a change's state, a record that holds
both sign-offs); the rules then judge each of the few left, with signatures prefetched.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _
from extras.dashboard.utils import register_widget
from extras.dashboard.widgets import DashboardWidget, WidgetConfigForm
from runbooks_rules import lifecycle, policy

from netbox_runbooks.allowed import (
    change_signatures,
    run_signoff_role,
    sign_authorities,
    signable,
)
from netbox_runbooks.choices import AuthorityChoices
from netbox_runbooks.identity import identity_of
from netbox_runbooks.models import Change, Run

__all__ = ("WaitingForMeWidget", "waiting_changes", "waiting_runs")

# the most recent candidates judged per page load: a backlog does not slow the home page
MAX_CANDIDATES = 100
SIGNOFF_ROLES = (policy.RESPONSIBLE, policy.SUPERVISOR)


def waiting_changes(user: Any, limit: int = MAX_CANDIDATES) -> list[tuple[Change, list[str]]]:
    """(change, the signatures the user may put on it) for each change waiting for them."""
    candidates: QuerySet[Change] = (
        Change.objects.restrict(user, "view")
        .filter(signable())
        .select_related("preparer")
        .prefetch_related("signatures__user")
        .defer("plan", "params")
        .order_by("-created")[:limit]
    )
    who = identity_of(user)
    found = [(c, sign_authorities(who, c, change_signatures(c))) for c in candidates]
    return [(c, authorities) for c, authorities in found if authorities]


def waiting_runs(user: Any, limit: int = MAX_CANDIDATES) -> list[tuple[Run, str]]:
    """(run, the role the user would sign in) for each finished record waiting for them."""
    candidates: QuerySet[Run] = (
        Run.objects.restrict(user, "view")
        .exclude(status=lifecycle.RUNNING)
        .annotate(signoffs=Count("signatures"))
        .filter(signoffs__lt=len(SIGNOFF_ROLES))
        .select_related("change", "operator")
        .prefetch_related("signatures")
        .defer("change__plan", "change__params")
        .order_by("-started")[:limit]
    )
    who = identity_of(user)
    found = [
        (r, run_signoff_role(who, r, [s.authority for s in r.signatures.all()])) for r in candidates
    ]
    return [(r, role) for r, role in found if role]


@register_widget
class WaitingForMeWidget(DashboardWidget):
    # a plain string: an untitled widget stores its default title in the user's dashboard JSON,
    # which a lazy translation proxy cannot be written into
    default_title = "Runbooks: waiting for me"
    description = _("Changes you may review or approve, and run records you may sign off")
    width = 6
    height = 4

    class ConfigForm(WidgetConfigForm):
        pass

    def render(self, request: Any) -> str:
        if not request.user.is_authenticated:
            return ""
        labels = dict(AuthorityChoices)
        changes = [
            (change, [labels[a] for a in authorities])
            for change, authorities in waiting_changes(request.user)
        ]
        runs = [(run, labels[role]) for run, role in waiting_runs(request.user)]
        return render_to_string(
            "netbox_runbooks/widgets/waiting.html", {"changes": changes, "runs": runs}
        )
