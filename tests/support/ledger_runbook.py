"""A runbook defined for the tests: it changes files in a work directory, so every engine
feature (plan, diffs, manual steps, rollback, resume) can be exercised without the lab.

Every apply appends its step name to ``ledger.log``: a test counts applications there.
Knobs (parameters) let a test fail a step, or pause (so it can SIGKILL the process)
after a step finished or in the middle of a step.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from runbooks.core.context import RunContext
from runbooks.core.errors import VerificationError
from runbooks.core.gateway import Gateway, reads, writes
from runbooks.core.results import Diff, StepResult
from runbooks.core.runbook import Params, Runbook
from runbooks.core.steps import change, check, manual

log = logging.getLogger(__name__)


class FilesGateway(Gateway):
    """Reads and writes files in the work directory; writes refuse during a plan."""

    @reads
    def read(self, path: Path) -> str | None:
        return path.read_text(encoding="utf-8") if path.exists() else None

    @writes
    def write(self, path: Path, text: str | None) -> None:
        if text is None:
            path.unlink(missing_ok=True)
        else:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)

    @writes
    def append_ledger(self, workdir: Path, line: str) -> None:
        with (workdir / "ledger.log").open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


class LedgerParams(Params):
    workdir: Path
    version: int = 2
    hostname: str = "leaf9"
    fail_at: str | None = None  # a step name: that step raises
    fail_undo: str | None = None  # a step name: its undo raises (the rollback fails)
    pause_after: str | None = None  # a step name: pause after its record entry
    pause_in: str | None = None  # "<step>:before" or "<step>:after" (around the write)
    write_in_plan: bool = False  # a check tries to write during the plan
    delay_s: float = 0.0  # the configuration write takes this long (to hold a lock a while)
    token: SecretStr | None = None
    password: SecretStr | None = None


def pause(workdir: Path, where: str) -> None:
    """Tell the test where we are, then wait to be killed."""
    (workdir / "paused").write_text(where, encoding="utf-8")
    time.sleep(120)


class LedgerRunbook(Runbook):
    """Test instruction: configure a pretend device by files, with a manual confirmation."""

    name = "test-ledger"
    title = "Configure a pretend device (test runbook)"
    instruction = "test: a runbook defined for the tests"
    expected_duration = timedelta(minutes=1)
    Params = LedgerParams

    @property
    def p(self) -> LedgerParams:
        assert isinstance(self.params, LedgerParams)
        return self.params

    def files(self, ctx: RunContext) -> FilesGateway:
        return ctx.gateway(FilesGateway)

    def knob(self, step: str) -> None:
        if self.p.fail_at == step:
            raise VerificationError(f"injected failure at {step}")

    @check("The work directory exists", targets="{hostname}")
    def workdir_exists(self, ctx: RunContext) -> dict[str, Any]:
        if not self.p.workdir.is_dir():
            raise VerificationError(f"{self.p.workdir} is not a directory")
        if self.p.write_in_plan:
            self.files(ctx).write(self.p.workdir / "written-in-plan", "oops")
        return {"workdir": str(self.p.workdir)}

    # -- change 1: the configuration file
    @change("Write the configuration", targets="{hostname}", duration=timedelta(seconds=5))
    def plan_config(self, ctx: RunContext) -> Diff:
        path = self.p.workdir / "config.txt"
        now = self.files(ctx).read(path) or ""
        intended = f"hostname {self.p.hostname}\nversion {self.p.version}\n"
        return Diff.of_text(f"{self.p.hostname}:config.txt", now, intended, "configuration file")

    @plan_config.apply
    def write_config(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.knob("plan_config")
        time.sleep(self.p.delay_s)
        files = self.files(ctx)
        files.append_ledger(self.p.workdir, "plan_config")
        files.write(self.p.workdir / "config.txt", diffs[0].after)

    @plan_config.undo
    def restore_config(self, ctx: RunContext, diffs: list[Diff]) -> None:
        if self.p.fail_undo == "plan_config":
            raise VerificationError("injected failure undoing plan_config")
        before = diffs[0].before
        self.files(ctx).write(self.p.workdir / "config.txt", before or None)

    @manual("Confirm the device is mounted and cabled", targets="{hostname}")
    def confirm_mounted(self, ctx: RunContext) -> str:
        return f"{self.p.hostname} is mounted in its rack and its cables are plugged in"

    # -- change 2: the inventory entry
    @change("Register the device in the inventory", targets="{hostname}")
    def plan_inventory(self, ctx: RunContext) -> Diff:
        path = self.p.workdir / "inventory.json"
        now = json.loads(self.files(ctx).read(path) or "{}")
        after = {**now, self.p.hostname: {"status": "active", "version": self.p.version}}
        return Diff.of_fields(
            f"inventory:{self.p.hostname}",
            {"entry": now.get(self.p.hostname)},
            {"entry": after[self.p.hostname]},
            "inventory entry",
        )

    @plan_inventory.apply
    def register_inventory(self, ctx: RunContext, diffs: list[Diff]) -> None:
        self.knob("plan_inventory")
        if self.p.pause_in == "plan_inventory:before":
            pause(self.p.workdir, "plan_inventory:before")
        files = self.files(ctx)
        files.append_ledger(self.p.workdir, "plan_inventory")
        path = self.p.workdir / "inventory.json"
        now = json.loads(files.read(path) or "{}")
        now[self.p.hostname] = diffs[0].after["entry"]
        files.write(path, json.dumps(now, sort_keys=True))
        if self.p.pause_in == "plan_inventory:after":
            pause(self.p.workdir, "plan_inventory:after")

    @plan_inventory.undo
    def remove_inventory(self, ctx: RunContext, diffs: list[Diff]) -> None:
        files = self.files(ctx)
        path = self.p.workdir / "inventory.json"
        now = json.loads(files.read(path) or "{}")
        before = diffs[0].before["entry"]
        if before is None:
            now.pop(self.p.hostname, None)
        else:
            now[self.p.hostname] = before
        files.write(path, json.dumps(now, sort_keys=True))

    @check("Post-check: configuration and inventory agree", targets="{hostname}")
    def post_check(self, ctx: RunContext) -> dict[str, Any]:
        self.knob("post_check")
        evidence: dict[str, Any] = {"config": self.files(ctx).read(self.p.workdir / "config.txt")}
        if self.p.token is not None and self.p.password is not None:
            # what a careless device or API might echo back: the records must not keep it
            evidence["login_banner"] = f"logged in with {self.p.password.get_secret_value()}"
            evidence["api_header"] = f"Authorization: Token {self.p.token.get_secret_value()}"
        log.info("post-check evidence: %s", evidence)  # careless on purpose: logs must mask
        return evidence

    def on_step_finished(self, ctx: RunContext, result: StepResult) -> None:
        if self.p.pause_after == result.step:
            pause(self.p.workdir, f"after:{result.step}")
