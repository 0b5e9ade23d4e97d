"""NetBox's schema for the lab without NetBox: the shipped core dump (this version's, no
secret), which dump a first `up` restores, and the progress of a real migrate."""

from __future__ import annotations

import doctest
import gzip
import io
import logging
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from runbooks.lab import cli, lab, netbox, netbox_schema
from runbooks.lab.errors import LabError
from runbooks.lab.lab import Progress, Timings

# What Django 6.1's `migrate --plan` prints (operations indented; a RunPython has no name).
PLAN = """\
Planned operations:
contenttypes.0001_initial
    Create model ContentType
    Alter unique_together for contenttype (1 constraint(s))
auth.0001_initial
    Create model Permission
dcim.0001_squashed
    Raw Python operation
dcim.0002_squashed
    Add field location to rack
"""

# What `migrate --no-input` prints, a migration that prints something of its own included.
MIGRATE = """\
Operations to perform:
  Apply all migrations: account, auth, contenttypes, dcim
Running migrations:
  Applying contenttypes.0001_initial... OK
  Applying auth.0001_initial... OK
  Applying dcim.0001_squashed...Populating the cable paths
 OK
  Applying dcim.0002_squashed... OK
"""


def test_the_doctests_of_the_schema_module() -> None:
    assert doctest.testmod(netbox_schema).failed == 0


def test_the_plan_lists_each_migration_once_not_its_operations() -> None:
    assert netbox_schema.planned_migrations(PLAN) == [
        "contenttypes.0001_initial",
        "auth.0001_initial",
        "dcim.0001_squashed",
        "dcim.0002_squashed",
    ]
    nothing = "Planned operations:\n  No planned migration operations.\n"
    assert netbox_schema.planned_migrations(nothing) == []


def test_each_migration_is_reported_as_it_starts_with_the_count() -> None:
    seen: list[tuple[int, int, str]] = []
    with netbox_schema.reporting(lambda *args: seen.append(args)):
        started, tail = netbox_schema.follow(io.StringIO(MIGRATE), 4)
    assert seen == [
        (1, 4, "contenttypes.0001_initial"),
        (2, 4, "auth.0001_initial"),
        (3, 4, "dcim.0001_squashed"),
        (4, 4, "dcim.0002_squashed"),
    ]
    assert started == 4 and tail[-1] == "  Applying dcim.0002_squashed... OK"


def test_more_migrations_than_planned_never_show_more_than_all(caplog) -> None:
    caplog.set_level(logging.INFO, logger=netbox_schema.__name__)
    netbox_schema.follow(io.StringIO(MIGRATE), 2)  # no reporter set: the log, every tenth
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "NetBox migrate: 1/2 migrations (contenttypes.0001_initial)"
    assert lines[-1] == "NetBox migrate: 4/4 migrations (dcim.0002_squashed)"


def test_a_dump_loses_its_restrict_brackets_but_no_copy_data() -> None:
    dump = (
        "\\restrict Zk1\n"
        "SET statement_timeout = 0;\n"
        "COPY public.extras_tag (id, name) FROM stdin;\n"
        "\\\\restrict-looking data\n"
        "2\tgold\n"
        "\\.\n"
        "COPY public.users_token (id) FROM stdin;\n"
        "\\.\n"
        "\\unrestrict Zk1\n"
    )
    assert netbox_schema.meta_commands(dump) == ["\\restrict Zk1", "\\unrestrict Zk1"]
    clean = netbox_schema.clean_dump(dump)
    assert netbox_schema.meta_commands(clean) == []
    assert clean == "".join(dump.splitlines(keepends=True)[1:-1])
    assert netbox_schema.table_rows(clean) == {"extras_tag": 2, "users_token": 0}
    assert netbox_schema.private_rows(clean) == {}
    assert netbox_schema.private_rows(clean.replace("(id) FROM stdin;\n", "(id) FROM stdin;\n7\n"))


