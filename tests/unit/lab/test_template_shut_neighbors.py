"""The lab's config templates with the render context ``runbooks_shut_neighbors`` (what
fault-network's bounce-bgp asks NetBox for): the service rendering with those sessions
administratively shut, every other line as in the service rendering; rendered the way NetBox
renders them (sandboxed Jinja2, StrictUndefined), the BIRD one parsed by the real `bird -p`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.netbox_templates import Device, render
from tests.unit.lab.test_bird_lab import _border1

pytest.importorskip("netaddr")


def router() -> Device:
    """border1 cabled to both spines (both cables connected), its management interface eth0."""
    return _border1()


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
