"""netbox-runbooks: NetBox as the authority for runbook changes (see README.md)."""

from netbox.plugins import PluginConfig


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
    }

    def ready(self) -> None:
        super().ready()
        from netbox_runbooks import (
            events,
            widgets,  # noqa: F401 - registers the dashboard widget
        )

        events.register()


config = RunbooksConfig
