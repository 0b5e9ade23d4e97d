"""Equipment acceptance on the lab, one hold: leaf3 (a planned, powered box with factory
defaults: a delivered device) and srv6 (a server: Ansible facts).

The lab's machines have no DMI: leaf3's NAPALM facts report no serial at all, so a NetBox
serial on it is refused ("reports none"); the FRR driver reads its serial from DMI only (see
the module's docstring for the driver change that would let the lab give each box one).
srv6 reports its serial through its asset fact (``/etc/ansible/facts.d/asset.fact``, which
Ansible's setup module reads): the test writes one, sets srv6 to inventory in NetBox, then
- NetBox's serial differs and srv6's local config context names twice the memory srv6 has
  (``acceptance: memory_gb``) → the plan is refused naming both serials and both memories,
  nothing changed;
- NetBox's serial matches and its memory is srv6's → planned, reviewed, approved, run: a
  burn-in, status active, a journal entry witnessing the run; the disks NetBox names none of
  are listed as not compared.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from ansible_support import ansible_lab
from cli_support import device_env
from lab_fixtures import LabHandle

from runbooks.core import policy
from runbooks.core.changes import ChangeBook, run_change
from runbooks.core.plan import Plan
from runbooks.core.results import RunStatus, Status
from runbooks.lab import hosts, netbox
from runbooks.lab import lab as lab_ops
from runbooks.library.equipment_acceptance import EquipmentAcceptance

OLIVIA = policy.Identity("olivia", frozenset({policy.HANDLE}))
RACHEL = policy.Identity("rachel", frozenset({policy.REVIEW}))
ARTHUR = policy.Identity("arthur", frozenset({policy.APPROVE}))
SERVER, SERIAL = "srv6", "LAB-SRV6-0042"
FACT = "/etc/ansible/facts.d/asset.fact"


class NetBoxAdmin:
    """The lab's NetBox through its REST API as the lab's admin (the test's own edits)."""

    def __init__(self) -> None:
        self.url, token = netbox.credentials("admin")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def device(self, name: str) -> dict[str, Any]:
        reply = self.http.get(f"{self.url}/api/dcim/devices/", params={"name": name}, timeout=30)
        reply.raise_for_status()
        (found,) = reply.json()["results"]
        return dict(found)

    def set(self, name: str, **fields: object) -> None:
        device_id = self.device(name)["id"]
        reply = self.http.patch(
            f"{self.url}/api/dcim/devices/{device_id}/", json=fields, timeout=30
        )
        reply.raise_for_status()

    def journal(self, name: str) -> list[str]:
        device_id = self.device(name)["id"]
        reply = self.http.get(
            f"{self.url}/api/extras/journal-entries/",
            params={"assigned_object_type": "dcim.device", "assigned_object_id": str(device_id)},
            timeout=30,
        )
        reply.raise_for_status()
        return [str(e["comments"]) for e in reply.json()["results"]]


@pytest.fixture
def held(lab: LabHandle) -> Iterator[NetBoxAdmin]:
    """The lab held; srv6 and leaf3 as the seed had them afterwards."""
    admin = NetBoxAdmin()
    with lab_ops.held(reset_first=False):
        before = {n: admin.device(n) for n in (SERVER, "leaf3")}
        try:
            yield admin
        finally:
            hosts.run_on_host(SERVER, ["rm", "-f", FACT])
            for name, was in before.items():
                status = was["status"]
                admin.set(
                    name,
                    serial=was["serial"],
                    status=status["value"] if isinstance(status, dict) else status,
                    local_context_data=was["local_context_data"],
                )


def test_acceptance_refuses_a_serial_that_differs_and_accepts_one_that_matches(
    held: NetBoxAdmin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = held
    for key, value in device_env("leaf3").items():
        monkeypatch.setenv(key, value)
    at = ansible_lab(tmp_path, monkeypatch)
    timings: dict[str, float] = {}

    def plan(**params: object) -> tuple[EquipmentAcceptance, Plan]:
        started = time.monotonic()
        runbook = EquipmentAcceptance(EquipmentAcceptance.parse_params(params))
        planned = at.engine.plan(runbook)
        timings[f"plan {params['device']}"] = round(time.monotonic() - started, 1)
        return runbook, planned

    # ---- a network device: leaf3 reports no serial (no DMI in the lab): refused, named
    admin.set("leaf3", serial="LAB-LEAF3-0001", status="planned")  # as delivered
    _, refused = plan(device="leaf3", burn_in="0s")
    assert refused.refusal is not None
    assert "- serial: NetBox holds LAB-LEAF3-0001, leaf3 reports none" in refused.refusal
    assert refused.changes == 0 and admin.device("leaf3")["status"]["value"] == "planned"

    # ---- a server: its asset fact's serial against NetBox's
    hosts.run_on_host(SERVER, ["sh", "-c", f"mkdir -p {Path(FACT).parent} && cat > {FACT}"],
                      input=f'{{"serial": "{SERIAL}"}}\n', check=True)  # fmt: skip
    # the memory Ansible reports (ansible_memtotal_mb: /proc/meminfo's MemTotal in MiB)
    meminfo = hosts.run_on_host(SERVER, ["cat", "/proc/meminfo"], check=True).stdout
    (total_kib,) = [
        int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")
    ]
    memory_mb = total_kib // 1024
    admin.set(SERVER, serial="LAB-SRV6-9999", status="inventory",
              local_context_data={"acceptance": {"memory_gb": memory_mb * 2 / 1024}})  # fmt: skip
    _, refused = plan(device=SERVER, burn_in="0s")
    assert refused.refusal is not None
    headline, *lines = refused.refusal.splitlines()
    assert headline.endswith(f": {SERVER} does not match NetBox, not accepted:"), headline
    assert lines == [
        f"- serial: NetBox holds LAB-SRV6-9999, {SERVER} reports {SERIAL}",
        f"- memory: NetBox's config context expects {memory_mb * 2} MiB, {SERVER} reports "
        f"{memory_mb} MiB (more than 5% less)",
    ]
    assert refused.changes == 0 and admin.device(SERVER)["status"]["value"] == "inventory"

    # ---- it matches: planned, reviewed, approved, run; a burn-in, then active
    admin.set(SERVER, serial=SERIAL,
              local_context_data={"acceptance": {"memory_gb": memory_mb / 1024}})  # fmt: skip
    runbook, planned = plan(device=SERVER, burn_in="4s", sample_every="2s", target_status="active")
    assert planned.refusal is None, planned.refusal
    steps = {s.step: s for s in planned.steps}
    reported = steps["device_matches_netbox"].evidence["reported"]
    assert reported["serial"] == SERIAL and reported["serial_source"].startswith("asset fact")
    assert reported["memory_mb"] == memory_mb
    not_compared = steps["device_matches_netbox"].evidence["not_compared"]
    assert "disks: NetBox's config context names none (acceptance.disks)" in not_compared
    assert not any(line.startswith("memory") for line in not_compared), not_compared
    (status,) = steps["plan_status"].diffs
    assert status.summary == f"{SERVER}: status inventory → active"
    book = ChangeBook(at.engine.store)
    change = book.create(planned, OLIVIA, None)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    change = book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash)
    started = time.monotonic()
    result = run_change(at.engine, book, change, OLIVIA, runbook)
    timings["run srv6"] = round(time.monotonic() - started, 1)
    assert result.status is RunStatus.SUCCEEDED, result.error
    ran = {s.step: s for s in result.steps}
    assert list(ran) == [
        "netbox_expects", "device_matches_netbox", "burn_in", "plan_status", "plan_journal_entry"
    ]  # fmt: skip
    assert ran["burn_in"].evidence["samples"] == 3, ran["burn_in"].evidence
    assert [s.step for s in result.steps if s.status is Status.CHANGED] == [
        "plan_status", "plan_journal_entry"
    ], [(s.step, s.status) for s in result.steps]  # fmt: skip
    assert admin.device(SERVER)["status"]["value"] == "active"
    (entry,) = [e for e in admin.journal(SERVER) if result.run_id in e]
    assert "equipment-acceptance" in entry and "status inventory → active" in entry
    at.assert_no_secret(caplog.text)
    print("timings", timings)
