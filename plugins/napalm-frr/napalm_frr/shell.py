"""The shell commands the driver sends to an FRR box, as data and small pure builders.

The device gives a POSIX shell (root, or a user with ``sudo -n``); FRR is reached through
``vtysh`` and ``frr-reload.py``. Everything device-specific is a field of ``Paths`` so a
box with other paths or sockets is a matter of optional_args, not code.
"""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass, field

# Marker that names our revert timer in the process table (its $0), so a recycled PID
# is never mistaken for it.
TIMER_NAME = "napalm-frr-revert"
CONFIRM_NAME = "napalm-frr-confirm"  # likewise, the process that confirms a commit
HEREDOC_END = "__NAPALM_FRR_EOF__"
BEGIN = "printf '%s\\n' '__NAPALM''_BEGIN__'"
END = "printf '__NAPALM''_RC=%s\\n' \"$?\""


@dataclass(frozen=True)
class Paths:
    """Where things are on the device; every field can be set through optional_args."""

    vtysh: str = "vtysh"
    frr_reload: str = "/usr/lib/frr/frr-reload.py"
    lldpcli: str = "lldpcli"
    startup_config: str = "/etc/frr/frr.conf"
    # Per device and persistent: under /etc/frr because in namespace labs that is the
    # device's own directory, and on a real box it survives a reboot.
    state_dir: str = "/etc/frr/napalm"
    reload_args: tuple[str, ...] = field(default_factory=tuple)

    def state(self, name: str) -> str:
        return f"{self.state_dir}/{name}"

    def candidate(self, session: str) -> str:
        return self.state(f"candidate-{session}.conf")

    def merge(self, session: str) -> str:
        return self.state(f"merge-{session}.conf")

    @property
    def rollback(self) -> str:
        return self.state("rollback.conf")

    @property
    def pending(self) -> str:
        return self.state("pending")

    @property
    def reverting(self) -> str:
        return self.state("reverting")

    @property
    def claimer(self) -> str:
        """Holds the PID of the confirm under way, from before it claims until it is done."""
        return self.state("confirm.pid")

    @property
    def startup_backup(self) -> str:
        return self.state("startup-before-commit.conf")


q = shlex.quote


def vtysh(paths: Paths, *commands: str) -> str:
    """``vtysh -c 'cmd' [-c 'cmd' ...]``."""
    return " ".join([paths.vtysh, *(f"-c {q(c)}" for c in commands)])


def frr_reload(paths: Paths, mode: str, filename: str) -> str:
    """``frr-reload.py --test|--reload FILE`` logging errors only (its INFO goes to stderr)."""
    args = [paths.frr_reload, f"--{mode}", "--log-level", "error", *paths.reload_args, filename]
    return " ".join(q(a) for a in args)


def with_rc(command: str) -> str:
    """Frame ``command``'s output (stderr folded in) between a begin line and its exit status.

    The markers are printed from split strings so the terminal's echo of the command line
    never contains them; ``parsers.split_rc`` takes what lies between.
    """
    # a subshell, so nothing the snippet sets (umask, variables, cd) outlives it
    return f"{BEGIN}; ( {command} ) 2>&1; {END}"


def privileged(command: str, sudo: bool) -> str:
    """Run a shell snippet as root: as is when we log in as root, else via ``sudo -n sh -c``."""
    return f"sudo -n sh -c {q(command)}" if sudo else command


def upload(path: str, content: str, sudo: bool, prefix: str = "", then: str = "") -> str:
    """A command that writes ``content`` to ``path`` atomically (temp file + rename).

    The content travels base64-encoded in a here-document, so it needs no escaping and
    the terminal never sees a line longer than 76 characters. ``prefix`` runs first
    (e.g. ``mkdir -p dir && ``), ``then`` after (e.g. `` && check``), in the same round trip.
    """
    encoded = base64.encodebytes(content.encode()).decode()
    tmp = f"{path}.tmp"
    write = f"{prefix}umask 077 && base64 -d > {q(tmp)} && mv -f {q(tmp)} {q(path)}{then}"
    # the subshell makes the here-document the stdin of the whole chain (not of its last
    # command) and keeps the umask out of the login shell
    heredoc = f"<<'{HEREDOC_END}'"
    return f"{BEGIN}; ( {privileged(write, sudo)} ) {heredoc}; {END}\n{encoded}{HEREDOC_END}"


REJECTED = 97  # exit status of ``check_or_remove`` when vtysh refuses the file


def check_or_remove(paths: Paths, path: str) -> str:
    """`` && <vtysh dry run of path>``, deleting the file and exiting 97 if it is refused."""
    return f" && {{ {paths.vtysh} -C -f {q(path)} || {{ rm -f {q(path)}; exit {REJECTED}; }}; }}"


def prepare_state_dir(paths: Paths) -> str:
    """Create the state directory; drop candidates that crashed sessions left (> 1 day)."""
    return (
        f"mkdir -p {q(paths.state_dir)} && find {q(paths.state_dir)} -maxdepth 1 "
        "\\( -name 'candidate-*.conf' -o -name 'merge-*.conf' \\) -mtime +1 -delete && "
    )


def remove_if_empty(paths: Paths) -> str:
    """Remove the state directory when it holds nothing (never fails)."""
    return f"rmdir {q(paths.state_dir)} 2>/dev/null; true"


def save_running(paths: Paths, target: str) -> str:
    """Write the running configuration (without vtysh's banner) to ``target``."""
    return f"{vtysh(paths, 'show running-config no-header')} > {q(target)}"


