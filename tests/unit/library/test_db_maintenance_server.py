"""The database server from NetBox (``server=``), for db-maintenance and db-upgrade alike, and
db-maintenance's witness in the server's NetBox journal; NetBox is a fake answering GraphQL
and the journal's REST calls."""

from __future__ import annotations

import copy
import doctest
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runbooks.cli import main
from runbooks.cli.common import rebuild_runbook
from runbooks.core.context import RunContext, confirm_all
from runbooks.core.engine import Engine
from runbooks.core.errors import InputError
from runbooks.core.gateway import Mode
from runbooks.core.planning import params_record
from runbooks.core.results import Diff, Status, StepKind, StepResult
from runbooks.core.store import RecordStore
from runbooks.gateways import netbox_services
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_services import SERVICE_HOST_QUERY, parse_service_host
from runbooks.gateways.postgres_shell import SshShell
from runbooks.library import db_upgrade_parts as parts
from runbooks.library.db_maintenance import DbMaintenance
from runbooks.library.db_upgrade import DbUpgrade
from tests.unit.gateways.netbox_fake import Answer, FakeNetBox, Sent, fake_gateway
from tests.unit.library.test_db_maintenance import ScriptedServer
from tests.unit.library.test_db_maintenance import factories as pg_factories

KEY = "/etc/runbooks/hosts_ed25519"
HEAD = "ab" * 32


def server(
    name: str = "db1", *, vm: bool = False, version: int | None = 16, port: str = "tcp/5433"
) -> dict[str, Any]:
    """NetBox's answer to `SERVICE_HOST_QUERY` for a server and its postgresql service."""
    obj = {
        "id": "9",
        "name": name,
        "primary_ip4": {"address": "198.18.0.41/24"},
        "primary_ip6": None,
        "services": [
            {"id": "2", "name": "ssh", "port_mappings": ["tcp/22"], "custom_fields": {}},
            {
                "id": "3",
                "name": "postgresql",
                "port_mappings": [port],
                "description": "",
                "custom_fields": {"postgresql_version": version},
            },
        ],
    }
    return {"device_list": [] if vm else [obj], "virtual_machine_list": [obj] if vm else []}


def netbox(answer: dict[str, Any], journal: list[dict[str, Any]] | None = None) -> FakeNetBox:
    """A fake NetBox answering GraphQL with ``answer`` and keeping a journal."""
    fake = FakeNetBox()
    entries = journal if journal is not None else []

    def graphql(sent: Sent) -> Answer:
        assert sent.body["query"] == SERVICE_HOST_QUERY  # one query, a read
        return Answer(body={"data": answer})

    def add(sent: Sent) -> Answer:
        entries.append({"id": 700 + len(entries), **sent.body})
        return Answer(201, entries[-1])

    fake.on("POST", "/graphql/", graphql)
    fake.on(
        "GET",
        "/api/extras/journal-entries/",
        lambda sent: Answer(body={"count": len(entries), "results": list(entries)}),
    )
    fake.on("POST", "/api/extras/journal-entries/", add)
    return fake


