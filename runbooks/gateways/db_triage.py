"""Database fault handling's reads on top of maintenance's gateway: connections, and the lock
graph (who waits for whom, on what). Every read is one SELECT in a read-only session
(``PostgresGateway.query_json``); nothing here writes.
"""

from __future__ import annotations

from typing import Any

from runbooks.core.gateway import reads
from runbooks.gateways.postgres import Cluster
from runbooks.gateways.postgres_maintenance import MaintenanceGateway

# Everything about connections a triage reads, in one SELECT (client backends only).
CONNECTIONS_SQL = """
SELECT json_build_object(
 'max_connections', current_setting('max_connections')::int,
 'superuser_reserved', current_setting('superuser_reserved_connections')::int,
 'total', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
 'by_state', (SELECT coalesce(json_object_agg(s, n), '{}') FROM (
     SELECT coalesce(state, 'unknown') s, count(*) n FROM pg_stat_activity
     WHERE backend_type = 'client backend' GROUP BY 1) x),
 'by_database', (SELECT coalesce(json_object_agg(d, n), '{}') FROM (
     SELECT coalesce(datname, '') d, count(*) n FROM pg_stat_activity
     WHERE backend_type = 'client backend' GROUP BY 1) y),
 'waiting_on_locks', (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'))
"""

# The sessions of the current database waiting for a lock another session holds (whom they
# wait for: pg_blocking_pids; what they want), and the sessions blocking them with the table
# locks they hold there. Relations are named in the current database, so it runs per database.
LOCKS_SQL = """
WITH here AS (SELECT oid FROM pg_database WHERE datname = current_database()),
waiting AS (SELECT a.*, pg_blocking_pids(a.pid) AS blockers FROM pg_stat_activity a
  WHERE a.datname = current_database() AND cardinality(pg_blocking_pids(a.pid)) > 0)
SELECT json_build_object(
 'waiting', (SELECT coalesce(json_agg(json_build_object(
     'pid', w.pid, 'user', w.usename, 'application', w.application_name,
     'database', w.datname, 'blocked_by', w.blockers,
     'waiting_s', round(extract(epoch FROM now() - coalesce(w.query_start, w.state_change))
                        ::numeric, 1),
     'wants', (SELECT json_build_object('mode', l.mode, 'locktype', l.locktype,
         'relation', (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.relation
             AND l.database = (SELECT oid FROM here)))
         FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted LIMIT 1),
     'query', w.query) ORDER BY w.pid), '[]') FROM waiting w),
 'blocking', (SELECT coalesce(json_agg(json_build_object(
     'pid', b.pid, 'user', b.usename, 'application', b.application_name,
     'database', b.datname, 'state', b.state,
     'xact_age_s', round(extract(epoch FROM now() - b.xact_start)::numeric, 1),
     'holds', (SELECT coalesce(json_agg(json_build_object('mode', l.mode,
         'relation', format('%I.%I', n.nspname, c.relname)) ORDER BY c.relname, l.mode), '[]')
         FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE l.pid = b.pid AND l.granted AND l.database = (SELECT oid FROM here)
         AND n.nspname NOT IN ('pg_catalog', 'information_schema')),
     'query', b.query) ORDER BY b.pid), '[]')
   FROM pg_stat_activity b
   WHERE b.pid IN (SELECT unnest(blockers) FROM waiting)))
"""


class TriageGateway(MaintenanceGateway):
    """MaintenanceGateway (survey, replication, long transactions, filesystems) plus the
    triage's connections and locks."""

    @reads
    def connections(self, cluster: Cluster) -> dict[str, Any]:
        return dict(self.query_json(cluster, CONNECTIONS_SQL))

    @reads
    def locks(self, cluster: Cluster, db: str) -> dict[str, Any]:
        """The sessions of ``db`` waiting for a lock, and those blocking them."""
        return dict(self.query_json(cluster, LOCKS_SQL, db))