def build_merge(paths: Paths, session: str) -> str:
    """candidate = current running config + the merge lines.

    frr-reload.py folds repeated contexts (a second ``router bgp 65001``) into one, so
    appending is a faithful "running + these lines". It is rebuilt at every compare and
    commit so changes made on the box meanwhile are not undone.
    """
    running = vtysh(paths, "show running-config no-header")
    return f"{{ {running} && cat {q(paths.merge(session))} ; }} > {q(paths.candidate(session))}"


def start_revert_timer(paths: Paths, seconds: int) -> str:
    """Start the on-device timer that restores ``rollback.conf`` unless confirmed.

    ``setsid nohup`` detaches it from our SSH session so it outlives the connection and
    our process. It appends its PID to the pending file. When the time is up it claims
    the pending file by renaming it to ``reverting`` — confirm claims it by renaming it to
    ``confirming``; ``mv`` is atomic, so exactly one of them wins — then reloads the saved
    config, puts the old frr.conf back byte for byte (frr-reload rewrote it) and logs any
    line that did not revert.
    """
    pending, reverting = q(paths.pending), q(paths.reverting)
    reload_cmd = frr_reload(paths, "reload", paths.rollback)
    check_cmd = frr_reload(paths, "test", paths.rollback)  # what, if anything, did not revert
    revert_log = q(paths.state("revert.log"))
    script = (
        f"echo pid=$$ >> {pending}; sleep {int(seconds)}; "
        f"if mv {pending} {reverting} 2>/dev/null; then "
        f"{{ date; {reload_cmd}; echo rc=$?; {restore_startup(paths)}; }} >> {revert_log} 2>&1; "
        f"rm -f {reverting}; {check_cmd} >> {revert_log} 2>&1; fi"
    )
    # the subshell keeps the job out of the login shell's job table (no "[1] 123" noise)
    return f"( setsid nohup sh -c {q(script)} {TIMER_NAME} > /dev/null 2>&1 < /dev/null & )"


def restore_startup(paths: Paths) -> str:
    """Put back frr.conf as it was before the last commit (frr-reload rewrites it)."""
    backup, startup = q(paths.startup_backup), q(paths.startup_config)
    return f"if [ -f {backup} ]; then cp -p {backup} {startup}; fi"


def _timer_pid(files: str) -> str:
    """Sets $pid to the timer's PID if that process is alive and really our timer."""
    return (
        f"pid=$(sed -n 's/^pid=//p' {files} 2>/dev/null | tail -1); "
        f'[ -n "$pid" ] && grep -qa {TIMER_NAME} /proc/$pid/cmdline 2>/dev/null'
    )


def _confirmer_pid(paths: Paths) -> str:
    """Sets $pid to the PID of a confirm under way, if that process is alive and ours."""
    return (
        f"pid=$(cat {q(paths.claimer)} 2>/dev/null); "
        f'[ -n "$pid" ] && grep -qa {CONFIRM_NAME} /proc/$pid/cmdline 2>/dev/null'
    )


def pending_status(paths: Paths) -> str:
    """Print ``PENDING <pid>`` (waiting), ``CONFIRMING <pid>`` (a confirm under way),
    ``REVERTING <pid>`` (timer fired) or ``NONE``.

    The looks go in the order the files move — ``pending`` first, then the confirm's PID file
    (written before it claims ``pending``, removed once frr.conf is saved), then ``reverting``
    (made from ``pending`` by one rename, removed once the revert is done) — so a commit
    moving on between two looks is seen in its next state, never as NONE before it is over."""
    return (
        f'if {_timer_pid(q(paths.pending))}; then echo "PENDING $pid"; '
        f'elif {_confirmer_pid(paths)}; then echo "CONFIRMING $pid"; '
        f'elif {_timer_pid(q(paths.reverting))}; then echo "REVERTING $pid"; '
        "else echo NONE; fi"
    )


def start_confirm(paths: Paths, result: str) -> str:
    """Confirm the pending commit in a process of its own (``setsid nohup``, like the timer),
    so a confirm once begun finishes even if our session dies: it names itself in the PID
    file, takes ``pending`` from the timer (an atomic rename: one of them wins) and stops it,
    saves the running configuration to frr.conf, and only then removes the PID file. It writes
    ``CONFIRMED rc=<write memory's status>`` or ``TOO_LATE`` to ``result``."""
    claimed, out = q(paths.state("confirming")), q(result)
    script = (
        f"echo $$ > {q(paths.claimer)}; "
        f"if mv {q(paths.pending)} {claimed} 2>/dev/null; then "
        f"if {_timer_pid(claimed)}; then kill -s TERM -- -$pid; fi; "
        f"{vtysh(paths, 'write memory')} > /dev/null 2>&1; rc=$?; rm -f {claimed}; "
        f"echo CONFIRMED rc=$rc > {out}; else echo TOO_LATE > {out}; fi; "
        f"rm -f {q(paths.claimer)}"
    )
    return f"( setsid nohup sh -c {q(script)} {CONFIRM_NAME} > /dev/null 2>&1 < /dev/null & )"


def claim_pending(paths: Paths) -> str:
    """Take the pending commit away from the timer and stop it.

    Prints ``CLAIMED`` if we won (the timer will not revert), ``TOO_LATE`` if the timer
    had already started reverting (or nothing was pending).
    """
    claimed = q(paths.state("confirming"))
    return (
        f"if mv {q(paths.pending)} {claimed} 2>/dev/null; then "
        f"if {_timer_pid(claimed)}; then kill -s TERM -- -$pid; fi; "
        f"rm -f {claimed}; echo CLAIMED; else echo TOO_LATE; fi"
    )
