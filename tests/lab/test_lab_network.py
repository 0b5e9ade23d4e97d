"""The lab's devices and hosts for real: SSH, NetBox-rendered configs, BGP, LLDP, private
filesystems, PostgreSQL, idempotent up, and a `lab down` that leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_fixtures import Connect, LabHandle, bring_up, ssh_run  # fixtures come from conftest

from runbooks.lab import frr, hosts, network, node
from runbooks.lab import lab as lab_ops
from runbooks.lab.errors import LabError
from runbooks.lab.paths import state_dir

pytestmark = pytest.mark.lab

FRR_RELOAD = "/usr/lib/frr/frr-reload.py"


def _reload_diff(output: str) -> tuple[list[str], list[str]]:
    """(lines to delete, lines to add) from `frr-reload.py --test` output (empty: no diff).

    `frr version` lines are left out: FRR stamps its own full version (8.4.4) on every config it
    writes, so a template's shorter one is metadata, not configuration.
    """
    found: dict[str, list[str]] = {"Delete": [], "Add": []}
    for kind, body in re.findall(
        r"^Lines To (Delete|Add)\n=+\n(.*?)(?=^Lines To |\Z)",
        output,
        flags=re.MULTILINE | re.DOTALL,
    ):
        found[kind] = [
            ln for ln in body.splitlines() if ln.strip() and not ln.startswith("frr version")
        ]
    return found["Delete"], found["Add"]


def test_every_active_device_answers_ssh_with_the_rendered_config(
    lab_reset: LabHandle, device_ssh: Connect
) -> None:
    """The seeded lab (reset first: a demo run before leaves leaf3 racked in)."""
    lab = lab_reset
    for name in lab.active_devices:
        client = device_ssh(name)
        rc, out, _ = ssh_run(client, "hostname")
        assert (rc, out.strip()) == (0, name)
        candidate = f"/tmp/netbox-{name}.conf"  # the device's private /tmp
        ssh_run(client, f"cat > {candidate}", stdin=lab.configs[name])
        rc, out, err = ssh_run(client, f"{FRR_RELOAD} --test {candidate}")
        assert rc == 0, err
        assert _reload_diff(out) == ([], []), f"{name} differs from its NetBox config:\n{out}"


def test_the_planned_leaf_is_a_factory_default_box_with_its_links_wired(
    lab_reset: LabHandle, device_ssh: Connect
) -> None:
    topo = lab_reset.topology
    # FRR's: a BIRD router's factory state (its OS holds its addresses) is test_second_os's
    for name in [n for n in lab_reset.planned_devices if topo.platform(n) == "frr"]:
        rc, out, _ = ssh_run(device_ssh(name), "vtysh -c 'show running-config'; ip -j addr")
        assert rc == 0
        assert f"hostname {name}" in out and "router bgp" not in out
        assert "198.18.255." not in out and "198.18.1." not in out
        wired = frr.lldp_neighbours(name)
        assert wired == frr.expected_lldp(lab_reset.topology, name)


def test_bgp_is_established_to_every_peer(lab: LabHandle, device_ssh: Connect) -> None:
    for name in lab.active_devices:
        _, out, _ = ssh_run(device_ssh(name), "vtysh -c 'show bgp summary json'")
        peers = json.loads(out)["ipv4Unicast"]["peers"]
        expected = frr.expected_peers(lab.topology, name)
        assert expected, f"{name} has no BGP peer in the topology"
        assert {p: peers.get(p, {}).get("state") for p in expected} == dict.fromkeys(
            expected, "Established"
        )


def test_lldp_neighbours_match_the_links(lab: LabHandle) -> None:
    assert lab_ops.lldp_problems(lab.topology) == []


def test_a_host_has_a_private_filesystem(lab: LabHandle, host_ssh: Connect) -> None:
    probe = f"/etc/rbl-probe-{uuid.uuid4().hex[:8]}"
    client = host_ssh("srv1")
    rc, out, _ = ssh_run(client, f"hostname; echo private > {probe}; cat {probe}")
    assert (rc, out.split()) == (0, ["srv1", "private"])
    assert not Path(probe).exists(), "a file written on a host appeared on the machine"
    rc, _, _ = ssh_run(host_ssh("srv2"), f"test -e {probe}")
    assert rc != 0, "hosts share a filesystem"


def _tiny_deb(folder: Path, name: str) -> bytes:
    root = folder / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: lab <lab@example.com>\n"
        "Description: runbooks lab probe\n"
    )
    (root / "usr" / "share" / name).mkdir(parents=True)
    (root / "usr" / "share" / name / "hello").write_text("hello\n")
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(folder / "p.deb")],
        check=True,
        capture_output=True,
    )
    return (folder / "p.deb").read_bytes()


def test_a_package_installed_on_a_host_is_not_on_the_machine(
    lab: LabHandle, host_ssh: Connect, tmp_path: Path
) -> None:
    name = f"rbl-probe-{uuid.uuid4().hex[:6]}"
    deb = _tiny_deb(tmp_path, name)
    client = host_ssh("srv2")
    sftp = client.open_sftp()
    with sftp.file(f"/tmp/{name}.deb", "wb") as fh:
        fh.write(deb)
    rc, out, err = ssh_run(client, f"dpkg -i /tmp/{name}.deb && dpkg -s {name} | grep Status")
    assert rc == 0, err
    assert "install ok installed" in out
    assert not Path(f"/usr/share/{name}").exists()
    on_machine = subprocess.run(["dpkg", "-s", name], capture_output=True, check=False)
    assert on_machine.returncode != 0, "a package installed on a host appeared on the machine"


def test_db1_runs_postgresql_15_with_sample_data(db1: dict[str, Any]) -> None:
    env = {**os.environ, "PGPASSWORD": db1["password"], "PGCONNECT_TIMEOUT": "5"}
    query = (
        "SELECT current_setting('server_version_num')::int / 10000, "
        "current_setting('data_checksums'), (SELECT count(*) FROM orders), "
        "inet_server_addr()"
    )
    out = subprocess.run(
        [
            "psql",
            "-X",
            "-At",
            "-F",
            " ",
            "-h",
            db1["host"],
            "-p",
            str(db1["port"]),
            "-U",
            db1["user"],
            "-d",
            db1["dbname"],
            "-c",
            query,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=30,
    ).stdout.split()
    checksums = "on" if db1["data_checksums"] else "off"
    assert out == [str(db1["version"]), checksums, "500", db1["host"]]


@pytest.fixture
def foreign_namespace() -> Iterator[str]:
    """A throwaway namespace (not named like the lab's) holding a lab-range address."""
    ns = f"rblx-{uuid.uuid4().hex[:6]}"
    network.run(["ip", "netns", "add", ns])
    try:
        network.run(["ip", "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        network.run(["ip", "-n", ns, "addr", "add", "198.18.1.77/24", "dev", "d0"])
        network.run(["ip", "-n", ns, "link", "set", "d0", "up"])
        yield ns
    finally:
        network.run(["ip", "netns", "del", ns], check=False)


def test_overlap_is_refused_with_one_line(lab: LabHandle, foreign_namespace: str) -> None:
    with pytest.raises(LabError) as refused:
        network.check_addresses(lab.topology, netns=foreign_namespace)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("refusing to add lab addresses: route 198.18.1.0/24 dev d0 overlaps")
    assert "(and 3 more)" in message  # its local and broadcast entries, and the address itself
    network.check_addresses(lab.topology)  # the machine itself is clean


def test_status_shows_every_component_answering(lab: LabHandle) -> None:
    bad = [c for c in lab_ops.status() if not c.ok]
    assert bad == []


def test_up_again_verifies_and_duplicates_nothing(lab: LabHandle) -> None:
    names = [*lab.active_devices, *lab.planned_devices, *(h.name for h in lab.topology.hosts)]
    before = {n: _holder(n) for n in names}
    lab_ops.up()
    assert {n: _holder(n) for n in names} == before
    assert len(network.lab_namespaces()) == len(names)
    bridge = network.parse_addresses(
        network.run(["ip", "-j", "-4", "addr", "show", "dev", network.BRIDGE]).stdout
    )
    assert [a.address for a in bridge] == [network.own_gateway(lab.topology)]
    for name in names:
        eth0 = network.parse_addresses(
            network.run(
                ["ip", "-n", network.netns_name(name), "-j", "-4", "addr", "show", "dev", "eth0"]
            ).stdout
        )
        assert len(eth0) == 1


def _holder(name: str) -> int | None:
    folder = frr.device_dir(name) if (frr.device_dir(name)).exists() else hosts.host_dir(name)
    return node.holder_pid(folder, name)


# --- lab down leaves nothing; then the lab comes back for the rest of the session -------------


def _net_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


@pytest.fixture(scope="class")
def torn_down(lab: LabHandle) -> Iterator[dict[str, Any]]:
    namespaces = network.lab_namespaces()
    pids = {p for ns in namespaces for p in network.netns_pids(ns)}
    inodes = {_net_inode(p) for p in pids} - {None}
    lab_ops.down()
    yield {"namespaces": namespaces, "pids": pids, "inodes": inodes}
    bring_up()


@pytest.mark.slow  # tears the shared lab down (NetBox too) and rebuilds it: ~20-40 s
class TestLabDownLeavesNothing:
    def test_no_namespaces(self, torn_down: dict[str, Any]) -> None:
        assert torn_down["namespaces"], "the lab had no namespaces to begin with"
        assert network.lab_namespaces() == []
        assert not any(Path("/run/netns").glob(f"{network.NETNS_PREFIX}*"))

    def test_no_links_or_routes(self, torn_down: dict[str, Any]) -> None:
        links = json.loads(network.run(["ip", "-j", "link", "show"]).stdout)
        names = [str(x["ifname"]) for x in links]
        assert network.BRIDGE not in names
        assert not [n for n in names if n.startswith(network.MGMT_VETH_PREFIX)]
        routes = network.run(["ip", "-4", "route", "show", "table", "all"]).stdout
        assert "198.18." not in routes

    def test_no_processes(self, torn_down: dict[str, Any]) -> None:
        assert torn_down["pids"]
        alive = [p for p in torn_down["pids"] if network.pid_alive(p)]
        assert alive == []
        inside = [
            p
            for p in os.listdir("/proc")
            if p.isdigit() and _net_inode(int(p)) in torn_down["inodes"]
        ]
        assert inside == []

    def test_no_mounts_and_no_state(self, torn_down: dict[str, Any]) -> None:
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(state_dir()) not in mounts
        assert f"/run/netns/{network.NETNS_PREFIX}" not in mounts
        assert not state_dir().exists() or os.environ.get("RUNBOOKS_LAB_NETBOX") == "0"
