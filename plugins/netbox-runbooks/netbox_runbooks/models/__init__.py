from netbox_runbooks.models.changes import Change, Signature
from netbox_runbooks.models.runs import RecordEntry, Run

__all__ = ("Change", "RecordEntry", "Run", "Signature")
