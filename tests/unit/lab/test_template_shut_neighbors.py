"""The lab's config templates with the render context ``runbooks_shut_neighbors`` (what
fault-network's bounce-bgp asks NetBox for): the service rendering with those sessions
administratively shut, every other line as in the service rendering; rendered the way NetBox
renders them (sandboxed Jinja2, StrictUndefined), the BIRD one parsed by the real `bird -p`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.netbox_templates import Cable, Device, Iface, render

pytest.importorskip("netaddr")


def router() -> Device:
    """A router cabled to two spines (both cables connected), its management interface eth0."""
    spine1, spine2 = Device("spine1", 65001), Device("spine2", 65002)
    spine1.ifaces = [Iface("swp4", ["198.18.1.12/31"], device=spine1, id=11)]
    spine2.ifaces = [Iface("swp4", ["198.18.1.14/31"], device=spine2, id=21)]
    return Device(
        "border1",
        65201,
        [
            Iface("eth0", ["198.18.0.24/24"], id=1),
            Iface("lo", ["198.18.255.21/32"], id=2),
            Iface("swp1", ["198.18.1.13/31"], Cable("connected"), spine1.ifaces, id=3),
            Iface("swp2", ["198.18.1.15/31"], Cable("connected"), spine2.ifaces, id=4),
        ],
        mgmt="eth0",
    )


# the line each template shuts a session with, right after the neighbour's own lines
SHUT_LINE = {
    "frr.conf.j2": " neighbor 198.18.1.12 shutdown\n",
    "bird.conf.j2": "\tdisabled;\n",
}


@pytest.mark.parametrize("template", sorted(SHUT_LINE))
def test_one_shut_neighbour_is_the_service_rendering_with_that_session_shut(
    template: str,
) -> None:
    service = render(template, router(), runbooks_intent="service")
    shut = render(template, router(), runbooks_shut_neighbors=["198.18.1.12"])
    assert shut != service
    assert shut.count(SHUT_LINE[template]) == 1
    assert shut.replace(SHUT_LINE[template], "", 1) == service  # nothing else differs
    if template == "bird.conf.j2":  # the disabled protocol is the one named by the address
        block = shut.split("protocol bgp '198.18.1.12' {\n", 1)[1].split("}\n}\n", 1)[0]
        assert "\tdisabled;\n" in block
    else:
        assert "198.18.1.14 shutdown" not in shut


@pytest.mark.parametrize("template", sorted(SHUT_LINE))
def test_no_or_an_unknown_neighbour_renders_the_service_configuration(template: str) -> None:
    service = render(template, router())
    assert render(template, router(), runbooks_shut_neighbors=[]) == service
    assert render(template, router(), runbooks_shut_neighbors=["198.18.1.99"]) == service


@pytest.mark.parametrize("template", sorted(SHUT_LINE))
def test_drain_still_shuts_every_session(template: str) -> None:
    drain = render(template, router(), runbooks_intent="drain")
    both = render(template, router(), runbooks_shut_neighbors=["198.18.1.12", "198.18.1.14"])
    assert drain == both
    assert render(template, router(), runbooks_intent="drain", runbooks_shut_neighbors=[]) == drain


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 is not installed")
def test_bird_itself_parses_a_rendering_with_one_session_shut(tmp_path: Path) -> None:
    conf = tmp_path / "bird.conf"
    conf.write_text(render("bird.conf.j2", router(), runbooks_shut_neighbors=["198.18.1.14"]))
    parsed = subprocess.run(
        ["bird", "-p", "-c", str(conf)], capture_output=True, text=True, check=False
    )
    assert parsed.returncode == 0, parsed.stderr
