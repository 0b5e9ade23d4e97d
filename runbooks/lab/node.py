"""What every lab node shares: a holder process owning its namespaces, nsenter, the lab's SSH key,
a per-node sshd, and the lab's known_hosts file holding every node's host key.

A node (network device or Linux host) is a network namespace `rbl-<name>` plus one long-lived
holder process (`ip netns exec … unshare --mount --uts --ipc`) that sets up the node's private
mounts and hostname, then sleeps. Every daemon of the node is started with `nsenter` into the
holder, so they all share its namespaces; `ip netns pids` then finds every process to stop.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runbooks.lab import network
from runbooks.lab.errors import LabError
from runbooks.lab.paths import state_dir

log = logging.getLogger(__name__)

HOLDER_READY = "rbl-ready"
LLDP_TX_INTERVAL = 2


def ssh_dir() -> Path:
    return state_dir() / "ssh"


def lab_key() -> Path:
    """The lab's SSH private key (ed25519, mode 0600), generated once per lab lifetime."""
    key = ssh_dir() / "id_ed25519"
    if not key.exists():
        ssh_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
        network.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "runbooks-lab", "-f", str(key)]
        )
        key.chmod(0o600)
    authorized = ssh_dir() / "authorized_keys"
    pub = key.with_suffix(".pub").read_text(encoding="ascii")
    if not authorized.exists() or authorized.read_text(encoding="ascii") != pub:
        authorized.write_text(pub, encoding="ascii")
        authorized.chmod(0o600)
    return key


def known_hosts_file() -> Path:
    """The lab's known_hosts: the host key of every node it started, by address and name.
    Runbooks on the lab check host keys against it (RUNBOOKS_SSH_KNOWN_HOSTS)."""
    return ssh_dir() / "known_hosts"


_known_hosts_lock = threading.Lock()  # nodes start in parallel threads (a reset)


def trust_host_key(address: str, name: str, host_key: Path) -> None:
    """Put a node's host key (``<host_key>.pub``) into the lab's known_hosts, replacing any
    line for its address or name; the file is replaced whole (atomic), public keys only."""
    kind, key = host_key.with_name(host_key.name + ".pub").read_text(encoding="ascii").split()[:2]
    path = known_hosts_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _known_hosts_lock, open(path.with_name("known_hosts.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # and other processes starting nodes (a bench)
        old = path.read_text(encoding="ascii").splitlines() if path.exists() else []
        keep = [ln for ln in old if not {address, name} & set(ln.split(" ", 1)[0].split(","))]
        tmp = path.with_name(f"known_hosts.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text("".join(f"{ln}\n" for ln in keep) + f"{address},{name} {kind} {key}\n")
        tmp.chmod(0o644)
        tmp.replace(path)


def prepare_state_dir() -> Path:
    root = state_dir()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)
    return root


# --- holder ---------------------------------------------------------------------------------


def holder_pid(node_dir: Path, node: str) -> int | None:
    """The node's holder PID when it is alive and inside the node's network namespace."""
    try:
        pid = int((node_dir / "holder.pid").read_text(encoding="ascii"))
        ns_inode = os.stat(f"/run/netns/{network.netns_name(node)}").st_ino
        if os.stat(f"/proc/{pid}/ns/net").st_ino == ns_inode:
            return pid
    except (OSError, ValueError):
        pass
    return None


def start_holder(node_dir: Path, node: str, script: str, timeout: float = 20) -> int:
    """Start the holder running `script` (sh), which must print HOLDER_READY then sleep."""
    errlog = (node_dir / "holder.log").open("w", encoding="utf-8")
    argv = [
        "ip",
        "netns",
        "exec",
        network.netns_name(node),
        "unshare",
        "--mount",
        "--uts",
        "--ipc",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        script,
    ]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=errlog,
        start_new_session=True,
        text=True,
    )
    errlog.close()
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else ""
    proc.stdout.close()
    if line != HOLDER_READY:
        network.kill_pids([proc.pid])
        proc.wait()
        detail = (node_dir / "holder.log").read_text(encoding="utf-8").strip().splitlines()
        raise LabError(f"{node}: namespace setup failed: {detail[-1] if detail else 'no output'}")
    # The holder outlives this process on purpose; stop Popen from reporting it as leaked.
    proc.returncode = 0
    (node_dir / "holder.pid").write_text(str(proc.pid), encoding="ascii")
    return proc.pid


def nsenter(
    pid: int,
    argv: Sequence[str],
    *,
    check: bool = False,
    timeout: float = 60,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv inside the holder's network, mount, UTS and IPC namespaces."""
    return network.run(
        ["nsenter", "-t", str(pid), "-n", "-m", "-u", "-i", "--", *argv],
        check=check,
        timeout=timeout,
        input=input,
    )


# --- sshd -----------------------------------------------------------------------------------


def sshd_config(listen: str, host_key: Path, pid_file: Path, authorized_keys: Path) -> str:
    return "\n".join(
        [
            f"ListenAddress {listen}:22",
            f"HostKey {host_key}",
            f"PidFile {pid_file}",
            f"AuthorizedKeysFile {authorized_keys}",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "AcceptEnv LANG LC_*",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
            "LogLevel ERROR",
            "",
        ]
    )


def ensure_host_key(path: Path) -> None:
    if not path.exists():
        network.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)])
        path.chmod(0o600)