@pytest.fixture
def nb_answer(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the configured NetBox answers (edit it in a test); the hosts' SSH key set."""
    answer = server()
    monkeypatch.setenv("RUNBOOKS_NETBOX_URL", "http://netbox.invalid")
    monkeypatch.setenv("RUNBOOKS_NETBOX_TOKEN", "nbt_unit.token")
    monkeypatch.setenv("RUNBOOKS_ANSIBLE_PRIVATE_KEY", KEY)

    def gateway(settings: Any, mode: Mode) -> NetBoxGateway:
        assert mode is Mode.PLAN  # parameters are read with a session that cannot write
        gw, _ = fake_gateway(mode)
        gw.session.mount("http://", netbox(answer))
        return gw

    monkeypatch.setattr(parts, "NetBoxGateway", gateway)
    return answer


def test_the_doctests_hold() -> None:
    assert doctest.testmod(netbox_services).failed == 0
    assert doctest.testmod(parts).failed == 0


def test_server_gives_address_port_version_transport_and_key(nb_answer: dict[str, Any]) -> None:
    rb = DbMaintenance(DbMaintenance.parse_params({"server": "db1"}))
    p = rb.p
    assert (p.host, p.transport, p.ssh_key, p.port) == ("198.18.0.41", "ssh", None, 5433)
    shell = rb.shell()  # the key is the hosts' setting where the plan or run happens
    assert isinstance(shell, SshShell) and (shell.host, shell.key_file) == ("198.18.0.41", KEY)
    shell.close()
    assert (p.bin_dir, p.data_dir) == ("/usr/lib/postgresql/16/bin", "/var/lib/postgresql/16/main")
    assert p.netbox_device == "db1"
    up = DbUpgrade(DbUpgrade.parse_params({"server": "db1", "new_bin": "/opt/pg18/bin"})).p
    assert (up.host, up.port, up.from_version) == ("198.18.0.41", 5433, 16)
    assert (up.old_bin, up.old_data) == (
        "/usr/lib/postgresql/16/bin",
        "/var/lib/postgresql/16/main",
    )
    # a parameter given overrides what NetBox says
    given = {"server": "db1", "host": "10.9.9.9", "port": "5432", "bin_dir": "/opt/pg/bin"}
    over = DbMaintenance(DbMaintenance.parse_params(given)).p
    assert (over.host, over.port, over.bin_dir) == ("10.9.9.9", 5432, "/opt/pg/bin")
    assert over.data_dir == "/var/lib/postgresql/16/main"


def test_an_approved_change_is_rebuilt_from_its_record(nb_answer: dict[str, Any]) -> None:
    """What the record holds of the parameters rebuilds the runbook for the run: no secret
    was recorded in place of a value (the hosts' key is a setting, never a parameter)."""
    for cls in (DbMaintenance, DbUpgrade):
        rb = cls(cls.parse_params({"server": "db1", "new_bin": "/opt/pg18/bin"}
                                  if cls is DbUpgrade else {"server": "db1"}))  # fmt: skip
        recorded = params_record(rb)
        assert KEY not in str(recorded)
        again = rebuild_runbook(cls.name, recorded, {})
        assert again.params == rb.params


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda a: a.update(device_list=[]), "NetBox has no device or virtual machine named"),
        (
            lambda a: a.update(virtual_machine_list=copy.deepcopy(a["device_list"])),
            "a device (#9) and a virtual machine (#9) named 'db1': which server is meant",
        ),
        (lambda a: a["device_list"][0].update(primary_ip4=None), "has no primary IP address"),
        (
            lambda a: a["device_list"][0]["services"].pop(),
            "has no 'postgresql' application service (it has ssh)",
        ),
        (
            lambda a: a["device_list"][0]["services"][1].update(port_mappings=["udp/5432"]),
            "must have one TCP port (it has udp/5432)",
        ),
        (
            lambda a: a["device_list"][0]["services"][1].update(custom_fields={}),
            "service has no postgresql_version: set it in NetBox, or give bin_dir, data_dir",
        ),
    ],
)
def test_what_netbox_cannot_answer_is_one_line(
    nb_answer: dict[str, Any], change: Any, error: str
) -> None:
    change(nb_answer)
    with pytest.raises(InputError, match=r"^[^\n]+$") as raised:
        DbMaintenance.parse_params({"server": "db1"})
    assert error in str(raised.value)


