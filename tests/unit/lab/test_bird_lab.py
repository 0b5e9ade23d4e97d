"""The BIRD 2 border router without the lab: its topology and NetBox seed, the BIRD config
template rendered the way NetBox renders it (sandboxed Jinja2) and parsed by the real `bird -p`,
and the lab's reading of `birdc show protocols all`."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from runbooks.lab import bird, netbox_seed, topology
from tests.support.netbox_templates import Cable, Device, Iface, render

netaddr = pytest.importorskip("netaddr")


@pytest.fixture(scope="module")
def topo() -> topology.Topology:
    return topology.load()


@pytest.fixture(scope="module")
def spec(topo: topology.Topology) -> dict[str, Any]:
    return netbox_seed.build_spec(topo)


# -- topology and seed ---------------------------------------------------------------------------


def test_border1_is_a_planned_bird2_router_cabled_to_both_spines(topo, spec):
    border1 = topo.device("border1")
    assert (border1.status, border1.asn, topo.platform("border1")) == ("planned", 65201, "bird2")
    assert border1.loopback in topo.addressing.loopbacks
    assert (topo.platform("spine1"), topo.platform("leaf3")) == ("frr", "frr")
    cables = [c for c in spec["cables"] if "border1" in (c["a"][0], c["b"][0])]
    assert cables == [
        {"a": ["spine1", "swp4"], "b": ["border1", "swp1"], "status": "planned"},
        {"a": ["spine2", "swp4"], "b": ["border1", "swp2"], "status": "planned"},
    ]
    seeded = next(d for d in spec["devices"] if d["name"] == "border1")
    assert (seeded["platform"], seeded["device_type"], seeded["asn"]) == (
        "bird2",
        "linux-router-4",
        65201,
    )
    assert {ip["status"] for ip in seeded["ips"]} == {"reserved"}


def test_every_p2p_subnet_is_in_the_p2p_range_and_none_overlaps(topo):
    subnets = [link.subnet for link in topo.links]
    assert all(s.subnet_of(topo.addressing.p2p) and s.prefixlen == 31 for s in subnets)
    for i, a in enumerate(subnets):
        for b in subnets[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    every = [*topo.addressing.all_prefixes()]
    for i, a in enumerate(every):
        for b in every[i + 1 :]:
            assert not a.overlaps(b)
    assert all(p.subnet_of(ipaddress.IPv4Network("198.18.0.0/15")) for p in every)


def test_the_bird2_platform_names_its_driver_template_and_options(spec):
    platforms = {p["slug"]: p for p in spec["platforms"]}
    assert platforms["bird2"] == {
        "name": "BIRD 2",
        "slug": "bird2",
        "manufacturer": None,  # BIRD runs on any maker's Linux box
        "config_template": "BIRD",
    }
    [context] = [c for c in spec["config_contexts"] if c["platforms"] == ["bird2"]]
    napalm = context["data"]["napalm"]
    assert napalm["driver"] == "bird2"
    assert napalm["optional_args"]["bird_config_path"] == bird.CONFIG
    assert napalm["optional_args"]["socket_path"] == bird.SOCKET
    assert napalm["optional_args"]["pathvector_managed"] is False
    assert napalm["getters"] == {"get_config": "get_bird_running_config"}
    templates = {c["name"]: c["code"] for c in spec["config_templates"]}
    assert templates["BIRD"] == (netbox_seed.TEMPLATES / "bird.conf.j2").read_text()


def test_the_box_os_holds_loopback_and_cable_addresses(topo):
    assert bird.os_addresses(topo, "border1") == {
        "lo": [ipaddress.IPv4Interface("198.18.255.21/32")],
        "swp1": [ipaddress.IPv4Interface("198.18.1.13/31")],
        "swp2": [ipaddress.IPv4Interface("198.18.1.15/31")],
    }


def test_factory_default_is_device_and_kernel_protocols_only(topo):
    text = bird.factory_config(topo, "border1")
    assert "protocol device" in text and "protocol kernel" in text
    assert "protocol bgp" not in text and "198.18.255.21" not in text
    # runbooks refuse a change that moves the management address in or out of a configuration
    assert "198.18.0.24" not in text
    assert not [ln for ln in text.splitlines() if ln.startswith("router id")]


# -- the template, rendered as NetBox renders it --------------------------------------------------


def _border1(cable_status: str = "connected") -> Device:
    spine1, spine2 = Device("spine1", 65001), Device("spine2", 65002)
    spine1.ifaces = [Iface("swp4", ["198.18.1.12/31"], device=spine1, id=11)]
    spine2.ifaces = [Iface("swp4", ["198.18.1.14/31"], device=spine2, id=21)]
    return Device(
        "border1",
        65201,
        [
            Iface("eth0", ["198.18.0.24/24"], id=1),
            Iface("lo", ["198.18.255.21/32"], id=2),
            Iface("swp1", ["198.18.1.13/31"], Cable(cable_status), spine1.ifaces, id=3),
            Iface("swp2", ["198.18.1.15/31"], Cable("connected"), spine2.ifaces, id=4),
            Iface("swp3", [], id=5),
        ],
        mgmt="eth0",
    )


def _render(device: Device, **context: Any) -> str:
    return render("bird.conf.j2", device, **context)


def test_service_has_router_id_loopback_and_a_session_per_connected_cable():
    text = _render(_border1(), runbooks_intent="service")
    assert text == _render(_border1())  # "service" is the default
    assert "router id 198.18.255.21;\n" in text
    assert 'protocol direct loopback {\n\tipv4;\n\tinterface "lo";\n}\n' in text
    assert (
        "protocol bgp '198.18.1.12' {\n"
        '\tdescription "spine1:swp4";\n'
        "\tlocal 198.18.1.13 as 65201;\n"
        "\tneighbor 198.18.1.12 as 65001;\n"
    ) in text
    assert "neighbor 198.18.1.14 as 65002;" in text
    assert text.count("export where net = 198.18.255.21/32;") == 2
    assert "disabled" not in text and "password" not in text
    assert "198.18.0.24" not in text and "eth0" not in text  # never the management interface


def test_a_planned_cable_is_no_session_yet():
    text = _render(_border1(cable_status="planned"))
    assert "198.18.1.12" not in text
    assert "neighbor 198.18.1.14 as 65002;" in text


def test_drain_disables_every_session_and_keeps_the_rest():
    service, drain = _render(_border1()), _render(_border1(), runbooks_intent="drain")
    assert drain.count("\tdisabled;\n") == drain.count("protocol bgp ") == 2
    assert drain.replace("\tdisabled;\n", "") == service


def test_bare_is_router_id_device_and_kernel_only():
    text = _render(_border1(), runbooks_intent="bare")
    assert "router id 198.18.255.21;" in text
    assert "protocol device" in text and "protocol kernel" in text
    assert "protocol bgp" not in text and "protocol direct" not in text


def test_a_bgp_password_from_the_config_context_goes_on_every_session():
    text = _render(_border1(), bgp_password="s3cret-planted")
    assert text.count('\tpassword "s3cret-planted";\n') == 2


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 is not installed")
@pytest.mark.parametrize("intent", ["service", "drain", "bare"])
def test_bird_itself_parses_every_intent(intent: str, tmp_path: Path, topo) -> None:
    for text in (_render(_border1(), runbooks_intent=intent), bird.factory_config(topo, "border1")):
        conf = tmp_path / "bird.conf"
        conf.write_text(text)
        parsed = subprocess.run(
            ["bird", "-p", "-c", str(conf)], capture_output=True, text=True, check=False
        )
        assert parsed.returncode == 0, parsed.stderr


# -- reading BIRD ------------------------------------------------------------------------------

SHOW_PROTOCOLS_ALL = """\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     10:00:00.000
kernel1    Kernel     master4    up     10:00:00.000
  Channel ipv4
    State:          UP
