"""Pure logic of the database upgrade: fingerprints, the SQL that takes them, checks, estimates.

Nothing here runs a command, so all of it is unit-tested without a cluster.

A *fingerprint* of a cluster is, for every database and every ordinary table, the row count
and a checksum: the sum (numeric, so it never overflows) of a 64-bit hash of every row's text
(``hashtextextended``: the hash that hash partitioning relies on, stable across versions).
A sum does not depend on row order, so no primary key and no sort are needed; measured on
1M rows: 0.85 s, against 1.9 s for md5 prefixes and ~3 s for an md5 over sorted row md5s.
Row text depends on session settings (time zone, date style, float digits):
``FINGERPRINT_SETTINGS`` pins them, so a table reads the same on 15 and on 18.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TableSum:
    """One table's row count and checksum."""

    rows: int
    checksum: str

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": self.checksum}


# database -> "schema.table" -> TableSum
Fingerprints = dict[str, dict[str, TableSum]]

FINGERPRINT_SETTINGS = (
    "SET TimeZone = 'UTC';\n"
    "SET DateStyle = 'ISO, MDY';\n"
    "SET IntervalStyle = 'postgres';\n"
    "SET extra_float_digits = 1;\n"
    "SET bytea_output = 'hex';\n"
    "SET lc_monetary = 'C';\n"
)

# One generated query per ordinary table, run by psql's \gexec inside the caller's transaction
# (dynamic SQL without creating anything in the cluster: the old cluster must stay untouched).
_PER_TABLE = (
    "SELECT format($f$SELECT json_build_object('table', %L, 'rows', count(*), 'checksum', "
    "coalesce(sum(hashtextextended(r::text, 0)), 0)::text)::text "
    "FROM %s AS r$f$, t, t) "
    "FROM (SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%') s "
    "ORDER BY t \\gexec\n"
)