def test_the_shipped_dump_is_this_netbox_version_s_core_schema_and_holds_no_secret() -> None:
    shipped = netbox_schema.shipped_snapshot(netbox.VERSION)
    # exactly this version's: a dump left from another version is never used, so remove it
    assert sorted(netbox_schema.SNAPSHOTS.glob("*.sql.gz")) == [shipped]
    raw = shipped.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # no timestamp: regenerating the same schema is no change
    sql = gzip.decompress(raw).decode()
    rows = netbox_schema.table_rows(sql)
    assert {"users_user", "users_token", "django_session"} <= rows.keys()
    assert netbox_schema.private_rows(sql) == {}
    assert netbox_schema.meta_commands(sql) == []
    assert rows["django_migrations"] >= 300  # NetBox core's migrations, all of them
    assert "netbox_runbooks" not in sql  # core only: the plugin's come from the checkout
    assert "OWNER TO" not in sql and "GRANT " not in sql


@dataclass
class Dumps:
    """What _migrate_core did with its database work recorded instead of done."""

    shipped: Path
    restored: list[Path] = field(default_factory=list)
    refuse: set[Path] = field(default_factory=set)
    migrated: int = 0


@pytest.fixture
def dumps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dumps:
    """_migrate_core with its database work recorded instead of done."""
    monkeypatch.setenv("RUNBOOKS_CACHE_DIR", str(tmp_path / "cache"))
    netbox.home().mkdir(parents=True)
    shipped = tmp_path / "shipped.sql.gz"
    monkeypatch.setattr(netbox_schema, "shipped_snapshot", lambda version: shipped)
    state = Dumps(shipped)

    def restore(dump: Path, source: str) -> bool:
        state.restored.append(dump)
        return dump not in state.refuse

    def migrate(db: str) -> str:
        state.migrated += 1
        return "SET x = 1;\n"

    monkeypatch.setattr(netbox, "_restore_core", restore)
    monkeypatch.setattr(netbox, "_migrate_fresh", migrate)
    for name in ("_create_from", "_freeze", "_drop"):
        monkeypatch.setattr(netbox, name, lambda *a, **k: None)
    return state


def test_a_first_up_restores_the_machine_s_dump_else_the_shipped_one(dumps: Dumps) -> None:
    shipped = dumps.shipped
    shipped.write_bytes(b"x")
    netbox._migrate_core()
    assert dumps.restored == [shipped] and dumps.migrated == 0
    netbox.snapshot().write_bytes(b"y")
    netbox._migrate_core()
    assert dumps.restored == [shipped, netbox.snapshot()] and dumps.migrated == 0


def test_with_no_dump_or_a_refused_one_a_first_up_migrates_and_keeps_the_machine_s(
    dumps: Dumps,
) -> None:
    netbox._migrate_core()
    assert dumps.restored == [] and dumps.migrated == 1
    assert gzip.decompress(netbox.snapshot().read_bytes()) == b"SET x = 1;\n"
    netbox.snapshot().unlink()
    shipped = dumps.shipped
    shipped.write_bytes(b"from a newer PostgreSQL")
    dumps.refuse = {shipped}
    netbox._migrate_core()
    assert dumps.restored == [shipped] and dumps.migrated == 2


def _fake_netbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exit_code: int) -> None:
    """NetBox's `netbox` command as a script: the plan above, then the migrate output."""
    monkeypatch.setenv("RUNBOOKS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNBOOKS_LAB_DIR", str(tmp_path / "state"))
    (tmp_path / "plan").write_text(PLAN)
    (tmp_path / "migrate").write_text(MIGRATE.replace("  Applying dcim.0002_squashed... OK\n", ""))
    script = netbox.venv() / "bin" / "netbox"
    script.parent.mkdir(parents=True)
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$2" = --plan ]; then cat {tmp_path / "plan"}; exit 0; fi\n'
        f"cat {tmp_path / 'migrate'}\n"
        f"[ {exit_code} = 0 ] || echo 'django.db.utils.OperationalError: out of memory' >&2\n"
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_a_real_migrate_reports_its_progress(tmp_path, monkeypatch) -> None:
    _fake_netbox(tmp_path, monkeypatch, 0)
    seen: list[tuple[int, int, str]] = []
    with netbox_schema.reporting(lambda *args: seen.append(args)):
        netbox.migrate_with_progress("scratch", core_only=True)
    assert [s[:2] for s in seen] == [(1, 4), (2, 4), (3, 4)]


