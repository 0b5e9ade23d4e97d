"""The Ansible gateway: playbooks through ansible-runner, check mode in plans, a record in runs.

    gw = ctx.gateway(AnsibleGateway)
    preview = gw.check("server_maintenance.yml", limit=["srv1"])  # --check --diff, a @reads
    preview.diffs                                                 # -> runbooks.core.results.Diff
    done = gw.run("server_maintenance.yml", limit=["srv1"])       # the real run, a @writes
    done.summary()                                                # host, task, status, diff, time

Every playbook run gets a fresh private data directory and a scratch directory outside it
(extra-vars file, SSH control sockets), both removed afterwards unless
``keep_artifacts``. No secret reaches a file: the child's environment is allow-listed (ansible-
runner dumps it into ``artifacts/*/command``), extra-vars travel in a 0600 file outside the
private data directory (never on the command line), events are masked before ansible-runner
writes them, and a last scrub masks any registered secret left in the directory.

Host keys are checked against the known_hosts file of the settings (``RUNBOOKS_SSH_KNOWN_HOSTS``,
default ``~/.ssh/known_hosts``, never written to): a host not in it, or whose key differs, is
unreachable, and the error says so in one line.

The inventory comes from NetBox: ``inventory/netbox.yml`` (netbox.netbox.nb_inventory) is
resolved once per gateway with ``ansible-inventory`` (the NetBox token in that subprocess's
environment only) and the resolved hosts are handed to every playbook run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import yaml

from runbooks.core import secrets
from runbooks.core.errors import (
    ConnectError,
    GatewayError,
    GatewayTimeout,
    InputError,
    RejectedError,
    VerificationError,
)
from runbooks.core.gateway import Gateway, Mode, reads, writes
from runbooks.gateways import ansible_events as events
from runbooks.gateways import ansible_process as proc
from runbooks.gateways.ansible_events import PlaybookResult, TaskResult
from runbooks.gateways.ansible_inventory import (
    NETBOX_HOSTS,
    inventory_list,
    resolve_inventory,
    yaml_hostvars,
)
from runbooks.gateways.ansible_settings import AnsibleSettings, plain_vars
from runbooks.gateways.ssh_host_keys import key_refusal

if TYPE_CHECKING:
    from runbooks.core.context import RunContext

__all__ = ["AnsibleGateway", "AnsibleSettings", "PlaybookResult", "TaskResult"]

log = logging.getLogger(__name__)

_MARKER = "RUNBOOKS_ANSIBLE_RUN"
_VERIFY_ACTIONS = frozenset({"ansible.builtin.assert", "assert", "ansible.builtin.fail", "fail"})


class AnsibleGateway(Gateway):
    """Runs playbooks. ``check`` is a read (check mode changes nothing); ``run`` is a write."""

    def __init__(self, mode: Mode, settings: AnsibleSettings | None = None) -> None:
        super().__init__(mode)
        self.settings = settings or AnsibleSettings.from_env()
        if self.settings.netbox_token:
            secrets.register(self.settings.netbox_token)
        self._inventory: Path | None = None
        self._inventory_dir: Path | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self.last_private_dir: Path | None = None  # kept only with keep_artifacts

    @classmethod
    def open(cls, ctx: RunContext, key: str) -> Self:
        return cls(ctx.mode)

    def close(self) -> None:
        if self._inventory_dir is not None and not self.settings.keep_artifacts:
            shutil.rmtree(self._inventory_dir, ignore_errors=True)
        self._inventory_dir = None
        self._inventory = None

    # ------------------------------------------------------------------ public API
    @reads
    def check(
        self,
        playbook: str,
        *,
        limit: Sequence[str] = (),
        extravars: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        hosts: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> PlaybookResult:
        """``--check --diff``: what the playbook would change. Raises like ``run``.

        ``hosts`` (name -> variables) replaces the NetBox inventory for this playbook: a host
        NetBox does not list yet, such as a new PC on its install bench (the runbook reads its
        address from NetBox)."""
        return self._raise_for(self._play(playbook, True, limit, extravars, tags, hosts))

    @writes
    def run(
        self,
        playbook: str,
        *,
        limit: Sequence[str] = (),
        extravars: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        hosts: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> PlaybookResult:
        """The real run (with ``--diff``). Unreachable hosts raise ConnectError, a failed
        assertion VerificationError, any other failed task RejectedError; each error's
        ``context["result"]`` holds the PlaybookResult."""
        return self._raise_for(self._play(playbook, False, limit, extravars, tags, hosts))

    @writes
    def run_unchecked(
        self,
        playbook: str,
        *,
        limit: Sequence[str] = (),
        extravars: Mapping[str, Any] | None = None,
        hosts: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> PlaybookResult:
        """The real run, returning failures instead of raising (rollbacks use it)."""
        return self._play(playbook, False, limit, extravars, (), hosts)

    @reads
    def cancel(self) -> None:
        """Stop the playbook running now, its whole process tree (a read: it writes nothing)."""
        self._cancel.set()

    @reads
    def inventory_hosts(self) -> dict[str, dict[str, Any]]:
        """host -> its variables, as the (NetBox) inventory resolves them."""
        inventory = self._resolved_inventory()
        if inventory.name == NETBOX_HOSTS:  # resolved from NetBox: read it, no second query
            return {h: dict(secrets.mask(v)) for h, v in yaml_hostvars(inventory).items()}
        assert self._inventory_dir is not None
        data = json.loads(inventory_list(self.settings, inventory, self._inventory_dir))
        hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
        return {h: dict(secrets.mask(v)) for h, v in hostvars.items()}

    # ------------------------------------------------------------------ running
    def _play(
        self,
        playbook: str,
        check: bool,
        limit: Sequence[str],
        extravars: Mapping[str, Any] | None,
        tags: Sequence[str],
        hosts: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> PlaybookResult:
        path = self._playbook_path(playbook)
        with self._lock, self._scratch() as (private, scratch):
            inventory = _given_hosts(scratch, hosts) if hosts else self._resolved_inventory()
            self._cancel.clear()
            ident = uuid.uuid4().hex[:12]
            cmdline = ["--diff", "-e", f"@{self._write_vars(scratch, extravars)}"]
            if check:
                cmdline.append("--check")
            if limit:
                cmdline += ["--limit", ",".join(limit)]
            if tags:
                cmdline += ["--tags", ",".join(tags)]
            if self.settings.private_key_file:  # a path, on the command line: the key stays put
                cmdline += ["--private-key", str(self.settings.private_key_file)]
            env = self._env(private, scratch, ident)
            collected: list[TaskResult] = []
            recap: dict[str, dict[str, int]] = {}
            errors: list[str] = []
            count = 0

            def on_event(event: dict[str, Any]) -> bool:
                nonlocal count, recap
                count += 1
                data = event.get("event_data") or {}
                if data.get("task_action") in ("setup", "gather_facts", "ansible.builtin.setup"):
                    (data.get("res") or {}).pop("ansible_facts", None)  # ~100 KB, not needed
                events.mask_event(event)
                result = events.task_result(event)
                if result is not None:
                    collected.append(result)
                elif event.get("event") == "playbook_on_stats":
                    recap = events.recap(event)
                elif len(errors) < 40:
                    errors.extend(events.error_lines(event))
                return True

            started = time.monotonic()
            status, rc = self._execute(
                private, ident, path, inventory, " ".join(cmdline), env, on_event
            )
            duration = time.monotonic() - started
            proc.close_ssh_masters(scratch / "cp")
            proc.scrub_tree(private)
        result = PlaybookResult(
            playbook=path.name,
            check=check,
            status=status,
            rc=rc,
            tasks=_ordered(collected),
            recap=recap,
            duration_s=duration,
            events=count,
            errors=tuple(errors),
        )
        log.info(
            "%s %s: %s rc=%s in %.1f s, %d events, %d tasks changed",
            "check" if check else "run",
            path.name,
            status,
            rc,
            duration,
            count,
            sum(t.changed for t in result.tasks),
        )
        return result

    def _execute(
        self,
        private: Path,
        ident: str,
        playbook: Path,
        inventory: Path,
        cmdline: str,
        env: dict[str, str],
        on_event: Any,
    ) -> tuple[str, int | None]:
        from ansible_runner.config.runner import RunnerConfig
        from ansible_runner.runner import Runner

        rc = RunnerConfig(
            private_data_dir=str(private),
            project_dir=str(self.settings.project_dir),
            playbook=str(playbook),
            inventory=str(inventory),
            cmdline=cmdline,
            ident=ident,
            forks=self.settings.forks,
            suppress_env_files=True,
            suppress_output_file=True,
            quiet=True,
        )
        rc.prepare()
        rc.pexpect_timeout = 0.5  # how often the cancel callback is asked
        # ansible-runner seeded rc.env with our whole environment; keep its own settings only
        own = {k: v for k, v in rc.env.items() if os.environ.get(k) != v}
        own.pop("ANSIBLE_HOST_KEY_CHECKING", None)
        rc.env = proc.child_env(os.environ, {**own, **env}, str(Path(sys.executable).parent))
        deadline = time.monotonic() + self.settings.timeout_s
        state = {"timed_out": False, "child": 0}

        def cancelled() -> bool:
            over = time.monotonic() > deadline
            if not (self._cancel.is_set() or over):
                return False
            state["timed_out"] = over and not self._cancel.is_set()
            self._kill(ident, state)
            return True

        runner = Runner(rc, event_handler=on_event, cancel_callback=cancelled)
        try:
            status, code = runner.run()
        except BaseException:
            self._kill(ident, state)  # KeyboardInterrupt, a failing handler: nothing left behind
            raise
        if state["timed_out"]:
            status = "timeout"
        return str(status), code if isinstance(code, int) else None

    def _kill(self, ident: str, state: dict[str, Any]) -> None:
        child = state.get("child") or _our_child(ident)
        if child:
            state["child"] = child
            proc.kill_tree(child)

    def _raise_for(self, result: PlaybookResult) -> PlaybookResult:
        if result.status == "successful" and not result.failures:
            return result
        ctx = {"result": result, "playbook": result.playbook}
        if result.status == "canceled":
            raise GatewayError(f"{result.playbook}: cancelled; its processes were stopped", **ctx)
        if result.status == "timeout":
            raise GatewayTimeout(
                f"{result.playbook}: still running after {self.settings.timeout_s:g} s; stopped",
                **ctx,
            )
        down = result.unreachable
        if down:
            where = [t for t in result.tasks if t.status == "unreachable"]
            refused = [(t, key_refusal(t.msg)) for t in where if key_refusal(t.msg)]
            if refused:
                t, why = refused[0]
                raise ConnectError(
                    f"{result.playbook}: {t.host} refused: its host key {why} "
                    f"{self.settings.known_hosts}",
                    hosts=down,
                    **ctx,
                )
            first = f" at '{where[0].task}' ({where[0].msg})" if where else ""
            raise ConnectError(
                f"{result.playbook}: unreachable: {', '.join(down)}{first}", hosts=down, **ctx
            )
        failed = result.failures
        if not failed:
            said = next((e for e in result.errors if "ERROR" in e), "no error output")
            raise RejectedError(
                f"{result.playbook}: ansible-playbook ended {result.status} (rc {result.rc})"
                f" without a failed task: {said}",
                **ctx,
            )
        lines = "; ".join(f"{t.host} '{t.task}': {t.msg or t.status}" for t in failed[:5])
        kind = (
            VerificationError if all(t.action in _VERIFY_ACTIONS for t in failed) else RejectedError
        )
        raise kind(f"{result.playbook}: {len(failed)} task(s) failed: {lines}", **ctx)

    # ------------------------------------------------------------------ plumbing
    def _playbook_path(self, playbook: str) -> Path:
        path = Path(playbook)
        if not path.is_absolute():
            path = self.settings.project_dir / path
        if not path.is_file():
            raise InputError(f"no playbook {playbook!r} in {self.settings.project_dir}")
        return path

    def _resolved_inventory(self) -> Path:
        if self._inventory is None:
            self._inventory_dir = Path(
                tempfile.mkdtemp(prefix="rba-inv-", dir=self.settings.work_dir)
            )
            self._inventory = resolve_inventory(self.settings, self._inventory_dir)
        return self._inventory

    @contextlib.contextmanager
    def _scratch(self) -> Iterator[tuple[Path, Path]]:
        private = Path(tempfile.mkdtemp(prefix="runbooks-ansible-", dir=self.settings.work_dir))
        shm = Path("/dev/shm")  # noqa: S108 (memory only: the extra-vars file never hits a disk)
        scratch = Path(tempfile.mkdtemp(prefix="rba-", dir=shm if shm.is_dir() else None))
        (scratch / "cp").mkdir(mode=0o700)
        try:
            yield private, scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if self.settings.keep_artifacts:
                self.last_private_dir = private
            else:
                shutil.rmtree(private, ignore_errors=True)

    def _write_vars(self, scratch: Path, extravars: Mapping[str, Any] | None) -> Path:
        path = scratch / "extravars.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(plain_vars(dict(extravars or {})), fh)
        return path

    def _env(self, private: Path, scratch: Path, ident: str) -> dict[str, str]:
        s = self.settings
        # Ansible adds StrictHostKeyChecking=no after these when checking is off; when on, ssh
        # must neither ask (there is no one to answer) nor add: unknown or changed is refused.
        known, strict = (
            (s.known_hosts, "-o StrictHostKeyChecking=yes ")
            if s.host_key_checking
            else (scratch / "known_hosts", "")
        )
        ssh_args = (
            f"-o ControlMaster=auto -o ControlPersist=60s {strict}"
            f"-o {shlex.quote(f'UserKnownHostsFile="{known}"')} -o LogLevel=ERROR"
        )
        empty_cfg = private / "ansible.cfg"
        empty_cfg.write_text("# shields the run from ansible.cfg files on the machine\n")
        env = {
            _MARKER: ident,
            "ANSIBLE_CONFIG": str(empty_cfg),
            "ANSIBLE_HOME": str(private / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
            "ANSIBLE_COLLECTIONS_PATH": str(s.collections_path),
            "ANSIBLE_ROLES_PATH": str(s.project_dir / "roles"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(scratch / "cp"),
            "ANSIBLE_SSH_ARGS": ssh_args,
            "ANSIBLE_HOST_KEY_CHECKING": str(s.host_key_checking),
            "ANSIBLE_TIMEOUT": str(s.connect_timeout_s),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
            "ANSIBLE_DISPLAY_ARGS_TO_STDOUT": "True",  # task_args in events: a diff's file
            "ANSIBLE_PIPELINING": str(s.pipelining),
        }
        if s.remote_user:
            env["ANSIBLE_REMOTE_USER"] = s.remote_user
        env.update(s.extra_env)
        return env


def _our_child(ident: str) -> int:
    """Our child process that carries this run's marker in its environment (ansible-playbook)."""
    marker = f"{_MARKER}={ident}".encode()
    for pid in proc.descendants(os.getpid()):
        with contextlib.suppress(OSError):
            if marker in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0"):
                return pid
    return 0


def _given_hosts(scratch: Path, hosts: Mapping[str, Mapping[str, Any]]) -> Path:
    """A YAML inventory of the given hosts (in the scratch dir: removed after the run)."""
    path = scratch / "given-hosts.yml"
    data = {"all": {"hosts": {str(h): plain_vars(dict(v)) for h, v in hosts.items()}}}
    path.write_text(yaml.safe_dump(data, sort_keys=True), encoding="utf-8")
    return path


def _ordered(tasks: list[TaskResult]) -> tuple[TaskResult, ...]:
    """Tasks in playbook order, hosts sorted within a task: the same plan gives the same hash
    whichever host answered first."""
    first: dict[tuple[str, str], int] = {}
    for i, t in enumerate(tasks):
        first.setdefault((t.play, t.task), i)
    return tuple(sorted(tasks, key=lambda t: (first[(t.play, t.task)], t.host)))
