"""Record a real FRR device's answers as a conformance test case.

    python tests/record_mocked_data.py HOST CASE --key-file KEY [--username root] [--port 22]
    python tests/record_mocked_data.py --lab-device leaf1 CASE [--stage]   # the runbooks lab

writes tests/unit/mocked_data/test_<getter>/<CASE>/ with one file per command (named as
napalm.base.test.double.BaseTestDouble expects) and expected_result.json. Review the
expected results before committing them: they are what the driver printed, not truth.

NAPALM's suite asks fixed questions (a BGP route to 1.0.4.0/24, ping and traceroute to
8.8.8.8, a non-empty MAC table, NTP servers). ``--stage`` (runbooks lab only, lab held) makes
the lab able to answer them, then undoes it: a neighbour (``--announcer``, default leaf2)
announces 1.0.4.0/24, 1.0.4.128/25 (blackholed) and 8.8.8.8/32 (on its loopback) in BGP (record
on a device cabled to it, e.g. spine1: the announcer answers pings from the link address); the
recorded device gets a bridge with a veth port and a static MAC, an NTP configuration seen
only in its own mount namespace, one established BGP session (not the announcer's)
administratively shut, and soft-reconfiguration inbound with a route-map refusing 1.0.4.64/26
on the announcer's session (received and accepted prefixes differ). Nothing leaves
the lab: its namespaces have no default route, and ping/traceroute are refused unless
8.8.8.8 is routed to a lab neighbour. Tests that need the staging are recorded only with it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from napalm.base.test.double import BaseTestDouble

from napalm_frr import FRRDriver

MOCKED = Path(__file__).parent / "unit" / "mocked_data"

Call = tuple[str, dict[str, Any]]
GETTERS: dict[str, Call | list[Call]] = {
    "test_is_alive": ("is_alive", {}),
    "test_get_facts": ("get_facts", {}),
    "test_get_interfaces": ("get_interfaces", {}),
    "test_get_interfaces_ip": ("get_interfaces_ip", {}),
    "test_get_interfaces_counters": ("get_interfaces_counters", {}),
    "test_get_lldp_neighbors": ("get_lldp_neighbors", {}),
    "test_get_lldp_neighbors_detail": ("get_lldp_neighbors_detail", {}),
    "test_get_bgp_neighbors": ("get_bgp_neighbors", {}),
    "test_get_bgp_neighbors_detail": ("get_bgp_neighbors_detail", {}),
    "test_get_bgp_config": ("get_bgp_config", {}),
    "test_get_arp_table": ("get_arp_table", {}),
    "test_get_ipv6_neighbors_table": ("get_ipv6_neighbors_table", {}),
    "test_get_environment": ("get_environment", {}),
    "test_get_users": ("get_users", {}),
    "test_get_snmp_information": ("get_snmp_information", {}),
    "test_get_network_instances": ("get_network_instances", {}),
    "test_get_vlans": ("get_vlans", {}),
    "test_get_ntp_peers": ("get_ntp_peers", {}),
    "test_get_ntp_stats": ("get_ntp_stats", {}),
    "test_get_ntp_servers": ("get_ntp_servers", {}),
    "test_get_mac_address_table": ("get_mac_address_table", {}),
    "test_get_route_to": ("get_route_to", {"destination": "1.0.4.0/24", "protocol": "bgp"}),
    "test_get_route_to_longer": (
        "get_route_to",
        {"destination": "1.0.4.0/24", "protocol": "bgp", "longer": True},
    ),
    "test_ping": ("ping", {"destination": "8.8.8.8"}),
    "test_traceroute": ("traceroute", {"destination": "8.8.8.8"}),
    "test_get_config": ("get_config", {}),
    "test_get_config_sanitized": ("get_config", {"sanitized": True}),
    "test_get_config_filtered": [
        ("get_config", {"retrieve": r}) for r in ("running", "startup", "candidate")
    ],
    "test_get_config_sanitized_filtered": [
        ("get_config", {"retrieve": r, "sanitized": True}) for r in ("running", "startup")
    ],
}
# NAPALM's questions only a staged lab answers (see the module's docstring)
NEEDS_STAGING = {
    "test_get_route_to",
    "test_get_route_to_longer",
    "test_ping",
    "test_traceroute",
    "test_get_mac_address_table",
    "test_get_ntp_servers",
}
# questions this lab's kernel (no VRF, no VLAN) and packages (no NTP daemon) cannot answer
# with anything but the empty shape: recorded for the empty-shape tests of test_getters.py
EMPTY_IN_LAB = {"test_get_vlans", "test_get_ntp_peers", "test_get_ntp_stats"}

ANNOUNCED = ("1.0.4.0/24", "1.0.4.128/25")
REFUSED = "1.0.4.64/26"  # announced too, refused by the recorded device's inbound policy
POLICY = "NAPALM-FRR-TEST"
PROBED = "8.8.8.8"
BRIDGE, PORT, PEER = "napbr0", "napt1", "napt0"
STATIC_MAC = "02:00:5e:10:00:01"
NTP_CONF = "[Time]\nNTP=198.18.255.1 198.18.255.2\n"
TIMESYNCD = "/etc/systemd/timesyncd.conf"


class Recorder:
    """Stands in for the Netmiko connection and saves every answer to ``folder``."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.folder = MOCKED

    def send_command(self, command: str, **kwargs: Any) -> str:
        output = str(self.real.send_command(command, **kwargs))
        name = BaseTestDouble.sanitize_text(command) + ".txt"
        (self.folder / name).write_text(output)
        return output

    def is_alive(self) -> bool:
        return bool(self.real.is_alive())


