"""The web UI's pages, built as NetBox's own apps build theirs (generic views, tables, filter
forms, registered model views).

A change's page is its review document; a run's page its record and record sheet. The forms
on them post to views that call the server's operations (`netbox_runbooks.changes.sign`,
`netbox_runbooks.runs.sign_off`) — the very functions the REST API calls — and show what they
answer: a refusal's sentence as an error message (the operation has recorded it), success as
a message. Which buttons a page shows is `netbox_runbooks.allowed`: the rules asked, nothing
written.
"""

from __future__ import annotations

from typing import Any

from dcim.models import Device
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from netbox.object_actions import BulkExport
from netbox.views import generic
from runbooks_rules import lifecycle, policy
from runbooks_rules.policy import AUTHORITY_NAMES, MIN_HASH_PREFIX
from runbooks_rules.sheet import batches_line
from utilities.views import ViewTab, get_default_template, register_model_view
from virtualization.models import VirtualMachine

from netbox_runbooks import changes, filtersets, forms, runs, tables
from netbox_runbooks import sheet as record_sheet
from netbox_runbooks.allowed import change_signatures, run_signoff_role, sign_authorities
from netbox_runbooks.choices import AuthorityChoices
from netbox_runbooks.document import duration, review_context, value
from netbox_runbooks.errors import RunbooksError
from netbox_runbooks.history import change_history, run_record
from netbox_runbooks.identity import identity_of
from netbox_runbooks.models import Change, RecordEntry, Run

__all__ = (
    "ChangeListView",
    "ChangeSignView",
    "ChangeView",
    "DeviceRunbooksView",
    "RunListView",
    "RunSheetView",
    "RunSignoffView",
    "RunView",
    "VirtualMachineRunbooksView",
)

# the buttons a change page may show, in the rules' words
SIGN_LABELS = {
    policy.REVIEW: gettext_lazy("Review (審核)"),
    policy.APPROVE: gettext_lazy("Approve (批准)"),
    policy.EMERGENCY: gettext_lazy("Emergency-approve"),
}
# a run's change without its plan document: lists and run pages never show it
RUNS = Run.objects.select_related("change", "operator").defer("change__plan", "change__params")


# -- changes -------------------------------------------------------------------------------------


@register_model_view(Change, "list", path="", detail=False)
class ChangeListView(generic.ObjectListView):
    queryset = Change.objects.select_related("preparer").defer("plan", "params")
    table = tables.ChangeTable
    filterset = filtersets.ChangeFilterSet
    filterset_form = forms.ChangeFilterForm
    actions = (BulkExport,)


@register_model_view(Change)
class ChangeView(generic.ObjectView):
    """The review document: summary, steps, evidence, each system's diffs; then signatures,
    the change's own chain and its runs."""

    queryset = Change.objects.select_related("preparer", "scheduled_by").prefetch_related(
        "signatures__user", "signatures__run"
    )
    template_name = "netbox_runbooks/change.html"
    actions = ()

    def get_extra_context(self, request: HttpRequest, instance: Change) -> dict[str, Any]:
        who = identity_of(request.user)
        allowed = sign_authorities(who, instance, change_signatures(instance))
        run_table = tables.embedded(
            tables.RunTable, RUNS.filter(change=instance), hide=("change", "runbook", "targets")
        )
        return {
            **review_context(instance),
            "history": change_history(instance),
            "signatures": _signature_rows(instance.signatures.all()),
            "run_table": run_table,
            "sign_actions": [(a, SIGN_LABELS[a]) for a in allowed],
            "min_hash": MIN_HASH_PREFIX,
            "stopped_batches": _stopped_batches(instance),
        }


def _stopped_batches(change: Change) -> str:
    """Where a stopped change stands: the batches its last run's run.finished entry names."""
    if change.status != lifecycle.STOPPED:
        return ""
    finished = (
        RecordEntry.objects.filter(run__change=change, kind="run.finished")
        .order_by("-run__started", "-seq")
        .first()
    )
    return batches_line(finished.to_entry().payload.get("batches")) if finished else ""


def _signature_rows(signatures: Any) -> list[dict[str, Any]]:
    return [{"sig": s, "color": AuthorityChoices.colors.get(s.authority)} for s in signatures]


@register_model_view(Change, "sign", path="sign")
class ChangeSignView(generic.ObjectView):
    """Review, approve or emergency-approve: `changes.sign`, as the API's sign action calls it
    (the same rules, the refusal recorded on the change by the operation)."""

    queryset = Change.objects.all()
    actions = ()

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return redirect(self.get_object(**kwargs).get_absolute_url())

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        change = self.get_object(**kwargs)
        form = forms.SignForm(request.POST)
        if not form.is_valid():
            messages.error(
                request,
                _("A signature names the plan hash: %(errors)s")
                % {"errors": "; ".join(e for errs in form.errors.values() for e in errs)},
            )
            return redirect(change.get_absolute_url())
        authority = form.cleaned_data["authority"]
        try:
            signed = changes.sign(
                request.user,
                change.pk,
                authority,
                form.cleaned_data["hash"],
                note=form.cleaned_data["note"],
            )
        except RunbooksError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("%(who)s signed %(change)s: %(authority)s; it is now %(status)s")
                % {
                    "who": request.user.username,
                    "change": signed.name,
                    "authority": AUTHORITY_NAMES[authority],
                    "status": signed.get_status_display(),
                },
            )
        return redirect(change.get_absolute_url())