def light_home(home: Path, node: str) -> None:
    """A small /root: heavy rc files cost ~150 ms per SSH command."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / ".bashrc").write_text(f"PS1='root@{node}:\\w# '\n", encoding="ascii")
    (home / ".profile").write_text(". ~/.bashrc\n", encoding="ascii")


def ssh_answers(address: str, timeout: float = 1.0) -> bool:
    """True when something on address:22 greets with an SSH banner."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_for(what: str, probe: Callable[[], bool], timeout: float, interval: float = 0.1) -> float:
    """Poll `probe()` until true; return the seconds it took, LabError on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if probe():
            return time.monotonic() - start
        time.sleep(interval)
    raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")


def remove_tree(path: Path) -> None:
    """Remove a state directory, refusing when anything is still mounted below it."""
    if not path.exists():
        return
    real = str(path.resolve())
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        mounted = [line.split()[4] for line in fh]
    below = [m for m in mounted if m == real or m.startswith(real + "/")]
    if below:
        raise LabError(f"refusing to remove {path}: {below[0]} is still mounted")
    shutil.rmtree(path)


def login_params(address: object) -> dict[str, Any]:
    """How to log in to a lab node (device or host): root with the lab's generated key,
    its host key checked against the lab's known_hosts."""
    return {
        "host": str(address),
        "username": "root",
        "key_file": str(ssh_dir() / "id_ed25519"),
        "port": 22,
        "known_hosts": str(known_hosts_file()),
    }


