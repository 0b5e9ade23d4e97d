"""Live tests against real FRR devices (see conftest.py for how they are found).

Run: ``pytest -m lab tests/lab -v --durations=0``. Every change is reverted; the
configuration touched is a description on ``lo``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from frr_lab import make_driver  # on sys.path via conftest.py
from napalm.base import models
from napalm.base.exceptions import (
    CommitConfirmException,
    CommitError,
    MergeConfigException,
    ReplaceConfigException,
)
from napalm.base.test import helpers

from napalm_frr import FRRDriver

pytestmark = pytest.mark.lab


def _marker() -> str:
    return f"napalm-frr-test-{uuid.uuid4().hex[:8]}"


def _merge_lo_description(text: str) -> str:
    return f"interface lo\n description {text}\nexit\n"


def _wait_until(condition: Any, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.2)
    return True


def _running(dev: FRRDriver) -> str:
    return str(dev.get_config(retrieve="running")["running"])


def test_getters_return_napalm_models(any_device: dict[str, Any] | None) -> None:
    if any_device is None:
        pytest.skip("no FRR devices (see frr_lab.py), or live tests deselected")
    driver = make_driver(any_device)
    timings: dict[str, float] = {}

    def timed(name: str) -> Any:
        start = time.perf_counter()
        result = getattr(driver, name)()
        timings[name] = round(time.perf_counter() - start, 3)
        return result

    timed("open")
    try:
        facts = timed("get_facts")
        assert helpers.test_model(models.FactsDict, facts)
        for data in timed("get_interfaces").values():
            assert helpers.test_model(models.InterfaceDict, data)
        for data in timed("get_interfaces_ip").values():
            for family in data.values():
                for entry in family.values():
                    assert helpers.test_model(models.InterfacesIPDictEntry, entry)
        for neighbours in timed("get_lldp_neighbors").values():
            for n in neighbours:
                assert helpers.test_model(models.LLDPNeighborDict, n)
        for neighbours in timed("get_lldp_neighbors_detail").values():
            for n in neighbours:
                assert helpers.test_model(models.LLDPNeighborDetailDict, n)
        for vrf in timed("get_bgp_neighbors").values():
            for peer in vrf["peers"].values():
                assert helpers.test_model(models.PeerDict, peer)
        assert helpers.test_model(models.ConfigDict, timed("get_config"))
    finally:
        driver.close()
    print(facts["hostname"], json.dumps(timings))


def test_open_fails_cleanly_on_wrong_port(device_params: dict[str, Any]) -> None:
    from napalm.base.exceptions import ConnectionException

    params = {**device_params, "port": 1, "optional_args": {"conn_timeout": 2}}
    dev = make_driver(params)
    with pytest.raises(ConnectionException):
        dev.open()


def test_merge_compare_commit_rollback(driver: FRRDriver) -> None:
    marker = _marker()
    before = _running(driver)
    driver.load_merge_candidate(config=_merge_lo_description(marker))
    diff = driver.compare_config()
    assert "Lines To Add" in diff and marker in diff
    driver.commit_config(message="live test: merge")
    assert marker in _running(driver)
    assert driver.compare_config() == ""  # candidate cleared by the commit
    driver.rollback()
    assert marker not in _running(driver)
    assert _running(driver) == before


def test_replace_with_running_is_empty_diff_and_discard(driver: FRRDriver) -> None:
    driver.load_replace_candidate(config=_running(driver))
    assert driver.compare_config() == ""
    driver.discard_config()
    assert driver.compare_config() == ""
    assert driver.get_config(retrieve="candidate")["candidate"] == ""


def test_rejected_config_raises(driver: FRRDriver) -> None:
    with pytest.raises(MergeConfigException, match="Unknown command"):
        driver.load_merge_candidate(config="router bgp 64512\n neighbour 10.0.0.1 remote-as 1\n")
    with pytest.raises(ReplaceConfigException):
        driver.load_replace_candidate(config="interface lo\n ip adress 1.2.3.4/32\n")


def test_commit_confirm_and_confirm(driver: FRRDriver) -> None:
    marker = _marker()
    driver.load_merge_candidate(config=_merge_lo_description(marker))
    driver.commit_config(message="live test: confirm", revert_in=60)
    try:
        assert driver.has_pending_commit()
        startup = driver.get_config(retrieve="startup")["startup"]
        assert marker not in startup  # startup stays old until confirmed
        with pytest.raises(CommitError):
            driver.commit_config()
        timer = driver._sh(f"sed -n 's/^pid=//p' {driver.paths.pending}").split()[-1]
        alive = f"tr -d '\\0' < /proc/{timer}/cmdline 2>/dev/null | grep -c napalm-frr-revert"
        assert driver._sh(alive).split()[-1] == "1"
        driver.confirm_commit()
        assert not driver.has_pending_commit()
        assert _wait_until(lambda: driver._sh(alive).split()[-1] == "0", 3), "timer still runs"
        assert marker in driver.get_config(retrieve="startup")["startup"]
        with pytest.raises(CommitConfirmException):
            driver.confirm_commit()
    finally:
        driver.rollback()
    assert marker not in _running(driver)


COMMIT_AND_HANG = """
import json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
from frr_lab import make_driver  # on sys.path via conftest.py
dev = make_driver(json.loads(sys.argv[2]))
dev.open()
dev.load_merge_candidate(config=sys.argv[3])
dev.commit_config(message="live test: revert after kill", revert_in=int(sys.argv[4]))
print("COMMITTED", flush=True)
time.sleep(3600)
"""


def test_revert_in_fires_after_our_process_was_killed(device_params: dict[str, Any]) -> None:
    """The issue's acceptance test: kill -9 after commit, the device reverts on its own."""
    revert_in = 8
    marker = _marker()
    here = os.path.dirname(__file__)
    probe = make_driver(device_params)
    probe.open()
    before = probe.get_config(retrieve="all")
    probe.close()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            COMMIT_AND_HANG,
            json.dumps([here, *sys.path]),
            json.dumps(device_params),
            _merge_lo_description(marker),
            str(revert_in),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        committed_at = time.monotonic()
        assert line.strip() == "COMMITTED"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    dev = make_driver(device_params)
    dev.open()
    try:
        assert marker in _running(dev)
        assert dev.has_pending_commit()
        deadline = committed_at + revert_in + 20
        while time.monotonic() < deadline and marker in _running(dev):
            time.sleep(0.5)
        reverted_after = time.monotonic() - committed_at
        print(f"reverted {reverted_after:.1f}s after the commit (revert_in={revert_in})")
        assert marker not in _running(dev), "the device did not revert"
        assert reverted_after >= revert_in - 1
        assert _wait_until(lambda: not dev.has_pending_commit(), 5)
        after = dev.get_config(retrieve="all")
        assert after["running"] == before["running"], "running is not the old configuration"
        assert after["startup"] == before["startup"], "frr.conf is not the old configuration"
    finally:
        if dev.has_pending_commit():
            dev.rollback()
        dev.close()


