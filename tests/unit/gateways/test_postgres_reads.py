"""The PostgreSQL gateway's reads write nothing: queries run in read-only sessions, and
``pg_upgrade --check`` works in a throwaway directory of its own that it removes."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence

import pytest

from runbooks.core.errors import InputError, VerificationError
from runbooks.core.gateway import Mode
from runbooks.gateways.postgres import READ_ONLY_SESSION, Cluster, PostgresGateway
from runbooks.gateways.postgres_upgrade import UpgradeGateway

OLD = Cluster("/var/lib/postgresql/15/main", "/usr/lib/postgresql/15/bin", 5432, "/run/pg")
SCRATCH = "/tmp/runbook-check.Xy12Zw"
LOCALE = '{"encoding": "UTF8", "collate": "C.UTF-8", "ctype": "C.UTF-8"}'

Answerer = Callable[[list[str]], tuple[int, str]]


class ScriptedShell:
    """Answers each command with ``answer(argv)`` (exit status, stdout); keeps every command."""

    where = "fake"

    def __init__(self, answer: Answerer) -> None:
        self.answer = answer
        self.commands: list[list[str]] = []

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        self.commands.append(list(argv))
        rc, out = self.answer(list(argv))
        assert rc == 0 or not check, argv
        return subprocess.CompletedProcess(list(argv), rc, out, "")

    def close(self) -> None:
        pass


def server(check_rc: int = 0, removed: bool = True) -> Answerer:
    """mktemp gives SCRATCH, psql the locale, the check script exits ``check_rc``."""

    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[0] == "mktemp":
            return 0, SCRATCH + "\n"
        if argv[:2] == ["env", READ_ONLY_SESSION]:
            return 0, LOCALE
        if argv[0] == "sh" and "trap" in argv[2]:
            return check_rc, "Clusters are compatible" if check_rc == 0 else "failure: bad"
        if argv[0] == "sh" and "rm -rf" in argv[2]:
            return (0 if removed else 1), ""
        raise AssertionError(f"unexpected command {argv}")

    return answer


def test_queries_run_in_a_read_only_session_the_server_enforces() -> None:
    shell = ScriptedShell(lambda argv: (0, "42"))
    assert PostgresGateway(Mode.PLAN, shell).query_json(OLD, "SELECT 42") == 42
    (argv,) = shell.commands
    assert argv[:3] == ["env", "PGOPTIONS=-c default_transaction_read_only=on", OLD.bin("psql")]
    assert argv[-2:] == ["-c", "SELECT 42"]


@pytest.mark.parametrize(
    "sql",
    [
        "SET TRANSACTION READ WRITE; INSERT INTO t VALUES (1)",
        "SELECT 1; COMMIT; INSERT INTO t VALUES (1)",
        "set default_transaction_read_only = off",
        "SELECT set_config('transaction_read_only', 'off', false)",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ  WRITE",
        "begin; insert into t values (1)",
        # found by review: each passed the first filter
        "COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'",
        "\\! touch /tmp/x",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "SELECT 1 ;/**/SET/**/SESSION CHARACTERISTICS AS TRANSACTION READ/**/WRITE",
        "SELECT lo_export(16385, '/tmp/x')",
        "SELECT pg_reload_conf()",
        "SELECT 1 -- a comment could hide the rest",
    ],
)
def test_a_query_that_could_leave_its_read_only_transaction_is_not_sent(sql: str) -> None:
    shell = ScriptedShell(lambda argv: (0, ""))
    with pytest.raises(InputError, match="could leave its read-only transaction"):
        PostgresGateway(Mode.RUN, shell).query_json(OLD, sql)
    assert shell.commands == []


def test_upgrade_check_works_in_a_scratch_directory_and_removes_it() -> None:
    shell = ScriptedShell(server())
    gw = UpgradeGateway(Mode.PLAN, shell)  # a read: allowed in a plan
    check = gw.upgrade_check(OLD, "/opt/pg18/bin", checksums=False, superuser="postgres")
    assert check.scratch == SCRATCH and "compatible" in check.report
    mktemp, locale, script, removal = shell.commands
    assert mktemp == ["mktemp", "-d", "-t", "runbook-check.XXXXXX"]
    assert locale[:2] == ["env", READ_ONLY_SESSION]
    assert script[0:2] == ["sh", "-c"] and script[3:] == ["sh", SCRATCH]
    text = script[2]
    assert text.startswith("trap 'rm -rf -- \"$1\"' EXIT;")  # removed however it ends
    initdb = shlex.split(text.split(">", 1)[0].split("TERM; ", 1)[1])
    assert initdb[:3] == ["/opt/pg18/bin/initdb", "-D", f"{SCRATCH}/new"]
    assert "--no-data-checksums" in initdb and "--encoding=UTF8" in initdb
    pg_upgrade = shlex.split(text.rsplit("; ", 1)[1])
    assert pg_upgrade[:3] == ["env", "-C", SCRATCH]
    assert pg_upgrade[3:5] == ["/opt/pg18/bin/pg_upgrade", "--check"]
    assert pg_upgrade[pg_upgrade.index("-D") + 1] == f"{SCRATCH}/new"
    assert pg_upgrade[pg_upgrade.index("-s") + 1] == SCRATCH  # its sockets too
    assert pg_upgrade[pg_upgrade.index("-d") + 1] == OLD.data_dir  # read, never written
    assert removal == ["sh", "-c", 'rm -rf -- "$1"; ! test -e "$1"', "sh", SCRATCH]


def test_a_failed_check_still_removes_its_scratch_directory() -> None:
    shell = ScriptedShell(server(check_rc=1))
    with pytest.raises(VerificationError, match="pg_upgrade --check failed: failure: bad"):
        UpgradeGateway(Mode.PLAN, shell).upgrade_check(
            OLD, "/opt/pg18/bin", checksums=False, superuser="postgres"
        )
    assert shell.commands[-1][-1] == SCRATCH and "rm -rf" in shell.commands[-1][2]


def test_a_scratch_directory_left_behind_fails_the_check() -> None:
    shell = ScriptedShell(server(removed=False))
    with pytest.raises(VerificationError, match=f"{SCRATCH} could not be removed"):
        UpgradeGateway(Mode.PLAN, shell).upgrade_check(
            OLD, "/opt/pg18/bin", checksums=False, superuser="postgres"
        )
