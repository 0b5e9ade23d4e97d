"""The configuration workflow run for real, on a local shell with stand-ins for FRR's tools.

The driver's shell snippets (here-document upload, merge building, the detached revert
timer, its PID check and cancel) execute in ``bash`` exactly as on a device; only
``vtysh`` and ``frr-reload.py`` are small scripts that keep the "running config" in a file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from napalm.base.exceptions import (
    CommitConfirmException,
    CommitError,
    MergeConfigException,
    ReplaceConfigException,
)

from napalm_frr import FRRDriver

VTYSH = r"""#!/bin/bash
# Stand-in for vtysh: -C -f FILE (dry run), -c 'show running-config [no-header]', 'write memory'
if [ "$1" = "-C" ]; then
  if grep -n 'bogus' "$3" | sed 's/:.*//' | head -1 | grep -q .; then
    n=$(grep -n bogus "$3" | head -1 | cut -d: -f1)
    echo "line $n: % Unknown command[25]: $(sed -n "${n}p" "$3")"; exit 4
  fi
  exit 0
fi
case "$2" in
  "show running-config no-header") cat "$RUNNING" ;;
  "show running-config")
    printf 'Building configuration...\n\nCurrent configuration:\n'; cat "$RUNNING" ;;
  "write memory") [ -f "$RUNNING.slowsave" ] && sleep "$(cat "$RUNNING.slowsave")"
                  cp "$RUNNING" "$STARTUP" ;;
  *) echo "% Unknown command: $2" ;;
