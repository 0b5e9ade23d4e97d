"""The second network OS for real: border1 runs BIRD 2 with lldpd and sshd beside it, and
runbooks reach it through napalm-bird2 (PyPI, not ours) with NetBox's data only: the platform
slug and config context give the driver and its options, NetBox renders its bird.conf.

What napalm-bird2 0.0.5 can and cannot do is in runbooks/lab/bird.py's docstring; the tests
below show the parts runbooks rely on, and name the parts it lacks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pynetbox
import pytest
import requests

from runbooks.core.errors import DryRunViolation, UnsupportedError
from runbooks.core.gateway import Mode
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.lab import bird, frr, netbox, node
from runbooks.lab import lab as lab_ops

pytestmark = pytest.mark.lab

BORDER = "border1"


def _nb() -> Any:
    url, token = netbox.credentials("operator")
    return pynetbox.api(url, token=token)


def _target(name: str = BORDER) -> DeviceTarget:
    """The device as runbooks see it: all from NetBox (address, platform, config context)."""
    dev = _nb().dcim.devices.get(name=name)
    host = str(dev.primary_ip4).split("/")[0]
    return DeviceTarget.from_netbox(name, host, dev.platform.slug, dev.config_context)


def _gateway(mode: Mode, target: DeviceTarget) -> NetworkGateway:
    login = node.login_params(target.host)
    creds = Credentials(login["username"], key_file=login["key_file"], timeout=20)
    return NetworkGateway(mode, target, creds)


def _rendered(name: str, intent: str) -> str:
    dev = _nb().dcim.devices.get(name=name)
    url, token = netbox.credentials("operator")
    reply = requests.post(
        f"{url}/api/dcim/devices/{dev.id}/render-config/",
        headers={"Authorization": f"Bearer {token}", "Accept": "text/plain"},
        json={"runbooks_intent": intent},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.text


def _box_state() -> dict[str, str]:
    """What a compare must leave as it was: bird.conf, /etc/bird, /tmp and BIRD's protocols."""
    conf = bird.run_on_device(BORDER, ["cat", bird.CONFIG], check=True).stdout
    listing = bird.run_on_device(
        BORDER, ["find", "/etc/bird", "/tmp", "/root", "-printf", "%p %s %T@\n"]
    ).stdout
    protocols = bird.birdc(BORDER, "show protocols")
    return {
        "bird.conf": hashlib.sha256(conf.encode()).hexdigest(),
        "files": "\n".join(sorted(listing.splitlines())),
        "protocols": "\n".join(ln.split()[0] for ln in protocols.splitlines()[2:] if ln),
    }


@pytest.fixture
def border(lab_reset: Any) -> Iterator[NetworkGateway]:
    """border1 in the seeded lab (held), through the network gateway in plan mode."""
    gw = _gateway(Mode.PLAN, _target())
    yield gw
    gw.close()


def test_border1_comes_up_as_a_factory_box_with_lldp_and_no_bgp(lab_reset: Any) -> None:
    topo = lab_reset.topology
    assert topo.platform(BORDER) == "bird2" and topo.device(BORDER).status == "planned"
    conf = bird.run_on_device(BORDER, ["cat", bird.CONFIG], check=True).stdout
    assert conf == bird.factory_config(topo, BORDER)
    assert bird.bgp_states(BORDER) == {}  # no BGP configured
    assert bird.run_on_device(BORDER, ["hostname"]).stdout.strip() == BORDER
    # its own BIRD: socket and config in its own namespaces, not the machine's
    assert (bird.device_dir(BORDER) / "run-bird" / "bird.ctl").is_socket()
    # lldpd beside BIRD: each cable seen from both ends, port id = kernel ifname
    assert frr.lldp_neighbours(BORDER) == {"swp1": ("spine1", "swp4"), "swp2": ("spine2", "swp4")}
    assert frr.lldp_neighbours("spine1")["swp4"] == (BORDER, "swp1")
    # the spines render no session to a planned border router
    assert "198.18.1.13" not in frr.run_on_device("spine1", ["vtysh", "-c", "show run"]).stdout
    status = {c.name: c for c in lab_ops.status()}[f"device {BORDER}"]
    assert status.ok and "bird answers" in status.detail


def test_netbox_names_the_driver_and_its_options(border: NetworkGateway) -> None:
    assert border.driver_name == "bird2"
    assert border.target.optional_args["bird_config_path"] == bird.CONFIG
    assert border.target.optional_args["transport"] == "ssh"


def test_the_driver_reads_facts_interfaces_and_bgp(border: NetworkGateway) -> None:
    facts = border.facts()
    assert facts["vendor"] == "BIRD" and facts["model"] == "BIRD2"
    # hostname is the address connected to; fqdn is `hostname -f` on the box, which cannot
    # resolve its own name without DNS and falls back to that address too
    assert facts["hostname"] == facts["fqdn"] == border.target.host == "198.18.0.24"
    assert {"eth0", "lo", "swp1", "swp2"} <= set(facts["interface_list"])
    interfaces = border.interfaces()
    assert interfaces["swp1"]["is_up"] and interfaces["swp2"]["is_up"]
    assert border.bgp_neighbors() == {"global": {"router_id": None, "peers": {}}}


def test_what_the_driver_cannot_answer_is_named(border: NetworkGateway) -> None:
    """napalm-bird2 0.0.5 lacks these getters: the gateway names driver and getter."""
    missing = {
        "config": border.config,
        "route_to": lambda: border.route_to("198.18.255.1/32"),
        "lldp_neighbors": border.lldp_neighbors,
        "interfaces_ip": border.interfaces_ip,
    }
    for what, call in missing.items():
        with pytest.raises(UnsupportedError) as refused:
            call()
        assert "bird2 driver has no get_" in str(refused.value), what
    assert not border.supports("get_lldp_neighbors")
    assert border.supports("get_bgp_neighbors") and border.supports("get_facts")


def test_a_compare_of_netbox_rendering_leaves_nothing_on_the_box(border: NetworkGateway) -> None:
    before = _box_state()
    candidate = _rendered(BORDER, "service")
    assert "router id 198.18.255.21;" in candidate and "198.18.0.24" not in candidate
    diff = border.compare(candidate)
    assert "-router id 198.18.0.24;" in diff and "+router id 198.18.255.21;" in diff
    assert '+\tinterface "lo";' in diff
    assert _box_state() == before
    # the rendering BIRD would refuse is not in question: bird -p parses it on the box
    bird.run_on_device(BORDER, ["sh", "-c", f"cat > /tmp/candidate.conf <<'EOF'\n{candidate}EOF"])
    parsed = bird.run_on_device(BORDER, ["bird", "-p", "-c", "/tmp/candidate.conf"])
    assert parsed.returncode == 0, parsed.stderr


def test_a_plan_cannot_commit_through_the_driver(border: NetworkGateway) -> None:
    before = _box_state()
    with pytest.raises(DryRunViolation):
        border.commit(_rendered(BORDER, "service"))
    assert _box_state() == before