# -- runs ----------------------------------------------------------------------------------------


@register_model_view(Run, "list", path="", detail=False)
class RunListView(generic.ObjectListView):
    queryset = RUNS
    table = tables.RunTable
    filterset = filtersets.RunFilterSet
    filterset_form = forms.RunFilterForm
    actions = (BulkExport,)


@register_model_view(Run)
class RunView(generic.ObjectView):
    """A run: its summary, its record entries, its record sheet with the two signature blocks."""

    queryset = RUNS.prefetch_related("signatures__user")
    template_name = "netbox_runbooks/run.html"
    actions = ()

    def get_extra_context(self, request: HttpRequest, instance: Run) -> dict[str, Any]:
        signatures = list(instance.signatures.all())
        signed = [s.authority for s in signatures]
        role = run_signoff_role(identity_of(request.user), instance, signed)
        try:
            sheet = record_sheet.context(instance)
        except RunbooksError:  # no record yet: nothing to sign or show
            sheet = None
        return {
            **run_record(instance),
            "signatures": _signature_rows(signatures),
            "sheet": sheet,
            "sheet_params": _params(sheet),
            "signoff_role": role,
            "signoff_label": dict(AuthorityChoices)[role] if role else "",
            "run_duration": _run_duration(instance),
        }


def _run_duration(run: Run) -> str:
    return duration((run.finished - run.started).total_seconds()) if run.finished else ""


def _params(sheet: dict[str, Any] | None) -> list[tuple[str, str]]:
    started = (sheet or {}).get("started") or {}
    return [(str(k), value(v)) for k, v in (started.get("params") or {}).items()]


@register_model_view(Run, "signoff", path="signoff")
class RunSignoffView(generic.ObjectView):
    """Sign a finished run's record: `runs.sign_off`, as the API's signoff action calls it."""

    queryset = RUNS
    actions = ()

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return redirect(self.get_object(**kwargs).get_absolute_url())

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        run = self.get_object(**kwargs)
        form = forms.SignoffForm(request.POST)
        note = form.cleaned_data["note"] if form.is_valid() else ""
        try:
            signature = runs.sign_off(request.user, run.pk, note)
        except RunbooksError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("%(who)s signed the record of %(run)s as %(role)s")
                % {
                    "who": request.user.username,
                    "run": run.run_id,
                    "role": signature.get_authority_display(),
                },
            )
        return redirect(run.get_absolute_url())


@register_model_view(Run, "sheet", path="sheet")
class RunSheetView(generic.ObjectView):
    """The record sheet as a download (``?format=md|html``), as the API's sheet action."""

    queryset = RUNS
    actions = ()

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        run = self.get_object(**kwargs)
        fmt = request.GET.get("format", "html")
        if fmt not in record_sheet.FORMATS:
            return HttpResponse("format: html or md\n", status=400, content_type="text/plain")
        try:
            return record_sheet.download(run, fmt)
        except RunbooksError as exc:
            messages.error(request, str(exc))
            return redirect(run.get_absolute_url())


# -- the Runbooks tab of devices and virtual machines ---------------------------------------------


class TargetRunbooksView(generic.ObjectView):
    """The changes that name the object as a target, and their runs."""

    relation = ""  # Change's many-to-many field to the object's model
    template_name = "netbox_runbooks/target_runbooks.html"
    additional_permissions = ["netbox_runbooks.view_change"]
    actions = ()

    def get_extra_context(self, request: HttpRequest, instance: Any) -> dict[str, Any]:
        touched = (
            Change.objects.restrict(request.user, "view")
            .filter(**{self.relation: instance})
            .select_related("preparer")
            .defer("plan", "params")
        )
        runs_ = RUNS.restrict(request.user, "view").filter(change__in=touched.values("pk"))
        return {
            "base_template": get_default_template(instance),
            "change_table": tables.embedded(tables.ChangeTable, touched),
            "run_table": tables.embedded(tables.RunTable, runs_),
        }


def _tab() -> ViewTab:
    return ViewTab(
        label=gettext_lazy("Runbooks"),
        badge=lambda obj: obj.runbook_changes.count(),
        permission="netbox_runbooks.view_change",
        weight=2000,
    )


@register_model_view(Device, "runbooks", path="runbooks")
class DeviceRunbooksView(TargetRunbooksView):
    queryset = Device.objects.all()
    relation = "devices"
    tab = _tab()


@register_model_view(VirtualMachine, "runbooks", path="runbooks")
class VirtualMachineRunbooksView(TargetRunbooksView):
    queryset = VirtualMachine.objects.all()
    relation = "virtual_machines"
    tab = _tab()