def _established(dev: FRRDriver) -> dict[str, Any]:
    peers = dev.get_bgp_neighbors().get("global", {}).get("peers", {})
    return {address: peer for address, peer in peers.items() if peer["is_up"]}


def _converged(dev: FRRDriver, seconds: float = 90) -> dict[str, Any]:
    """The established peers once each has sent its prefixes (another session may have
    reset the lab just before this test held it)."""

    def ready() -> bool:
        peers = dev.get_bgp_neighbors().get("global", {}).get("peers", {})
        return bool(peers) and all(
            p["is_up"] and p["address_family"]["ipv4"]["received_prefixes"] > 0
            for p in peers.values()
            if p["is_enabled"]
        )

    _wait_until(ready, seconds)
    return _established(dev)


def _models(items: Any, model: Any, allow_subset: bool = False) -> bool:
    return all(helpers.test_model(model, item, allow_subset=allow_subset) for item in items)


def test_new_getters_answer_what_the_device_does(any_device: dict[str, Any] | None) -> None:
    """Every getter added for the runbooks, on every lab device, checked against what the
    device's own BGP sessions show: routes to the peers' loopbacks are installed, the peers
    answer ARP, ping and traceroute, and appear in the BGP configuration and details."""
    if any_device is None:
        pytest.skip("no FRR devices (see frr_lab.py), or live tests deselected")
    dev = make_driver(any_device)
    dev.open()
    try:
        peers = _converged(dev)
        arp = dev.get_arp_table()
        assert _models(arp, models.ARPTableDict)
        config = dev.get_bgp_config()
        configured = {n for group in config.values() for n in group["neighbors"]}
        detail = dev.get_bgp_neighbors_detail()
        for address, peer in peers.items():
            routes = dev.get_route_to(f"{peer['remote_id']}/32")
            entries = routes[f"{peer['remote_id']}/32"]
            assert _models(entries, models.RouteDict)
            assert any(e["current_active"] and e["protocol"] == "bgp" for e in entries), routes
            assert address in {e["ip"] for e in arp}
            ping = dev.ping(address, count=2)
            assert ping["success"]["packet_loss"] == 0, ping
            hops = dev.traceroute(address, ttl=3)["success"]
            assert hops[1]["probes"][1]["ip_address"] == address
            assert address in configured
            by_as = detail["global"][peer["remote_as"]]
            assert any(d["remote_address"] == address and d["up"] for d in by_as)
        for group in config.values():
            assert helpers.test_model(models.BGPConfigGroupDict, group)
            assert _models(group["neighbors"].values(), models.BGPConfigNeighborDict)
        for by_as in detail.values():
            for details in by_as.values():
                assert _models(details, models.PeerDetailsDict)
        longer = dev.get_route_to("198.18.255.0/24", protocol="bgp", longer=True)
        assert {f"{p['remote_id']}/32" for p in peers.values()} <= set(longer)
        assert dev.get_route_to("198.19.254.1") == {}  # nothing routes there
        assert _models(dev.get_ipv6_neighbors_table(), models.IPV6NeighborDict)
        env = dev.get_environment()
        assert env["cpu"] and env["memory"]["available_ram"] > env["memory"]["used_ram"] > 0
        assert _models(env["cpu"].values(), models.CPUDict)
        users = dev.get_users()
        assert users["root"]["level"] == 15 and users["root"]["password"] == ""
        instances = dev.get_network_instances()
        assert instances["default"]["type"] == "DEFAULT_INSTANCE"
        interfaces = set(instances["default"]["interfaces"]["interface"])
        assert set(dev.get_interfaces()) <= interfaces
        assert _models(dev.get_mac_address_table(), models.MACAdressTable)
        assert _models(dev.get_vlans().values(), models.VlanDict)
        assert _models(dev.get_ntp_servers().values(), models.NTPServerDict, allow_subset=True)
        assert _models(dev.get_ntp_stats(), models.NTPStats)
        assert isinstance(dev.get_ntp_peers(), dict)
        assert helpers.test_model(models.SNMPDict, dev.get_snmp_information())
        sanitized = dev.get_config(sanitized=True)
        assert helpers.test_model(models.ConfigDict, sanitized)
        assert "password" not in sanitized["running"] or "<removed>" in sanitized["running"]
    finally:
        dev.close()


