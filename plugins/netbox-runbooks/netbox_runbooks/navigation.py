"""*Runbooks* in NetBox's menu: the changes (each one's page is its review document) and
the runs (each one's record and record sheet)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from netbox.plugins import PluginMenu, PluginMenuItem

menu = PluginMenu(
    label=_("Runbooks"),
    groups=(
        (
            _("Change control"),
            (
                PluginMenuItem(
                    link="plugins:netbox_runbooks:change_list",
                    link_text=_("Changes"),
                    auth_required=True,
                    permissions=["netbox_runbooks.view_change"],
                ),
                PluginMenuItem(
                    link="plugins:netbox_runbooks:run_list",
                    link_text=_("Runs"),
                    auth_required=True,
                    permissions=["netbox_runbooks.view_run"],
                ),
            ),
        ),
    ),
    icon_class="mdi mdi-clipboard-check-outline",
)
