"""pc-install against the lab: NetBox registration, the PC on its install bench over SSH.

One flow per test (each starts from a reset lab): plan (NetBox diffs and check-mode diffs in
the plan), run, a second run that changes nothing; and the PC taken down mid-run. Both check
that no secret (NetBox token, a planted variable, the initial password and its hash) reaches
any artifact, record or log, and that the real machine is unchanged.
"""

from __future__ import annotations

import logging
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_support import AnsibleLab, ansible_lab, fingerprint, taken_down_after
from lab_fixtures import LabHandle

from runbooks.core.context import confirm_all, refuse_all
from runbooks.core.results import RunStatus, Status
from runbooks.lab import hosts, netbox
from runbooks.library import pc_install
from runbooks.library.pc_install import PcInstall

pytestmark = pytest.mark.slow

HOSTNAME = "labdc1-pc0042"
SOFTWARE = ["tree", "ncdu"]
# what the playbook writes on the PC: on the real machine these must not change
WATCHED = [
    "/etc/hostname",
    "/etc/hosts",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/home/wchen",
    "/etc/network/interfaces.d/50-office",
    "/etc/apt/sources.list.d/it-department.list",
    "/var/backups/runbooks",
    "/root/.ssh/known_hosts",
    "/root/.ansible",
]
INITIAL = "Initial-" + "7Qx2"  # the initial password the tests make the runbook use
hashes: list[str] = []  # every SHA-512 crypt hash the runbook made of it
PARAMS = {
    "slot": "pc1",
    "asset_tag": "PC-0042",
    "user": "wchen@lab.example",
    "location": "office-2f",
    "office_prefix": "198.18.64.0/24",
    "tenant": "finance",
    "domain": "lab.example",  # the lab's domain: no default of the runbook
}


def runbook() -> PcInstall:
    return PcInstall(PcInstall.parse_params(PARAMS))


def on_pc(command: str) -> str:
    done = hosts.run_on_host("pc1", ["sh", "-c", command], check=False)
    return str(done.stdout).strip()


