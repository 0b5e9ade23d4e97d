"""What a change's state still allows (`runbooks_rules.lifecycle`), whoever asks."""

from __future__ import annotations

import pytest
from runbooks_rules import lifecycle
from runbooks_rules.policy import HANDLE, Identity, Refusal, check_run_unreviewed

OPEN = ("planned", "reviewed", "approved", "scheduled", "rolled-back", "rollback-failed", "refused")


@pytest.mark.parametrize("status", OPEN)
def test_an_open_change_can_be_signed_scheduled_and_started(status: str) -> None:
    lifecycle.check_signable("CHG-1", status, stale=False, unreviewed=False)
    lifecycle.check_schedulable("CHG-1", status, stale=False, unreviewed=False)
    lifecycle.check_startable("CHG-1", status, stale=False, scheduled=False)


@pytest.mark.parametrize(
    ("status", "stale", "says"),
    [
        ("running", False, "CHG-1 is running now"),
        ("succeeded", False, "CHG-1 has already succeeded: plan a new change"),
        ("stopped", False, "CHG-1 stopped part-way with batches kept: it never runs again"),
        ("refused", True, "CHG-1 is stale"),
        ("approved", True, "CHG-1 is stale"),
    ],
)
def test_a_closed_change_takes_nothing(status: str, stale: bool, says: str) -> None:
    for check in (
        lambda: lifecycle.check_signable("CHG-1", status, stale, unreviewed=False),
        lambda: lifecycle.check_schedulable("CHG-1", status, stale, unreviewed=False),
        lambda: lifecycle.check_startable("CHG-1", status, stale, scheduled=False),
    ):
        with pytest.raises(Refusal, match=says):
            check()


def test_an_unreviewed_change_is_neither_signed_nor_scheduled() -> None:
    with pytest.raises(Refusal, match="takes no review or approval"):
        lifecycle.check_signable("CHG-1", "unreviewed", stale=False, unreviewed=True)
    with pytest.raises(Refusal, match="only its preparer runs it"):
        lifecycle.check_schedulable("CHG-1", "unreviewed", stale=False, unreviewed=True)
    lifecycle.check_startable("CHG-1", "unreviewed", stale=False, scheduled=False)


def test_a_worker_runs_only_scheduled_changes() -> None:
    lifecycle.check_startable("CHG-1", "scheduled", stale=False, scheduled=True)
    with pytest.raises(Refusal, match="is not scheduled"):
        lifecycle.check_startable("CHG-1", "approved", stale=False, scheduled=True)


@pytest.mark.parametrize("status", lifecycle.FINISHED_STATUSES)
def test_a_run_finishes_in_a_finished_status(status: str) -> None:
    assert lifecycle.finished_status(status) == status


def test_a_stopped_run_is_a_finished_status_of_runs_and_changes() -> None:
    """Stopped part-way (batches kept): a run ends so, and its change takes that status."""
    assert "stopped" in lifecycle.FINISHED_STATUSES
    assert "stopped" in lifecycle.RUN_STATUSES and "stopped" in lifecycle.CHANGE_STATUSES
    assert set(lifecycle.MEANINGS) == set(lifecycle.FINISHED_STATUSES)
    assert lifecycle.MEANINGS["stopped"].startswith("stopped part-way")
    assert lifecycle.after_signature("stopped", "approved") == "stopped"


@pytest.mark.parametrize("status", ["running", "interrupted", None, 1])
def test_a_run_does_not_finish_otherwise(status: object) -> None:
    with pytest.raises(ValueError, match="a run finishes"):
        lifecycle.finished_status(status)


@pytest.mark.parametrize(
    ("status", "signed", "after"),
    [
        ("planned", "reviewed", "reviewed"),
        ("reviewed", "approved", "approved"),
        ("refused", "approved", "approved"),
        ("scheduled", "approved", "scheduled"),
        ("rolled-back", "approved", "rolled-back"),
    ],
)
def test_the_status_after_a_signature(status: str, signed: str, after: str) -> None:
    assert lifecycle.after_signature(status, signed) == after


def test_an_unreviewed_change_runs_by_its_preparer_inside_its_window() -> None:
    olivia = Identity("olivia", frozenset({HANDLE}))
    check_run_unreviewed(olivia, "olivia", in_window=True)
    with pytest.raises(Refusal, match="runs only inside it"):
        check_run_unreviewed(olivia, "olivia", in_window=False)
    with pytest.raises(Refusal, match="needs the 經辦 handle authority"):
        check_run_unreviewed(Identity("rachel", frozenset()), "rachel", in_window=True)