def test_a_failed_migrate_says_how_far_it_got_and_why(tmp_path, monkeypatch) -> None:
    _fake_netbox(tmp_path, monkeypatch, 1)
    with pytest.raises(LabError) as failed:
        netbox.migrate_with_progress("scratch", core_only=True)
    assert str(failed.value) == (
        "netbox migrate failed after 3 of 4 migrations: "
        "django.db.utils.OperationalError: out of memory"
    )


def _up_that_migrates(progress: Progress) -> Timings:
    name = "_contactassignment_rename_content_type"  # longer than a narrow terminal has room for
    output = "".join(f"  Applying dcim.{n:04}{name}... OK\n" for n in range(1, 21))
    netbox_schema.follow(io.StringIO(output), 20)
    return Timings({"netbox": 1.0})


def test_lab_up_shows_migrations_in_a_log_every_tenth(monkeypatch) -> None:
    monkeypatch.setattr(lab, "up", _up_that_migrates)
    result = CliRunner().invoke(cli.app, ["up"])
    assert result.exit_code == 0
    lines = [ln for ln in result.output.splitlines() if "netbox migrate" in ln]
    assert lines[0].startswith("  ▶ netbox migrate: 1/20 migrations (dcim.0001_contact")
    assert lines[-1].startswith("  ▶ netbox migrate: 20/20 migrations (dcim.0020_contact")
    assert len(lines) == 11  # the first, then each tenth


def test_lab_up_shows_a_progress_bar_with_the_count_on_a_terminal(monkeypatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=screen, force_terminal=True, width=70))
    monkeypatch.setattr(lab, "up", _up_that_migrates)
    result = CliRunner().invoke(cli.app, ["up"])
    assert result.exit_code == 0
    shown = screen.getvalue()
    last = screen.getvalue().rsplit("\r", 1)[-1]  # the bar as it was left
    assert "netbox migrate" in last and "20/20" in last and "━" * 20 in last
    assert "migrations (" not in shown  # the bar, not the log lines


def test_netbox_is_served_by_gunicorn_on_loopback_with_its_static_files(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RUNBOOKS_LAB_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOKS_CACHE_DIR", str(tmp_path / "cache"))
    netbox.write_configuration()
    args = netbox.gunicorn_args()
    assert args[args.index("--bind") + 1] == f"127.0.0.1:{netbox.port()}"
    assert int(args[args.index("--workers") + 1]) <= 2  # two cores, ~300 MB a worker
    assert "--no-control-socket" in args
    wsgi_dir = Path(args[args.index("--chdir") + 1])
    module, app = args[-1].split(":")
    source = (wsgi_dir / f"{module}.py").read_text()
    assert "from netbox.wsgi import application as netbox_application" in source
    assert "application = StaticFilesHandler(netbox_application)" in source
    assert app == "application"
    compile(source, module, "exec")


def test_a_server_started_another_way_is_restarted_by_the_next_up(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOKS_LAB_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOKS_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []
    fakes = {
        "_server_pid": lambda: 4242,
        "_serving": lambda: True,
        "stop": lambda: calls.append("stop"),
        "_start_server": lambda: calls.append("start"),
        "_wait_serving": lambda proc, timeout: None,
    }
    for name, fake in fakes.items():
        monkeypatch.setattr(netbox, name, fake)
    netbox.write_configuration()
    netbox._code_file().write_text(netbox.plugin_code_digest())
    netbox._pid_file().write_text("4242 1234")  # as runserver's start recorded it
    netbox.serve()
    assert calls == ["stop", "start"]
    netbox._pid_file().write_text(f"4242 1234 {netbox._serving_digest()}")
    netbox.serve()
    assert calls == ["stop", "start"]
