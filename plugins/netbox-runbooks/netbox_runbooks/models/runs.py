"""A run of a change and its record: hash-chained entries, one chain per run (and one per
change, written by the server itself).

`RecordEntry` keeps each entry exactly as it was hashed (`runbooks_rules.chain`): the time
stamp as its own text and the payload as canonical JSON text, so anyone can recompute every
hash byte for byte. Entries are append-only: the API has no update or delete, and a
database trigger (migration 0002) refuses UPDATE, DELETE and TRUNCATE.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from netbox.models import NetBoxModel
from runbooks_rules.chain import Entry

from netbox_runbooks.choices import RunStatusChoices

__all__ = ("RecordEntry", "Run")


class Run(NetBoxModel):
    """One run of a change; ``length`` and ``head`` anchor its record's chain (the number of
    entries and the hash of the last), so a truncated record shows on verify."""

    run_id = models.CharField(_("run id"), max_length=40, unique=True, editable=False)
    change = models.ForeignKey(
        to="netbox_runbooks.Change", on_delete=models.PROTECT, related_name="runs", editable=False
    )
    operator = models.ForeignKey(
        to=settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="runbook_runs",
        editable=False,
        verbose_name=_("operator"),
    )
    started = models.DateTimeField(_("started"), default=timezone.now, editable=False)
    finished = models.DateTimeField(_("finished"), null=True, blank=True, editable=False)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=RunStatusChoices,
        default=RunStatusChoices.RUNNING,
        editable=False,
        db_index=True,
    )
    # run outside its window on an emergency approval
    emergency = models.BooleanField(_("emergency"), default=False, editable=False)
    scheduled = models.BooleanField(_("scheduled"), default=False, editable=False)
    worker = models.CharField(_("worker"), max_length=100, blank=True, editable=False)
    length = models.PositiveIntegerField(_("entries"), default=0, editable=False)
    head = models.CharField(_("head hash"), max_length=64, blank=True, editable=False)

    class Meta:
        ordering = ("-started", "-pk")
        verbose_name = _("run")
        verbose_name_plural = _("runs")

    def __str__(self) -> str:
        return self.run_id

    def get_absolute_url(self) -> str:
        return reverse("plugins:netbox_runbooks:run", args=[self.pk])

    def get_status_color(self) -> str:
        return str(RunStatusChoices.colors.get(self.status))


class RecordEntry(models.Model):
    """One entry of a chain, immutable. ``chain`` is the chain's id: a run's ``run_id``, or a
    change's name for the chain the server writes on a change (planned, signed, refused,
    scheduled, ran, record signed). ``recorded_by``/``recorded_at`` are the server's; ``ts``
    and ``actor`` are the entry's own, hashed content."""

    chain = models.CharField(_("chain"), max_length=40)
    run = models.ForeignKey(
        to=Run, on_delete=models.PROTECT, related_name="entries", null=True, blank=True
    )
    change = models.ForeignKey(
        to="netbox_runbooks.Change",
        on_delete=models.PROTECT,
        related_name="entries",
        null=True,
        blank=True,
    )
    seq = models.PositiveIntegerField(_("position"))
    ts = models.CharField(_("time stamp"), max_length=40)
    actor = models.CharField(_("actor"), max_length=150)
    kind = models.CharField(_("kind"), max_length=50, db_index=True)
    step = models.CharField(_("step"), max_length=200, null=True, blank=True)
    payload = models.TextField(_("payload (canonical JSON)"))
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64, unique=True)
    recorded_by = models.ForeignKey(
        to=settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)

    class Meta:
        ordering = ("chain", "seq")
        verbose_name = _("record entry")
        verbose_name_plural = _("record entries")
        constraints = (
            models.UniqueConstraint(
                fields=("chain", "seq"), name="netbox_runbooks_recordentry_one_per_position"
            ),
        )

    def __str__(self) -> str:
        return f"{self.chain} #{self.seq} {self.kind}"

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.payload)  # type: ignore[no-any-return]

    def to_entry(self) -> Entry:
        """As `runbooks_rules.chain.Entry`, to verify or to render a sheet."""
        return Entry(
            self.seq,
            self.chain,
            self.ts,
            self.actor,
            self.kind,
            self.step,
            self.data,
            self.prev_hash,
            self.hash,
        )