def _on(device: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    from runbooks.lab import frr

    result = frr.run_on_device(device, list(argv), timeout=60)
    if check and result.returncode != 0:
        raise RuntimeError(f"{device}: {argv}: {result.stdout}{result.stderr}")
    return result


def _vtysh_conf(device: str, lines: list[str]) -> None:
    args = ["vtysh", "-c", "configure terminal"]
    for line in lines:
        args += ["-c", line]
    _on(device, *args)


def _bgp_lines(asn: int, no: str = "") -> list[str]:
    lines = [f"{no}ip route {p} blackhole" for p in (*ANNOUNCED, REFUSED)]
    lines += ["interface lo", f" {no}ip address {PROBED}/32", "exit"]
    lines += [f"router bgp {asn}", "address-family ipv4 unicast"]
    lines += [f"{no}network {p}" for p in (*ANNOUNCED, REFUSED, f"{PROBED}/32")]
    return [*lines, "exit-address-family", "exit"]


def _policy_lines(asn: int, peer: str, no: str = "") -> list[str]:
    """Soft-reconfiguration inbound and a route-map refusing one announced prefix from the
    announcer: received (before policy) and accepted prefixes then differ."""
    session = [
        f"router bgp {asn}",
        "address-family ipv4 unicast",
        f"{no}neighbor {peer} soft-reconfiguration inbound",
        f"{no}neighbor {peer} route-map {POLICY} in",
        "exit-address-family",
        "exit",
    ]
    policy = [
        f"ip prefix-list {POLICY} seq 5 permit {REFUSED}",
        f"route-map {POLICY} deny 10",
        f"match ip address prefix-list {POLICY}",
        "exit",
        f"route-map {POLICY} permit 20",
        "exit",
    ]
    if no:  # the session's lines first, then what they named
        return [*session, f"no route-map {POLICY}", f"no ip prefix-list {POLICY}"]
    return [*policy, *session]


def _wait_routed(device: str, seconds: float = 60, paths: int = 1) -> None:
    """Until the device routes 8.8.8.8 and 1.0.4.0/24 to a lab neighbour (198.18.1.0/24),
    the latter over ``paths`` next hops."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        probe = _on(device, "ip", "route", "get", PROBED, check=False).stdout
        route = _on(device, "ip", "route", "show", ANNOUNCED[0], check=False).stdout
        if " via 198.18.1." in probe and route.count("via 198.18.1.") >= paths:
            return
        time.sleep(1)
    raise RuntimeError(f"{device}: {PROBED} is not routed into the lab; not probing it")


def wait_converged(device: str, seconds: float = 90) -> None:
    """Until every BGP session of the device is Established (the lab may have just reset)."""
    from runbooks.lab import frr

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        states = frr.bgp_states(device)
        if all(state == "Established" for state in states.values()):
            return
        time.sleep(1)
    raise RuntimeError(f"{device}: BGP did not converge: {frr.bgp_states(device)}")


@contextmanager
def staged(device: str, announcer: str, multipath: bool = False) -> Iterator[None]:
    """The lab conditions NAPALM's questions need, undone on exit (see the docstring).

    On a device cabled to the announcer: one other session shut, an inbound policy on the
    announcer's. With ``multipath`` (a device two hops away, e.g. leaf1): ECMP over both
    spines instead (multipath-relax, maximum-paths); its pings to 8.8.8.8 go unanswered,
    as the announcer has no route back to its link addresses (a case of total loss).
    """
    from runbooks.lab import topology

    topo = topology.load()
    asn, own_asn = topo.device(announcer).asn, topo.device(device).asn
    peers = _bgp_peers(device)
    with ExitStack() as undo:
        _vtysh_conf(announcer, _bgp_lines(asn))
        undo.callback(_vtysh_conf, announcer, _bgp_lines(asn, no="no "))
        if multipath:
            _vtysh_conf(device, _multipath_lines(own_asn))
            undo.callback(_vtysh_conf, device, _multipath_lines(own_asn, "no "))
        else:
            shut = next(
                address
                for address, peer in peers.items()
                if peer.get("state") == "Established" and peer.get("hostname") != announcer
            )
            lines = [f"router bgp {own_asn}", f"neighbor {shut} shutdown", "exit"]
            _vtysh_conf(device, lines)
            undo.callback(_vtysh_conf, device, [*lines[:1], f"no {lines[1]}", *lines[2:]])
            direct = next(a for a, p in peers.items() if p.get("hostname") == announcer)
            _vtysh_conf(device, _policy_lines(own_asn, direct))
            undo.callback(_vtysh_conf, device, _policy_lines(own_asn, direct, "no "))
        undo.callback(_on, device, "ip", "link", "del", BRIDGE, check=False)
        undo.callback(_on, device, "ip", "link", "del", PEER, check=False)
        script = (
            f"ip link add {BRIDGE} type bridge && ip link add {PEER} type veth peer name {PORT}"
            f" && ip link set {PORT} master {BRIDGE} && ip link set {PORT} up"
            f" && ip link set {PEER} up && ip link set {BRIDGE} up"
            f" && bridge fdb add {STATIC_MAC} dev {PORT} master static"
            f" && printf '{NTP_CONF}' > /tmp/napalm-frr-timesyncd.conf"
            f" && mount -n --bind /tmp/napalm-frr-timesyncd.conf {TIMESYNCD}"
        )
        _on(device, "sh", "-c", script)
        undo.callback(_on, device, "umount", "-n", TIMESYNCD, check=False)
        _wait_routed(device, paths=2 if multipath else 1)
        yield


def _multipath_lines(asn: int, no: str = "") -> list[str]:
    return [
        f"router bgp {asn}",
        f"{no}bgp bestpath as-path multipath-relax",
        "address-family ipv4 unicast",
        f"{no}maximum-paths 4",
        "exit-address-family",
        "exit",
    ]


def _bgp_peers(device: str) -> dict[str, Any]:
    """The device's BGP peers in the default VRF, by address."""
    from runbooks.lab import frr

    peers = frr.vtysh_json(device, "show bgp ipv4 unicast summary json").get("peers", {})
    return dict(sorted(peers.items()))


def record(device: FRRDriver, case: str, only: list[str], staged_lab: bool) -> None:
    device.open()
    recorder = Recorder(device.device)
    device.device = recorder
    for test, calls in GETTERS.items():
        if (only and test not in only) or (test in NEEDS_STAGING and not staged_lab):
            continue
        recorder.folder = MOCKED / test / case
        recorder.folder.mkdir(parents=True, exist_ok=True)
        results = [
            getattr(device, method)(**kwargs)
            for method, kwargs in (calls if isinstance(calls, list) else [calls])
        ]
        result = results[-1]
        if test == "test_get_config_sanitized_filtered":  # the test merges its two calls
            result = {
                "running": results[0]["running"],
                "startup": results[1]["startup"],
                "candidate": "",
            }
        (recorder.folder / "expected_result.json").write_text(
            json.dumps(result, indent=2, sort_keys=True) + "\n"
        )
    device.device = recorder.real
    device.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host", nargs="?", help="the device (or --lab-device)")
    parser.add_argument("case")
    parser.add_argument("--username", default="root")
    parser.add_argument("--key-file")
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--lab-device", help="a device of the runbooks lab, held while recording")
    parser.add_argument("--stage", action="store_true", help="stage the lab (see docstring)")
    parser.add_argument("--announcer", default="leaf2")
    parser.add_argument("--multipath", action="store_true", help="stage ECMP (see staged)")
    parser.add_argument("--only", nargs="*", help="record only these tests (test_get_facts ...)")
    args = parser.parse_args()
    if not args.lab_device:
        device = FRRDriver(
            args.host,
            args.username,
            "",
            optional_args={"key_file": args.key_file, "port": args.port},
        )
        record(device, args.case, args.only or [], staged_lab=False)
        return
    from runbooks.lab import frr
    from runbooks.lab import lab as lab_ops

    params = frr.device_ssh_params(args.lab_device)
    device = FRRDriver(params["host"], "root", "", optional_args={"key_file": params["key_file"]})
    with lab_ops.held(reset_first=False), ExitStack() as stack:
        wait_converged(args.lab_device)
        if args.stage:
            stack.enter_context(staged(args.lab_device, args.announcer, args.multipath))
        record(device, args.case, args.only or [], staged_lab=args.stage)


if __name__ == "__main__":
    main()