198.18.1.12 BGP        ---        up     10:00:02.000  Established
  BGP state:          Established
    Neighbor address: 198.18.1.12
    Neighbor AS:      65001
198.18.1.14 BGP        ---        start  10:00:00.000  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 198.18.1.14
    Neighbor AS:      65002
"""


def test_bgp_states_by_neighbour_address():
    assert bird.parse_protocols(SHOW_PROTOCOLS_ALL) == {
        "198.18.1.12": "Established",
        "198.18.1.14": "Active",
    }


def test_the_doctests_of_the_bird_module():
    import doctest

    assert doctest.testmod(bird).failed == 0


# -- the lab picks each device's OS from its platform ---------------------------------------------


def test_a_planned_bird_router_starts_with_the_bird_factory_default(topo):
    from runbooks.lab import frr
    from runbooks.lab import lab as lab_ops

    border1, leaf3 = topo.device("border1"), topo.device("leaf3")
    assert lab_ops._config_for(topo, border1, None) == bird.factory_config(topo, "border1")
    assert lab_ops._config_for(topo, leaf3, None) == frr.factory_config("leaf3")


def test_netbox_renders_the_platforms_of_active_devices_only(topo):
    from types import SimpleNamespace

    from runbooks.lab import lab as lab_ops

    asked: list[str] = []

    def render_configs(platform: str = "frr") -> dict[str, str]:
        asked.append(platform)
        return {f"a-{platform}-router": "..."}

    nb = SimpleNamespace(render_configs=render_configs)
    assert set(lab_ops._render(nb, topo)) == {"a-frr-router"}  # border1 is planned
    assert asked == ["frr"]
    active = topo.model_copy(
        update={
            "devices": [
                d.model_copy(update={"status": "active"}) if d.name == "border1" else d
                for d in topo.devices
            ]
        }
    )
    asked.clear()
    assert set(lab_ops._render(nb, active)) == {"a-frr-router", "a-bird2-router"}
    assert asked == ["frr", "bird2"]
