"""software-install on the lab: hosts from NetBox, packages from the lab's repository, the record.

One lab run serves every assertion. Through the `runbook` command, as the lab's people: olivia
plans labtool 1.0-1 on srv1 and srv2 (the check-mode plan: not installed → 1.0-1), rachel
reviews, arthur approves, olivia runs it (the record: each host's version before and after);
a second run changes nothing (a package the repository lacks, refused at plan time: the unit
tests). Then, through the engine, an upgrade to 1.1-1 whose post-check fails on srv2 (a fault
changes the installed file there after the apply): both hosts are downgraded back to 1.0-1 and
the record holds the failure and the undo, its chain intact. The real machine is unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from ansible_support import AnsibleLab, ansible_lab, fingerprint
from cli_support import Machine
from lab_fixtures import LabHandle

from runbooks.core.context import RunContext
from runbooks.core.gateway import writes
from runbooks.core.results import RunStatus
from runbooks.core.store import RecordStore
from runbooks.gateways.ansible import AnsibleGateway, PlaybookResult
from runbooks.lab import hosts, software
from runbooks.lab import lab as lab_ops
from runbooks.library.software_install import SoftwareInstall

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

HOSTS = "srv1,srv2"
WINDOW = ("--window-start", "-1m", "--window-end", "+2h")


def on_host(host: str, command: str) -> str:
    return str(hosts.run_on_host(host, ["sh", "-c", command]).stdout).strip()


def installed(host: str) -> str:
    return on_host(host, "dpkg-query -W -f='${Version}' labtool 2>/dev/null")


def step(document: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(s for s in document["steps"] if s["step"] == name))


class TamperedAfterApply(AnsibleGateway):
    """The fault: once an upgrade is applied, srv2's labtool is changed (as a person editing
    it would), so the post-check's dpkg --verify finds it."""

    @writes
    def run(self, playbook: str, **kwargs: Any) -> PlaybookResult:
        result = super().run(playbook, **kwargs)
        if (kwargs.get("extravars") or {}).get("software_action") == "upgrade":
            hosts.run_on_host("srv2", ["sh", "-c", "echo 'echo edited' >> /usr/bin/labtool"])
        return result


@pytest.fixture
def software_lab(
    lab_reset: LabHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AnsibleLab]:
    software.ensure()  # labtool's two versions (scripts/setup builds them; a no-op then)
    before = fingerprint(["/var/lib/runbooks/software-install", "/usr/bin/labtool"], ["labtool"])
    setup = ansible_lab(tmp_path, monkeypatch)
    yield setup
    setup.store.close()
    after = fingerprint(["/var/lib/runbooks/software-install", "/usr/bin/labtool"], ["labtool"])
    assert after == before, "the real machine changed"


def test_plan_approve_run_again_and_a_failed_upgrade_rolled_back(
    software_lab: AnsibleLab, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    timings: dict[str, float] = {}
    login = {k: v for k, v in lab_ops.runbooks_env().items() if k != "RUNBOOKS_SSH_KNOWN_HOSTS"}
    assert login["RUNBOOKS_SOFTWARE_SOURCE"] == software.source_line()  # `runbook lab env`'s
    olivia = Machine(tmp_path / "desk", **login)
    params = ("software-install", f"hosts={HOSTS}", "packages=labtool=1.0-1")

    # the plan: per host, labtool from not installed to 1.0-1, apt's own words beside it
    started = time.monotonic()
    planned = json.loads(olivia("operator", "plan", *params, *WINDOW, "--json").stdout)
    timings["plan"] = time.monotonic() - started
    log.warning("plan %.1f s", timings["plan"])
    diffs = {d["target"]: d for d in step(planned, "plan_packages")["diffs"]}
    assert set(diffs) == {"srv1: packages", "srv2: packages"}
    assert diffs["srv1: packages"]["fields"] == [
        {"name": "labtool", "before": None, "after": "1.0-1"}
    ]
    assert "labtool" in diffs["srv2: packages"]["text"]  # what apt would install
    assert installed("srv1") == ""  # the plan installed nothing

    # reviewed and approved by two other people, then run
    change, digest = planned["change"], planned["hash"]
    olivia("reviewer", "review", change, "--accept", "--hash", digest)
    olivia("approver", "approve", change, "--hash", digest)
    started = time.monotonic()
    ran = json.loads(olivia("operator", "run", change, "--yes", "--json").stdout)
    timings["run"] = time.monotonic() - started
    log.warning("approved run %.1f s", timings["run"])
    assert ran["status"] == "succeeded", ran
    assert installed("srv1") == installed("srv2") == "1.0-1"
    store = RecordStore(olivia.store)
    finished = {
        e.step: e.payload for e in store.entries(ran["run_id"]) if e.kind == "step.finished"
    }
    assert finished["plan_packages"]["evidence"]["versions"] == {
        "srv1": {"labtool": {"before": None, "after": "1.0-1"}},
        "srv2": {"labtool": {"before": None, "after": "1.0-1"}},
    }
    assert finished["plan_witness"]["changed"]  # each host's NetBox journal witnesses it
    assert store.verify().ok
    store.close()

    # a second run: nothing to change
    started = time.monotonic()
    again = json.loads(
        olivia("operator", "run", *params, "--no-change-control", "--yes", "--json").stdout
    )
    timings["second run"] = time.monotonic() - started
    log.warning("second run %.1f s", timings["second run"])
    assert again["status"] == "succeeded"
    assert step(again, "plan_packages")["status"] == "no-change"
    assert step(again, "plan_witness")["status"] == "no-change"

    # an upgrade whose post-check fails on srv2: both hosts back to 1.0-1, the record complete
    engine = software_lab.engine
    plain = engine.gateway_factories[AnsibleGateway]

    def tampering(ctx: RunContext, key: str) -> AnsibleGateway:
        settings = plain(ctx, key).settings  # type: ignore[attr-defined]
        return TamperedAfterApply(ctx.mode, replace(settings, pipelining=True))

    engine.gateway_factories[AnsibleGateway] = tampering
    upgrade = SoftwareInstall(
        SoftwareInstall.parse_params({"hosts": HOSTS, "packages": "labtool", "action": "upgrade"})
    )
    started = time.monotonic()
    result = engine.run(upgrade)
    timings["failed upgrade"] = time.monotonic() - started
    assert result.status is RunStatus.ROLLED_BACK, result.error
    assert result.error and "srv2 labtool: dpkg --verify" in result.error
    assert "srv1" not in result.error.split("post-check:")[1]
    assert installed("srv1") == installed("srv2") == "1.0-1"
    assert on_host("srv2", "dpkg --verify labtool; labtool") == "labtool 1.0-1"
    entries = software_lab.store.entries(result.run_id)
    kinds = [(e.kind, e.step) for e in entries]
    assert ("step.failed", "plan_packages") in kinds
    assert ("undo.finished", "plan_packages") in kinds and kinds[-1][0] == "run.finished"
    [started_entry] = [e for e in entries if e.kind == "step.started" and e.step == "plan_packages"]
    planned_versions = {d["target"]: d["fields"] for d in started_entry.payload["diffs"]}
    assert planned_versions["srv2: packages"] == [
        {"name": "labtool", "before": "1.0-1", "after": "1.1-1"}
    ]
    [undone] = [e for e in entries if e.kind == "undo.finished"]
    assert undone.payload["evidence"]["versions"] == {
        "srv1": {"labtool": "1.0-1"},
        "srv2": {"labtool": "1.0-1"},
    }
    assert software_lab.store.verify().ok
    software_lab.assert_no_secret(caplog.text)
    log.warning("timings: %s", ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
