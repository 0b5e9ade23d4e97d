"""The network gateway on the lab's FRR devices: the driver picked from the NetBox platform,
getters and compare in a plan, clear errors for an unreachable device and refused keys."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.errors import (
    AuthenticationError,
    ConnectError,
    DryRunViolation,
    InputError,
    ReadOnlyViolation,
    RejectedError,
)
from runbooks.core.gateway import Mode
from runbooks.gateways.network import Credentials, DeviceTarget, NetworkGateway
from runbooks.lab import frr, netbox


def creds(params: dict[str, Any], timeout: int = 10) -> Credentials:
    return Credentials(
        params["username"], key_file=params["key_file"], port=params["port"], timeout=timeout
    )


def device(name: str, mode: Mode = Mode.PLAN) -> NetworkGateway:
    params = frr.device_ssh_params(name)
    return NetworkGateway(mode, DeviceTarget(name, params["host"], "frr"), creds(params), "t")


def test_getters_on_a_lab_device(lab: Any) -> None:
    gw = device("spine1")
    try:
        assert gw.driver_name == "frr"
        assert gw.facts()["hostname"] == "spine1"
        peers = gw.bgp_neighbors()["global"]["peers"]
        assert len(peers) == 2 and all(p["is_up"] for p in peers.values())
        lldp = gw.lldp_neighbors()
        assert {n[0]["hostname"] for n in lldp.values()} >= {"leaf1", "leaf2"}
        assert gw.calls == 3
    finally:
        gw.close()


def test_a_plan_compares_the_rendered_config_and_cannot_commit(lab: Any) -> None:
    rendered = netbox.render_configs()["spine1"]
    gw = device("spine1")
    try:
        running_before = gw.config()
        diff = gw.compare(rendered + "\nip route 198.18.250.0/24 Null0\n")
        assert "ip route 198.18.250.0/24 Null0" in diff
        with pytest.raises(DryRunViolation):
            gw.commit(rendered)
        assert gw.config() == running_before
    finally:
        gw.close()


def test_unreachable_and_refused_credentials(lab: Any, tmp_path: Path) -> None:
    params = frr.device_ssh_params("leaf1")
    nobody = NetworkGateway(
        Mode.PLAN, DeviceTarget("ghost", "198.18.0.99", "frr"), creds(params, timeout=3), "t"
    )
    with pytest.raises(ConnectError, match="ghost: unreachable while connecting"):
        nobody.facts()
    wrong_key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)], check=True
    )
    intruder = NetworkGateway(
        Mode.PLAN,
        DeviceTarget("leaf1", params["host"], "frr"),
        Credentials("root", key_file=str(wrong_key), timeout=5),
        "t",
    )
    with pytest.raises(AuthenticationError, match="leaf1: credentials refused"):
        intruder.facts()


WRITES = ["clear bgp *", "configure terminal", "write memory", "show run | tee /tmp/x"]


def _device_state(name: str) -> dict[str, Any]:
    """What a plan must leave as it was: the running configuration, the BGP sessions, and the
    driver's working files on the box."""
    running = frr.run_on_device(name, ["vtysh", "-c", "show running-config"], check=True).stdout
    files = frr.run_on_device(name, ["sh", "-c", "ls -a /etc/frr/napalm /tmp 2>/dev/null"])
    return {"running": running, "bgp": frr.bgp_states(name), "files": files.stdout}


def test_a_write_through_every_read_path_of_a_plan_changes_nothing_on_the_device(
    lab_reset: Any,
) -> None:
    """Issue 15's done-when on a real FRR router: in a plan, a write command sent through
    every read path the gateway has is refused before it reaches the wire (or, inside a
    compare, stays a candidate that is discarded), and the device is as it was."""
    before = _device_state("spine1")
    gw = device("spine1")
    refused: list[str] = []
    try:
        for write in WRITES:
            with pytest.raises(ReadOnlyViolation) as cli_refusal:
                gw.cli([write])
            refused.append(str(cli_refusal.value))
            with pytest.raises(InputError):
                gw.route_to(f"198.18.255.1/32\n{write}")
            # a compare loads the write as candidate text only: FRR refuses it as
            # configuration (or shows it as a diff) and the candidate is discarded
            with contextlib.suppress(RejectedError):
                gw.compare(f"{gw.config_with_secrets()}\n{write}\n")
        for attempt in (
            lambda d: d.commit_config(),
            lambda d: d.rollback(),
            lambda d: d.load_merge_candidate(config="router bgp 65001\n neighbor 1.1.1.1 shutdown"),
            lambda d: d.cli(["clear bgp *"]),
        ):
            with pytest.raises(ReadOnlyViolation):
                gw._call("trying a write", attempt)
        for write_method in (lambda: gw.commit("hostname evil\n"), gw.confirm, gw.rollback):
            with pytest.raises(DryRunViolation):
                write_method()
        # and every getter still answers
        assert gw.facts()["hostname"] == "spine1"
        assert gw.route_to("198.18.255.11/32")
    finally:
        gw.close()
    assert all(line.startswith("spine1: ") and "\n" not in line for line in refused), refused
    assert _device_state("spine1") == before