def test_server_without_an_ssh_key_or_netbox_is_refused(
    nb_answer: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNBOOKS_ANSIBLE_PRIVATE_KEY")
    with pytest.raises(InputError, match="no SSH key is set for the hosts"):
        DbMaintenance.parse_params({"server": "db1"})
    given = DbMaintenance(DbMaintenance.parse_params({"server": "db1", "ssh_key": "/k"}))
    shell = given.shell()  # given: enough
    assert isinstance(shell, SshShell) and shell.key_file == "/k"
    shell.close()
    no_key = DbMaintenance(DbMaintenance.parse_params({"host": "pg1", "transport": "ssh"}))
    with pytest.raises(InputError, match="pg1 is reached over SSH, and no SSH key is set"):
        no_key.shell()
    for name in ("RUNBOOKS_NETBOX_URL", "NETBOX_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InputError, match="server=db1 is looked up in NetBox, which is not"):
        DbMaintenance.parse_params({"server": "db1"})


def test_cli_plan_of_an_unknown_server_exits_2_in_one_line(
    nb_answer: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb_answer["device_list"] = []
    store = tmp_path / "r.sqlite3"
    for runbook in ("db-maintenance", "db-upgrade"):
        assert main(["--store", str(store), "plan", runbook, "server=db9"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "no device or virtual machine named 'db9'" in lines[0]
    assert not store.exists()  # refused before any work: no store, no change


def plan_with_netbox(
    tmp_path: Path, answer: dict[str, Any], params: dict[str, Any]
) -> tuple[Any, list[dict[str, Any]]]:
    journal: list[dict[str, Any]] = []

    def nb(ctx: RunContext, key: str) -> NetBoxGateway:
        gw, _ = fake_gateway(ctx.mode, ctx.run_id)
        gw.session.mount("http://", netbox(answer, journal))
        return gw

    rb = DbMaintenance(DbMaintenance.parse_params(params))
    gateways = {**pg_factories(ScriptedServer()), NetBoxGateway: nb}
    engine = Engine(RecordStore(tmp_path / "r.sqlite3"), "olivia", gateway_factories=gateways)
    return engine.plan(rb), journal


@pytest.mark.parametrize("vm", [False, True])
def test_the_plan_shows_netbox_and_the_journal_entry_on_the_server(
    tmp_path: Path, nb_answer: dict[str, Any], vm: bool
) -> None:
    nb_answer.update(server(vm=vm, version=15, port="tcp/5432"))  # as ScriptedServer is
    done, journal = plan_with_netbox(tmp_path, nb_answer, {"server": "db1"})
    assert done.refusal is None, done.refusal
    steps = {s.step: s for s in done.steps}
    first = steps["server_in_netbox"].evidence
    kind = "virtualization.virtualmachine" if vm else "dcim.device"
    assert first["netbox"]["object"] == f"{kind} #9 db1"
    assert first["netbox"]["service"] == "ipam.service #3 postgresql tcp/5432"
    assert first["postgresql_version"] == 15 and first["overridden"] == {}
    assert first["uses"]["host"] == "198.18.0.41"
    assert first["uses"]["ssh_key"] == "the hosts' key (setting ansible_private_key)"
    (entry,) = steps["plan_journal_entry"].diffs
    assert entry.after["object_type"] == kind and entry.after["object_id"] == 9
    text = entry.after["comments"]
    assert "runbook `db-maintenance`, run `<the run>`" in text
    assert "198.18.0.41:sales: VACUUM (ANALYZE) of 2 tables" in text
    assert "backup" in text
    assert journal == []  # a plan writes nothing


def test_an_override_is_shown_beside_what_netbox_says(
    tmp_path: Path, nb_answer: dict[str, Any]
) -> None:
    nb_answer.update(server(version=15, port="tcp/5432"))
    done, _ = plan_with_netbox(tmp_path, nb_answer, {"server": "db1", "host": "10.9.9.9"})
    evidence = {s.step: s for s in done.steps}["server_in_netbox"].evidence
    assert evidence["overridden"] == {"host": {"used": "10.9.9.9", "netbox": "198.18.0.41"}}


def test_the_run_writes_its_entry_once_with_the_record_head(
    nb_answer: dict[str, Any],
) -> None:
    nb_answer.update(server(version=15, port="tcp/5432"))
    journal: list[dict[str, Any]] = []
    rb = DbMaintenance(DbMaintenance.parse_params({"server": "db1"}))

    def nb(ctx: RunContext, key: str) -> NetBoxGateway:
        gw, _ = fake_gateway(ctx.mode, ctx.run_id)
        gw.session.mount("http://", netbox(nb_answer, journal))
        return gw

    ctx = RunContext(
        Mode.RUN, "run-9", "olivia", rb, confirm_all(), {NetBoxGateway: nb}, lambda: HEAD
    )
    step = DbMaintenance.plan_journal_entry
    assert step is DbUpgrade.plan_journal_entry  # the upgrade's own witness step
    assert step.apply_func is not None and step.verify_func is not None
    # the run's VACUUM, as the record holds it, is what the entry sums up
    vacuum_ctx = RunContext(Mode.PLAN, "p", "olivia", rb, gateway_factories=pg_factories(
        ScriptedServer()))  # fmt: skip
    vacuum_ctx.state = rb.new_state()
    diffs = DbMaintenance.plan_vacuum.plan(rb, vacuum_ctx)
    ctx.results["plan_vacuum"] = _result(diffs)
    (diff,) = step.plan(rb, ctx)
    assert step.apply_func(rb, ctx, [diff]) == {"journal_entries": {"db1": 700}}
    (entry,) = journal
    assert entry["assigned_object_type"] == "dcim.device" and entry["assigned_object_id"] == 9
    assert f"Record head hash before this entry: `{HEAD}`" in entry["comments"]
    assert "run `run-9` by olivia" in entry["comments"]
    assert step.verify_func(rb, ctx, [diff])
    assert step.plan(rb, ctx) == []  # written once: a resumed run finds it
    ctx.close()


def _result(diffs: Sequence[Diff]) -> StepResult:
    now = datetime.now(UTC)
    return StepResult(
        "plan_vacuum", "VACUUM", StepKind.CHANGE, Status.OK, ("198.18.0.41",), True,
        tuple(diffs), started=now, ended=now,
    )  # fmt: skip


def test_parse_service_host_reads_an_ipv6_primary_and_the_vm() -> None:
    answer = server(vm=True)
    obj = answer["virtual_machine_list"][0]
    obj.update(primary_ip4=None, primary_ip6={"address": "2001:db8::41/64"})
    found = parse_service_host(answer, "db1", "postgresql")
    assert (found.kind, found.address, found.port) == (
        "virtualization.virtualmachine",
        "2001:db8::41",
        5433,
    )
