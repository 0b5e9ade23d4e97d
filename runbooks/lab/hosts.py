"""Linux hosts (servers, the database server, the PC): namespaces with a private root filesystem.

Each host is network namespace `rbl-<name>` + a holder in its own mount/UTS/IPC namespaces that
mounts an overlay of the machine's `/` (upper and work dirs on a tmpfs that lives only inside the
host's mount namespace), a private `/run`, `/tmp`, light `/root`, and pivots into it. So whatever
a playbook does on a host — package installs included — changes nothing on the real machine and
vanishes on `lab down`/`reset`. The machine's own PostgreSQL files are hidden from hosts.

db1 runs a PostgreSQL 15 cluster (Debian's binaries, as user postgres) listening on its
management address, port 5432, data in /var/lib/postgresql/15/main, **data checksums OFF**
(initdb 15's default: an upgrade to 18 must init the new cluster with --no-data-checksums).
"""

from __future__ import annotations

import logging
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from runbooks.lab import network, node
from runbooks.lab.errors import LabError
from runbooks.lab.paths import state_dir
from runbooks.lab.topology import Host, Topology

log = logging.getLogger(__name__)

PG_VERSION = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
PG_DATA = Path(f"/var/lib/postgresql/{PG_VERSION}/main")
PG_LOG = Path(f"/var/lib/postgresql/{PG_VERSION}/postgresql.log")
PG_PORT = 5432
PG_USER = "runbook"
PG_DB = "inventory"
DATA_CHECKSUMS = False
INSIDE_LAB_DIR = Path("/run/lab")  # the host's own sshd config, key and pid file, seen inside

_SAMPLE_SQL = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE NOT NULL,
                        created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE products (id serial PRIMARY KEY, sku text UNIQUE NOT NULL, name text NOT NULL,
                       price numeric(10,2) NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
                     product_id int NOT NULL REFERENCES products, quantity int NOT NULL,
                     ordered_at timestamptz NOT NULL DEFAULT now());
INSERT INTO customers (name, email)
  SELECT 'Customer ' || i, 'customer' || i || '@example.com' FROM generate_series(1, 50) i;
INSERT INTO products (sku, name, price)
  SELECT 'SKU-' || lpad(i::text, 4, '0'), 'Product ' || i, (i * 7.5)::numeric(10,2)
  FROM generate_series(1, 20) i;
INSERT INTO orders (customer_id, product_id, quantity)
  SELECT 1 + (i % 50), 1 + (i % 20), 1 + (i % 5) FROM generate_series(1, 500) i;
"""


def host_dir(name: str) -> Path:
    return state_dir() / "hosts" / name


def host_ssh_params(name: str, topo: Topology | None = None) -> dict[str, Any]:
    """How to log in to a host: {host, username, key_file, port, known_hosts}."""
    return node.login_params(_host(topo, name).mgmt)


def run_on_host(
    name: str,
    argv: list[str],
    *,
    check: bool = False,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run argv inside the host's namespaces and private root (tests and diagnostics)."""
    return node.run_inside(
        host_dir(name), name, "host", argv, check=check, input=input, timeout=timeout
    )


def db_params(name: str = "db1", topo: Topology | None = None) -> dict[str, Any]:
    """How to reach the database server's cluster, and what an upgrade needs to know."""
    host = _host(topo, name)
    password_file = host_dir(name) / "pg-password"
    if not password_file.exists():
        raise LabError(f"lab host {name} has no PostgreSQL cluster (run `runbook lab up`)")
    return {
        "host": str(host.mgmt),
        "port": PG_PORT,
        "user": PG_USER,
        "password": password_file.read_text(encoding="ascii").strip(),
        "dbname": PG_DB,
        "version": PG_VERSION,
        "bin_dir": str(PG_BIN),
        "data_dir": str(PG_DATA),
        "data_checksums": DATA_CHECKSUMS,
        "os_user": "postgres",
    }


