"""Parsers and shell builders, as data tables (the recorded-device cases are in mocked_data)."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from napalm.base.helpers import sanitize_config

from napalm_frr import bgp, kernel, parsers, probes, readers, routes, shell, system
from napalm_frr.errors import FRROutputError


@pytest.mark.parametrize("module", [parsers, readers, shell, bgp, kernel, probes, routes, system])
def test_doctests(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


RELOAD_TEST_OUTPUT = """
Lines To Delete
===============
interface eth1
 no description old

Lines To Add
============
ip route 10.0.0.0/8 Null0
"""


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        ("", ""),
        ("\n", ""),
        (RELOAD_TEST_OUTPUT, RELOAD_TEST_OUTPUT.strip()),
        (
            "\nLines To Add\n============\nip route 10.0.0.0/8 Null0\n",
            "Lines To Add\n============\nip route 10.0.0.0/8 Null0",
        ),
    ],
)
def test_parse_reload_diff(sent: str, received: str) -> None:
    assert readers.parse_reload_diff(sent) == received


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        ("__NAPALM_BEGIN__\n__NAPALM_RC=0\n", ("", 0)),
        (
            "printf '%s' '__NAPALM''_BEGIN__'; x\n__NAPALM_BEGIN__\nout\n__NAPALM_RC=4",
            ("out", 4),
        ),
        ("\x1b[91mERROR\x1b[0m\n__NAPALM_RC=1\n", ("ERROR", 1)),
    ],
)
def test_split_rc(sent: str, received: tuple[str, int]) -> None:
    assert readers.split_rc(sent) == received


def test_split_rc_without_status_raises() -> None:
    with pytest.raises(FRROutputError):
        readers.split_rc("bash: syntax error")


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        ("line 3: % Unknown command[25]:  bogus", ["line 3: % Unknown command[25]:  bogus"]),
        ("% Ambiguous command: sh", ["% Ambiguous command: sh"]),
        (
            "line 4: % Command incomplete[25]:  neighbor 1.2.3.4",
            ["line 4: % Command incomplete[25]:  neighbor 1.2.3.4"],
        ),
        ("all good", []),
    ],
)
def test_vtysh_errors(sent: str, received: list[str]) -> None:
    assert readers.vtysh_errors(sent) == received


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        (" neighbor 10.0.0.1 password s3cr3t", " neighbor 10.0.0.1 password <removed>"),
        ("password zebra", "password <removed>"),
        ("enable password zebra", "enable password <removed>"),
        (" ip ospf authentication-key abc", " ip ospf authentication-key <removed>"),
        (" ip ospf message-digest-key 1 md5 abc", " ip ospf message-digest-key 1 md5 <removed>"),
        ("  key-string k3y", "  key-string <removed>"),
        (" neighbor 10.0.0.1 remote-as 65001", " neighbor 10.0.0.1 remote-as 65001"),
    ],
)
def test_sanitize_filters(sent: str, received: str) -> None:
    assert sanitize_config(sent, readers.SANITIZE_FILTERS) == received


def _lldp(port_id_type: str, port_id: str, descr: str | None) -> dict[str, Any]:
    port: dict[str, Any] = {"id": [{"type": port_id_type, "value": port_id}]}
    if descr is not None:
        port["descr"] = [{"value": descr}]
    return {
        "lldp": [
            {
                "interface": [
                    {
                        "name": "swp1",
                        "chassis": [
                            {"id": [{"type": "mac", "value": "aa:bb"}], "name": [{"value": "r2"}]}
                        ],
                        "port": [port],
                    }
                ]
            }
        ]
    }


@pytest.mark.parametrize(
    ("port_id_type", "port_id", "descr", "port"),
    [
        ("ifname", "swp7", "uplink", "swp7"),  # lldpd with portidsubtype ifname
        ("mac", "aa:bb:cc:dd:ee:ff", "swp7", "swp7"),  # lldpd default: MAC id, ifname descr
        ("mac", "aa:bb:cc:dd:ee:ff", None, "aa:bb:cc:dd:ee:ff"),
        ("local", "7", None, "7"),
    ],
)
def test_lldp_port_name(port_id_type: str, port_id: str, descr: str | None, port: str) -> None:
    result = parsers.parse_lldp_neighbors(_lldp(port_id_type, port_id, descr))
    assert result == {"swp1": [{"hostname": "r2", "port": port}]}


def test_lldp_without_neighbours() -> None:
    assert parsers.parse_lldp_neighbors({"lldp": [{}]}) == {}


def test_bgp_without_bgp() -> None:
    assert parsers.parse_bgp_neighbors({}, {}) == {}


def test_load_json_reports_vtysh_errors() -> None:
    with pytest.raises(FRROutputError, match="failed to connect"):
        readers.load_json("Exiting: failed to connect to any daemons.", "show interface json")


def test_strip_running_header() -> None:
    text = "Building configuration...\n\nCurrent configuration:\n!\nhostname r1\n!\nend\n"
    assert readers.strip_running_header(text) == "!\nhostname r1\n!\nend\n"


def test_upload_command_round_trips_any_text(tmp_path: Any) -> None:
    import subprocess

    target = tmp_path / "f.conf"
    content = "line with 'quotes' and $HOME and `ticks`\n\\ backslash\n" * 50
    cmd = shell.upload(str(target), content, sudo=False, prefix=f"mkdir -p {tmp_path} && ")
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout
    assert readers.split_rc(out) == ("", 0)
    assert target.read_text() == content
