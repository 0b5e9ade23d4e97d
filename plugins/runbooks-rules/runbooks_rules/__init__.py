"""The rules of change control, defined once: the `runbook` command and the netbox-runbooks
plugin both import them (standard library only)."""