def test_shut_neighbour_is_not_enabled_and_receives_nothing(driver: FRRDriver) -> None:
    """What rack-out's drain checks: `neighbor X shutdown` -> is_enabled False, no prefixes."""
    peers = _converged(driver)
    assert peers, f"{driver.hostname}: no established BGP session (the lab's BGP is down)"
    address, peer = next(iter(sorted(peers.items())))
    assert peer["is_enabled"] and peer["address_family"]["ipv4"]["received_prefixes"] > 0
    local_as = peer["local_as"]
    driver.load_merge_candidate(
        config=f"router bgp {local_as}\n neighbor {address} shutdown\nexit\n"
    )
    driver.commit_config(message="live test: shut a neighbour")
    try:
        shut = driver.get_bgp_neighbors()["global"]["peers"][address]
        assert shut["is_enabled"] is False and shut["is_up"] is False
        assert shut["address_family"]["ipv4"]["received_prefixes"] == 0
        assert shut["address_family"]["ipv4"]["accepted_prefixes"] == 0
        routes = driver.get_route_to(f"{peer['remote_id']}/32", protocol="bgp")
        assert not any(
            e["current_active"] and e["next_hop"] == address
            for e in routes.get(f"{peer['remote_id']}/32", [])
        )
    finally:
        driver.rollback()

    def received_again() -> bool:
        back = _established(driver).get(address)
        return bool(back) and back["address_family"]["ipv4"]["received_prefixes"] > 0

    assert _wait_until(received_again, 60), "the session did not come back with its prefixes"


