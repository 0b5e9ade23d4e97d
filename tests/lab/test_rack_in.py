"""rack-in on the lab: leaf3 (planned, factory defaults, links wired) becomes an active leaf.

Each test starts from the seeded lab (`rack_lab`). Rollback tests inject one failure per kind
of change step through `Engine(gateway_factories=…)` and compare a snapshot of every device's
configuration and of NetBox's objects taken before the run with one taken after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rack_support import (
    MODULES,
    BGPDown,
    LLDPSeesStrangers,
    RejectingDevice,
    devices_with,
    differences,
    engine,
    netbox_failing_on,
    snapshot,
)

from runbooks.core.results import RunStatus, Status
from runbooks.lab import frr
from runbooks.library.rack_in import RackIn

pytestmark = pytest.mark.usefixtures("rack_lab")
CHANGE_STEPS = {s.name for s in RackIn.steps() if s.kind == "change"}


def rack_in(**params: Any) -> RackIn:
    return RackIn(RackIn.parse_params({"device": "leaf3", **params}))


def test_rack_in_of_the_planned_leaf_then_a_replan_finds_no_change(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    started = time.monotonic()
    plan = eng.plan(rack_in())
    plan_s = time.monotonic() - started
    assert plan.refusal is None
    by_step = {s.step: s for s in plan.steps}
    config = by_step["plan_device_config"].diffs
    assert "ip address 198.18.1.5/31" in config[0].text  # the device's own diff
    sessions = next(d for d in config if d.target == "leaf3 BGP sessions")
    assert {f.name for f in sessions.fields} >= {"spine1: neighbor 198.18.1.5"}
    cables = by_step["plan_cables_connected"].diffs
    assert {(f.name, f.before, f.after) for d in cables for f in d.fields} == {
        ("status", "planned", "connected")
    }
    status = by_step["plan_device_active"].diffs[0]
    assert (status.fields[0].before, status.fields[0].after) == ("planned", "active")

    started = time.monotonic()
    result = eng.run(rack_in())
    run_s = time.monotonic() - started
    assert result.status is RunStatus.SUCCEEDED, result.error
    done = {s.step: s for s in result.steps}
    assert done["plan_device_config"].evidence["committed"] == ["leaf3", "spine1", "spine2"]
    assert done["confirm_mounted_and_cabled"].evidence["confirmed_by"] == "olivia"
    assert done["verify_bgp_established"].evidence["established"]
    # the record: every step finished, in order, chained
    entries = eng.store.entries(result.run_id)
    finished = [e.step for e in entries if e.kind == "step.finished"]
    assert finished == [s.name for s in RackIn.steps()]
    assert eng.store.verify().ok

    after = snapshot()
    leaf3 = next(d for d in after["dcim.device"].values() if d["name"] == "leaf3")
    assert leaf3["status"] == "active"
    journal = [j["comments"] for j in after["extras.journalentry"].values()]
    (witness,) = [text for text in journal if result.run_id in text]
    # the journal entry witnesses the record: the head hash of every entry before that step
    journal_started = next(
        e for e in entries if e.kind == "step.started" and e.step == "plan_journal_entry"
    )
    assert f"Record head hash before this entry: `{journal_started.prev_hash}`" in witness
    assert "neighbor 198.18.1.5 remote-as 65103" in after["spine1 running"]
    # the data plane: spine1 reaches leaf3's loopback from its own
    ping = frr.run_on_device(
        "spine1", ["ping", "-c", "1", "-W", "2", "-I", "198.18.255.1", "198.18.255.13"]
    )
    assert ping.returncode == 0, ping.stdout

    replan = engine(tmp_path / "again").plan(rack_in())
    assert replan.refusal is None
    changes = {s.step: s.status for s in replan.steps if s.step in CHANGE_STEPS}
    assert set(changes.values()) == {Status.NO_CHANGE}, changes
    print(f"rack-in leaf3: plan {plan_s:.1f} s, run {run_s:.1f} s")


def _rolled_back(tmp_path: Path, factories: Any, failing_step: str, **params: Any) -> None:
    before = snapshot()
    result = engine(tmp_path, factories).run(rack_in(**params))
    assert result.status is RunStatus.ROLLED_BACK, (result.status, result.error)
    failed = [s for s in result.steps if s.status is Status.FAILED]
    assert [s.step for s in failed] == [failing_step], result.error
    after = snapshot()
    assert differences(before, after) == [], differences(before, after)


def test_the_device_rejects_the_configuration(tmp_path: Path) -> None:
    # spine2 is the last to commit: leaf3 and spine1 were committed and must go back too
    _rolled_back(tmp_path, devices_with({"spine2": RejectingDevice}), "plan_device_config")


def test_a_post_check_fails_lldp(tmp_path: Path) -> None:
    factories = devices_with({"leaf3": LLDPSeesStrangers})
    _rolled_back(tmp_path, factories, "verify_lldp_matches_cables")


def test_a_post_check_fails_bgp(tmp_path: Path) -> None:
    factories = devices_with({"leaf3": BGPDown})
    _rolled_back(tmp_path, factories, "verify_bgp_established", settle_timeout_s=4)


def test_a_netbox_write_fails_after_the_devices_were_confirmed(tmp_path: Path) -> None:
    _rolled_back(tmp_path, netbox_failing_on("dcim.device"), "plan_device_active")


def test_cli_plan_prints_the_config_diff_and_the_netbox_field_diffs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RUNBOOKS_MODULES": MODULES,
        "RUNBOOKS_STORE": str(tmp_path / "records.sqlite3"),
        "COLUMNS": "200",
    }
    cli = [sys.executable, "-m", "runbooks.cli", "plan", "rack-in", "device=leaf3"]
    out = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "ip address 198.18.1.5/31" in text  # leaf3's configuration diff
    assert "planned" in text and "connected" in text  # the cables' status
    assert "NetBox dcim.device leaf3" in text and "active" in text
    assert "neighbor 198.18.1.5" in text  # the sessions NetBox adds at run time
