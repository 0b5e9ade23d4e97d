"""The steps' titles in the manual's language: one table, `runbooks_rules.titles_zh`, which the
`runbook` command's sheets and the NetBox plugin's both read (add new titles there)."""

from runbooks_rules.titles_zh import TITLES, missing, title

__all__ = ("TITLES", "missing", "title")
