"""Candidates, commit, commit-confirm and rollback for FRR, done with FRR's own tools.

Files on the device, under ``Paths.state_dir`` (default /etc/frr/napalm):

* ``candidate-<session>.conf``  the full candidate that frr-reload.py diffs and applies;
                      one per driver session, so sessions do not overwrite each other.
* ``merge-<session>.conf``  the lines of a merge; the candidate = running + these lines,
                      rebuilt at every compare and commit.
* ``rollback.conf``   the running config saved just before the last commit.
* ``pending``         exists while a commit waits for confirmation; holds the deadline,
                      the message and the PID of the revert timer. The timer renames it
                      to ``reverting`` when it fires, confirm to ``confirming``: one wins.
* ``confirm.pid``     the PID of a confirm under way (it saves frr.conf), from before it
                      claims ``pending`` until it is done: a commit is pending until then.
* ``startup-before-commit.conf``, ``commits.log``, ``revert.log``.

A commit with ``revert_in`` leaves frr.conf (startup) on the old configuration until it is
confirmed, so a reboot inside the window also comes back on the old configuration.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from napalm.base.exceptions import (
    CommitConfirmException,
    CommitError,
    MergeConfigException,
    NapalmException,
    ReplaceConfigException,
)

from napalm_frr import readers, shell

log = logging.getLogger(__name__)

Mode = Literal["replace", "merge"]
Send = Callable[..., str]

REJECTED = "FRR rejects the candidate"
PENDING = "a commit is waiting for confirmation: confirm or roll back first"
# frr-reload.py --reload runs vtysh many times; give it room beyond one show command.
RELOAD_TIMEOUT = 120.0
TIMER_START_WAIT = 5.0


@dataclass(frozen=True)
class Candidate:
    mode: Mode
    text: str


class ConfigSession:
    """The configuration half of the driver; ``send`` runs one command on the device."""

    def __init__(self, send: Send, paths: shell.Paths, sudo: bool, timeout: float) -> None:
        self._send = send
        self.paths = paths
        self.sudo = sudo
        self.timeout = timeout
        self.candidate: Candidate | None = None
        # Candidate files are per session: two sessions on one box do not overwrite each
        # other's candidate (the rollback file and the pending commit stay per device).
        self.session = uuid.uuid4().hex[:12]
        self.candidate_path = paths.candidate(self.session)
        self.merge_path = paths.merge(self.session)

    # -- helpers ------------------------------------------------------------------

    def _run(self, command: str, timeout: float | None = None) -> tuple[str, int]:
        """Run a snippet as root, return (output, exit status)."""
        wrapped = shell.with_rc(shell.privileged(command, self.sudo))
        output = self._send(wrapped, timeout, raw=True)
        return readers.split_rc(output)

    def _error(self) -> type[NapalmException]:
        if self.candidate and self.candidate.mode == "merge":
            return MergeConfigException  # type: ignore[no-any-return]
        return ReplaceConfigException  # type: ignore[no-any-return]

    def _reload(self, path: str) -> tuple[str, int]:
        return self._run(shell.frr_reload(self.paths, "reload", path), RELOAD_TIMEOUT)

    def _restore(self) -> tuple[str, int]:
        """Back to before the last commit: running from rollback.conf, frr.conf from its copy."""
        reload_cmd = shell.frr_reload(self.paths, "reload", self.paths.rollback)
        return self._run(f"{reload_cmd} && {shell.restore_startup(self.paths)}", RELOAD_TIMEOUT)

    def candidate_text(self) -> str:
        return self.candidate.text if self.candidate else ""

    # -- NAPALM operations ----------------------------------------------------------

    def load(self, mode: Mode, text: str) -> None:
        """Upload the candidate (or merge lines) and have vtysh dry-run its syntax."""
        error = MergeConfigException if mode == "merge" else ReplaceConfigException
        if not text.strip():
            raise error("the candidate is empty")
        target = self.merge_path if mode == "merge" else self.candidate_path
        if not text.endswith("\n"):
            text += "\n"
        # one round trip: make the state dir, write the file, dry-run it through vtysh
        command = shell.upload(
            target,
            text,
            self.sudo,
            prefix=shell.prepare_state_dir(self.paths),
            then=shell.check_or_remove(self.paths, target),
        )
        output, rc = readers.split_rc(self._send(command, raw=True))
        problems = readers.vtysh_errors(output)
        if rc == shell.REJECTED or problems:
            self._run(f"rm -f {shell.q(target)}")
            raise _fail(error, "FRR rejects the candidate:\n" + ("\n".join(problems) or output))
        if rc != 0:
            raise _fail(error, f"could not write {target} on the device (exit {rc}):\n{output}")
        self.candidate = Candidate(mode, text)

    def compare(self) -> str:
        """FRR's own diff (``frr-reload.py --test``) between running and the candidate."""
        if self.candidate is None:
            return ""
        test = shell.frr_reload(self.paths, "test", self.candidate_path)
        if self.candidate.mode == "merge":  # rebuild running + lines in the same round trip
            test = f"{{ {shell.build_merge(self.paths, self.session)} || exit 90; }}; {test}"
        output, rc = self._run(test)
        if rc != 0:
            # frr-reload still prints a diff against an empty config when it cannot
            # parse the candidate: never show that as the answer.
            what = "could not build running + merge lines" if rc == 90 else "frr-reload.py --test"
            raise _fail(self._error(), f"{what} failed (exit {rc}):\n{output}")
        return readers.parse_reload_diff(output)

    def pending_state(self) -> str:
        """``PENDING`` (waiting for confirmation), ``CONFIRMING`` (a confirm is saving it),
        ``REVERTING`` (timer fired) or ``NONE``."""
        output, _ = self._run(shell.pending_status(self.paths))
        match = re.search(r"^(PENDING|CONFIRMING|REVERTING) \d+$", output, re.M)
        return match.group(1) if match else "NONE"

    def has_pending(self) -> bool:
        """True until a commit with revert_in is confirmed, rolled back or reverted — and
        until that confirm or revert has finished (frr.conf saved, the old config back)."""
        return self.pending_state() != "NONE"

    def _claim(self) -> bool:
        """Stop the revert timer; False if it had already started to revert."""
        output, _ = self._run(shell.claim_pending(self.paths))
        return re.search(r"^CLAIMED$", output, re.M) is not None

    def _wait_for_revert(self) -> None:
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while self.has_pending() and time.monotonic() < deadline:
            time.sleep(0.5)

    def commit(self, message: str = "", revert_in: int | None = None) -> None:
        if revert_in is not None and int(revert_in) <= 0:
            raise CommitError("revert_in must be a positive number of seconds")
        self._prepare_and_save()
        output, rc = self._reload(self.candidate_path)
        problems = readers.vtysh_errors(output)
        if rc != 0 or problems:
            restored, rrc = self._restore()
            state = "restored" if rrc == 0 else f"NOT restored (exit {rrc}): {restored}"
            raise _fail(
                CommitError,
                f"frr-reload.py --reload failed (exit {rc}); previous config {state}:\n{output}",
            )
        self._verify(self.candidate_path, "commit")
        if revert_in is not None:
            self._arm_revert_timer(int(revert_in), message)
        self._log_commit_and_discard(message, revert_in)

    def _verify(self, path: str, what: str) -> str:
        """Diff running against what was applied; FRR may keep a line it could not change."""
        output, rc = self._run(shell.frr_reload(self.paths, "test", path))
        residue = readers.parse_reload_diff(output) if rc == 0 else output
        if residue:
            log.warning("after %s the running config still differs:\n%s", what, residue)
        return residue

    def _arm_revert_timer(self, seconds: int, message: str) -> None:
        paths = self.paths
        deadline = int(time.time()) + seconds
        arm = (
            # keep startup on the old config until confirmed (survives a reboot)
            f"cp -p {shell.q(paths.startup_backup)} {shell.q(paths.startup_config)} && "
            f"printf 'deadline=%s\\nmessage=%s\\n' {deadline} {shell.q(_one_line(message))}"
            f" > {shell.q(paths.pending)} && {shell.start_revert_timer(paths, seconds)}"
        )
        _, rc = self._run(arm)
        waited = 0.0
        while rc == 0 and waited < TIMER_START_WAIT and self.pending_state() != "PENDING":
            time.sleep(0.1)
            waited += 0.1
        if rc != 0 or self.pending_state() != "PENDING":
            self._claim()
            self._restore()
            raise CommitError("could not start the revert timer; the commit was rolled back")
        log.info("commit applied; reverts in %ss unless confirmed", seconds)

    def _prepare_and_save(self) -> None:
        """One round trip: refuse if a commit is pending, (merge: rebuild running + lines),
        dry-run the candidate, save the running config and frr.conf for rollback."""
        if self.candidate is None:
            if self.has_pending():
                raise CommitError(PENDING)
            raise self._error()("no candidate loaded: call load_replace/merge_candidate")
        paths, cand = self.paths, shell.q(self.candidate_path)
        rejected = self._error()
        steps: list[tuple[str, str, type[NapalmException]]] = [
            (
                f"{shell.pending_status(paths)} | grep -qx NONE",
                PENDING,
                CommitError,
            ),
            (shell.build_merge(paths, self.session), "could not build running + merge", rejected),
            (f"{paths.vtysh} -C -f {cand}", REJECTED, rejected),
            (shell.save_running(paths, paths.rollback), "could not save running", CommitError),
            (
                f"cp -p {shell.q(paths.startup_config)} {shell.q(paths.startup_backup)}",
                "could not save frr.conf",
                CommitError,
            ),
        ]
        if self.candidate.mode != "merge":
            del steps[1]
        script = "; ".join(f"{{ {step[0]} ; }} || exit {90 + i}" for i, step in enumerate(steps))
        output, rc = self._run(script)
        problems = readers.vtysh_errors(output)
        if rc == 0 and not problems:
            return
        if 90 <= rc < 90 + len(steps):
            _, what, error = steps[rc - 90]
        else:  # vtysh complained but exited 0
            what, error = REJECTED, rejected
        if what != REJECTED:
            raise _fail(error, f"{what} (exit {rc})")
        raise _fail(error, f"{what}:\n" + ("\n".join(problems) or output))

    def _log_commit_and_discard(self, message: str, revert_in: int | None) -> None:
        log_line = (
            f"printf '%s\\t%s\\t%s\\n' \"$(date -Is)\" {shell.q(str(revert_in or '-'))}"
            f" {shell.q(_one_line(message))} >> {shell.q(self.paths.state('commits.log'))}"
        )
        self.candidate = None
        self._run(f"{log_line}; rm -f {shell.q(self.candidate_path)} {shell.q(self.merge_path)}")

    def confirm(self) -> None:
        """Confirm the pending commit and save it to frr.conf; the confirm runs on the device
        on its own (it finishes even if this session dies) and this waits for it."""
        state = self.pending_state()
        if state in ("REVERTING", "CONFIRMING"):
            what = "the revert timer has fired" if state == "REVERTING" else "being confirmed"
            raise CommitConfirmException(f"too late: {what}")
        if state == "NONE":
            raise CommitConfirmException("no commit is waiting for confirmation")
        result = self.paths.state(f"confirm-{self.session}.result")
        _, rc = self._run(f"rm -f {shell.q(result)}; {shell.start_confirm(self.paths, result)}")
        deadline = time.monotonic() + RELOAD_TIMEOUT
        outcome = ""
        while time.monotonic() < deadline:
            outcome, _ = self._run(f"cat {shell.q(result)} 2>/dev/null")
            if outcome.strip() and not self.has_pending():
                break
            time.sleep(0.1)
        self._run(f"rm -f {shell.q(result)}")
        if "TOO_LATE" in outcome:
            raise CommitConfirmException("too late: the revert timer has fired")
        match = re.search(r"CONFIRMED rc=(\d+)", outcome)
        if rc != 0 or match is None:
            raise CommitConfirmException(f"the confirm did not finish: {outcome.strip()!r}")
        if match.group(1) != "0":
            raise CommitConfirmException(
                f"confirmed, but saving to frr.conf failed (exit {match.group(1)})"
            )

    def discard(self) -> None:
        """Forget the candidate and delete what loading and comparing wrote on the device:
        the candidate and merge files, and the state directory if nothing else is in it."""
        self.candidate = None
        written = (self.candidate_path, self.merge_path)
        files = " ".join(shell.q(p) for path in written for p in (path, f"{path}.tmp"))
        self._run(f"rm -f {files}; {shell.remove_if_empty(self.paths)}")

    def rollback(self) -> None:
        """Running and frr.conf back to before the last commit; cancels a pending revert."""
        if self.has_pending() and not self._claim():
            self._wait_for_revert()  # the timer is reverting to the same file: let it finish
        output, rc = self._run(f"test -s {shell.q(self.paths.rollback)}")
        if rc != 0:
            raise CommitError("nothing to roll back to: no commit was made through napalm-frr")
        output, rc = self._restore()
        if rc != 0 or readers.vtysh_errors(output):
            raise _fail(CommitError, f"rollback failed (exit {rc}):\n{output}")
        self._verify(self.paths.rollback, "rollback")


def _fail(error: type[NapalmException], message: str) -> NapalmException:
    """The exception to raise, with secrets in echoed config lines masked."""
    return error(readers.redact(message))


def _one_line(text: str) -> str:
    return " ".join(text.split())
