"""Opening the service on the new cluster with one snapshot per database taken first.

The new cluster starts once, on its service endpoint, behind a *gate*: its pg_hba.conf admits
only the runbook's own role over the unix socket, and every transaction starts read-only
(``default_transaction_read_only``, from the configuration file so that a reload lifts it).
One psql session per database begins a
REPEATABLE READ transaction and takes its snapshot; when every session has, the real
pg_hba.conf and postgresql.conf go back and the server reloads them: the service is open and
applications write,
while those sessions read every table as it was at the opening. So the comparison of every
table with the old cluster happens after the downtime, not inside it.

An application connecting as that same role over the socket passes the first gate but not
the second: its transactions are read-only until the reload (unless it asks for a read-write
one explicitly: its write would then show as a difference and the post-check fail, never the
other way round).
"""

from __future__ import annotations

from runbooks.gateways.postgres_facts import fingerprint_script

_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
# the first query of the transaction takes its snapshot; then the session says it is ready
_SNAPSHOT = 'SELECT count(*) FROM pg_class \\g /dev/null\n\\! touch "$RB_READY"\n'

# $1 new data dir, $2 bin dir, $3 log file, $4 output dir, $5 gate role, $6 socket dir,
# $7 port; then the databases (as ``dbname=`` connection strings). Prints the opening time.
GATED_OPEN = r"""
set -u
new=$1 bin=$2 log=$3 out=$4 role=$5 sock=$6 port=$7
shift 7
hba="$new/pg_hba.conf" conf="$new/postgresql.conf"
mkdir -p "$out" && cp "$hba" "$out/pg_hba.conf.service" && cp "$conf" "$out/postgresql.conf" \
  || exit 3
reopen() { cp "$out/pg_hba.conf.service" "$hba"; cp "$out/postgresql.conf" "$conf"; }
{ printf 'local all %s peer\n' "$role" > "$hba" \
  && printf '\ndefault_transaction_read_only = on  # db-upgrade gate\n' >> "$conf"; } \
  || { reopen; exit 3; }
"$bin/pg_ctl" start -D "$new" -l "$log" -W >/dev/null || { reopen; exit 4; }
# waited for as pg_ctl -w waits (the server accepts connections, or its postmaster is gone),
# looking every 10 ms instead of every 100: the downtime ends sooner
t=0
until "$bin/pg_isready" -q -h "$sock" -p "$port"; do
  t=$((t+1))
  pid=$(head -n 1 "$new/postmaster.pid" 2>/dev/null)
  alive=0; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1
  if [ "$t" -gt 12000 ] || { [ "$t" -gt 100 ] && [ "$alive" -eq 0 ]; }; then
    reopen; exit 4
  fi
  sleep 0.01
done
i=0
for db in "$@"; do
  i=$((i+1))
  RB_READY="$out/ready.$i" "$bin/psql" -X -A -t -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" \
    -d "$db" -f "$out/snapshot.sql" >"$out/fp.$i.out" 2>"$out/fp.$i.err" &
  echo $! >"$out/fp.$i.pid"
done
n=$i ready=0 waited=0
while [ "$ready" -lt "$n" ]; do
  ready=0 j=0
  while [ "$j" -lt "$n" ]; do
    j=$((j+1))
    if [ -e "$out/ready.$j" ]; then ready=$((ready+1))
    elif ! kill -0 "$(cat "$out/fp.$j.pid")" 2>/dev/null && [ ! -e "$out/ready.$j" ]; then
      reopen; "$bin/pg_ctl" reload -D "$new" >/dev/null; cat "$out/fp.$j.err" >&2; exit 5
    fi
  done
  [ "$ready" -lt "$n" ] && { sleep 0.01; waited=$((waited+1)); }
  [ "$waited" -gt 6000 ] && { reopen; "$bin/pg_ctl" reload -D "$new" >/dev/null; exit 6; }
done
reopen
"$bin/pg_ctl" reload -D "$new" >/dev/null || exit 7
date -u +%Y-%m-%dT%H:%M:%S.%N+00:00
failed=0
for pid in "$out"/fp.*.pid; do wait "$(cat "$pid")" || failed=1; done
exit $((failed * 8))
"""


def snapshot_script() -> str:
    """The fingerprint script of one database with the gate's signal after its snapshot."""
    script = fingerprint_script()
    if _BEGIN not in script:
        raise AssertionError("the fingerprint script no longer begins its own transaction")
    return script.replace(_BEGIN, _BEGIN + _SNAPSHOT, 1)


def gated_open_argv(
    data_dir: str, bin_dir: str, log_file: str, out_dir: str, role: str, socket_dir: str,
    port: int, databases: list[str],
) -> list[str]:  # fmt: skip
    """``sh -c GATED_OPEN`` with its arguments (``databases`` already ``dbname=`` strings).

    >>> gated_open_argv("/d", "/b", "/l", "/o", "postgres", "/s", 5432, ["dbname='x'"])[4:]
    ['/d', '/b', '/l', '/o', 'postgres', '/s', '5432', "dbname='x'"]
    """
    return ["sh", "-c", GATED_OPEN, "sh", data_dir, bin_dir, log_file, out_dir, role,
            socket_dir, str(port), *databases]  # fmt: skip
