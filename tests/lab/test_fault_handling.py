"""The fault-handling runbooks on the lab: a fault of each kind injected, the matching triage
run (read-only: a run, recorded, with no change), and its diagnosis names the fault; a healthy
target's diagnosis names nothing. One lab hold for all of it; every fault undone in a finally.

- network: leaf1's session to spine1 shut in vtysh (``neighbor X shutdown``), and the far
  end of leaf2's cable to spine2 down (``ip link set swp2 down`` in spine2's namespace);
- server: a service on srv1 stopped (an init-script service the test installs: lab hosts run
  no systemd);
- database: a session on db1 holding ACCESS EXCLUSIVE on a table while another waits; db1
  triaged first while healthy.

Then the remedies, each a change planned, reviewed and approved: leaf1's session bounced at
once, outside its window, with a second approver's emergency approval (NetBox's rendering
with the session shut, then its service rendering, which drops the hand-made shutdown: NetBox's
templates must know ``runbooks_shut_neighbors``, i.e. the lab seeded from this checkout), and
the service on srv1 restarted; each triage then names nothing (a healthy diagnosis).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from ansible_support import ansible_lab
from cli_support import device_env
from lab_fixtures import LabHandle
from test_db_maintenance import connect

from runbooks.core import policy
from runbooks.core.changes import ChangeBook, run_change
from runbooks.core.engine import Engine
from runbooks.core.results import Diff, RunResult, RunStatus, Status
from runbooks.core.window import Window
from runbooks.lab import frr, hosts
from runbooks.lab import lab as lab_ops
from runbooks.library.fault_database import FaultDatabase
from runbooks.library.fault_network import FaultNetwork
from runbooks.library.fault_server import FaultServer

log = logging.getLogger(__name__)

SERVICE = "fault-probe"
INIT_SCRIPT = f"""#!/bin/sh
# {SERVICE}: a test service of test_fault_handling (a sleeping daemon with a pid file)
PIDFILE=/run/{SERVICE}.pid
case "$1" in
  start) start-stop-daemon --start --background --make-pidfile --pidfile $PIDFILE \\
           --exec /bin/sleep -- 100000 ;;
  stop) start-stop-daemon --stop --quiet --oknodo --remove-pidfile --pidfile $PIDFILE ;;
  restart) "$0" stop; "$0" start ;;
  status) start-stop-daemon --status --pidfile $PIDFILE ;;
  *) echo "usage: $0 start|stop|restart|status"; exit 2 ;;
esac
"""
INCIDENT = "INC-LAB-1"
OLIVIA = policy.Identity("olivia", frozenset({policy.HANDLE}))
RACHEL = policy.Identity("rachel", frozenset({policy.REVIEW}))
ARTHUR = policy.Identity("arthur", frozenset({policy.APPROVE}))
BRUNO = policy.Identity("bruno", frozenset({policy.APPROVE}))


def diagnosis_of(result: RunResult) -> dict[str, Any]:
    """The run's diagnosis; the run itself read-only: succeeded, nothing changed."""
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert not any(s.changed for s in result.steps)
    remedy = [s.status for s in result.steps if s.step == "plan_remedy"]
    assert remedy in ([], [Status.NO_CHANGE])  # fault-database has no remedy step
    found = {s.step: s.evidence for s in result.steps}["diagnosis"]
    assert found["incident"] == INCIDENT
    return dict(found)


@pytest.fixture
def faults_undone(lab: LabHandle) -> Iterator[LabHandle]:
    """The lab held (not reset) for the whole test; whatever a fault left is undone after."""
    with lab_ops.held(reset_first=False):
        yield lab


def shut_session(lab: LabHandle, device: str, peer: str) -> tuple[str, list[str]]:
    """``neighbor <peer's address> shutdown`` on ``device``: the address, and the undo."""
    address = next(
        a for a, name in frr.expected_peers(lab.topology, device).items() if name == peer
    )
    bgp = [
        "vtysh",
        "-c",
        "configure terminal",
        "-c",
        f"router bgp {lab.topology.device(device).asn}",
    ]
    frr.run_on_device(device, [*bgp, "-c", f"neighbor {address} shutdown"], check=True)
    return address, [*bgp, "-c", f"no neighbor {address} shutdown"]


def remedied(
    engine: Engine, kind: type[Any], params: dict[str, Any], window: Window | None = None
) -> tuple[list[Diff], dict[str, Any]]:
    """The remedy planned by olivia, reviewed by rachel, approved by arthur (and, outside its
    window, given bruno's emergency approval), run by olivia: its diffs and the evidence of
    its run."""
    runbook = kind(kind.parse_params({"incident": INCIDENT, **params}))
    plan = engine.plan(runbook)
    assert plan.refusal is None, plan.refusal
    diffs = list(next(s for s in plan.steps if s.step == "plan_remedy").diffs)
    book = ChangeBook(engine.store)
    change = book.create(plan, OLIVIA, window)
    change = book.sign(change, RACHEL, policy.REVIEW, change.plan_hash)
    change = book.sign(change, ARTHUR, policy.APPROVE, change.plan_hash)
    if window is not None:
        change = book.sign(change, BRUNO, policy.EMERGENCY, change.plan_hash)
    result = run_change(engine, book, change, OLIVIA, runbook)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert [s.step for s in result.steps if s.changed] == ["plan_remedy"]
    return diffs, dict(next(s for s in result.steps if s.step == "plan_remedy").evidence)