def _host(topo: Topology | None, name: str) -> Host:
    from runbooks.lab import topology

    for host in (topo or topology.load()).hosts:
        if host.name == name:
            return host
    raise LabError(f"no lab host named {name!r}")


# --- bring-up -------------------------------------------------------------------------------


def _holder_script(name: str) -> str:
    h = host_dir(name)
    q = shlex.quote
    ovl, root = h / "ovl", h / "ovl" / "root"
    r = q(str(root))
    return "\n".join(
        [
            "set -e",
            f"hostname {q(name)}",
            f"mount -n -t tmpfs -o mode=0755,size=4g rbl-ovl {q(str(ovl))}",
            f"mkdir {q(str(ovl / 'upper'))} {q(str(ovl / 'work'))} {r}",
            f"mount -n -t overlay rbl-root -o lowerdir=/,upperdir={ovl / 'upper'},"
            f"workdir={ovl / 'work'} {r}",
            f"mount -n --rbind /proc {r}/proc",
            f"mount -n --rbind /sys {r}/sys",
            f"mount -n --rbind /dev {r}/dev",
            f"mount -n -t tmpfs -o mode=1777,size=256m rbl-shm {r}/dev/shm",  # noqa: S108 (own)
            f"mount -n -t tmpfs -o mode=0755,size=64m rbl-run {r}/run",
            f"mkdir -p {r}/run/sshd {r}{INSIDE_LAB_DIR} {r}/run/postgresql",
            f"chown postgres:postgres {r}/run/postgresql && chmod 2775 {r}/run/postgresql",
            f"mount -n --bind {q(str(h / 'pub'))} {r}{INSIDE_LAB_DIR}",
            f"mount -n -t tmpfs -o mode=0700,size=256m rbl-home {r}/root",
            f"cp -a {q(str(h / 'home'))}/. {r}/root/",
            f"mount -n -t tmpfs -o mode=1777,size=1g rbl-tmp {r}/tmp",  # noqa: S108 (the host's own)
            # Hide the machine's own PostgreSQL cluster (NetBox's database) from every host.
            f"mount -n -t tmpfs -o mode=0755,size=2g rbl-pgdata {r}/var/lib/postgresql",
            f"chown postgres:postgres {r}/var/lib/postgresql",
            f"mount -n -t tmpfs -o mode=0755,size=16m rbl-pgconf {r}/etc/postgresql",
            f"cd {r} && mkdir -p .rbl-oldroot && pivot_root . .rbl-oldroot && cd /",
            "umount -n -l /.rbl-oldroot && rmdir /.rbl-oldroot",
            f"echo {node.HOLDER_READY}",
            "exec sleep infinity >/dev/null 2>&1",
        ]
    )


