"""The lab's real NetBox: seeded inventory, tokens and identities, render-config, reset."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import time
from pathlib import Path

import pynetbox
import pytest
import requests

from runbooks.lab import netbox, netbox_schema, topology

pytestmark = pytest.mark.lab

PEOPLE = {u.role: u for u in topology.load().users}


def _api(role: str) -> pynetbox.api:
    url, token = netbox.credentials(role)
    return pynetbox.api(url, token=token)


@pytest.mark.parametrize("role", sorted(PEOPLE))
def test_each_role_reads_the_seeded_inventory(netbox_lab, role):
    nb = _api(role)
    names = {d.name for d in nb.dcim.devices.all()}
    assert {"spine1", "spine2", "leaf1", "leaf2", "leaf3", "srv1", "srv2", "db1"} <= names
    assert nb.dcim.sites.get(slug="lab-dc1") is not None
    assert nb.ipam.prefixes.get(prefix="198.18.64.0/24") is not None


@pytest.mark.parametrize("role", sorted(PEOPLE))
def test_token_owner_is_the_person_with_the_groups_of_the_role(netbox_lab, role):
    url, token = netbox.credentials(role)
    resp = requests.get(
        f"{url}/api/authentication-check/", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert resp.status_code == 200
    me = resp.json()
    assert me["username"] == PEOPLE[role].username
    assert sorted(g["name"] for g in me["groups"]) == sorted(PEOPLE[role].groups)


def test_only_operators_change_inventory(netbox_reset):
    site = _api("reviewer").dcim.sites.get(slug="lab-dc1")
    site.description = "edited by a reviewer"
    with pytest.raises(pynetbox.RequestError):
        site.save()
    site = _api("operator").dcim.sites.get(slug="lab-dc1")
    site.description = "edited by the operator"
    assert site.save()


def test_leaf3_is_planned_with_rack_position_planned_cables_and_addresses(netbox_lab):
    nb = _api("operator")
    leaf3 = nb.dcim.devices.get(name="leaf3")
    assert leaf3.status.value == "planned"
    assert (leaf3.rack.name, leaf3.position) == ("R01", 36)
    assert str(leaf3.primary_ip4) == "198.18.0.23/24"
    cables = list(nb.dcim.cables.filter(device_id=leaf3.id))
    assert len(cables) == 2
    assert {c.status.value for c in cables} == {"planned"}
    addresses = {str(ip) for ip in nb.ipam.ip_addresses.filter(device_id=leaf3.id)}
    assert addresses == {"198.18.0.23/24", "198.18.255.13/32", "198.18.1.5/31", "198.18.1.11/31"}
    active = nb.dcim.cables.filter(status="connected")
    assert len(list(active)) == 4


def test_render_config_yields_frr_config_for_every_router(netbox_lab):
    configs = netbox.render_configs()
    topo = topology.load()
    routers = [d for d in topo.devices if topo.platform(d.name) == "frr"]
    assert set(configs) == {d.name for d in routers}
    for dev in routers:
        text = configs[dev.name]
        assert f"hostname {dev.name}\n" in text
        assert f"router bgp {dev.asn}\n" in text
        assert f" bgp router-id {dev.loopback}\n" in text
        assert " no bgp ebgp-requires-policy\n" in text
        assert f"  network {dev.loopback}/32\n" in text
    # connected cables become sessions; leaf3's planned cables do not (yet)
    assert " neighbor 198.18.1.1 remote-as 65101\n" in configs["spine1"]
    assert " neighbor 198.18.1.0 remote-as 65001\n" in configs["leaf1"]
    assert "198.18.1.5 remote-as" not in configs["spine1"]
    assert "neighbor" not in configs["leaf3"]


def test_reset_restores_an_edited_object_within_seconds(netbox_lab):
    nb = _api("operator")
    leaf1 = nb.dcim.devices.get(name="leaf1")
    leaf1.serial = "EDITED-BY-TEST"
    leaf1.save()
    assert nb.dcim.devices.get(name="leaf1").serial == "EDITED-BY-TEST"
    started = time.monotonic()
    netbox.reset()
    elapsed = time.monotonic() - started
    assert nb.dcim.devices.get(name="leaf1").serial == ""
    assert elapsed < 5


def test_status_reports_every_component_answering(netbox_lab):
    assert all(c.ok for c in netbox.status()), netbox.status()


def test_rendered_configs_pass_frr_syntax_check(netbox_lab, tmp_path: Path):
    if shutil.which("vtysh") is None:
        pytest.skip("FRR (vtysh) not installed")
    for name, text in netbox.render_configs().items():
        conf = tmp_path / f"{name}.conf"
        conf.write_text(text)
        check = subprocess.run(
            ["vtysh", "-C", "-f", str(conf)], check=False, capture_output=True, text=True
        )
        assert check.returncode == 0, (name, check.stdout, check.stderr)


@pytest.mark.parametrize("role", ["reviewer", "approver", "supervisor"])
def test_every_role_renders_configs_and_writes_journal_entries(netbox_reset, role):
    url, token = netbox.credentials(role)
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/plain"}
    leaf1 = _api(role).dcim.devices.get(name="leaf1")
    rendered = requests.post(
        f"{url}/api/dcim/devices/{leaf1.id}/render-config/", headers=headers, json={}, timeout=10
    )
    assert rendered.status_code == 200
    assert "router bgp 65101" in rendered.text
    entry = _api(role).extras.journal_entries.create(
        assigned_object_type="dcim.device",
        assigned_object_id=leaf1.id,
        comments="seen",
        kind="info",
    )
    me = requests.get(
        f"{url}/api/authentication-check/",
        headers=headers | {"Accept": "application/json"},
        timeout=10,
    ).json()
    created_by = entry.created_by if isinstance(entry.created_by, int) else entry.created_by.id
    assert created_by == me["id"]


def test_netbox_listens_on_loopback_only(netbox_lab):
    listening = subprocess.run(
        ["ss", "-Htln", f"sport = :{netbox.port()}"], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    local = {line.split()[3].rsplit(":", 1)[0] for line in listening if line.strip()}
    assert local == {"127.0.0.1"}


def test_netbox_is_served_by_gunicorn_with_the_web_ui_s_static_files(netbox_lab):
    pid = netbox._server_pid()
    assert pid is not None
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[1].endswith(b"/bin/gunicorn") and b"--no-control-socket" in argv
    workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(workers) == 2
    login = requests.get(f"{netbox_lab}/login/", timeout=30)
    assert login.status_code == 200
    sheets = re.findall(r'href="(/static/[^"?]+\.css)', login.text)
    scripts = re.findall(r'src="(/static/[^"?]+\.js)', login.text)
    assert sheets and scripts
    for path, kind in ((sheets[0], "text/css"), (scripts[0], "javascript")):
        resp = requests.get(f"{netbox_lab}{path}", timeout=30)
        assert resp.status_code == 200 and kind in resp.headers["Content-Type"], path
        assert len(resp.content) > 1000, path


def test_the_shipped_core_dump_leaves_netbox_nothing_to_migrate(netbox_lab):
    """The dump shipped for this NetBox version, restored, is NetBox core fully migrated: a
    stale one (NetBox upgraded, `runbook lab netbox-snapshot` not run) fails here."""
    shipped = netbox_schema.shipped_snapshot(netbox.VERSION)
    scratch = f"{netbox.DB_BASE}_shipped_check"
    netbox._psql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    netbox._psql(f'CREATE DATABASE "{scratch}"')
    try:
        netbox._psql("", db=scratch, stdin=gzip.decompress(shipped.read_bytes()), timeout=120)
        check = subprocess.run(
            [netbox.venv() / "bin" / "netbox", "migrate", "--check", "--plan"],
            env=netbox._netbox_env(scratch, core_only=True),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        netbox._psql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    assert "No planned migration operations." in check.stdout
