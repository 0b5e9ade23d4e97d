"""Database maintenance's operations on top of the upgrade's gateway (whose verified backup it
shares): the health reads (tables' dead tuples and sizes, replication, long transactions,
index and constraint checks, the filesystems' free space) and VACUUM (ANALYZE), the one write.

Reads go through ``query_json`` (one SELECT in a read-only session) as the upgrade's do.
"""

from __future__ import annotations

import logging
from typing import Any

from runbooks.core.gateway import reads, writes
from runbooks.gateways import postgres_maintenance_facts as mf
from runbooks.gateways.postgres import Cluster, tail
from runbooks.gateways.postgres_shell import CommandError
from runbooks.gateways.postgres_upgrade import UpgradeGateway

log = logging.getLogger(__name__)


class MaintenanceGateway(UpgradeGateway):
    """UpgradeGateway (its backup and restore test) plus maintenance's reads and VACUUM."""

    @reads
    def table_figures(self, cluster: Cluster, db: str) -> list[dict[str, Any]]:
        """Every table's dead and live tuples, sizes, last VACUUM and ANALYZE."""
        return list(self.query_json(cluster, mf.TABLE_FIGURES_SQL, db) or [])

    @reads
    def server_now(self, cluster: Cluster) -> str:
        return str(self.query_json(cluster, mf.SERVER_NOW_SQL))

    @reads
    def filesystem(self, path: str) -> dict[str, Any]:
        """Size and free bytes of the filesystem holding ``path`` (or its nearest existing
        parent), and where it is mounted."""
        script = (
            'p=$1; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; '
            'df -B1 --output=size,avail,target "$p" | tail -1'
        )
        out = self.shell.run(["sh", "-c", script, "sh", path]).stdout.strip()
        return mf.filesystem_figures(out)

    @reads
    def replication(self, cluster: Cluster) -> dict[str, Any]:
        return dict(self.query_json(cluster, mf.REPLICATION_SQL))

    @reads
    def open_transactions(self, cluster: Cluster) -> list[dict[str, Any]]:
        """Every other session with an open transaction, and its age."""
        return list(self.query_json(cluster, mf.OPEN_TRANSACTIONS_SQL) or [])

    @reads
    def index_facts(self, cluster: Cluster, db: str) -> dict[str, Any]:
        """Invalid indexes, NOT VALID constraints, and whether amcheck is installed here."""
        return dict(self.query_json(cluster, mf.INDEX_FACTS_SQL, db))

    @reads
    def amcheck(self, cluster: Cluster, db: str, schema: str) -> tuple[int, dict[str, str]]:
        """bt_index_check (heapallindexed) of every B-tree index: how many were checked and
        each one that failed with its error. One query for all; only when it fails, one per
        index, to name each that fails."""
        indexes = self.query_json(cluster, mf.BTREE_INDEXES_SQL, db) or []
        try:
            self.query_json(cluster, mf.bt_index_check_all_sql(schema), db)
            return len(indexes), {}
        except CommandError as exc:
            log.warning("%s: bt_index_check failed; checking index by index: %s", db, exc)
        corrupt: dict[str, str] = {}
        for index in indexes:
            try:
                self.query_json(cluster, mf.bt_index_check_one_sql(schema, index["oid"]), db)
            except CommandError as exc:
                corrupt[str(index["index"])] = tail(str(exc.context.get("stderr") or exc), 2)
        return len(indexes), corrupt

    @writes
    def vacuum_analyze(self, cluster: Cluster, db: str, tables: list[str]) -> None:
        """VACUUM (ANALYZE) each table, each in its own statement (VACUUM runs outside any
        transaction). ``tables`` are names the server quoted (``format('%I.%I')``)."""
        script = "".join(f"VACUUM (ANALYZE) {t};\n" for t in tables)
        self.shell.run([*cluster.psql(db), "-f", "-"], input=script, timeout=6 * 3600)