def netbox_get(path: str, **params: Any) -> list[dict[str, Any]]:
    import requests

    url, token = netbox.credentials("operator")
    reply = requests.get(
        f"{url}/api/{path}/",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    reply.raise_for_status()
    return list(reply.json()["results"])


@pytest.fixture
def pc_lab(
    lab_reset: LabHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[AnsibleLab]:
    handover = tmp_path / "handover"
    monkeypatch.setenv("RUNBOOKS_HANDOVER_DIR", str(handover))
    before = fingerprint(WATCHED, SOFTWARE)
    confirmer = refuse_all if "refuses" in request.node.name else confirm_all("Wei Chen signed")
    setup = ansible_lab(tmp_path, monkeypatch, confirmer)
    # a known initial password, and every hash made of it: neither may reach any file
    monkeypatch.setattr(pc_install._random, "token_urlsafe", lambda n: INITIAL)
    hashes.clear()
    real_hash = pc_install.sha512_crypt

    def hashing(password: Any) -> str:
        hashes.append(real_hash(password))
        return hashes[-1]

    monkeypatch.setattr(pc_install, "sha512_crypt", hashing)
    setup.secrets.append(INITIAL)
    yield setup
    setup.secrets.extend(hashes)
    setup.assert_no_secret("")
    setup.store.close()
    assert fingerprint(WATCHED, SOFTWARE) == before, "the real machine changed"


def test_plan_run_and_second_run(pc_lab: AnsibleLab, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    engine = pc_lab.engine
    started = time.monotonic()
    plan = engine.plan(runbook())
    plan_s = time.monotonic() - started
    assert plan.refusal is None, plan.refusal
    steps = {s.step: s for s in plan.steps}
    assert steps["pc_on_bench"].evidence["bench_address"] == "198.18.0.51"
    registration = {d.target: d for d in steps["plan_registration"].diffs}
    device = registration[f"NetBox dcim.device {HOSTNAME}"]
    assert device.kind == "create" and device.after["asset_tag"] == "PC-0042"
    address = registration[f"NetBox ipam.ipaddress {HOSTNAME} office address"]
    assert address.after["address"] == "198.18.64.2/24"  # .1 is the office gateway
    assert address.after["dns_name"] == f"{HOSTNAME}.lab.example"
    primary = registration[f"NetBox dcim.device {HOSTNAME} primary IPv4"]
    assert primary.after is None and primary.fields[1].after == "198.18.64.2/24"
    assert f"NetBox tenancy.contactassignment {HOSTNAME} user Wei Chen" in registration
    install = {d.target: d for d in steps["plan_install"].diffs}
    assert f"+{HOSTNAME}" in install["pc1:/etc/hostname"].text
    assert "address 198.18.64.2/24" in install["pc1:/etc/network/interfaces.d/50-office"].text
    packages = next(d for d in steps["plan_install"].diffs if "software set" in d.target)
    assert "ncdu tree" in packages.text
    assert any("account" in t for t in install)
    # the plan changed nothing: the PC keeps its bench name, nothing is installed, no device
    assert on_pc("hostname") == "pc1"
    assert on_pc("dpkg-query -W -f='${Status}' tree 2>/dev/null") == ""
    assert netbox_get("dcim/devices", name=HOSTNAME) == []

    started = time.monotonic()
    result = engine.run(runbook(), plan_hash=plan.content_hash)
    run_s = time.monotonic() - started
    assert result.status is RunStatus.SUCCEEDED, result.error
    done = {s.step: s for s in result.steps}
    tasks = done["plan_install"].evidence["tasks"]
    assert all({"host", "task", "status", "changed", "duration_s"} <= set(t) for t in tasks)
    pc = done["verify"].evidence["pc"]
    assert pc["hostname"] == HOSTNAME and pc["office_config"] == "198.18.64.2/24"
    assert pc["account"] == {
        "name": "wchen",
        "full_name": "Wei Chen",
        "must_change_password": True,
    }
    assert all(pc["software"][p] for p in SOFTWARE)
    assert done["verify"].evidence["netbox"] == {
        "device": HOSTNAME,
        "status": "active",
        "primary_ip4": "198.18.64.2/24",
        "user_assigned": True,
    }
    assert done["hand_over"].evidence["confirmed"] is True
    assert on_pc("hostname") == HOSTNAME
    assert on_pc("getent passwd wchen | cut -d: -f5") == "Wei Chen"
    [nb_device] = netbox_get("dcim/devices", name=HOSTNAME)
    assert nb_device["tenant"]["slug"] == "finance"
    assert nb_device["location"]["slug"] == "office-2f"
    journal = netbox_get(
        "extras/journal-entries",
        assigned_object_type="dcim.device",
        assigned_object_id=nb_device["id"],
    )
    # the hand-over entry witnesses the run, once: the record's head before that step
    [witness] = [e["comments"] for e in journal if f"run `{result.run_id}`" in e["comments"]]
    head = next(
        e.prev_hash
        for e in pc_lab.store.entries(result.run_id)
        if e.kind == "step.started" and e.step == "plan_handover_record"
    )
    assert "Handed over" in witness
    assert f"Record head hash before this entry: `{head}`" in witness

    # the initial password: only in the engineer's 0600 hand-over file
    [handover] = list(pc_lab.tmp.joinpath("handover").iterdir())
    assert done["plan_install"].evidence["handover_file"] == str(handover)
    assert stat.S_IMODE(handover.stat().st_mode) == 0o600
    password = re.search(r"initial password: (\S+)", handover.read_text())
    assert password is not None and password.group(1) == INITIAL
    shadow_hash = on_pc("getent shadow wchen | cut -d: -f2")
    assert shadow_hash.startswith("$6$")
    assert shadow_hash in hashes  # the one the runbook made, masked like the password
    pc_lab.secrets.append(shadow_hash)

    started = time.monotonic()
    again = engine.plan(runbook())
    again_steps = {s.step: s for s in again.steps}
    for step in ("plan_registration", "plan_install", "plan_handover_record"):
        assert again_steps[step].status is Status.NO_CHANGE, (step, again_steps[step].diffs)
    second = engine.run(runbook(), plan_hash=again.content_hash)
    second_s = time.monotonic() - started
    assert second.status is RunStatus.SUCCEEDED, second.error
    second_steps = {s.step: s for s in second.steps}
    assert all(
        second_steps[s].status is Status.NO_CHANGE
        for s in ("plan_registration", "plan_install", "plan_handover_record")
    )
    assert pc_lab.store.verify().ok
    # the second run changed nothing: it witnessed nothing either
    handed = netbox_get(
        "extras/journal-entries",
        assigned_object_type="dcim.device",
        assigned_object_id=nb_device["id"],
    )
    assert [e["comments"] for e in handed if "Handed over" in e["comments"]] == [witness]
    files = pc_lab.assert_no_secret(caplog.text)
    logging.getLogger(__name__).warning(
        "plan %.1f s, run %.1f s, second plan+run %.1f s, %d files scanned",
        plan_s,
        run_s,
        second_s,
        files,
    )


def test_pc_down_mid_run_fails_cleanly_and_rolls_back(
    pc_lab: AnsibleLab, lab_reset: LabHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with taken_down_after(
        lab_reset.topology, "pc1", "/var/backups/runbooks/pc-install/*/manifest.json"
    ) as stopped:
        result = pc_lab.engine.run(runbook())
    assert stopped.is_set(), "pc1 was never taken down"
    # the PC could not be restored while down: the run says so (exit 4), and how to finish
    assert result.status is RunStatus.ROLLBACK_FAILED, result.error
    assert result.error and "ConnectError" in result.error and "pc1" in result.error
    entries = pc_lab.store.entries(result.run_id)
    [undo_failed] = [e for e in entries if e.kind == "undo.failed"]
    assert undo_failed.step == "plan_install"
    assert "unreachable: pc1 (not restored)" in undo_failed.payload["error"]
    assert f"pc_install_id={result.run_id}" in undo_failed.payload["error"]
    kinds = [(e.kind, e.step) for e in entries]
    assert ("step.failed", "plan_install") in kinds
    assert ("undo.finished", "plan_registration") in kinds
    assert kinds[-1][0] == "run.finished"
    assert pc_lab.store.verify().ok
    # NetBox is as before: no device, no office address, no assignment
    assert netbox_get("dcim/devices", name=HOSTNAME) == []
    assert netbox_get("ipam/ip-addresses", dns_name=f"{HOSTNAME}.lab.example") == []
    assert netbox_get("tenancy/contact-assignments", object_type="dcim.device") == []
    pc_lab.assert_no_secret(caplog.text)


def test_user_refuses_the_pc_and_everything_is_rolled_back(
    pc_lab: AnsibleLab, caplog: pytest.LogCaptureFixture
) -> None:
    """Nobody confirms the hand-over (the user refused the PC): the install is undone on a PC
    that is up, and the NetBox registration too."""
    caplog.set_level(logging.INFO)
    before = on_pc("hostname; cat /etc/hostname; ls /etc/apt/sources.list.d")
    result = pc_lab.engine.run(runbook())
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert result.error and "not confirmed" in result.error
    undone = [e.step for e in pc_lab.store.entries(result.run_id) if e.kind == "undo.finished"]
    assert undone == ["plan_install", "plan_registration"]
    assert on_pc("hostname; cat /etc/hostname; ls /etc/apt/sources.list.d") == before
    assert on_pc("dpkg-query -W -f='${Status}' tree ncdu 2>/dev/null") == ""
    gone = "getent passwd wchen; ls /home | grep -x wchen; ls /etc/network/interfaces.d"
    assert on_pc(gone) == ""
    assert netbox_get("dcim/devices", name=HOSTNAME) == []
    assert netbox_get("ipam/ip-addresses", dns_name=f"{HOSTNAME}.lab.example") == []
    assert list(pc_lab.tmp.joinpath("handover").iterdir()) == []  # its password went too
    assert pc_lab.store.verify().ok
    pc_lab.assert_no_secret(caplog.text)
