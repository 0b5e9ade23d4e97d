"""On a device's or virtual machine's own page: an alert while a change that names it is
approved, queued or running — whoever opens the page learns that it is about to change (or
is changing) under a reviewed plan, and which one. The full list is the *Runbooks* tab."""

from __future__ import annotations

from netbox.plugins import PluginTemplateExtension
from runbooks_rules import lifecycle

from netbox_runbooks.models import Change

__all__ = ("template_extensions",)

# the statuses of a change on its way to the object: signed and waiting, queued, or acting
UNDER_WAY = (lifecycle.APPROVED, lifecycle.SCHEDULED, lifecycle.RUNNING)


class _ChangesUnderWay(PluginTemplateExtension):
    relation = ""

    def alerts(self) -> str:
        obj = self.context["object"]
        user = self.context["request"].user
        if not user.has_perm("netbox_runbooks.view_change"):
            return ""
        under_way = list(
            Change.objects.restrict(user, "view")
            .filter(**{self.relation: obj}, status__in=UNDER_WAY)
            .only("pk", "name", "runbook", "status", "window_start", "window_end")
            .order_by("window_start")[:5]
        )
        if not under_way:
            return ""
        return self.render(
            "netbox_runbooks/inc/under_way_alert.html", extra_context={"under_way": under_way}
        )


class DeviceChanges(_ChangesUnderWay):
    models = ["dcim.device"]
    relation = "devices"


class VirtualMachineChanges(_ChangesUnderWay):
    models = ["virtualization.virtualmachine"]
    relation = "virtual_machines"


template_extensions = [DeviceChanges, VirtualMachineChanges]
