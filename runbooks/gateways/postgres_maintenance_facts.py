"""Pure logic of database maintenance (數據庫維護): the SQL that reads a cluster's health, and
the judgements on what it returns: disk headroom, replication lag, long transactions, index
and constraint checks, and the bloat a VACUUM removed.

Nothing here runs a command, so all of it is unit-tested without a cluster. Every query is one
plain SELECT returning one JSON value (``PostgresGateway.query_json`` reads them in a read-only
session); names the server gives back are quoted by the server (``format('%I.%I')``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Every table VACUUM can reach in a database: the statistics' own view, without other
# sessions' temporary tables (which VACUUM skips, and which come and go between plan and run)
# and without partitioned tables (relkind 'p': they hold no rows, and PostgreSQL never records
# a vacuum of them, so a check of last_vacuum could never pass): their partitions are here,
# each with the partitioned table at the top of its tree ('partition_of', pg_partition_root),
# so a parameter naming that table takes them all.
TABLE_FIGURES_SQL = """
SELECT coalesce(json_agg(json_build_object(
  'table', format('%I.%I', s.schemaname, s.relname),
  'live', s.n_live_tup, 'dead', s.n_dead_tup,
  'table_bytes', pg_table_size(s.relid), 'index_bytes', pg_indexes_size(s.relid),
  'last_vacuum', s.last_vacuum, 'last_analyze', s.last_analyze,
  'partition_of', (SELECT format('%I.%I', rn.nspname, r.relname) FROM pg_class r
    JOIN pg_namespace rn ON rn.oid = r.relnamespace
    WHERE c.relispartition AND r.oid = pg_partition_root(s.relid)))
  ORDER BY s.schemaname, s.relname), '[]')
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname NOT LIKE 'pg\\_temp%' AND c.relkind <> 'p'
"""

SERVER_NOW_SQL = "SELECT to_json(now())"

REPLICATION_SQL = """
SELECT json_build_object(
 'in_recovery', pg_is_in_recovery(),
 'replicas', (SELECT coalesce(json_agg(json_build_object(
     'name', application_name, 'client', client_addr::text, 'state', state,
     'sync_state', sync_state,
     'replay_lag_s', extract(epoch FROM replay_lag),
     'lag_bytes', CASE WHEN pg_is_in_recovery() THEN NULL
                  ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) END)
     ORDER BY application_name), '[]') FROM pg_stat_replication),
 'slots', (SELECT coalesce(json_agg(json_build_object(
     'slot', slot_name, 'type', slot_type, 'active', active,
     'retained_bytes', CASE WHEN pg_is_in_recovery() OR restart_lsn IS NULL THEN NULL
                       ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) END)
     ORDER BY slot_name), '[]') FROM pg_replication_slots),
 'standby_replay_lag_s', CASE WHEN pg_is_in_recovery()
     THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END)
"""


# Every session with an open transaction but ours, with its age (the threshold is applied by
# `long_transactions`, so no value is written into the SQL).
OPEN_TRANSACTIONS_SQL = """
SELECT coalesce(json_agg(json_build_object(
  'pid', pid, 'user', usename, 'database', datname, 'application', application_name,
  'client', client_addr::text, 'backend_type', backend_type, 'state', state,
  'xact_start', xact_start, 'age_s', round(extract(epoch FROM now() - xact_start)::numeric, 1),
  'holds_xmin', backend_xmin IS NOT NULL OR backend_xid IS NOT NULL,
  'wait_event', wait_event, 'query', query) ORDER BY xact_start), '[]')
FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
"""


INDEX_FACTS_SQL = """
SELECT json_build_object(
 'invalid_indexes', (SELECT coalesce(json_agg(json_build_object(
     'index', i.indexrelid::regclass::text, 'table', i.indrelid::regclass::text,
     'valid', i.indisvalid, 'ready', i.indisready) ORDER BY 1), '[]')
   FROM pg_index i WHERE NOT i.indisvalid OR NOT i.indisready),
 'not_valid_constraints', (SELECT coalesce(json_agg(json_build_object(
     'constraint', c.conname, 'table', c.conrelid::regclass::text, 'type', c.contype)
     ORDER BY 1), '[]')
   FROM pg_constraint c WHERE NOT c.convalidated),
 'amcheck_schema', (SELECT quote_ident(n.nspname) FROM pg_extension e
   JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'),
 'amcheck_available', EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'))
"""

# The B-tree indexes amcheck can check: valid, ready, not another session's temporary ones,
# outside the system catalogs.
_BTREE_INDEXES = """
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam
WHERE a.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""

BTREE_INDEXES_SQL = (
    "SELECT coalesce(json_agg(json_build_object('oid', c.oid::int, 'index', "
    "c.oid::regclass::text) ORDER BY 2), '[]')" + _BTREE_INDEXES
)


def bt_index_check_all_sql(schema: str) -> str:
    """One query checking every index (``schema`` as the server quoted it); heapallindexed:
    every heap tuple must be found in the index too."""
    check = f"SELECT {_schema(schema)}.bt_index_check(c.oid, true)"
    return f"SELECT to_json(count(*)) FROM ({check} {_BTREE_INDEXES}) s"  # noqa: S608 (below)


def bt_index_check_one_sql(schema: str, oid: int) -> str:
    check = f"SELECT {_schema(schema)}.bt_index_check({int(oid)}::oid, true)"
    return f"SELECT to_json(count(*)) FROM ({check}) s"  # noqa: S608 (an int, an identifier)


def _schema(schema: str) -> str:
    """The extension's schema as the server quoted it (``quote_ident``): an identifier,
    nothing else, or refused; so the two queries above interpolate no free text."""
    if not re.fullmatch(r'[a-z_][a-z0-9_$]*|"(?:[^"]|"")+"', schema):
        raise ValueError(f"not a quoted identifier: {schema!r}")
    return schema


# ---------------------------------------------------------------------------- judgements


def split_names(text: str) -> list[str]:
    """A comma-separated parameter as names, in order, each once.

    >>> split_names(" inventory, sales,,inventory ")
    ['inventory', 'sales']
    """
    return list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def filesystem_figures(df_line: str) -> dict[str, Any]:
    """``df -B1 --output=size,avail,target`` (its last line) as figures.

    >>> filesystem_figures("2147483648 1073741824 /var/lib/postgresql")
    {'size_bytes': 2147483648, 'free_bytes': 1073741824, 'mount': '/var/lib/postgresql', \
'free_percent': 50.0}
    """
    size, avail, mount = df_line.split(None, 2)
    size_b, avail_b = int(size), int(avail)
    percent = round(100.0 * avail_b / size_b, 2) if size_b else 0.0
    return {"size_bytes": size_b, "free_bytes": avail_b, "mount": mount, "free_percent": percent}


def backup_space_needed(database_bytes: int) -> int:
    """Room the verified backup takes at its peak: the dump (compressed, at most the databases'
    size) and the scratch instance its restore test fills (as large again, removed after)."""
    return 2 * database_bytes + 64 * 1024 * 1024


def headroom_problems(
    data_fs: Mapping[str, Any],
    work_fs: Mapping[str, Any],
    backup_bytes: int,
    min_free_percent: float,
) -> list[str]:
    """What refuses the maintenance for lack of disk: the data directory's filesystem must keep
    ``min_free_percent`` free *after* the backup when the backup lands on it too; the backup's
    filesystem must hold it.

    >>> fs = {"size_bytes": 1000, "free_bytes": 300, "mount": "/srv"}
    >>> headroom_problems(fs, fs, 100, 10.0)
    []
    >>> headroom_problems(fs, fs, 250, 10.0)
    ['the filesystem of the data directory (/srv) would keep 5.0% free after the backup (50 \
of 1000 bytes), under the 10.0% threshold']
    """
    problems: list[str] = []
    same = data_fs["mount"] == work_fs["mount"]
    free_after = int(data_fs["free_bytes"]) - (backup_bytes if same else 0)
    size = int(data_fs["size_bytes"]) or 1
    percent = round(100.0 * free_after / size, 2)
    if percent < min_free_percent:
        when = " after the backup" if same else ""
        problems.append(
            f"the filesystem of the data directory ({data_fs['mount']}) would keep {percent}% free"
            f"{when} ({free_after} of {size} bytes), under the {min_free_percent}% threshold"
        )
    if not same and int(work_fs["free_bytes"]) < backup_bytes:
        problems.append(
            f"the backup needs {backup_bytes} bytes on {work_fs['mount']}, "
            f"which has {work_fs['free_bytes']} free"
        )
    return problems


def replication_findings(data: Mapping[str, Any], max_lag_s: float) -> list[str]:
    """What a reviewer must know of replication; none connected is said as a fact.

    >>> replication_findings({"replicas": [], "slots": []}, 60)
    ['no replica is connected (pg_stat_replication is empty)']
    >>> replication_findings({"replicas": [{"name": "r1", "state": "streaming",
    ...     "replay_lag_s": 75.5, "lag_bytes": 4096}], "slots": []}, 60)
    ['replica r1 (streaming) replays 75.5 s behind (4096 bytes), over the 60 s threshold']
    """
    findings: list[str] = []
    replicas = list(data.get("replicas") or [])
    if not replicas:
        findings.append("no replica is connected (pg_stat_replication is empty)")
    for r in replicas:
        lag = r.get("replay_lag_s")
        if lag is not None and float(lag) > max_lag_s:
            findings.append(
                f"replica {r.get('name') or r.get('client')} ({r.get('state')}) replays "
                f"{float(lag)} s behind ({r.get('lag_bytes')} bytes), over the "
                f"{max_lag_s:g} s threshold"
            )
        elif r.get("state") != "streaming":
            findings.append(f"replica {r.get('name') or r.get('client')} is {r.get('state')}")
    for slot in data.get("slots") or []:
        if not slot.get("active"):
            findings.append(
                f"replication slot {slot.get('slot')} is inactive and retains "
                f"{slot.get('retained_bytes')} bytes of WAL"
            )
    return findings


# The query's tokens, as PostgreSQL's lexer (scan.l) reads them, in one pass from the left:
# what starts first wins, so an apostrophe inside a comment or a quoted identifier never
# opens a literal. Comments (``--`` to the line's end; ``/* */``, nested: `_block_end`) and
# literals (``'…'`` with ``''`` inside, standard_conforming_strings being on as it is by
# default; ``E'…'`` with backslash escapes, only where a word begins; ``$tag$…$tag$``) are
# what passwords and data live in; a truncated query may end inside any of them.
# Double-quoted identifiers and words (keywords, names, numbers, ``$1``) are kept.
_IDENT_CHARS = r"A-Za-z_\u0080-\U0010ffff"
_TOKEN = re.compile(
    rf"""(?P<line>--[^\n]*)
    |(?P<block>/\*)
    |(?P<ident>"(?:[^"]|"")*"?)
    |(?P<estring>[Ee]'(?:[^'\\]|\\.|'')*'?)
    |(?P<dollar>\$(?:[{_IDENT_CHARS}][{_IDENT_CHARS}0-9]*)?\$)
    |(?P<string>'(?:[^']|'')*'?)
    |(?P<word>[{_IDENT_CHARS}0-9$]+)
    |(?P<other>.)""",
    re.DOTALL | re.VERBOSE,
)
_BLOCK_MARK = re.compile(r"/\*|\*/")


def _block_end(text: str, pos: int) -> int:
    """Where the block comment opened just before ``pos`` ends (the end of ``text`` when it
    does not): ``/* … */`` nest in PostgreSQL."""
    depth = 1
    for mark in _BLOCK_MARK.finditer(text, pos):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return len(text)


def _redacted_tokens(text: str) -> str:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        token = _TOKEN.match(text, pos)
        assert token is not None  # `other` takes any one character
        kind, end = token.lastgroup, token.end()
        if kind == "line":
            out.append(" ")
        elif kind == "block":
            end = _block_end(text, end)
            out.append(" ")
        elif kind == "dollar":
            close = text.find(token.group(), end)
            end = len(text) if close < 0 else close + len(token.group())
            out.append("'…'")
        elif kind in ("estring", "string"):
            out.append("'…'")
        else:
            out.append(token.group())
        pos = end
    return "".join(out)


def redact_query(text: str | None, limit: int = 200) -> str:
    """A session's query as the record may hold it: every literal replaced by ``'…'``
    (a password set by ALTER ROLE is a literal), every comment blanked, whitespace folded,
    cut at ``limit``. Read as PostgreSQL reads it (`_TOKEN`), so a quote inside a comment or
    an identifier does not shift which quotes pair.

    >>> redact_query("ALTER ROLE app PASSWORD 'hunter2'")
    "ALTER ROLE app PASSWORD '…'"
    >>> redact_query("select $x$secret$x$,\\n  E'a''b' from t")
    "select '…', '…' from t"
    >>> redact_query("/* don't log */ ALTER ROLE app PASSWORD 'hunter2' -- it's")
    "ALTER ROLE app PASSWORD '…'"
    """
    folded = " ".join(_redacted_tokens(text or "").split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


def long_transactions(
    sessions: Sequence[Mapping[str, Any]], older_than_s: float
) -> list[dict[str, Any]]:
    """The transactions open longer than ``older_than_s`` as the record names them: who,
    where, since when, what (redacted), and whether they hold back what VACUUM may remove.

    >>> [t["pid"] for t in long_transactions(
    ...     [{"pid": 7, "age_s": 3.5}, {"pid": 8, "age_s": 0.2}], 1.0)]
    [7]
    """
    return [
        {
            "pid": s["pid"],
            "user": s.get("user"),
            "database": s.get("database"),
            "application": s.get("application") or "",
            "client": s.get("client"),
            "backend_type": s.get("backend_type"),
            "state": s.get("state"),
            "xact_start": s.get("xact_start"),
            "age_s": float(s["age_s"]),
            "holds_xmin": bool(s.get("holds_xmin")),
            "wait_event": s.get("wait_event"),
            "query": redact_query(s.get("query")),
        }
        for s in sessions
        if float(s["age_s"]) > older_than_s
    ]


def amcheck_verdict(db: str, facts: Mapping[str, Any], corrupt: Mapping[str, str] | None,
                    checked: int) -> dict[str, Any]:  # fmt: skip
    """One database's index check in words: ran (how many, what failed) or could not run, and
    why: never a silent pass.

    >>> amcheck_verdict("sales", {"amcheck_available": True}, None, 0)["result"]
    'could not run: the amcheck extension is not installed in sales (it is available: \
CREATE EXTENSION amcheck enables the check)'
    >>> amcheck_verdict("sales", {"amcheck_schema": "public"}, {}, 3)["result"]
    'passed: bt_index_check (heapallindexed) found no fault in 3 B-tree indexes'
    """
    if corrupt is None:
        how = (
            "it is available: CREATE EXTENSION amcheck enables the check"
            if facts.get("amcheck_available")
            else "nor is it available on the server (PostgreSQL's contrib modules)"
        )
        return {
            "ran": False,
            "result": f"could not run: the amcheck extension is not installed in {db} ({how})",
        }
    if corrupt:
        return {
            "ran": True,
            "checked": checked,
            "corrupt": dict(corrupt),
            "result": f"FAILED: {len(corrupt)} of {checked} B-tree indexes fail bt_index_check",
        }
    return {
        "ran": True,
        "checked": checked,
        "corrupt": {},
        "result": f"passed: bt_index_check (heapallindexed) found no fault in {checked} "
        "B-tree indexes",
    }


@dataclass(frozen=True)
class TableFigures:
    """One table's dead and live tuples (the statistics' estimates) and sizes."""

    live: int
    dead: int
    table_bytes: int
    index_bytes: int

    @property
    def dead_percent(self) -> float:
        total = self.live + self.dead
        return round(100.0 * self.dead / total, 2) if total else 0.0


def parse_table_figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, TableFigures]:
    return {
        str(r["table"]): TableFigures(
            int(r["live"]), int(r["dead"]), int(r["table_bytes"]), int(r["index_bytes"])
        )
        for r in rows
    }


def vacuum_report(
    before: Mapping[str, TableFigures],
    after: Mapping[str, TableFigures],
    notable_dead_tuples: int,
) -> dict[str, Any]:
    """Each table's figures before → after, the totals, and the verdict: the tables where
    VACUUM removed at least ``notable_dead_tuples`` dead tuples, and those still holding that
    many (a transaction older than them keeps them: see the long transactions).

    >>> b = {"public.t": TableFigures(100, 5000, 819200, 16384)}
    >>> a = {"public.t": TableFigures(100, 0, 40960, 16384)}
    >>> vacuum_report(b, a, 1000)["verdict"]
    'dead tuples removed: public.t 5000 -> 0'
    >>> vacuum_report(a, a, 1000)["verdict"]
    'no bloat change worth noting (every table changed by fewer than 1000 dead tuples)'
    """
    tables: dict[str, Any] = {}
    removed: list[str] = []
    remaining: list[str] = []
    for name in sorted(set(before) & set(after)):
        b, a = before[name], after[name]
        tables[name] = {
            "dead": [b.dead, a.dead],
            "live": [b.live, a.live],
            "dead_percent": [b.dead_percent, a.dead_percent],
            "table_bytes": [b.table_bytes, a.table_bytes],
            "index_bytes": [b.index_bytes, a.index_bytes],
        }
        if b.dead - a.dead >= notable_dead_tuples:
            removed.append(f"{name} {b.dead} -> {a.dead}")
        if a.dead >= notable_dead_tuples:
            remaining.append(f"{name} {a.dead}")
    parts = []
    if removed:
        parts.append("dead tuples removed: " + ", ".join(removed))
    if remaining:
        parts.append(
            "dead tuples VACUUM could not remove (an older transaction still sees them): "
            + ", ".join(remaining)
        )
    verdict = "; ".join(parts) or (
        "no bloat change worth noting (every table changed by fewer than "
        f"{notable_dead_tuples} dead tuples)"
    )

    def total(figures: Mapping[str, TableFigures], attr: str) -> int:
        return sum(int(getattr(f, attr)) for n, f in figures.items() if n in tables)

    return {
        "tables": tables,
        "totals": {
            attr: [total(before, attr), total(after, attr)]
            for attr in ("dead", "live", "table_bytes", "index_bytes")
        },
        "notable": removed,
        "not_removable": remaining,
        "verdict": verdict,
    }
