"""db-upgrade as the tests drive it: a failure injected right after a step's work
(`fail_at`), and the lab's nsenter transport (into a lab host's namespaces). Neither is a
parameter of the production runbook."""

from __future__ import annotations

from typing import Literal

from runbooks.core.errors import VerificationError
from runbooks.library.db_upgrade import DbUpgrade, UpgradeParams

# The steps that call `after_work` once their work is done, before it is verified.
FailAt = Literal[
    "plan_backup",
    "plan_verify_backup",
    "plan_archive_wal",
    "plan_base_backup",
    "plan_prepare_new",
    "plan_stop_writers",
    "plan_upgrade",
    "plan_switch",
    "post_checks",
    "plan_analyze",
    "service_check",
]


class FaultyParams(UpgradeParams):
    transport: Literal["local", "nsenter", "ssh"] = "local"  # type: ignore[assignment]
    nsenter_pid: int | None = None  # the lab host's holder process, with transport=nsenter
    fail_at: FailAt | None = None  # that step fails right after doing its work


class FaultyDbUpgrade(DbUpgrade):
    """DbUpgrade whose step ``fail_at`` raises once its work is done."""

    Params = FaultyParams

    def after_work(self, step: str) -> None:
        if getattr(self.params, "fail_at", None) == step:
            raise VerificationError(f"injected failure at {step}")