esac
"""

FRR_RELOAD = r"""#!/bin/bash
# Stand-in for frr-reload.py --test|--reload --log-level error FILE
mode=$1; file=${!#}
[ -s "$file" ] || { echo "ERROR: $file is empty" >&2; exit 1; }
if grep -q 'reload-fails' "$file"; then echo "ERROR: vtysh failed"; exit 1; fi
if [ "$mode" = --test ]; then
  del=$(grep -vxFf "$file" "$RUNNING"); add=$(grep -vxFf "$RUNNING" "$file")
  [ -n "$del" ] && printf '\nLines To Delete\n===============\n%s\n' "$del"
  [ -n "$add" ] && printf '\nLines To Add\n============\n%s\n' "$add"
  exit 0
fi
[ -f "$RUNNING.slow" ] && sleep "$(cat "$RUNNING.slow")"
awk '$0 == "!" || !seen[$0]++' "$file" > "$RUNNING.new" && mv "$RUNNING.new" "$RUNNING"
[ "$file" != "$STARTUP" ] && cp "$RUNNING" "$STARTUP"
exit 0
"""

START = "hostname r1\n!\ninterface lo\n description old\nexit\n!\n"
# frr.conf as a person wrote it: same config, other text (frr-reload would rewrite it)
HAND_WRITTEN = "! written by hand\n" + START


class LocalShell:
    """Plays the Netmiko connection: every command runs in a fresh local bash."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.commands: list[str] = []

    def send_command(self, command: str, **kwargs: Any) -> str:
        self.commands.append(command)
        done = subprocess.run(
            ["bash", "-c", command],
            check=False,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
        )
        return "\n" + done.stdout + done.stderr

    def is_alive(self) -> bool:
        return True

    def disconnect(self) -> None:
        pass


@pytest.fixture
def box(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, stub in (("vtysh", VTYSH), ("frr-reload.py", FRR_RELOAD)):
        # paths written in: sudo (one of the tested modes) resets the environment
        text = stub.replace("$RUNNING", str(tmp_path / "running.conf"))
        (bin_dir / name).write_text(text.replace("$STARTUP", str(tmp_path / "frr.conf")))
        (bin_dir / name).chmod(0o755)
    (tmp_path / "running.conf").write_text(START)
    (tmp_path / "frr.conf").write_text(HAND_WRITTEN)
    return {
        "root": tmp_path,
        "bin": bin_dir,
        "running": tmp_path / "running.conf",
        "startup": tmp_path / "frr.conf",
        "state": tmp_path / "state",
    }


def _driver(box: dict[str, Path], sudo: bool = False) -> FRRDriver:
    dev = FRRDriver(
        "local",
        "root",
        "",
        optional_args={
            "vtysh": str(box["bin"] / "vtysh"),
            "frr_reload": str(box["bin"] / "frr-reload.py"),
            "startup_config": str(box["startup"]),
            "state_dir": str(box["state"]),
            "sudo": sudo,
        },
    )
    dev.device = LocalShell(dict(os.environ))
    return dev


def _sudo_works() -> bool:
    done = subprocess.run(["sudo", "-n", "true"], check=False, capture_output=True)
    return done.returncode == 0


@pytest.fixture(params=["login-shell", "sudo-sh"])
def any_dev(request: pytest.FixtureRequest, box: dict[str, Path]) -> Any:
    """The driver as root in the login shell (bash), and through ``sudo -n sh`` (dash on
    Debian): the timer snippets must work in both."""
    sudo = request.param == "sudo-sh"
    if sudo and not _sudo_works():
        pytest.skip("sudo -n is not available here")
    driver = _driver(box, sudo=sudo)
    yield driver
    if driver.has_pending_commit():
        driver.rollback()


@pytest.fixture
def dev(box: dict[str, Path]) -> Any:
    driver = _driver(box)
    yield driver
    if driver.has_pending_commit():
        driver.rollback()


def _timer_pid(box: dict[str, Path]) -> int:
    text = (box["state"] / "pending").read_text()
    return int(text.rsplit("pid=", 1)[1].split()[0])


def _alive(pid: int) -> bool:
    """Running (a zombie has an empty command line)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def _wait(condition: Any, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def test_merge_builds_running_plus_lines_and_commits(dev: FRRDriver, box: dict[str, Path]) -> None:
    dev.load_merge_candidate(config="ip route 10.0.0.0/8 Null0")
    assert Path(dev._config.merge_path).read_text() == "ip route 10.0.0.0/8 Null0\n"
    diff = dev.compare_config()
    assert diff == "Lines To Add\n============\nip route 10.0.0.0/8 Null0"
    assert dev.get_config(retrieve="candidate")["candidate"] == "ip route 10.0.0.0/8 Null0\n"
    dev.commit_config(message="add a route")
    assert "ip route 10.0.0.0/8 Null0" in box["running"].read_text()
    assert "ip route 10.0.0.0/8 Null0" in box["startup"].read_text()  # no revert_in: saved
    assert (box["state"] / "rollback.conf").read_text() == START
    assert "add a route" in (box["state"] / "commits.log").read_text()
    assert dev.compare_config() == ""
    dev.rollback()
    assert box["running"].read_text() == START
    assert box["startup"].read_text() == HAND_WRITTEN


def test_replace_compare_shows_both_sides(dev: FRRDriver) -> None:
    dev.load_replace_candidate(config=START.replace("old", "new"))
    diff = dev.compare_config()
    assert "Lines To Delete\n===============\n description old" in diff
    assert "Lines To Add\n============\n description new" in diff


def test_file_wins_over_string(dev: FRRDriver, box: dict[str, Path]) -> None:
    path = box["root"] / "cand.conf"
    path.write_text(START + "ip route 10.1.0.0/16 Null0\n")
    dev.load_replace_candidate(filename=str(path), config="ignored")
    assert Path(dev._config.candidate_path).read_text() == path.read_text()


def test_rejected_lines_raise_at_load(dev: FRRDriver) -> None:
    with pytest.raises(MergeConfigException, match=r"line 2: % Unknown command"):
        dev.load_merge_candidate(config="interface lo\n bogus words\n")
    assert not Path(dev._config.merge_path).exists()
    with pytest.raises(ReplaceConfigException, match="empty"):
        dev.load_replace_candidate(config="  \n")
    with pytest.raises(ReplaceConfigException, match="cannot read"):
        dev.load_replace_candidate(filename="/nonexistent/frr.conf")
    assert dev.compare_config() == ""


def test_failed_reload_restores_previous_config(dev: FRRDriver, box: dict[str, Path]) -> None:
    dev.load_merge_candidate(config="! reload-fails\n")
    with pytest.raises(CommitError, match="previous config restored"):
        dev.commit_config()
    assert box["running"].read_text() == START


def test_revert_in_reverts_on_its_own(any_dev: FRRDriver, box: dict[str, Path]) -> None:
    any_dev.load_merge_candidate(config="ip route 10.2.0.0/16 Null0\n")
    any_dev.commit_config(message="try", revert_in=2)
    assert any_dev.has_pending_commit()
    assert "10.2.0.0" in box["running"].read_text()
    assert "10.2.0.0" not in box["startup"].read_text()  # a reboot now comes back old
    with pytest.raises(CommitError, match="waiting for confirmation"):
        any_dev.commit_config()
    # A new driver (another process, say) sees the same pending state on the device.
    assert _driver(box, any_dev.sudo).has_pending_commit()
    assert _wait(lambda: not any_dev.has_pending_commit(), 6)
    assert box["running"].read_text() == START
    assert box["startup"].read_text() == HAND_WRITTEN  # byte for byte
    assert "rc=0" in (box["state"] / "revert.log").read_text()


def test_confirm_keeps_the_change_and_saves_it(any_dev: FRRDriver, box: dict[str, Path]) -> None:
    any_dev.load_merge_candidate(config="ip route 10.3.0.0/16 Null0\n")
    any_dev.commit_config(revert_in=30)
    timer = _timer_pid(box)
    assert _alive(timer)
    any_dev.confirm_commit()
    # long before its deadline: confirm killed it (dash's kill once refused "-TERM --")
    assert _wait(lambda: not _alive(timer), 2), "confirm did not stop the timer"
    assert not any_dev.has_pending_commit()
    assert "10.3.0.0" in box["running"].read_text()
    assert "10.3.0.0" in box["startup"].read_text()
    with pytest.raises(CommitConfirmException):
        any_dev.confirm_commit()


def test_rollback_cancels_a_pending_commit(any_dev: FRRDriver, box: dict[str, Path]) -> None:
    any_dev.load_merge_candidate(config="ip route 10.4.0.0/16 Null0\n")
    any_dev.commit_config(revert_in=30)
    any_dev.rollback()
    assert not any_dev.has_pending_commit()
    assert box["running"].read_text() == START


def test_rollback_without_a_commit_raises(dev: FRRDriver) -> None:
    with pytest.raises(CommitError, match="nothing to roll back"):
        dev.rollback()


def test_discard_forgets_the_candidate(dev: FRRDriver, box: dict[str, Path]) -> None:
    dev.load_replace_candidate(config=START + "ip route 10.5.0.0/16 Null0\n")
    dev.discard_config()
    assert dev.compare_config() == ""
    assert not Path(dev._config.candidate_path).exists()
    with pytest.raises(ReplaceConfigException, match="no candidate"):
        dev.commit_config()


def test_a_stale_pending_file_is_not_a_pending_commit(dev: FRRDriver, box: dict[str, Path]) -> None:
    """After a reboot the timer is gone; a recycled PID must not look like it."""
    box["state"].mkdir()
    (box["state"] / "pending").write_text(f"deadline=0\npid={os.getpid()}\n")
    assert not dev.has_pending_commit()


def test_sudo_wraps_privileged_commands(box: dict[str, Path]) -> None:
    dev = _driver(box)
    dev.sudo = dev._config.sudo = True
    shell = dev.device
    # sudo may be unavailable here: the commands sent are what this test checks
    with contextlib.suppress(MergeConfigException):
        dev.load_merge_candidate(config="ip route 10.6.0.0/16 Null0\n")
    assert any(c.split("; ", 1)[1].startswith("( sudo -n sh -c ") for c in shell.commands)


def test_two_sessions_keep_their_own_candidates(dev: FRRDriver, box: dict[str, Path]) -> None:
    other = _driver(box)
    dev.load_merge_candidate(config="ip route 10.7.0.0/16 Null0\n")
    other.load_merge_candidate(config="ip route 10.8.0.0/16 Null0\n")
    assert "10.7.0.0" in dev.compare_config() and "10.8.0.0" not in dev.compare_config()
    assert "10.8.0.0" in other.compare_config()
    dev.commit_config()
    assert not Path(dev._config.merge_path).exists()  # a commit cleans up after itself
    assert "10.8.0.0" in other.compare_config() and "10.7.0.0" not in other.compare_config()


def test_confirm_after_the_timer_fired_is_too_late(
    any_dev: FRRDriver, box: dict[str, Path]
) -> None:
    """The timer and confirm race for the pending file; whoever renames it first wins."""
    any_dev.load_merge_candidate(config="ip route 10.9.0.0/16 Null0\n")
    any_dev.commit_config(revert_in=1)
    Path(f"{box['running']}.slow").write_text("2")  # the revert's reload now takes 2 s
    assert _wait((box["state"] / "reverting").exists, 5)
    assert any_dev.has_pending_commit()  # still in process: reverting
    with pytest.raises(CommitConfirmException, match="too late"):
        any_dev.confirm_commit()
    with pytest.raises(CommitError, match="waiting for confirmation"):
        any_dev.commit_config()
    assert _wait(lambda: not any_dev.has_pending_commit(), 6)
    assert box["running"].read_text() == START


def test_rollback_during_the_revert_waits_for_it(dev: FRRDriver, box: dict[str, Path]) -> None:
    dev.load_merge_candidate(config="ip route 10.10.0.0/16 Null0\n")
    dev.commit_config(revert_in=1)
    Path(f"{box['running']}.slow").write_text("1")
    assert _wait((box["state"] / "reverting").exists, 5)
    dev.rollback()
    assert not dev.has_pending_commit()
    assert box["running"].read_text() == START


def test_commit_rechecks_the_candidate(dev: FRRDriver, box: dict[str, Path]) -> None:
    dev.load_merge_candidate(config="ip route 10.11.0.0/16 Null0\n")
    Path(dev._config.merge_path).write_text("bogus line\n")  # changed on the box meanwhile
    with pytest.raises(MergeConfigException, match="FRR rejects the candidate"):
        dev.commit_config()
    assert box["running"].read_text() == START


def test_commit_stops_if_the_config_cannot_be_saved(dev: FRRDriver, box: dict[str, Path]) -> None:
    dev.load_replace_candidate(config=START + "ip route 10.12.0.0/16 Null0\n")
    box["startup"].unlink()
    with pytest.raises(CommitError, match=r"could not save frr.conf \(exit 9\d\)"):
        dev.commit_config()
    assert box["running"].read_text() == START


def test_a_loaded_candidate_cannot_be_committed_while_one_is_pending(
    dev: FRRDriver, box: dict[str, Path]
) -> None:
    dev.load_merge_candidate(config="ip route 10.13.0.0/16 Null0\n")
    dev.commit_config(revert_in=30)
    dev.load_merge_candidate(config="ip route 10.14.0.0/16 Null0\n")
    with pytest.raises(CommitError, match="waiting for confirmation"):
        dev.commit_config()
    assert "10.14.0.0" not in box["running"].read_text()
    dev.rollback()


# sed that fires the revert timer between the moments a status check looks at its files: a
# status read in two looks must not see "nothing pending" while the revert is under way
RACING_SED = r"""#!/bin/bash
if [ -f "$TRIGGER" ] && [ "${!#}" = "$PENDING" ]; then
  rm -f "$TRIGGER"
  pid=$(sed_real -n 's/^pid=//p' "$PENDING" | tail -1)
  for child in $(cat /proc/$pid/task/$pid/children); do kill "$child"; done  # its sleep
  for _ in $(seq 100); do [ -f "$REVERTING" ] && break; sleep 0.05; done
fi
exec sed_real "$@"
"""


def test_no_commit_is_reported_gone_while_its_revert_runs(box: dict[str, Path]) -> None:
    """The timer fires between the two looks of a status check (deterministically: the
    check's own ``sed`` fires it): the check must still say a commit is pending, and say
    nothing is pending only once the configuration is back."""
    racing = box["root"] / "racing"
    racing.mkdir()
    trigger, state = box["root"] / "fire-now", box["state"]
    script = RACING_SED.replace("sed_real", str(shutil.which("sed")))
    script = script.replace("$TRIGGER", str(trigger)).replace("$PENDING", str(state / "pending"))
    (racing / "sed").write_text(script.replace("$REVERTING", str(state / "reverting")))
    (racing / "sed").chmod(0o755)
    dev = _driver(box)
    dev.device = LocalShell({**os.environ, "PATH": f"{racing}:{os.environ['PATH']}"})
    dev.load_merge_candidate(config="ip route 10.15.0.0/16 Null0\n")
    dev.commit_config(revert_in=60)
    Path(f"{box['running']}.slow").write_text("2")  # the revert's reload takes 2 s
    trigger.write_text("")
    assert dev.has_pending_commit(), "reported nothing pending while the revert was under way"
    assert not trigger.exists(), "the timer was not fired inside the status check"
    assert "10.15.0.0" in box["running"].read_text()
    assert _wait(lambda: not dev.has_pending_commit(), 10)
    assert box["running"].read_text() == START


def test_a_confirm_is_pending_until_the_configuration_is_saved(
    any_dev: FRRDriver, box: dict[str, Path]
) -> None:
    """Another session asking while a confirm is under way hears "pending" until frr.conf
    holds the confirmed configuration (a crash in between must not look confirmed)."""
    any_dev.load_merge_candidate(config="ip route 10.16.0.0/16 Null0\n")
    any_dev.commit_config(revert_in=60)
    Path(f"{box['running']}.slowsave").write_text("2")  # saving frr.conf takes 2 s
    other = _driver(box, any_dev.sudo)
    confirming = threading.Thread(target=any_dev.confirm_commit)
    confirming.start()
    seen = []
    while confirming.is_alive():
        pending = other.has_pending_commit()
        seen.append(pending)
        if not pending:
            assert "10.16.0.0" in box["startup"].read_text(), "not pending, yet not saved"
        time.sleep(0.05)
    confirming.join()
    assert True in seen, "the confirm was never seen under way"
    assert not other.has_pending_commit()
    assert "10.16.0.0" in box["startup"].read_text()
