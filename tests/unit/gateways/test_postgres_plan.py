"""The db-upgrade plan on a pretend server: what it shows, what it refuses, what it never does."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import pytest

from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.errors import DryRunViolation
from runbooks.core.gateway import Gateway, Mode, reads
from runbooks.core.plan import Plan
from runbooks.core.results import Status
from runbooks.core.store import RecordStore
from runbooks.gateways import postgres_facts as facts
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.postgres import Cluster, shell_from
from runbooks.gateways.postgres_shell import LocalShell, NsenterShell, SshShell
from runbooks.gateways.postgres_upgrade import UpgradeCheck, UpgradeGateway
from runbooks.library.db_upgrade import DbUpgrade
from runbooks.library.db_upgrade_parts import FailAt
from tests.unit.gateways.netbox_fake import Answer, fake_gateway

DB1 = {"id": 41, "name": "db1"}


class RecordingShell:
    """Answers nothing, remembers every command: a plan must not send a write."""

    where = "fake"

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        self.commands.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    def close(self) -> None:
        pass


SURVEY: dict[str, Any] = {
    "version_num": 150020,
    "version": "PostgreSQL 15.20",
    "data_directory": "/var/lib/postgresql/15/main",
    "data_checksums": False,
    "in_recovery": False,
    "databases": [{"name": "postgres", "bytes": 8_000_000}, {"name": "app", "bytes": 9_000_000}],
    "connections": 3,
    "replicas": 0,
    "replication_slots": 0,
    "bootstrap_superuser": "postgres",
    "settings": {"port": "5432"},
    "hba_file": "/x/pg_hba.conf",
    "ident_file": "/x/pg_ident.conf",
    "extensions": {"app": {"plpgsql": "1.0", "citext": "1.6"}},
}


class PretendServer(UpgradeGateway):
    """The reads a plan makes, answered from a table; writes are the real (refusing) ones."""

    facts: dict[str, Any] = {}

    @reads
    def survey(self, cluster: Cluster) -> dict[str, Any]:
        return {**SURVEY, **self.facts.get("survey", {})}

    @reads
    def binary_version(self, bin_dir: str) -> int:
        return int(self.facts.get("new_version", 18)) if "15" not in bin_dir else 15

    @reads
    def dir_bytes(self, path: str) -> int:
        return 40_000_000

    @reads
    def free_bytes(self, path: str) -> int:
        return int(self.facts.get("free", 10**10))

    @reads
    def exists(self, path: str) -> bool:
        return bool(self.facts.get("new_exists", False))

    @reads
    def locale(self, cluster: Cluster) -> dict[str, str]:
        return {"encoding": "UTF8", "collate": "C.UTF-8", "ctype": "C.UTF-8"}

    @reads
    def column_options(self, cluster: Cluster) -> dict[str, int]:
        return {"pg_attver": 12}

    @reads
    def upgrade_check(
        self, old: Cluster, new_bin: str, *, checksums: bool, superuser: str
    ) -> UpgradeCheck:
        report = f"Clusters are compatible (checksums={checksums})"
        return UpgradeCheck(report, "/tmp/runbook-check.Ab12Cd")

    @reads
    def upgrade_modes(self, bin_dir: str) -> list[str]:
        return list(self.facts.get("modes", ["copy", "clone", "link", "swap"]))


def netbox_with_db1(mode: Mode) -> NetBoxGateway:
    """A NetBox holding device db1 (id 41) and no journal entry."""
    gw, fake = fake_gateway(mode)
    fake.on("GET", "/api/dcim/devices/", Answer(body={"count": 1, "results": [DB1]}))
    fake.on("GET", "/api/extras/journal-entries/", Answer(body={"count": 0, "results": []}))
    return gw


def plan(tmp_path: Path, mode: str = "copy", **server_facts: Any) -> Plan:
    PretendServer.facts = server_facts
    shell = RecordingShell()

    def factory(ctx: RunContext, key: str) -> Gateway:
        return PretendServer(ctx.mode, shell)

    params = {"host": "db1", "new_bin": "/opt/pg18/bin", "mode": mode}
    rb = DbUpgrade(DbUpgrade.parse_params(params))
    factories: dict[type[Gateway], Any] = {
        UpgradeGateway: factory,
        NetBoxGateway: lambda ctx, key: netbox_with_db1(ctx.mode),
    }
    engine = Engine(RecordStore(tmp_path / "r.sqlite3"), "olivia", gateway_factories=factories)
    result = engine.plan(rb)
    assert shell.commands == []  # every fact came from the table above: nothing was sent
    return result


def test_the_plan_is_the_procedure_with_its_evidence(tmp_path: Path) -> None:
    p = plan(tmp_path)
    assert p.refusal is None
    assert [s.step for s in p.steps] == [
        "server_in_netbox", "survey_cluster", "pg_upgrade_check", "announce", "plan_backup",
        "plan_verify_backup", "plan_archive_wal", "plan_base_backup", "plan_prepare_new",
        "plan_stop_writers", "plan_upgrade", "plan_switch", "post_checks", "plan_analyze",
        "service_check", "plan_netbox_version", "plan_journal_entry",
    ]  # fmt: skip
    steps = {s.step: s for s in p.steps}
    survey = steps["survey_cluster"].evidence
    assert survey["new_cluster_initdb"] == "--no-data-checksums"
    assert survey["column_options_stripped"] == {"pg_attver": 12}
    # the plan's downtime: the fixed costs and the copy of the 40 MB data directory
    assert survey["expected_downtime_s"] == round(facts.estimate_downtime_s(40_000_000), 1)
    assert survey["expected_downtime_s"] > facts.FIXED_DOWNTIME_S
    assert not steps["plan_archive_wal"].diffs and not steps["plan_netbox_version"].diffs
    assert "checksums=False" in steps["pg_upgrade_check"].evidence["report"]
    scratch = steps["pg_upgrade_check"].evidence["scratch"]
    assert "scratch cluster in /tmp/runbook-check.Ab12Cd, removed" in scratch
    assert "unavailable for about" in steps["announce"].evidence["instruction"]
    upgrade = steps["plan_upgrade"].diffs[0]
    assert upgrade.before["version"] == 15
    assert upgrade.after["data_directory"] == "/var/lib/postgresql/18/main"
    assert upgrade.after["command"].startswith("pg_upgrade --copy -b /usr/lib/postgresql/15/bin")
    initdb = steps["plan_prepare_new"].diffs[0].after["command"]
    assert "--no-data-checksums --encoding=UTF8" in initdb
    assert steps["plan_backup"].targets == ("db1",)
    switch = steps["plan_switch"].diffs[0]
    assert switch.target == "db1:/var/run/postgresql:5432"
    assert "PostgreSQL 18" in switch.after["served_by"]
    # the witness: the server's NetBox device, no run, person or head named by a plan
    (journal,) = steps["plan_journal_entry"].diffs
    assert journal.target == "NetBox journal of db1" and journal.after["object_id"] == 41
    text = journal.after["comments"]
    assert "run `<the run>` by <its operator>" in text and "olivia" not in text
    assert "The record's head hash is written here by the run." in text
    assert all(s.status is not Status.REFUSED for s in p.steps)
    assert p.content_hash == plan(tmp_path).content_hash


@pytest.mark.parametrize("mode", ["link", "swap"])
def test_a_fast_mode_plan_shows_its_consequence_and_a_downtime_that_does_not_grow(
    tmp_path: Path, mode: str
) -> None:
    p = plan(tmp_path, mode)
    assert p.refusal is None, p.refusal
    steps = {s.step: s for s in p.steps}
    survey = steps["survey_cluster"].evidence
    assert survey["expected_downtime_s"] == facts.FIXED_DOWNTIME_S
    assert "base backup plus the WAL" in survey["mode"]
    assert f"about {facts.FIXED_DOWNTIME_S:.0f} s" in steps["announce"].evidence["instruction"]
    assert len(steps["plan_archive_wal"].diffs) == 1 and len(steps["plan_base_backup"].diffs) == 1


@pytest.mark.parametrize(
    ("server_facts", "reason"),
    [
        ({"survey": {"version_num": 140011}}, "PostgreSQL 14, not 15"),
        ({"new_version": 17}, "holds PostgreSQL 17, not 18"),
        ({"survey": {"in_recovery": True}}, "standby"),
        ({"survey": {"replicas": 1}}, "replicas or replication slots"),
        ({"free": 1000}, "free disk 1000 B < needed"),
        ({"new_exists": True}, "a cluster already exists"),
    ],
)
def test_the_plan_refuses_what_cannot_be_upgraded_safely(
    tmp_path: Path, server_facts: dict[str, Any], reason: str
) -> None:
    p = plan(tmp_path, **server_facts)
    assert p.refusal is not None and reason in p.refusal
    first, survey, *rest = p.steps  # what NetBox says (nothing, no server named), the survey
    assert first.step == "server_in_netbox" and first.status is Status.OK
    assert survey.step == "survey_cluster" and survey.status is Status.REFUSED
    assert all(s.status is Status.SKIPPED for s in rest)


def test_every_write_of_the_gateway_refuses_in_a_plan() -> None:
    shell = RecordingShell()
    gw = UpgradeGateway(Mode.PLAN, shell)
    old = Cluster("/d15", "/b15", 5432, "/s")
    with pytest.raises(DryRunViolation):
        gw.take_backup(old, "/b", "run")
    with pytest.raises(DryRunViolation):
        gw.stop_writers(old, backup_dir="/b", run_id="run")
    with pytest.raises(DryRunViolation):
        gw.pg_upgrade(old, old, mode="copy", work_dir="/w", superuser="postgres",
                      backup_dir="/b", run_id="run")  # fmt: skip
    with pytest.raises(DryRunViolation):
        gw.remove_cluster_dir(old, 18)
    assert shell.commands == []


def test_shells_run_as_the_cluster_user_where_the_cluster_is() -> None:
    argv = ["psql", "-c", "select 1"]
    assert NsenterShell(42)._prefix(argv) == [
        "nsenter", "-t", "42", "-n", "-m", "-u", "-i", "--",
        "runuser", "-u", "postgres", "--", *argv,
    ]  # fmt: skip
    ssh = SshShell("198.18.0.41", "/k", user="root", os_user="postgres")
    full = ssh._prefix(argv)
    assert full[0] == "ssh" and "root@198.18.0.41" in full
    assert full[-1] == "runuser -u postgres -- psql -c 'select 1'"
    ssh.close()
    # no user given: none is assumed (ssh's own configuration, else the caller's name)
    plain = SshShell("198.18.0.41", "/k")
    assert "198.18.0.41" in plain._prefix(argv) and not any("@" in a for a in plain._prefix(argv))
    assert plain.where == "198.18.0.41"
    plain.close()
    local = LocalShell()._prefix(argv)
    assert local[-3:] == argv


def test_every_failure_knob_names_a_change_or_check_after_the_survey() -> None:
    steps = [s.name for s in DbUpgrade.steps()]
    knobs = list(get_args(FailAt))
    assert set(knobs) <= set(steps)
    assert steps.index("plan_backup") == min(steps.index(k) for k in knobs)


def test_ssh_logs_in_as_the_hosts_remote_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server reached over SSH is logged in to as Ansible logs in to the hosts (setting
    RUNBOOKS_ANSIBLE_USER), not as whoever runs the command; unset, ssh chooses."""
    params = DbUpgrade.parse_params(
        {"host": "198.18.0.41", "transport": "ssh", "ssh_key": "/k", "new_bin": "/b"}
    )
    monkeypatch.setenv("RUNBOOKS_ANSIBLE_USER", "ops")
    shell = shell_from(params)
    assert isinstance(shell, SshShell) and shell.user == "ops"
    assert "ops@198.18.0.41" in shell._prefix(["true"])
    shell.close()
    monkeypatch.delenv("RUNBOOKS_ANSIBLE_USER")
    shell = shell_from(params)
    assert isinstance(shell, SshShell) and shell.user is None
    shell.close()