def waiting_for_lock(db: dict[str, Any]) -> tuple[psycopg.Connection[Any], threading.Thread]:
    """A session holding ACCESS EXCLUSIVE on public.orders (its transaction open), and
    another session's SELECT waiting for it in a thread (it ends when the first one does)."""
    holder = connect(db, application_name="fault-test-holder")
    holder.execute("LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE")

    def wait() -> None:
        with connect(db, application_name="fault-test-waiter") as waiter:
            waiter.execute("SELECT count(*) FROM public.orders")

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    with connect(db, autocommit=True) as probe:  # until the SELECT waits, for over a second
        for _ in range(100):
            row = probe.execute(
                "SELECT now() - query_start > interval '1 s' FROM pg_stat_activity WHERE "
                "application_name = 'fault-test-waiter' AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0]:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the second session never waited for the lock")
    return holder, thread


def test_each_fault_is_named_by_its_triage_and_a_healthy_server_by_none(
    faults_undone: LabHandle, db1: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = faults_undone
    for key, value in device_env("leaf1").items():
        monkeypatch.setenv(key, value)
    at = ansible_lab(tmp_path, monkeypatch)
    ssh = hosts.host_ssh_params("db1", lab.topology)
    db = {"host": ssh["host"], "transport": "ssh", "ssh_key": ssh["key_file"], "lock_wait_s": 0.5}
    db |= {"bin_dir": db1["bin_dir"], "data_dir": db1["data_dir"], "incident": INCIDENT}
    timings: dict[str, float] = {}

    def run(kind: type[Any], **params: Any) -> dict[str, Any]:
        started = time.monotonic()
        result = at.engine.run(kind(kind.parse_params({"incident": INCIDENT, **params})))
        timings[f"{kind.name} {params.get('device') or params.get('host')}"] = round(
            time.monotonic() - started, 1
        )
        return diagnosis_of(result)

    # ---- a healthy database server first: nothing to name
    healthy = run(FaultDatabase, **db)
    assert healthy["healthy"] and healthy["findings"] == [], healthy
    assert healthy["summary"] == "nothing found wrong"

    undo: list[tuple[str, list[str]]] = []
    holder = None
    script = f"/etc/init.d/{SERVICE}"
    hosts.run_on_host("srv1", ["sh", "-c", f"cat > {script} && chmod 755 {script}"],
                      input=INIT_SCRIPT, check=True)  # fmt: skip
    hosts.run_on_host("srv1", [script, "start"], check=True)
    try:
        # ---- inject: a BGP session shut, a cable's far end down, a stopped service, a lock
        address, again = shut_session(lab, "leaf1", "spine1")
        undo.append(("leaf1", again))
        frr.run_on_device("spine2", ["ip", "link", "set", "swp2", "down"], check=True)
        undo.append(("spine2", ["ip", "link", "set", "swp2", "up"]))
        hosts.run_on_host("srv1", [script, "stop"], check=True)
        holder, waiter = waiting_for_lock(db1)

        locked = run(FaultDatabase, **db)
        (blocking,) = [f for f in locked["findings"] if " holds ACCESS EXCLUSIVE on " in f]
        assert blocking.startswith(f"pid {holder.info.backend_pid} (runbook, fault-test-holder)")
        assert "on public.orders blocking 1 session(s) for " in blocking
        holder.close()  # the waiter's thread ends before Ansible forks its processes
        waiter.join(10)
        holder = None

        shut = run(FaultNetwork, device="leaf1")
        assert (
            f"BGP session leaf1↔spine1 (swp1, {address}) is Idle/admin-down, NetBox cable "
            "expects it Established"
        ) in shut["findings"], shut
        assert not [f for f in shut["findings"] if "spine2" in f], shut  # its other session

        cut = run(FaultNetwork, device="leaf2")
        cable = [f for f in cut["findings"] if f.startswith("leaf2 swp2: cable #")]
        assert cable and cable[0].endswith("to spine2:swp2 in NetBox, interface is down"), cut
        assert not [f for f in cut["findings"] if "swp1" in f or "spine1" in f], cut

        server = {"host": "srv1", "services": SERVICE, "max_load_per_cpu": 100}
        stopped = run(FaultServer, **server)
        assert stopped["findings"] == [f"service {SERVICE} is not running on srv1 (stopped)"]

        # ---- the remedies: changes, approved; the BGP one run at once as an emergency
        # (its window is tomorrow: outside it, a second approver's emergency approval)
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        bounced, evidence = remedied(
            at.engine, FaultNetwork, {"device": "leaf1", "remedy": "bounce-bgp",
            "neighbor": address}, Window(tomorrow, tomorrow + timedelta(hours=1)),
        )  # fmt: skip
        # the first commit only where the hand-made shutdown differs from NetBox's (FRR's
        # own diff); the second is always NetBox's service rendering, without the shutdown
        *_, served = bounced
        assert served.summary == (
            f"bounce BGP to {address}, 2 of 2: NetBox's service rendering (it comes up)"
        )
        assert f"- neighbor {address} shutdown" in served.text
        assert f"neighbor {address} shutdown" not in str(served.after)
        assert evidence["revert_in_s"] == 300  # FRR's driver has commit-confirm
        assert evidence["down_after_s"] >= 0 and evidence["up_after_s"] >= 0, evidence
        timings["bounce-bgp session up after"] = evidence["up_after_s"]
        assert run(FaultNetwork, device="leaf1")["findings"] == []  # healthy again
        (restarted,), _ = remedied(
            at.engine, FaultServer, {**server, "remedy": "restart-service", "service": SERVICE}
        )
        assert restarted.target == "srv1:Remedy | restart the service (init script)"
        assert run(FaultServer, **server)["findings"] == []
    finally:
        if holder is not None:
            holder.close()
            waiter.join(10)
        for device, argv in reversed(undo):
            frr.run_on_device(device, argv, check=True)
        hosts.run_on_host("srv1", ["rm", "-f", f"/etc/init.d/{SERVICE}", f"/run/{SERVICE}.pid"])
    at.assert_no_secret("")
    log.warning("fault triage runs: %s", timings)
