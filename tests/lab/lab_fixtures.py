"""pytest fixtures for the whole lab; imported by tests/lab/conftest.py.

- `lab` (session): NetBox, bridge, hosts and devices up once (idempotent, so a running lab is
  reused: ~1 s). Yields a `LabHandle` (topology, the configs active devices started with, timings).
  The lab stays up after the session (the next session starts in about a second);
  `runbook lab down` removes it. RUNBOOKS_LAB_NETBOX=0 runs devices and hosts without NetBox,
  with configs generated from the topology (`topology_configs`).
- `device_ssh` / `host_ssh` (function): `connect(name) -> paramiko.SSHClient` as root with the
  lab key; every client is closed after the test.
- `db1` (session): connection parameters of db1's PostgreSQL 15 cluster (`hosts.db_params`).
- `lab_reset` (function): the whole lab back to its seeded state (~3 s) and held for the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paramiko
import pytest

from runbooks.lab import frr, hosts, node
from runbooks.lab import lab as lab_ops
from runbooks.lab import topology as topology_mod
from runbooks.lab.lab import Timings
from runbooks.lab.topology import Topology

Connect = Callable[[str], paramiko.SSHClient]

# Runbooks on the lab check host keys against the lab's known_hosts (as `runbook lab env` says).
os.environ["RUNBOOKS_SSH_KNOWN_HOSTS"] = str(node.known_hosts_file())


@dataclass(frozen=True)
class LabHandle:
    topology: Topology
    configs: dict[str, str]  # active device -> the configuration it started with (NetBox's)
    timings: Timings

    @property
    def active_devices(self) -> list[str]:
        return [d.name for d in self.topology.devices if d.status == "active"]

    @property
    def planned_devices(self) -> list[str]:
        return [d.name for d in self.topology.devices if d.status != "active"]


_cache: dict[str, LabHandle] = {}


def bring_up() -> LabHandle:
    """Bring the lab up (or verify it) and describe it; shared by every importer of this module."""
    topo = topology_mod.load()
    without_netbox = os.environ.get("RUNBOOKS_LAB_NETBOX", "1") == "0"
    timings = lab_ops.up(configs=topology_configs(topo) if without_netbox else None)
    configs = {
        d.name: (frr.device_dir(d.name) / "initial.conf").read_text()
        for d in topo.devices
        if d.status == "active"
    }
    _cache["lab"] = LabHandle(topo, configs, timings)
    return _cache["lab"]


@pytest.fixture(scope="session")
def lab() -> LabHandle:
    return _cache.get("lab") or bring_up()


def _connect(params: dict[str, Any]) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    # the keys the lab wrote as each node started: a node that answers with another is refused
    client.load_host_keys(str(node.known_hosts_file()))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        params["host"],
        port=params["port"],
        username=params["username"],
        key_filename=params["key_file"],
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def _ssh_factory(params_of: Callable[[str], dict[str, Any]]) -> Iterator[Connect]:
    clients: list[paramiko.SSHClient] = []

    def connect(name: str) -> paramiko.SSHClient:
        clients.append(_connect(params_of(name)))
        return clients[-1]

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def device_ssh(lab: LabHandle) -> Iterator[Connect]:
    yield from _ssh_factory(lambda name: frr.device_ssh_params(name, lab.topology))


@pytest.fixture
def host_ssh(lab: LabHandle) -> Iterator[Connect]:
    yield from _ssh_factory(lambda name: hosts.host_ssh_params(name, lab.topology))


@pytest.fixture
def db1(lab: LabHandle) -> dict[str, Any]:
    """db1's connection parameters read for each test: every lab reset starts db1 afresh with
    a new password, so a session-wide copy fails (psql exit 2) in any test after a reset."""
    return hosts.db_params("db1", lab.topology)


@pytest.fixture
def lab_reset(lab: LabHandle) -> Iterator[LabHandle]:
    """The lab reset and held for the test: another session's reset waits until it ends."""
    with lab_ops.held():
        yield lab


def ssh_run(
    client: paramiko.SSHClient, command: str, stdin: str | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    """Run a command over an open session: (exit status, stdout, stderr)."""
    chan_in, chan_out, chan_err = client.exec_command(command, timeout=timeout)
    if stdin is not None:
        chan_in.write(stdin)
        chan_in.channel.shutdown_write()
    out = chan_out.read().decode()
    err = chan_err.read().decode()
    return chan_out.channel.recv_exit_status(), out, err


def topology_configs(topo: Topology) -> dict[str, str]:
    """FRR configs generated straight from the topology (a stand-in for NetBox's rendering)."""
    configs: dict[str, str] = {}
    by_name = {d.name: d for d in topo.devices}
    for dev in topo.devices:
        if dev.status != "active":
            continue
        ifaces: list[str] = []
        neighbours: list[str] = []
        for link in topo.links:
            (a_dev, a_if), (b_dev, b_if) = link.ends()
            if dev.name not in (a_dev, b_dev):
                continue
            a_addr, b_addr = link.addresses()
            mine, my_addr, peer, theirs = (
                (a_if, a_addr, b_dev, b_addr)
                if a_dev == dev.name
                else (b_if, b_addr, a_dev, a_addr)
            )
            ifaces += [
                f"interface {mine}",
                f" description {peer}",
                f" ip address {my_addr}",
                "exit",
                "!",
            ]
            if by_name[peer].status == "active":
                neighbours += [
                    f" neighbor {theirs.ip} remote-as {by_name[peer].asn}",
                    f" neighbor {theirs.ip} description {peer}",
                ]
        configs[dev.name] = "\n".join(
            [
                "frr version 8.4.4",
                "frr defaults traditional",
                f"hostname {dev.name}",
                "log file /var/log/frr/frr.log",
                "service integrated-vtysh-config",
                "!",
                "interface lo",
                f" ip address {dev.loopback}/32",
                "exit",
                "!",
                *ifaces,
                f"router bgp {dev.asn}",
                f" bgp router-id {dev.loopback}",
                " no bgp ebgp-requires-policy",
                *neighbours,
                " !",
                " address-family ipv4 unicast",
                f"  network {dev.loopback}/32",
                " exit-address-family",
                "exit",
                "!",
                "",
            ]
        )
    return configs
