"""A database name reaches psql as a name only: ``-d`` holding ``=`` or starting with
``postgresql://`` is a connection string to libpq, which could name another host, port or
database. Read back here by libpq itself (psycopg's ``conninfo_to_dict`` is
PQconninfoParse)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from runbooks.core.gateway import Mode
from runbooks.gateways.postgres import Cluster, PostgresGateway
from runbooks.gateways.postgres_maintenance import MaintenanceGateway
from tests.unit.gateways.test_postgres_reads import ScriptedShell

PG = Cluster("/var/lib/postgresql/15/main", "/usr/lib/postgresql/15/bin", 5432, "/run/pg")

HOSTILE = [
    "x host=127.0.0.2",
    "postgresql://127.0.0.2:5433/postgres",
    "postgres://other/db",
    "dbname=postgres host=203.0.113.9 port=5433",
    "o'brien \\ x",
    "  ",
]


def libpq_reads(argv: list[str]) -> dict[str, str]:
    """What libpq makes of psql's ``-d`` argument: it must be the name alone."""
    return {k: str(v) for k, v in conninfo_to_dict(argv[argv.index("-d") + 1]).items()}


def test_a_hostile_name_is_only_a_database_name() -> None:
    for name in [*HOSTILE, "sales"]:
        assert libpq_reads(PG.psql(name)) == {"dbname": name}
        assert libpq_reads(PG.psql_read_only(name)) == {"dbname": name}
    argv = PG.psql("x host=127.0.0.2")
    assert argv[argv.index("-h") + 1] == "/run/pg" and argv[argv.index("-p") + 1] == "5432"


# Any name PostgreSQL can hold: text in the server's encoding, so no NUL (C strings end there)
# and no surrogate (category Cs: half of a UTF-16 pair, not a character; no encoding of
# PostgreSQL's can store one, and psycopg refuses to encode it): that is PostgreSQL's own
# limit on a name, not a loosening of what is tried.
NAMES = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1
)


@given(NAMES)
def test_any_name_is_read_back_as_that_name(name: str) -> None:
    assert libpq_reads(PG.psql(name)) == {"dbname": name}


def test_a_surrogate_cannot_be_a_name_so_none_is_generated() -> None:
    """What the strategy leaves out fails in psycopg, not in the gateway: a lone surrogate
    (with it, the property test above failed whenever hypothesis drew one)."""
    with pytest.raises(UnicodeEncodeError):
        libpq_reads(PG.psql("\ud800"))
    assert libpq_reads(PG.psql("\U0001f418")) == {"dbname": "\U0001f418"}  # a real astral char


def test_vacuum_and_reads_connect_to_the_named_database_only() -> None:
    shell = ScriptedShell(lambda argv: (0, "1"))
    MaintenanceGateway(Mode.RUN, shell).vacuum_analyze(PG, "x host=127.0.0.2", ['public."t"'])
    PostgresGateway(Mode.PLAN, shell).query_json(PG, "SELECT 1", "postgresql://127.0.0.2/x")
    vacuum, read = shell.commands
    assert libpq_reads(vacuum) == {"dbname": "x host=127.0.0.2"}
    assert libpq_reads(read) == {"dbname": "postgresql://127.0.0.2/x"}