def run_inside(
    node_dir: Path,
    name: str,
    kind: str,
    argv: list[str],
    *,
    check: bool = False,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run argv inside a running node's namespaces (tests and diagnostics; runbooks use SSH)."""
    pid = holder_pid(node_dir, name)
    if pid is None:
        raise LabError(f"lab {kind} {name} is not running (run `runbook lab up`)")
    return nsenter(pid, argv, check=check, input=input, timeout=timeout)


# --- routing boxes: what the FRR and the BIRD devices share -----------------------------------


def router_holder_script(
    node_dir: Path,
    name: str,
    *,
    daemon: str,
    mounts: Mapping[str, str],
    ipv6_forwarding: bool = False,
) -> str:
    """The holder script of a routing box. Its hostname; a private /run holding the routing
    daemon's own run directory (`<node_dir>/run-<daemon>` at /run/<daemon>) and sshd's, lldpd's
    and a lock directory; of the state dir only the box's own directory (its sshd config names
    files there) and the lab's authorized keys stay visible at their paths (the lab's private
    key and NetBox tokens do not); `mounts` (subdirectory of node_dir -> path on the box), then
    home at /root and lldpd.d at /etc/lldpd.d bound over the machine's; a private /tmp; the box
    forwards IPv4 (and IPv6 when asked), never on its management interface eth0."""
    s = state_dir()
    if s.resolve().is_relative_to("/tmp"):  # noqa: S108 (a check, not a use)
        raise LabError(f"the lab's state dir {s} must not be under /tmp (devices get their own)")
    q = shlex.quote
    runfs = node_dir / "runfs"
    lines = [
        "set -e",
        f"hostname {q(name)}",
        f"mount -n -t tmpfs -o mode=0755,size=64m rbl-run {q(str(runfs))}",
        f"cd {q(str(runfs))} && mkdir -p {q(daemon)} sshd lldpd lock && cd /",
        f"mount -n --bind {q(str(node_dir / f'run-{daemon}'))} {q(str(runfs / daemon))}",
    ]
    if s.is_relative_to("/run"):
        inside = runfs / s.relative_to("/run")
        own, keys = inside / "devices" / name, inside / "ssh" / "authorized_keys"
        lines += [
            f"mkdir -p {q(str(own))} {q(str(keys.parent))} && touch {q(str(keys))}",
            f"mount -n --bind {q(str(node_dir))} {q(str(own))}",
            f"mount -n --bind {q(str(ssh_dir() / 'authorized_keys'))} {q(str(keys))}",
        ]
    lines.append(f"mount -n --move {q(str(runfs))} /run")
    for sub, target in {**mounts, "home": "/root", "lldpd.d": "/etc/lldpd.d"}.items():
        lines.append(f"mount -n --bind {q(str(node_dir / sub))} {q(target)}")
    lines += [
        "mount -n -t tmpfs -o mode=1777,size=64m rbl-tmp /tmp",
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
        *(["echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"] if ipv6_forwarding else []),
        "echo 0 > /proc/sys/net/ipv4/conf/eth0/forwarding",
        f"echo {HOLDER_READY}",
        "exec sleep infinity >/dev/null 2>&1",
    ]
    return "\n".join(lines)


def prepare_router_login(node_dir: Path, name: str, mgmt: str) -> None:
    """A routing box's /root, host key and sshd config (listening on `mgmt`), and lldpd's
    configuration (port id = kernel ifname). lldpd applies /etc/lldpd.d at start-up before it
    sends anything (configuring it with lldpcli right after start races and can leave it
    silent). eth0 sees no neighbour: a Linux bridge does not forward LLDP frames."""
    light_home(node_dir / "home", name)
    ensure_host_key(node_dir / "ssh_host_ed25519_key")
    (node_dir / "sshd_config").write_text(
        sshd_config(
            mgmt,
            node_dir / "ssh_host_ed25519_key",
            node_dir / "sshd.pid",
            ssh_dir() / "authorized_keys",
        )
    )
    (node_dir / "lldpd.d").mkdir(exist_ok=True)
    (node_dir / "lldpd.d").chmod(0o755)
    conf = node_dir / "lldpd.d" / "lab.conf"
    conf.write_text(
        f"configure lldp portidsubtype ifname\nconfigure lldp tx-interval {LLDP_TX_INTERVAL}\n"
    )
    conf.chmod(0o644)


def pid_file_alive(pid_file: Path) -> bool:
    try:
        return network.pid_alive(int(pid_file.read_text(encoding="ascii").split()[0]))
    except (OSError, ValueError, IndexError):
        return False


def start_sshd_and_lldpd(pid: int, node_dir: Path) -> None:
    """Start the box's sshd and lldpd inside its holder, each only when it is not running."""
    if not pid_file_alive(node_dir / "sshd.pid"):
        nsenter(pid, ["/usr/sbin/sshd", "-f", str(node_dir / "sshd_config")], check=True)
    if nsenter(pid, ["lldpcli", "show", "configuration"]).returncode != 0:
        nsenter(pid, ["lldpd"], check=True)


def stop_router(node_dir: Path, name: str, *, daemon: str) -> None:
    """Stop every process of a routing box and clear what they left in its daemon's run
    directory (`<node_dir>/run-<daemon>`) and the pid files; the namespace and links stay."""
    network.kill_pids(network.netns_pids(network.netns_name(name)))
    for leftover in (node_dir / f"run-{daemon}").glob("*"):
        if leftover.is_file() or leftover.is_socket():
            leftover.unlink()
    for pid_file in ("holder.pid", "sshd.pid"):
        (node_dir / pid_file).unlink(missing_ok=True)
