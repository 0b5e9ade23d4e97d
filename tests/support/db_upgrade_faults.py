"""db-upgrade as the tests drive it: a failure injected right after a step's work
(`fail_at`), and the lab's nsenter transport (into a lab host's namespaces). Neither is a
parameter of the production runbook."""

from __future__ import annotations

from typing import Literal

from runbooks.core.errors import VerificationError
from runbooks.library.db_upgrade import DbUpgrade
from runbooks.library.db_upgrade_parts import DbUpgradeParams, FailAt


class FaultyParams(DbUpgradeParams):
    transport: Literal["local", "nsenter", "ssh"] = "local"  # type: ignore[assignment]
    nsenter_pid: int | None = None  # the lab host's holder process, with transport=nsenter
    fail_at: FailAt | None = None  # that step fails right after doing its work


class FaultyDbUpgrade(DbUpgrade):
    """DbUpgrade whose step ``fail_at`` raises once its work is done."""

    Params = FaultyParams

    def after_work(self, step: str) -> None:
        if getattr(self.params, "fail_at", None) == step:
            raise VerificationError(f"injected failure at {step}")