def test_load_compare_discard_leaves_nothing_on_the_device(
    device_params: dict[str, Any],
) -> None:
    """A compare in a plan must leave the device as it was: with a state directory that did
    not exist, load + compare + discard leaves not even the directory."""
    state_dir = f"/etc/frr/napalm-test-{uuid.uuid4().hex[:8]}"
    optional = {**device_params.get("optional_args", {}), "state_dir": state_dir}
    dev = make_driver({**device_params, "optional_args": optional})
    dev.open()
    try:
        listing = f"ls -A {state_dir} 2>/dev/null; echo end"
        for load in ("merge", "replace"):
            if load == "merge":
                dev.load_merge_candidate(config=_merge_lo_description(_marker()))
            else:
                dev.load_replace_candidate(config=_running(dev))
            dev.compare_config()
            assert f"candidate-{dev._config.session}.conf" in dev._sh(listing)
            dev.discard_config()
            assert dev._sh(listing).split() == ["end"]
            assert dev._sh(f"test -e {state_dir} && echo left || echo gone").split() == ["gone"]
    finally:
        dev._sh(f"rm -rf {state_dir}")
        dev.close()


def test_received_and_accepted_prefixes_differ_under_inbound_policy(driver: FRRDriver) -> None:
    """With soft-reconfiguration inbound and a route-map refusing the peer's loopback,
    received_prefixes counts what the peer sent, accepted_prefixes what policy kept."""
    peers = _converged(driver)
    assert peers, f"{driver.hostname}: no established BGP session (the lab's BGP is down)"
    address, peer = next(iter(sorted(peers.items())))
    refused = f"{peer['remote_id']}/32"
    config = (
        f"ip prefix-list NAPALM-FRR-LIVE seq 5 permit {refused}\n"
        "route-map NAPALM-FRR-LIVE deny 10\n match ip address prefix-list NAPALM-FRR-LIVE\nexit\n"
        "route-map NAPALM-FRR-LIVE permit 20\nexit\n"
        f"router bgp {peer['local_as']}\n address-family ipv4 unicast\n"
        f"  neighbor {address} soft-reconfiguration inbound\n"
        f"  neighbor {address} route-map NAPALM-FRR-LIVE in\n exit-address-family\nexit\n"
    )
    driver.load_merge_candidate(config=config)
    driver.commit_config(message="live test: inbound policy")
    try:
        expected = peer["address_family"]["ipv4"]["accepted_prefixes"] - 1

        def policy_applied() -> bool:  # bgpd applies route-map changes after a delay (5 s)
            family = driver.get_bgp_neighbors()["global"]["peers"][address]["address_family"]
            ipv4 = family["ipv4"]
            return ipv4["accepted_prefixes"] == expected < ipv4["received_prefixes"]

        assert _wait_until(policy_applied, 30), driver.get_bgp_neighbors()
    finally:
        driver.rollback()
