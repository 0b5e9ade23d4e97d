"""13 數據庫故障處理 database fault handling: the evidence of one PostgreSQL server, and what
differs from a healthy one.

The procedure, in order, on one server (reached as db-maintenance reaches it: on this machine,
or over SSH with ``transport=ssh``; every read one SELECT in a read-only session; nothing is
changed).

The server is named by its NetBox name (``server=pg1``: its primary IP, its postgresql
service's port and version, the hosts' SSH key, as db-maintenance takes them) or by
``host=`` and the connection parameters.

1. The server answers: version, whether it is a standby, its databases and their sizes. A
   server that does not answer is the first finding, with why.
2. Connections: how many of ``max_connections``, by state and by database, how many wait on
   locks.
3. Locks, per database: each session waiting for a lock (whom it waits for, the lock it
   wants, for how long), and each session blocking others (the table locks it holds, its
   transaction's age, its query with every literal redacted).
4. Long transactions: each open longer than ``long_transaction_s``.
5. Replication: each replica's lag, each slot's retained WAL (a standby: its replay lag).
6. Disk: free space on the data directory's filesystem.
7. Diagnosis: who blocks whom (``pid N holds ACCESS EXCLUSIVE on T blocking M sessions for S
   s``), connections near the limit, long transactions, replicas behind or not streaming,
   inactive slots, a filesystem below ``min_free_percent``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from runbooks.core.context import RunContext
from runbooks.core.errors import RunbookError
from runbooks.core.steps import check
from runbooks.gateways import postgres_maintenance_facts as mf
from runbooks.gateways.db_triage import TriageGateway
from runbooks.gateways.postgres import Cluster
from runbooks.library.base import LibraryRunbook
from runbooks.library.db_upgrade_parts import (
    PgClusterParams,
    find_server,
    server_params,
)
from runbooks.library.fault_common import IncidentParams, diagnosis, evidence_of

log = logging.getLogger(__name__)

TARGET = "{host}"
NO_REPLICA = "no replica is connected"  # a fact of a standalone server, not a fault


class FaultDatabaseParams(IncidentParams, PgClusterParams):
    lock_wait_s: float = Field(
        default=5.0, ge=0, description="a session waiting for a lock longer than this is named"
    )
    long_transaction_s: float = Field(
        default=300.0, ge=0, description="a transaction open longer than this is named"
    )
    max_replication_lag_s: float = Field(
        default=60.0, ge=0, description="a replica replaying further behind is named"
    )
    min_free_percent: float = Field(
        default=10.0, ge=0, le=100, description="the data directory's filesystem's free share"
    )
    max_connections_percent: float = Field(
        default=90.0, gt=0, le=100, description="connections in use above this share are named"
    )


def lock_mode(mode: str) -> str:
    """PostgreSQL's lock mode as its documentation names it.

    >>> lock_mode("AccessExclusiveLock"), lock_mode("RowExclusiveLock")
    ('ACCESS EXCLUSIVE', 'ROW EXCLUSIVE')
    """
    return " ".join(re.findall(r"[A-Z][a-z]*", mode.removesuffix("Lock"))).upper()


def lock_findings(locks: dict[str, Any], wait_s: float) -> list[str]:
    """Who blocks whom: one sentence per blocking session whose waiters waited over
    ``wait_s``.

    >>> lock_findings({"inventory": {"waiting": [{"pid": 8, "blocked_by": [7], "waiting_s": 12.5,
    ...     "wants": {"mode": "AccessShareLock", "relation": "public.orders"}}],
    ...   "blocking": [{"pid": 7, "user": "app", "application": "psql", "xact_age_s": 30.0,
    ...     "holds": [{"mode": "AccessExclusiveLock", "relation": "public.orders"}]}]}}, 5)
    ... # doctest: +NORMALIZE_WHITESPACE
    ['pid 7 (app, psql) holds ACCESS EXCLUSIVE on public.orders blocking 1 session(s) for
      12.5 s (inventory; its transaction open 30.0 s)']
    """
    out = []
    for db, found in sorted(locks.items()):
        waiting = found.get("waiting") or []
        for b in found.get("blocking") or []:
            waiters = [w for w in waiting if b["pid"] in (w.get("blocked_by") or [])]
            longest = max((float(w.get("waiting_s") or 0) for w in waiters), default=0.0)
            if not waiters or longest <= wait_s:
                continue
            wanted = {(w.get("wants") or {}).get("relation") for w in waiters} - {None}
            holds = list(b.get("holds") or [])
            held = [h for h in holds if h.get("relation") in wanted] or holds
            what = "holds a lock"
            if held:
                relation = held[0]["relation"]
                modes = [str(h["mode"]) for h in held if h["relation"] == relation]
                what = f"holds {lock_mode(max(modes, key=_rank))} on {relation}"
            who = ", ".join(str(x) for x in (b.get("user"), b.get("application")) if x)
            out.append(
                f"pid {b['pid']} ({who}) {what} blocking {len(waiters)} session(s) for "
                f"{longest:g} s ({db}; its transaction open {b.get('xact_age_s')} s)"
            )
    return out


def _rank(mode: str) -> int:
    return _LOCK_RANK.index(mode) if mode in _LOCK_RANK else -1


# weakest to strongest, as PostgreSQL's table-level lock modes conflict
_LOCK_RANK = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
]


def database_findings(evidence: dict[str, dict[str, Any]], p: FaultDatabaseParams) -> list[str]:
    """Every finding from the recorded evidence (each step's, by step name)."""
    survey = evidence["server_answers"]
    if not survey.get("reachable"):
        return [f"{p.host}: PostgreSQL does not answer: {survey.get('why')}"]
    out: list[str] = []
    c = evidence.get("connections") or {}
    if c.get("max_connections"):
        used = 100.0 * int(c.get("total", 0)) / int(c["max_connections"])
        if used > p.max_connections_percent:
            out.append(
                f"{c['total']} of {c['max_connections']} connections in use ({used:.0f}%, over "
                f"{p.max_connections_percent:g}%)"
            )
    out += lock_findings((evidence.get("locks") or {}).get("databases", {}), p.lock_wait_s)
    for t in (evidence.get("long_transactions") or {}).get("transactions", []):
        who = ", ".join(str(x) for x in (t.get("user"), t.get("application")) if x)
        out.append(
            f"pid {t['pid']} ({who}) has a transaction open {t['age_s']:g} s in "
            f"{t.get('database')} ({t.get('state')}): {t.get('query')}"
        )
    replication = evidence.get("replication") or {}
    out += [f for f in replication.get("findings", []) if not f.startswith(NO_REPLICA)]
    disk = evidence.get("disk") or {}
    if disk.get("free_percent") is not None and float(disk["free_percent"]) < p.min_free_percent:
        out.append(
            f"the data directory's filesystem ({disk.get('mount')}) has "
            f"{disk['free_percent']}% free (min {p.min_free_percent:g}%)"
        )
    return out


class FaultDatabase(LibraryRunbook[FaultDatabaseParams]):
    """Triage a PostgreSQL server: connections, locks, transactions, replication, disk."""

    @classmethod
    def parse_params(cls, raw: Mapping[str, Any]) -> BaseModel:
        """With ``server``, NetBox (one request) and the settings fill what is not given, as
        for db-maintenance (`db_upgrade_parts.server_params`)."""
        given = dict(raw)
        if given.get("server"):
            given = server_params(FaultDatabaseParams, given, find_server(str(given["server"])))
        return super().parse_params(given)

    name = "fault-database"
    title = "Database fault handling (PostgreSQL): the server's evidence and a diagnosis"
    instruction = "13 數據庫故障處理 database fault handling"
    expected_duration = timedelta(minutes=2)
    Params = FaultDatabaseParams

    def pg(self, ctx: RunContext) -> TriageGateway:
        return ctx.gateway(TriageGateway)

    @property
    def cluster(self) -> Cluster:
        return Cluster(self.p.data_dir, self.p.bin_dir, self.p.port, self.p.socket_dir)

    def answers(self, ctx: RunContext) -> bool:
        return bool(evidence_of(ctx, "server_answers").get("reachable"))

    @check("The server answers: version, standby or primary, databases", targets=TARGET)
    def server_answers(self, ctx: RunContext) -> dict[str, Any]:
        try:
            survey = self.pg(ctx).survey(self.cluster)
        except RunbookError as exc:  # the server's silence is the first finding
            return {"reachable": False, "why": str(exc)}
        return {
            "reachable": True,
            "version": survey.get("version"),
            "in_recovery": survey.get("in_recovery"),
            "databases": [
                {"name": d["name"], "bytes": d.get("bytes")} for d in survey.get("databases", [])
            ],
        }

    @check("Connections: in use of the limit, by state and database", targets=TARGET)
    def connections(self, ctx: RunContext) -> dict[str, Any]:
        if not self.answers(ctx):
            return {"not_checked": "the server does not answer"}
        return self.pg(ctx).connections(self.cluster)

    @check("Locks: who waits for whom, on what", targets=TARGET)
    def locks(self, ctx: RunContext) -> dict[str, Any]:
        if not self.answers(ctx):
            return {"not_checked": "the server does not answer"}
        out: dict[str, Any] = {}
        for db in evidence_of(ctx, "server_answers")["databases"]:
            found = self.pg(ctx).locks(self.cluster, str(db["name"]))
            for session in [*found.get("waiting", []), *found.get("blocking", [])]:
                session["query"] = mf.redact_query(session.get("query"))
            if found.get("waiting"):
                out[str(db["name"])] = found
        return {"databases": out}

    @check("Long-running transactions, named", targets=TARGET)
    def long_transactions(self, ctx: RunContext) -> dict[str, Any]:
        if not self.answers(ctx):
            return {"not_checked": "the server does not answer"}
        sessions = self.pg(ctx).open_transactions(self.cluster)
        named = mf.long_transactions(sessions, self.p.long_transaction_s)
        return {"older_than_s": self.p.long_transaction_s, "transactions": named}

    @check("Replication: each replica's lag and each slot's retained WAL", targets=TARGET)
    def replication(self, ctx: RunContext) -> dict[str, Any]:
        if not self.answers(ctx):
            return {"not_checked": "the server does not answer"}
        data = self.pg(ctx).replication(self.cluster)
        return {**data, "findings": mf.replication_findings(data, self.p.max_replication_lag_s)}

    @check("Disk: free space on the data directory's filesystem", targets=TARGET)
    def disk(self, ctx: RunContext) -> dict[str, Any]:
        fs = self.pg(ctx).filesystem(self.p.data_dir)
        size = int(fs.get("size_bytes") or 0) or 1
        return {**fs, "free_percent": round(100.0 * int(fs.get("free_bytes") or 0) / size, 1)}

    @check("Diagnosis: what differs from a healthy server", targets=TARGET)
    def diagnosis(self, ctx: RunContext) -> dict[str, Any]:
        steps = ("server_answers", "connections", "locks", "long_transactions", "replication")
        evidence = {step: evidence_of(ctx, step) for step in (*steps, "disk")}
        not_checked = [
            f"{step}: {evidence[step]['not_checked']}"
            for step in steps
            if evidence[step].get("not_checked")
        ]
        findings = database_findings(evidence, self.p)
        return diagnosis(findings, not_checked, self.p.incident)