def _prepare_dirs(host: Host) -> None:
    h = host_dir(host.name)
    if h.exists():
        node.remove_tree(h / "ovl")
        node.remove_tree(h / "pub")
    for sub in ("ovl", "pub", "home"):
        (h / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    node.light_home(h / "home", host.name)
    pub = h / "pub"
    node.ensure_host_key(h / "ssh_host_ed25519_key")
    for f in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
        shutil.copy2(h / f, pub / f)
    shutil.copy2(node.ssh_dir() / "authorized_keys", pub / "authorized_keys")
    (pub / "sshd_config").write_text(
        node.sshd_config(
            str(host.mgmt),
            INSIDE_LAB_DIR / "ssh_host_ed25519_key",
            INSIDE_LAB_DIR / "sshd.pid",
            INSIDE_LAB_DIR / "authorized_keys",
        )
    )


def start_host(topo: Topology, host: Host) -> bool:
    """Bring one host up (namespace and management link must exist). Idempotent: a running host
    keeps its filesystem and only gets missing services restarted. True if started fresh."""
    h = host_dir(host.name)
    pid = node.holder_pid(h, host.name)
    fresh = pid is None
    if pid is None:
        stop_host(host.name)  # leftovers of a holder that died still run in the old root
        _prepare_dirs(host)
        pid = node.start_holder(h, host.name, _holder_script(host.name))
        log.info("host %s: holder %d", host.name, pid)
    node.trust_host_key(str(host.mgmt), host.name, h / "ssh_host_ed25519_key")
    if not node.ssh_answers(str(host.mgmt), timeout=0.3):
        node.nsenter(pid, ["/usr/sbin/sshd", "-f", str(INSIDE_LAB_DIR / "sshd_config")], check=True)
    if host.postgresql:
        _ensure_postgres(host, pid, str(topo.addressing.management))
    return fresh


def _as_postgres(
    pid: int, argv: list[str], *, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return node.nsenter(
        pid, ["runuser", "-u", "postgres", "--", *argv], input=input, check=check, timeout=120
    )


def _ensure_postgres(host: Host, pid: int, clients: str) -> None:
    if host.postgresql != PG_VERSION:
        raise LabError(f"{host.name}: the lab provides PostgreSQL {PG_VERSION} only")
    has_cluster = node.nsenter(pid, ["test", "-f", str(PG_DATA / "PG_VERSION")]).returncode == 0
    if not has_cluster:
        _init_cluster(host, pid, clients)
    status = _as_postgres(pid, [str(PG_BIN / "pg_ctl"), "-D", str(PG_DATA), "status"], check=False)
    if status.returncode != 0:
        _as_postgres(
            pid,
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(PG_DATA),
                "-l",
                str(PG_LOG),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    if not has_cluster:
        _load_sample_data(host, pid)


def _init_cluster(host: Host, pid: int, clients: str) -> None:
    # No --data-checksums: initdb 15's default, recorded in DATA_CHECKSUMS.
    _as_postgres(
        pid,
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(PG_DATA),
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--username=postgres",
        ],
    )
    conf = (
        f"listen_addresses = '{host.mgmt},127.0.0.1'\nport = {PG_PORT}\n"
        "unix_socket_directories = '/var/run/postgresql'\n"
    )
    hba = f"host all all {clients} scram-sha-256\n"
    _as_postgres(pid, ["sh", "-c", f"cat >> {PG_DATA}/postgresql.conf"], input=conf)
    _as_postgres(pid, ["sh", "-c", f"cat >> {PG_DATA}/pg_hba.conf"], input=hba)


def _load_sample_data(host: Host, pid: int) -> None:
    password = secrets.token_urlsafe(18)
    pw_file = host_dir(host.name) / "pg-password"
    pw_file.touch(mode=0o600)
    pw_file.write_text(password, encoding="ascii")
    psql = [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    _as_postgres(
        pid,
        psql,
        input=(
            f"CREATE ROLE {PG_USER} LOGIN SUPERUSER PASSWORD '{password}';\n"
            f"CREATE DATABASE {PG_DB} OWNER {PG_USER};\n"
        ),
    )
    _as_postgres(pid, [*psql, "-d", PG_DB], input=f"SET ROLE {PG_USER};\n{_SAMPLE_SQL}")


def postgres_answers(host: Host) -> bool:
    pid = node.holder_pid(host_dir(host.name), host.name)
    if pid is None:
        return False
    probe = node.nsenter(
        pid,
        [str(PG_BIN / "pg_isready"), "-q", "-h", str(host.mgmt), "-p", str(PG_PORT)],
        timeout=10,
    )
    return probe.returncode == 0


def stop_host(name: str) -> None:
    """Stop every process of the host; its private filesystem goes with its mount namespace."""
    network.kill_pids(network.netns_pids(network.netns_name(name)))
    (host_dir(name) / "holder.pid").unlink(missing_ok=True)


def reset_host(topo: Topology, host: Host) -> None:
    stop_host(host.name)
    start_host(topo, host)