def fingerprint_script(dump_argv: list[str] | None = None, rc_file: str | None = None) -> str:
    """A psql script printing one JSON line per table, in one REPEATABLE READ snapshot.

    With ``dump_argv`` (a pg_dump command without ``--snapshot``) the script first exports
    its snapshot and runs pg_dump *in that same snapshot*, so the backup and the fingerprint
    it is verified against describe exactly the same data while writers keep writing.
    pg_dump's exit status goes to ``rc_file``."""
    lines = [FINGERPRINT_SETTINGS, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"]
    if dump_argv is not None:
        if rc_file is None:
            raise ValueError("a dump needs an rc_file for its exit status")
        lines += [
            "SELECT pg_export_snapshot() AS rb_snapshot \\gset\n",
            "\\setenv RB_SNAPSHOT :rb_snapshot\n",
            f'\\! {shlex.join(dump_argv)} --snapshot="$RB_SNAPSHOT"; '
            f"echo $? > {shlex.quote(rc_file)}\n",
        ]
    lines += [_PER_TABLE, "COMMIT;\n"]
    return "".join(lines)


def parse_fingerprint_output(text: str) -> dict[str, TableSum]:
    """Parse the JSON lines printed by ``fingerprint_script``."""
    out: dict[str, TableSum] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("{"):
            continue
        item = json.loads(line)
        out[str(item["table"])] = TableSum(int(item["rows"]), str(item["checksum"]))
    return out


def fingerprints_to_json(fps: Fingerprints) -> dict[str, dict[str, dict[str, Any]]]:
    return {db: {t: s.to_dict() for t, s in sorted(tables.items())} for db, tables in fps.items()}


def fingerprints_from_json(data: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Fingerprints:
    return {
        db: {t: TableSum(int(s["rows"]), str(s["checksum"])) for t, s in tables.items()}
        for db, tables in data.items()
    }


def compare_fingerprints(expected: Fingerprints, actual: Fingerprints) -> list[str]:
    """Every difference, one line each; empty when both hold the same data.

    >>> a = {"db": {"public.t": TableSum(2, "x")}}
    >>> compare_fingerprints(a, a)
    []
    >>> compare_fingerprints(a, {"db": {"public.t": TableSum(1, "y")}})
    ['db: public.t has 1 rows, expected 2', 'db: public.t checksum y, expected x']
    """
    problems: list[str] = []
    for db in sorted(set(expected) | set(actual)):
        if db not in actual:
            problems.append(f"database {db} is missing")
            continue
        if db not in expected:
            problems.append(f"database {db} is unexpected")
            continue
        want, got = expected[db], actual[db]
        for table in sorted(set(want) | set(got)):
            if table not in got:
                problems.append(f"{db}: table {table} is missing")
            elif table not in want:
                problems.append(f"{db}: table {table} is unexpected")
            else:
                if got[table].rows != want[table].rows:
                    problems.append(
                        f"{db}: {table} has {got[table].rows} rows, expected {want[table].rows}"
                    )
                if got[table].checksum != want[table].checksum:
                    problems.append(
                        f"{db}: {table} checksum {got[table].checksum}, "
                        f"expected {want[table].checksum}"
                    )
    return problems


def fingerprint_summary(fps: Fingerprints) -> dict[str, Any]:
    """Small evidence for the record: tables and rows per database."""
    return {
        db: {"tables": len(tables), "rows": sum(s.rows for s in tables.values())}
        for db, tables in sorted(fps.items())
    }


def upgrade_blockers(
    survey: Mapping[str, Any],
    *,
    versions: tuple[int, int],
    new_binaries: tuple[int, int, str],
    space: tuple[int, int],
    new_cluster_exists: str | bool,
) -> list[str]:
    """Why this cluster cannot be upgraded now, one reason a line (empty: it can).

    ``versions`` is (the cluster's, expected); ``new_binaries`` (their version, expected,
    where); ``space`` (free, needed) bytes; ``new_cluster_exists`` the directory, if any.
    """
    (version, expected), (new_version, wanted, new_bin) = versions, new_binaries
    problems = []
    if version != expected:
        problems.append(f"the cluster is PostgreSQL {version}, not {expected}")
    if new_version != wanted:
        problems.append(f"{new_bin} holds PostgreSQL {new_version}, not {wanted}")
    if survey["in_recovery"]:
        problems.append("the cluster is a standby (in recovery): upgrade the primary")
    if survey["replicas"] or survey["replication_slots"]:
        problems.append("replicas or replication slots exist: rebuild them after (not here)")
    if space[0] < space[1]:
        problems.append(f"free disk {space[0]} B < needed {space[1]} B")
    if new_cluster_exists:
        problems.append(f"a cluster already exists in {new_cluster_exists}")
    return problems


def missing_extensions(
    old: Mapping[str, Mapping[str, str]], new: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """Extensions of the old cluster that the new one lacks, per database.

    >>> missing_extensions({"app": {"citext": "1.6"}}, {"app": {}})
    ['app: extensions missing: citext']
    """
    out = []
    for db, exts in sorted(old.items()):
        missing = sorted(set(exts) - set(new.get(db, {})))
        if missing:
            out.append(f"{db}: extensions missing: {', '.join(missing)}")
    return out


def initdb_checksum_flag(old_cluster_has_checksums: bool) -> str:
    """initdb 18 turns data checksums on by default; pg_upgrade refuses a mismatch with the old
    cluster ("old cluster does not use data checksums but the new one does"), so the new
    cluster must be made with the old cluster's setting.

    >>> initdb_checksum_flag(False)
    '--no-data-checksums'
    """
    return "--data-checksums" if old_cluster_has_checksums else "--no-data-checksums"


def major_version(version_num: int) -> int:
    """``server_version_num`` -> major version (150014 -> 15).

    >>> major_version(180006)
    18
    """
    return version_num // 10000


def parse_binary_version(text: str) -> int:
    """``postgres (PostgreSQL) 18.6`` -> 18.

    >>> parse_binary_version("pg_upgrade (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)")
    15
    """
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", text) or re.search(r"(\d+)\.\d+", text)
    if match is None:
        raise ValueError(f"no PostgreSQL version in {text!r}")
    return int(match.group(1))


def parse_controldata(text: str) -> dict[str, str]:
    """``pg_controldata`` output as a mapping of its labels to values."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


# What db-upgrade does with writers stopped (`estimate_downtime_s`): a checkpoint and the
# old cluster's stop, pg_upgrade, the new cluster's start behind its gate and one snapshot per
# database (every table is read in those snapshots after the downtime, not during it). Measured
# with bench/db_upgrade.py on the lab's 2-core machine: ~3 s whatever the size, plus the copy
# at ~150 MB/s in copy mode; clone's reflinks, link's hard links and swap's renames do not
# grow with the data.
FIXED_DOWNTIME_S = 3.0
COPY_BYTES_PER_S = 150e6  # pg_upgrade --copy


def estimate_downtime_s(data_bytes: int, mode: str = "copy") -> float:
    """Expected time with writers stopped: the fixed costs, plus the copy in copy mode.

    >>> estimate_downtime_s(300_000_000), estimate_downtime_s(300_000_000, "link")
    (5.0, 3.0)
    """
    return FIXED_DOWNTIME_S + (data_bytes / COPY_BYTES_PER_S if mode == "copy" else 0.0)


def space_needed(data_bytes: int, dump_bytes_estimate: int, mode: str = "copy") -> int:
    """Free bytes needed beside the old cluster: the copy (or nothing for clone), the backup,
    the scratch restore, and 10% plus 64 MiB of headroom."""
    copy = data_bytes if mode == "copy" else 0
    return int((copy + 2 * dump_bytes_estimate) * 1.1) + 64 * 2**20


# Settings that belong to a data directory or a version, never carried to the new cluster.
NOT_CARRIED = frozenset(
    {"data_directory", "config_file", "hba_file", "ident_file", "external_pid_file"}
)


def carried_settings(settings: Mapping[str, str]) -> dict[str, str]:
    """The old cluster's configuration-file settings that the new one must get too."""
    return {k: v for k, v in sorted(settings.items()) if k not in NOT_CARRIED}


def config_block(settings: Mapping[str, str], from_version: int) -> str:
    """Lines appended to the new cluster's postgresql.conf.

    >>> config_block({"port": "5432"}, 15)
    "\\n# carried over from PostgreSQL 15 by db-upgrade\\nport = '5432'\\n"
    """
    lines = [f"\n# carried over from PostgreSQL {from_version} by db-upgrade"]
    for key, value in settings.items():
        escaped = value.replace("'", "''")
        lines.append(f"{key} = '{escaped}'")
    return "\n".join(lines) + "\n"


# Column (attribute) options PostgreSQL 18 knows. Debian's 15.20 puts an option of its own,
# ``pg_attver``, on every column; pg_dump 18.6 copies it into pg_upgrade's schema restore and the
# 18 server refuses it ("unrecognized parameter"), failing the upgrade *after* --check passed.
KNOWN_COLUMN_OPTIONS = frozenset({"n_distinct", "n_distinct_inherited"})

COLUMN_OPTIONS_SQL = """
SELECT coalesce(json_object_agg(k, n), '{}') FROM (
  SELECT split_part(o, '=', 1) AS k, count(*) AS n
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace ns ON ns.oid = c.relnamespace, unnest(a.attoptions) AS o
  WHERE ns.nspname NOT IN ('pg_catalog', 'information_schema')
    AND ns.nspname NOT LIKE 'pg\\_toast%' GROUP BY 1) s
"""


def unknown_column_options(counts: Mapping[str, int]) -> dict[str, int]:
    """Column options the new version would refuse, with how many columns carry each.

    >>> unknown_column_options({"pg_attver": 12, "n_distinct": 1})
    {'pg_attver': 12}
    """
    return {k: v for k, v in sorted(counts.items()) if k not in KNOWN_COLUMN_OPTIONS}


def option_filter_sed(keys: list[str]) -> list[str]:
    """sed -E expressions removing the given column options from pg_restore's SQL output.

    >>> import subprocess
    >>> sql = 'ALTER TABLE ONLY "t" ALTER COLUMN "a" SET (pg_attver=1);\\n'
    >>> sql += 'ALTER TABLE ONLY "t" ALTER COLUMN "b" SET (pg_attver=2, n_distinct=5);\\n'
    >>> args = [a for e in option_filter_sed(["pg_attver"]) for a in ("-e", e)]
    >>> subprocess.run(["sed", "-E", *args], input=sql, capture_output=True, text=True).stdout
    'ALTER TABLE ONLY "t" ALTER COLUMN "b" SET (n_distinct=5);\\n'
    """
    out: list[str] = []
    for key in keys:
        k = re.escape(key)
        out += [
            rf"/^ALTER .* ALTER COLUMN .* SET \({k}=[^,)]*\);$/d",
            rf"s/\({k}=[^,)]*, /(/",
            rf"s/, {k}=[^,)]*([,)])/\1/",
        ]
    return out


def pg_restore_shim(real_bin: str, keys: list[str]) -> str:
    """A pg_restore for pg_upgrade's schema restore that strips ``keys`` from column options:
    the archive is rendered as SQL, filtered, and run by psql on the same connection."""
    sed = " ".join(f"-e {shlex.quote(e)}" for e in option_filter_sed(keys))
    real = shlex.quote(f"{real_bin}/pg_restore")
    psql = shlex.quote(f"{real_bin}/psql")
    return f"""#!/bin/bash
# Written by db-upgrade: drops column options PostgreSQL 18 refuses ({", ".join(keys)}).
set -o pipefail
case "$1" in -V|--version|'-?'|--help) exec {real} "$@";; esac
conn=(); db=""; args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --host|--port|--username) conn+=("$1" "$2"); shift 2;;
    --dbname) db="$2"; shift 2;;
    --dbname=*) db="${{1#--dbname=}}"; shift;;
    --transaction-size=*|--single-transaction) shift;;
    *) args+=("$1"); shift;;
  esac
done
{real} "${{args[@]}}" -f - | sed -E {sed} \\
  | {psql} -X -q -v ON_ERROR_STOP=1 -o /dev/null "${{conn[@]}}" --dbname "$db"
"""
