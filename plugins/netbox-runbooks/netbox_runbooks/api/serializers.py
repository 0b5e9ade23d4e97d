"""Serializers: the objects as the API shows them (every field read-only: they change only
through the operations in `netbox_runbooks.changes`/`runs`), and the bodies of those
operations. A body's unknown fields — user, preparer, created, recorded_by, … — are not
read at all: who and when are the server's."""

from __future__ import annotations

from typing import Any

from netbox.api.serializers import NetBoxModelSerializer
from rest_framework import serializers
from runbooks_rules.chain import canonical
from runbooks_rules.policy import APPROVE, EMERGENCY, REVIEW

from netbox_runbooks.models import Change, RecordEntry, Run, Signature

__all__ = (
    "ChangeCreateSerializer",
    "ChangeSerializer",
    "EntriesSerializer",
    "EntrySerializer",
    "RunSerializer",
    "RunStartSerializer",
    "ScheduleSerializer",
    "SignSerializer",
    "SignatureSerializer",
    "SignoffSerializer",
    "entry_dict",
)

USERNAME = {"slug_field": "username", "read_only": True}


class SignatureSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(**USERNAME)

    class Meta:
        model = Signature
        fields = ("authority", "user", "plan_hash", "note", "created")
        read_only_fields = fields


class RunBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = ("id", "run_id", "status")
        read_only_fields = fields


class ChangeSerializer(NetBoxModelSerializer):
    preparer = serializers.SlugRelatedField(**USERNAME)
    scheduled_by = serializers.SlugRelatedField(**USERNAME)
    signatures = serializers.SerializerMethodField()
    runs = RunBriefSerializer(many=True, read_only=True)

    class Meta:
        model = Change
        fields = (
            "id",
            "url",
            "display_url",
            "display",
            "name",
            "runbook",
            "status",
            "plan_hash",
            "preparer",
            "created",
            "last_updated",
            "window_start",
            "window_end",
            "targets",
            "refusal",
            "unreviewed",
            "stale",
            "instruction",
            "params",
            "plan",
            "signatures",
            "runs",
            "scheduled_by",
            "confirm_manual",
            "tags",
            "custom_fields",
        )
        read_only_fields = fields
        brief_fields = ("id", "url", "display", "name", "runbook", "status", "plan_hash")

    def get_signatures(self, obj: Change) -> list[dict[str, Any]]:
        # the change's own signatures; its runs' sign-offs are on each run
        sigs = [s for s in obj.signatures.all() if s.run_id is None]
        return SignatureSerializer(sigs, many=True).data  # type: ignore[return-value]


class ChangeBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Change
        fields = ("id", "name")
        read_only_fields = fields


class RunSerializer(NetBoxModelSerializer):
    change = ChangeBriefSerializer(read_only=True)
    runbook = serializers.CharField(source="change.runbook", read_only=True)
    targets = serializers.ListField(source="change.targets", read_only=True)
    operator = serializers.SlugRelatedField(**USERNAME)
    signatures = SignatureSerializer(many=True, read_only=True)

    class Meta:
        model = Run
        fields = (
            "id",
            "url",
            "display_url",
            "display",
            "run_id",
            "change",
            "runbook",
            "operator",
            "started",
            "finished",
            "status",
            "emergency",
            "scheduled",
            "worker",
            "length",
            "head",
            "targets",
            "signatures",
            "created",
            "last_updated",
            "tags",
            "custom_fields",
        )
        read_only_fields = fields
        brief_fields = ("id", "url", "display", "run_id", "status", "length", "head")


def entry_dict(entry: RecordEntry) -> dict[str, Any]:
    """A stored entry as the API gives it: the hashed fields, then the server's own two."""
    return {
        "run_id": entry.chain,
        "seq": entry.seq,
        "ts": entry.ts,
        "actor": entry.actor,
        "kind": entry.kind,
        "step": entry.step,
        "payload": entry.data,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "recorded_by": entry.recorded_by.username,
        "recorded_at": entry.recorded_at.isoformat(),
    }


# -- bodies of the operations ------------------------------------------------------------------


HASH = {"max_length": 64, "min_length": 1}


class ChangeCreateSerializer(serializers.Serializer):
    runbook = serializers.CharField(max_length=100)
    instruction = serializers.CharField(max_length=200, required=False, allow_blank=True)
    params = serializers.DictField(required=False)
    plan = serializers.DictField()
    window_start = serializers.DateTimeField(required=False, allow_null=True)
    window_end = serializers.DateTimeField(required=False, allow_null=True)
    unreviewed = serializers.BooleanField(default=False)


class SignSerializer(serializers.Serializer):
    authority = serializers.ChoiceField(choices=(REVIEW, APPROVE, EMERGENCY))
    hash = serializers.CharField(max_length=64, allow_blank=True)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    current_hash = serializers.CharField(required=False, allow_blank=True, allow_null=True, **HASH)
    drift = serializers.ListField(child=serializers.CharField(max_length=2000), default=list)
    # check_only: who is acting (state, authority, duties, the named hash), nothing signed
    check_only = serializers.BooleanField(default=False)


class ScheduleSerializer(serializers.Serializer):
    confirm_manual = serializers.BooleanField(default=False)


class RunStartSerializer(serializers.Serializer):
    # check_only: the checks before the plan hash, nothing started (the client asks first)
    check_only = serializers.BooleanField(default=False)
    plan_hash = serializers.CharField(**{**HASH, "required": False, "allow_blank": True})
    drift = serializers.ListField(child=serializers.CharField(max_length=2000), default=list)
    scheduled = serializers.BooleanField(default=False)
    worker = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, default="", max_length=100
    )
    # the id the client began the run's record under (before its re-plan); a new one otherwise
    run_id = serializers.RegexField(
        r"^\d{8}-\d{6}-[0-9a-f]{6}$", required=False, allow_blank=True, default=""
    )


class EntrySerializer(serializers.Serializer):
    """One posted entry. Text is taken as it comes (no trimming): it is hashed as it is."""

    seq = serializers.IntegerField(min_value=1)
    ts = serializers.CharField(max_length=40, trim_whitespace=False)
    actor = serializers.CharField(max_length=150, allow_blank=True, trim_whitespace=False)
    kind = serializers.CharField(max_length=50, trim_whitespace=False)
    step = serializers.CharField(
        max_length=200,
        allow_null=True,
        allow_blank=True,
        required=False,
        default=None,
        trim_whitespace=False,
    )
    payload = serializers.DictField()
    prev_hash = serializers.CharField(max_length=64, trim_whitespace=False)
    hash = serializers.CharField(max_length=64, trim_whitespace=False)

    def validate_payload(self, value: dict[str, Any]) -> dict[str, Any]:
        canonical(value)  # JSON-clean, as it will be hashed
        return value


class EntriesSerializer(serializers.Serializer):
    entries = EntrySerializer(many=True, allow_empty=False, max_length=10000)


class SignoffSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
