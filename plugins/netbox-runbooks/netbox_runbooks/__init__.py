"""netbox-runbooks: NetBox as the authority for runbook changes (see README.md)."""

from netbox.plugins import PluginConfig, get_plugin_config
from runbooks_rules.policy import GROUP_AUTHORITIES, GroupMap, group_authorities


class RunbooksConfig(PluginConfig):
    name = "netbox_runbooks"
    verbose_name = "Runbooks"
    description = "Changes, approvals and tamper-evident run records for runbooks"
    version = "0.1.0"
    base_url = "runbooks"
    min_version = "4.7.0"
    # NetBox's default ("graphql.schema") names an attribute of the graphql package
    graphql_schema = "graphql.schema.schema"
    default_settings = {
        # the clock skew allowed on a record entry's own time stamp (seconds ahead of the server)
        "max_clock_skew_s": 300,
        # the department's NetBox groups and the authorities each gives (an authority or a
        # list of them); the `runbook` command's `netbox_groups` setting should be the same
        "groups": dict(GROUP_AUTHORITIES),
    }

    def ready(self) -> None:
        super().ready()
        group_map()  # a mistaken PLUGINS_CONFIG stops NetBox at start, not at a signature
        from netbox_runbooks import (
            events,
            widgets,  # noqa: F401 - registers the dashboard widget
        )

        events.register()


def group_map() -> GroupMap:
    """PLUGINS_CONFIG["netbox_runbooks"]["groups"], checked by the rules' `group_authorities`
    (the function the `runbook` command passes its `netbox_groups` setting through)."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        return group_authorities(get_plugin_config("netbox_runbooks", "groups"))
    except ValueError as exc:
        raise ImproperlyConfigured(f'PLUGINS_CONFIG["netbox_runbooks"]["groups"]: {exc}') from None


config = RunbooksConfig
