"""The web UI's forms: the lists' filter forms (fields named as `netbox_runbooks.filtersets`
names its filters) and the two things a person submits — a signature naming the plan hash,
and a sign-off note. Who may sign is not a form's business: the server's operation decides."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from netbox.forms import NetBoxModelFilterSetForm
from utilities.forms import BOOLEAN_WITH_BLANK_CHOICES
from utilities.forms.fields import TagFilterField
from utilities.forms.rendering import FieldSet

from netbox_runbooks.allowed import CHANGE_AUTHORITIES
from netbox_runbooks.choices import ChangeStatusChoices, RunStatusChoices
from netbox_runbooks.models import Change, Run

__all__ = ("ChangeFilterForm", "RunFilterForm", "SignForm", "SignoffForm")


def _people(field: str, label: str) -> forms.MultipleChoiceField:
    """The people who prepared changes (or ran them), by username: the filtersets filter by
    username, and NetBox's filter widgets re-render a selection only for primary keys, so the
    choices are the few names found, read when the form is shown."""

    def names() -> list[tuple[str, str]]:
        model = Run if field == "operator" else Change
        found = model.objects.order_by().values_list(f"{field}__username", flat=True).distinct()
        return [(name, name) for name in sorted(found)]

    return forms.MultipleChoiceField(choices=names, required=False, label=label)


def _yes_no(label: str) -> forms.NullBooleanField:
    return forms.NullBooleanField(
        required=False, widget=forms.Select(choices=BOOLEAN_WITH_BLANK_CHOICES), label=label
    )


class ChangeFilterForm(NetBoxModelFilterSetForm):
    model = Change
    fieldsets = (
        FieldSet("q", "filter_id", "tag"),
        FieldSet("status", "runbook", "target", "preparer", name=_("Change")),
        FieldSet("name", "plan_hash", "unreviewed", "stale", name=_("Record")),
    )
    status = forms.MultipleChoiceField(
        choices=ChangeStatusChoices, required=False, label=_("Status")
    )
    runbook = forms.CharField(required=False, label=_("Runbook"))
    target = forms.CharField(required=False, label=_("Target (name)"))
    preparer = _people("preparer", _("Preparer"))
    name = forms.CharField(required=False, label=_("Change (CHG-…)"))
    plan_hash = forms.CharField(required=False, label=_("Plan hash"))
    unreviewed = _yes_no(_("Unreviewed"))
    stale = _yes_no(_("Stale"))
    tag = TagFilterField(model)


class RunFilterForm(NetBoxModelFilterSetForm):
    model = Run
    fieldsets = (
        FieldSet("q", "filter_id", "tag"),
        FieldSet("status", "runbook", "target", "operator", "change", name=_("Run")),
        FieldSet("run_id", "emergency", "scheduled", name=_("Record")),
    )
    status = forms.MultipleChoiceField(choices=RunStatusChoices, required=False, label=_("Status"))
    runbook = forms.CharField(required=False, label=_("Runbook"))
    target = forms.CharField(required=False, label=_("Target (name)"))
    operator = _people("operator", _("Operator"))
    change = forms.CharField(required=False, label=_("Change (CHG-…)"))
    run_id = forms.CharField(required=False, label=_("Run id"))
    emergency = _yes_no(_("Emergency"))
    scheduled = _yes_no(_("Scheduled"))
    tag = TagFilterField(model)


class SignForm(forms.Form):
    """A review, approval or emergency approval, naming the plan hash the signer read."""

    authority = forms.ChoiceField(choices=[(a, a) for a in CHANGE_AUTHORITIES])
    hash = forms.CharField(label=_("Plan hash"), max_length=64)
    note = forms.CharField(
        label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class SignoffForm(forms.Form):
    """A sign-off of a run's record; the role (responsible or supervisor) is the server's."""

    note = forms.CharField(
        label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
