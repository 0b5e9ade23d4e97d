"""NetBox's schema for the lab: the migrated core dump shipped per NetBox version, and the
progress of a real `migrate` (which takes minutes on a fresh machine without that dump).

Pure helpers, no NetBox and no database: `runbooks.lab.netbox` runs the commands.

- ``snapshots/netbox-<version>-core.sql.gz`` (package data): a plain `pg_dump` of a database
  NetBox <version> core migrated, no plugin, no user, token or session. `runbook lab
  netbox-snapshot` regenerates it (a real migrate, ~7 min) after NetBox's version changes; a
  lab test restores it and asks NetBox's `migrate --check` whether anything is left to apply.
- A migrate reports ``(started, total, migration)`` to the reporter that `reporting()` set
  (the CLI's progress bar), else to the log every tenth of the way.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path

log = logging.getLogger(__name__)

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
# Tables whose rows would be secrets or identities: a shipped dump must have none.
PRIVATE_TABLES = frozenset(
    {
        "users_user",
        "users_token",
        "users_userconfig",
        "django_session",
        "social_auth_usersocialauth",
        "social_auth_partial",
        "social_auth_code",
        "social_auth_nonce",
        "social_auth_association",
    }
)

MigrationProgress = Callable[[int, int, str], None]
"""(migrations started so far, migrations planned, the one now applying)."""


def shipped_snapshot(version: str) -> Path:
    """The dump shipped for exactly this NetBox version (it may not exist).

    >>> shipped_snapshot("4.7.3").name
    'netbox-4.7.3-core.sql.gz'
    """
    return SNAPSHOTS / f"netbox-{version}-core.sql.gz"


# -- a dump fit to ship -------------------------------------------------------------------------

_COPY = re.compile(r"^COPY (?:public\.)?(\w+) \(.*\) FROM stdin;$")
_RESTRICT = re.compile(r"^\\(un)?restrict ")


def _statements_and_rows(sql: str) -> Iterator[tuple[str | None, str]]:
    """(table, line) for each line of a plain dump: the table whose COPY data the line is, else
    None (a statement, a comment, or the COPY's own first and last lines)."""
    table: str | None = None
    for line in sql.splitlines(keepends=True):
        if table is not None and line.rstrip("\n") == "\\.":
            table = None
        yield table, line
        found = _COPY.match(line.rstrip("\n")) if table is None else None
        if found:
            table = found[1]


def clean_dump(sql: str) -> str:
    """pg_dump's text without its ``\\restrict <random key>`` ... ``\\unrestrict`` brackets
    (since PostgreSQL 15.14): older psql refuses them and they make every dump differ; a dump
    that is reviewed and shipped needs neither."""
    return "".join(
        line for table, line in _statements_and_rows(sql) if table or not _RESTRICT.match(line)
    )


def meta_commands(sql: str) -> list[str]:
    """psql meta-commands in a plain dump (outside COPY data): a shipped dump must have none."""
    return [
        line.strip()
        for table, line in _statements_and_rows(sql)
        if table is None and line.startswith("\\") and line.rstrip("\n") != "\\."
    ]


def table_rows(sql: str) -> dict[str, int]:
    """Table -> number of rows in a plain dump's COPY blocks."""
    rows: dict[str, int] = {}
    for table, line in _statements_and_rows(sql):
        if table is None:
            found = _COPY.match(line.rstrip("\n"))
            if found:
                rows.setdefault(found[1], 0)
        else:
            rows[table] += 1
    return rows


def private_rows(sql: str) -> dict[str, int]:
    """Tables of `PRIVATE_TABLES` that have rows in a plain dump (users, tokens, sessions)."""
    return {t: n for t, n in table_rows(sql).items() if n and t in PRIVATE_TABLES}


def compress(sql: str) -> bytes:
    """gzip with no timestamp: the same dump gives the same bytes."""
    return gzip.compress(sql.encode(), mtime=0)


# -- following a migrate ------------------------------------------------------------------------

_PLANNED = re.compile(r"^(\w+)\.(\w+)$")
_APPLYING = re.compile(r"Applying (\w+\.\w+)\.\.\.")


def planned_migrations(plan: str) -> list[str]:
    """The migrations `migrate --plan` lists, in order (their operations are indented).

    >>> planned_migrations("Planned operations:\\nauth.0001_initial\\n    Create model User\\n")
    ['auth.0001_initial']
    >>> planned_migrations("Planned operations:\\n  No planned migration operations.\\n")
    []
    """
    return [line for line in plan.splitlines() if _PLANNED.match(line)]


def migration_started(line: str) -> str | None:
    """The migration a line of `migrate`'s output starts applying, if any. A migration's own
    output may follow on the same line, before Django's " OK".

    >>> migration_started("  Applying dcim.0001_initial... OK")
    'dcim.0001_initial'
    >>> migration_started("Running migrations:") is None
    True
    """
    found = _APPLYING.search(line)
    return found[1] if found else None


_reporter: ContextVar[MigrationProgress | None] = ContextVar(
    "netbox_migrate_reporter", default=None
)


@contextlib.contextmanager
def reporting(report: MigrationProgress) -> Iterator[None]:
    """Migrations run inside this block report to `report` (the CLI's progress bar)."""
    token = _reporter.set(report)
    try:
        yield
    finally:
        _reporter.reset(token)


def _log_tenths() -> MigrationProgress:
    shown = [-1]

    def report(started: int, total: int, name: str) -> None:
        tenth = started * 10 // max(total, 1)
        if tenth > shown[0] or started == total:
            shown[0] = tenth
            log.info("NetBox migrate: %d/%d migrations (%s)", started, total, name)

    return report


def follow(lines: Iterable[str], total: int) -> tuple[int, list[str]]:
    """Report each migration `migrate` starts, reading its output line by line; return how
    many started and the output's last lines (for an error message)."""
    report = _reporter.get() or _log_tenths()
    started = 0
    tail: deque[str] = deque(maxlen=20)
    for line in lines:
        tail.append(line.rstrip("\n"))
        name = migration_started(line)
        if name is not None:
            started += 1
            report(started, max(total, started), name)
    return started, list(tail)
