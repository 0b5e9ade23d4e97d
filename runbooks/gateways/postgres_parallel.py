"""Parallel fingerprints of a quiet cluster.

With writers stopped every session sees the same data, so one table can be read by several
sessions at once, each a range of its pages (a TID range scan), and the parts added up: the
checksum is a sum. Used for the two passes inside the downtime; never for the backup's pass,
which must share pg_dump's snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from runbooks.gateways.postgres_facts import FINGERPRINT_SETTINGS, TableSum

TABLE_SIZES_SQL = """
SELECT coalesce(json_agg(json_build_object('table', format('%I.%I', n.nspname, c.relname),
         'pages', pg_relation_size(c.oid) / current_setting('block_size')::int)), '[]')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""

SPLIT_PAGES = 2048  # tables above 16 MiB are read in page ranges, one per session


def _part_query(table: str, where: str = "") -> str:
    literal = table.replace("'", "''")
    # ``table`` is the server's own format('%I.%I') of a catalog name; ``where`` holds integers
    select = "SELECT json_build_object('table', '{}', 'rows', count(*), 'checksum', "
    select += "coalesce(sum(hashtextextended(r::text, 0)), 0)::text)::text FROM {} AS r{};"
    return select.format(literal, table, where)


def parallel_scripts(tables: Mapping[str, int], jobs: int) -> list[str]:
    """psql scripts, one per session, that together read every table once.

    ``tables`` maps each (quoted) table to its size in pages. Big tables are split into
    ``jobs`` page ranges; the parts are dealt out largest first to the least loaded session.

    >>> [s.count("SELECT json") for s in parallel_scripts({"a": 10, "b": 5000}, 2)]
    [1, 2]
    """
    parts: list[tuple[int, str]] = []
    for table, pages in tables.items():
        if jobs < 2 or pages < SPLIT_PAGES:
            parts.append((pages, _part_query(table)))
            continue
        step = -(-pages // jobs)
        for i in range(jobs):
            lo, hi = i * step, (i + 1) * step
            where = f" WHERE ctid >= '({lo},0)'::tid"
            if i < jobs - 1:  # the last range is open: pages added since the size was read
                where += f" AND ctid < '({hi},0)'::tid"
            parts.append((step, _part_query(table, where)))
    sessions: list[tuple[int, list[str]]] = [(0, []) for _ in range(max(jobs, 1))]
    for pages, query in sorted(parts, key=lambda p: -p[0]):
        load, queries = min(sessions, key=lambda s: s[0])
        sessions.remove((load, queries))
        sessions.append((load + pages, [*queries, query]))
    header = FINGERPRINT_SETTINGS + "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
    return [header + "\n".join(q) + "\nCOMMIT;\n" for _, q in sessions if q]


def add_parts(outputs: list[str]) -> dict[str, TableSum]:
    """Sum the partial row counts and checksums printed by ``parallel_scripts``' sessions."""
    rows: dict[str, int] = {}
    sums: dict[str, int] = {}
    for text in outputs:
        for table, part in _parse_parts(text):
            rows[table] = rows.get(table, 0) + part.rows
            sums[table] = sums.get(table, 0) + int(part.checksum)
    return {t: TableSum(rows[t], str(sums[t])) for t in sorted(rows)}


def _parse_parts(text: str) -> list[tuple[str, TableSum]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            item = json.loads(line)
            out.append((str(item["table"]), TableSum(int(item["rows"]), str(item["checksum"]))))
    return out
