"""ping and traceroute from the box itself (iputils' ping, traceroute), as NAPALM shapes.

The commands are built here as data, the output parsed by pure functions.
"""

from __future__ import annotations

import ipaddress
import math
import re

from napalm.base import models

from napalm_frr.shell import q

PING_INTERVAL = 0.2  # seconds between echo requests (iputils' minimum for non-root users)
TRACEROUTE_MAX_HOPS = 30  # traceroute's own default, used when NAPALM's 255 means "no limit"
_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")
_PING_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")
_PING_REPLY = re.compile(r"bytes from ([^\s:]+):.* time=([\d.]+) ms")


def ping_deadline(count: int, timeout: int) -> int:
    """Seconds ping may run at most: the requests, then ``timeout`` for the last answer.

    >>> ping_deadline(5, 2)
    3
    """
    return math.ceil(count * PING_INTERVAL + timeout)


def ping_command(
    destination: str,
    *,
    source: str = "",
    ttl: int = 255,
    timeout: int = 2,
    size: int = 100,
    count: int = 5,
    vrf: str = "",
    source_interface: str = "",
) -> str:
    """iputils' ``ping``; ``-I`` binds to the source interface, else the VRF device, else
    the source address (ping takes one of them).

    >>> ping_command("198.18.255.2", count=3, vrf="TEST")
    'ping -n -c 3 -i 0.2 -W 2 -s 100 -t 255 -I TEST 198.18.255.2'
    """
    args = ["ping", "-n", "-c", str(count), "-i", str(PING_INTERVAL), "-W", str(timeout)]
    # no -w deadline: with one, ping keeps sending past ``count`` until it gets answers
    args += ["-s", str(size), "-t", str(ttl)]
    bind = source_interface or vrf or source
    if bind:
        args += ["-I", bind]
    return " ".join(q(a) for a in [*args, destination])


def parse_ping(output: str) -> models.PingResultDict:
    """NAPALM's ping result from iputils' output: ``success`` with the statistics when ping
    ran (0 answers is a success with 100 % loss), ``error`` with its words otherwise."""
    summary = _PING_SUMMARY.search(output)
    if summary is None:
        return {"error": output.strip() or "ping printed nothing"}
    sent, received = int(summary.group(1)), int(summary.group(2))
    rtt = _PING_RTT.search(output)
    rtt_min, rtt_avg, rtt_max, rtt_mdev = (
        (float(rtt.group(i)) for i in range(1, 5)) if rtt else (0.0, 0.0, 0.0, 0.0)
    )
    results = [
        {"ip_address": m.group(1), "rtt": float(m.group(2))} for m in _PING_REPLY.finditer(output)
    ]
    return {
        "success": {
            "probes_sent": sent,
            "packet_loss": sent - received,
            "rtt_min": rtt_min,
            "rtt_max": rtt_max,
            "rtt_avg": rtt_avg,
            "rtt_stddev": rtt_mdev,
            "results": results,
        }
    }


def traceroute_hops(ttl: int) -> int:
    """NAPALM's default ttl 255 would wait 255 hops for an unreachable address.

    >>> traceroute_hops(255), traceroute_hops(8)
    (30, 8)
    """
    return TRACEROUTE_MAX_HOPS if ttl <= 0 or ttl >= 255 else ttl


def traceroute_command(
    destination: str, source: str = "", ttl: int = 255, timeout: int = 2, vrf: str = ""
) -> str:
    """``traceroute`` (UDP, numeric, 3 probes a hop); ``-i`` sends through the VRF device.

    >>> traceroute_command("198.18.255.2", source="198.18.255.1")
    'traceroute -n -q 3 -w 2 -m 30 -s 198.18.255.1 198.18.255.2'
    """
    args = ["traceroute", "-n", "-q", "3", "-w", str(timeout), "-m", str(traceroute_hops(ttl))]
    if source:
        args += ["-s", source]
    if vrf:
        args += ["-i", vrf]
    return " ".join(q(a) for a in [*args, destination])


def _is_address(token: str) -> bool:
    try:
        ipaddress.ip_address(token)
    except ValueError:
        return False
    return True


def _hop_probes(tokens: list[str]) -> dict[int, models.TracerouteDict]:
    """``198.18.1.0  0.061 ms  0.012 ms 198.18.1.8  0.045 ms`` or ``* * *`` -> probes.

    A probe without an answer is ``*`` with rtt 0.0; ``!H``-style annotations are dropped.
    """
    probes: dict[int, models.TracerouteDict] = {}
    address = "*"
    for index, token in enumerate(tokens):
        if token == "*":  # noqa: S105 - traceroute's "no answer", not a password
            probes[len(probes) + 1] = {"rtt": 0.0, "ip_address": "*", "host_name": "*"}
        elif _is_address(token):
            address = token
        elif index + 1 < len(tokens) and tokens[index + 1] == "ms":
            try:
                rtt = float(token)
            except ValueError:
                continue
            probes[len(probes) + 1] = {"rtt": rtt, "ip_address": address, "host_name": address}
    return probes


def parse_traceroute(output: str) -> models.TracerouteResultDict:
    """NAPALM's traceroute result: hop number -> probes, or ``error`` with traceroute's words
    (not installed, unknown host, ...). ``host_name`` is the address (``-n``: no DNS)."""
    lines = output.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("traceroute to ")), None)
    if start is None:
        return {"error": output.strip() or "traceroute printed nothing"}
    hops: dict[int, models.TracerouteResultDictEntry] = {}
    for line in lines[start + 1 :]:
        words = line.split()
        if words and words[0].isdigit():
            hops[int(words[0])] = {"probes": _hop_probes(words[1:])}
    return {"success": hops}
