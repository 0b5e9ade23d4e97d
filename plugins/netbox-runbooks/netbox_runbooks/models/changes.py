"""A change (a planned runbook waiting for its signatures and its window) and the signatures
put on it or on its runs' records.

Every field a person could forge — who prepared, who signed, when — is set by the server
from the authenticated request (see `netbox_runbooks.changes`); none is editable through a
form or the API. Nothing here is ever deleted: runs, signatures and record entries hold
their change with PROTECT.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from netbox.models import NetBoxModel

from netbox_runbooks.choices import AUTHORITY_ACTIONS, AuthorityChoices, ChangeStatusChoices

__all__ = ("Change", "Signature")


class Change(NetBoxModel):
    """A runbook's plan, stored for review (CHG-…). Its ``plan_hash`` is what signatures bind
    to; the server computes it from ``plan``."""

    name = models.CharField(_("name"), max_length=32, unique=True, editable=False)
    runbook = models.CharField(_("runbook"), max_length=100, db_index=True)
    instruction = models.CharField(_("instruction"), max_length=200, blank=True)
    # already masked by the client: no secret value reaches the server
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    # the plan document (runbooks' Plan.to_dict()): steps, diffs, evidence
    plan = models.JSONField(_("plan"), default=dict)
    plan_hash = models.CharField(_("plan hash"), max_length=64, editable=False, db_index=True)
    window_start = models.DateTimeField(_("window start"), null=True, blank=True)
    window_end = models.DateTimeField(_("window end"), null=True, blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=ChangeStatusChoices,
        default=ChangeStatusChoices.PLANNED,
        editable=False,
        db_index=True,
    )
    # asked for by the preparer: run by them alone, with no signatures, and marked so for good
    unreviewed = models.BooleanField(_("unreviewed"), default=False, editable=False)
    # a run found the world drifted from the plan: the change never runs again
    stale = models.BooleanField(_("stale"), default=False, editable=False)
    refusal = models.TextField(_("refusal"), blank=True, editable=False)
    preparer = models.ForeignKey(
        to=settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="runbook_changes",
        editable=False,
        verbose_name=_("preparer"),
    )
    scheduled_by = models.ForeignKey(
        to=settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        editable=False,
        verbose_name=_("scheduled by"),
    )
    # the scheduler confirmed the manual steps in advance, in their own name
    confirm_manual = models.BooleanField(_("manual steps confirmed"), default=False, editable=False)
    # the names the plan's steps act on; devices and virtual machines of those names are linked
    targets = ArrayField(
        models.CharField(max_length=200), default=list, blank=True, verbose_name=_("targets")
    )
    devices = models.ManyToManyField(
        to="dcim.Device", related_name="runbook_changes", blank=True, editable=False
    )
    virtual_machines = models.ManyToManyField(
        to="virtualization.VirtualMachine",
        related_name="runbook_changes",
        blank=True,
        editable=False,
    )

    class Meta:
        ordering = ("-created", "-pk")
        verbose_name = _("change")
        verbose_name_plural = _("changes")
        # NetBox object-permission actions (beside the runbook-* groups) for the authorities
        permissions = AUTHORITY_ACTIONS

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("plugins:netbox_runbooks:change", args=[self.pk])

    def serialize_object(self, exclude: Any = None) -> dict[str, Any]:
        """NetBox's change log of a change leaves out the plan document: it never changes
        (its hash is logged and chained), and it can hold whole configurations."""
        return super().serialize_object(exclude=[*(exclude or []), "plan"])  # type: ignore[no-any-return]

    def get_status_color(self) -> str:
        return str(ChangeStatusChoices.colors.get(self.status))

    @property
    def window(self) -> tuple[Any, Any] | None:
        if self.window_start is None or self.window_end is None:
            return None
        return (self.window_start, self.window_end)

    def in_window(self, now: Any) -> bool:
        """Inside its window at ``now`` (the server's clock); a change without one always is."""
        window = self.window
        return window is None or window[0] <= now <= window[1]


class Signature(models.Model):
    """One person's signature: on a change (review, approve, emergency), bound to its plan
    hash, or on a run's record (responsible, supervisor). Append-only (a database trigger
    refuses UPDATE and DELETE); ``user`` and ``created`` are the server's."""

    change = models.ForeignKey(to=Change, on_delete=models.PROTECT, related_name="signatures")
    run = models.ForeignKey(
        to="netbox_runbooks.Run",
        on_delete=models.PROTECT,
        related_name="signatures",
        null=True,
        blank=True,
    )
    authority = models.CharField(_("authority"), max_length=16, choices=AuthorityChoices)
    user = models.ForeignKey(
        to=settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runbook_signatures"
    )
    plan_hash = models.CharField(_("plan hash"), max_length=64)
    note = models.TextField(_("note"), blank=True)
    created = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        ordering = ("created", "pk")
        verbose_name = _("signature")
        verbose_name_plural = _("signatures")
        constraints = (
            # a run's record carries each sign-off once, even under concurrent requests
            models.UniqueConstraint(
                fields=("run", "authority"),
                condition=models.Q(run__isnull=False),
                name="netbox_runbooks_signature_one_signoff_per_role",
            ),
        )

    def __str__(self) -> str:
        return f"{self.authority} by {self.user} on {self.change}"
