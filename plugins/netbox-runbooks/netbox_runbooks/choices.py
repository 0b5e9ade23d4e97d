"""The statuses and authorities of changes, runs and signatures, as NetBox choice sets (with
the colours NetBox's badges use). The values are `runbooks_rules`' own: the client and the
server speak one vocabulary."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from runbooks_rules import lifecycle, policy
from utilities.choices import ChoiceSet


class ChangeStatusChoices(ChoiceSet):
    PLANNED = lifecycle.PLANNED
    REVIEWED = lifecycle.REVIEWED
    APPROVED = lifecycle.APPROVED
    SCHEDULED = lifecycle.SCHEDULED
    RUNNING = lifecycle.RUNNING
    SUCCEEDED = lifecycle.SUCCEEDED
    ROLLED_BACK = lifecycle.ROLLED_BACK
    ROLLBACK_FAILED = lifecycle.ROLLBACK_FAILED
    STOPPED = lifecycle.STOPPED
    REFUSED = lifecycle.REFUSED
    UNREVIEWED = lifecycle.UNREVIEWED

    CHOICES = [
        (PLANNED, _("Planned"), "cyan"),
        (REVIEWED, _("Reviewed"), "blue"),
        (APPROVED, _("Approved"), "green"),
        (SCHEDULED, _("Scheduled"), "teal"),
        (RUNNING, _("Running"), "purple"),
        (SUCCEEDED, _("Succeeded"), "green"),
        (ROLLED_BACK, _("Rolled back"), "orange"),
        (ROLLBACK_FAILED, _("Rollback failed"), "red"),
        (STOPPED, _("Stopped part-way"), "yellow"),
        (REFUSED, _("Refused"), "red"),
        (UNREVIEWED, _("Unreviewed"), "yellow"),
    ]


class RunStatusChoices(ChoiceSet):
    RUNNING = lifecycle.RUNNING
    SUCCEEDED = lifecycle.SUCCEEDED
    ROLLED_BACK = lifecycle.ROLLED_BACK
    ROLLBACK_FAILED = lifecycle.ROLLBACK_FAILED
    STOPPED = lifecycle.STOPPED

    CHOICES = [
        (RUNNING, _("Running"), "purple"),
        (SUCCEEDED, _("Succeeded"), "green"),
        (ROLLED_BACK, _("Rolled back"), "orange"),
        (ROLLBACK_FAILED, _("Rollback failed"), "red"),
        (STOPPED, _("Stopped part-way"), "yellow"),
    ]


class AuthorityChoices(ChoiceSet):
    """What a signature stands for: on a change (review, approve, emergency) or on a run's
    record (responsible, supervisor)."""

    REVIEW = policy.REVIEW
    APPROVE = policy.APPROVE
    EMERGENCY = policy.EMERGENCY
    RESPONSIBLE = policy.RESPONSIBLE
    SUPERVISOR = policy.SUPERVISOR

    CHOICES = [
        (REVIEW, _("審核 Review"), "blue"),
        (APPROVE, _("批准 Approve"), "green"),
        (EMERGENCY, _("Emergency approval"), "red"),
        (RESPONSIBLE, _("職位責任人 Responsible person"), "cyan"),
        (SUPERVISOR, _("上級主管 Supervisor"), "purple"),
    ]


# The custom object-permission actions on a change that grant the manual's four authorities
# (beside the runbook-* groups): `user.has_perm("netbox_runbooks.<action>_change")`.
AUTHORITY_ACTIONS = (
    (policy.HANDLE, "經辦 handle: prepare and run changes"),
    (policy.REVIEW, "審核 review changes"),
    (policy.APPROVE, "批准 approve changes"),
    (policy.SUPERVISE, "督導 supervise: sign off run records"),
)
