"""Getters about the Linux box around FRR: environment (/proc, /sys), users, NTP and SNMP.

FRR has no users, clock, sensors or SNMP agent of its own (it is an AgentX subagent of
snmpd at most), so these come from the system: the probes are shell snippets (data, below)
and the parsers pure functions of what they printed.
"""

from __future__ import annotations

import shlex
from typing import Any

from napalm.base import models

# Two samples of per-CPU time 0.5 s apart, memory, hwmon sensors and power supplies; one
# round trip, every line tagged with what it is.
ENVIRONMENT_PROBE = (
    "grep '^cpu[0-9]' /proc/stat | sed 's/^/stat1 /'; sleep 0.5; "
    "grep '^cpu[0-9]' /proc/stat | sed 's/^/stat2 /'; "
    "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo | sed 's/^/mem /'; "
    'for d in /sys/class/hwmon/hwmon*; do [ -d "$d" ] || continue; '
    'n=$(cat "$d/name" 2>/dev/null); '
    'for f in "$d"/temp*_input; do [ -r "$f" ] || continue; b=${f%_input}; '
    "printf 'temp|%s %s|%s|%s|%s\\n' \"$n\""
    ' "$(cat "${b}_label" 2>/dev/null || basename "$b")"'
    ' "$(cat "$f")" "$(cat "${b}_max" 2>/dev/null)" "$(cat "${b}_crit" 2>/dev/null)"; done; '
    'for f in "$d"/fan*_input; do [ -r "$f" ] || continue; b=${f%_input}; '
    'printf \'fan|%s %s|%s\\n\' "$n" "$(cat "${b}_label" 2>/dev/null || basename "$b")"'
    ' "$(cat "$f")"; done; done; '
    'for p in /sys/class/power_supply/*; do [ -r "$p/online" ] || continue; '
    'printf \'power|%s|%s\\n\' "$(basename "$p")" "$(cat "$p/online")"; done'
)

# Login accounts (a shell listed in /etc/shells), their groups and authorized keys.
USERS_PROBE = (
    "getent passwd | while IFS=: read -r name _ uid _ _ home shell; do "
    'grep -qxF "$shell" /etc/shells 2>/dev/null || continue; '
    'case "$shell" in */nologin|*/false) continue;; esac; '
    '[ "$uid" -eq 0 ] || [ "$uid" -ge 1000 ] || continue; '
    'printf \'user|%s|%s|%s\\n\' "$name" "$uid" "$(id -nG "$name" 2>/dev/null)"; '
    'cat "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys2" 2>/dev/null'
    " | grep -E '^(ssh-|ecdsa-|sk-)' | sed \"s/^/key|$name|/\"; done"
)
ADMIN_GROUPS = {"sudo", "wheel", "admin", "frrvty"}  # frrvty: may run vtysh, i.e. configure

NTP_FILES = (
    "/etc/chrony/chrony.conf",
    "/etc/chrony.conf",
    "/etc/ntp.conf",
    "/etc/ntpsec/ntp.conf",
    "/etc/openntpd/ntpd.conf",
)
NTP_CONFIG_PROBE = (
    "grep -hsE '^[[:space:]]*(server|pool|peer)[[:space:]]' "
    + " ".join(NTP_FILES)
    + " /etc/chrony/sources.d/*.sources; "
    "grep -hsE '^[[:space:]]*NTP=' /etc/systemd/timesyncd.conf /etc/systemd/timesyncd.conf.d/*.conf"
)
NTP_STATS_PROBE = (
    "if command -v chronyc > /dev/null; then "
    "chronyc -n -c sources 2>/dev/null | sed 's/^/chrony /'; "
    "elif command -v ntpq > /dev/null; then ntpq -pn 2>/dev/null | sed 's/^/ntpq /'; fi"
)
SNMPD_CONF = "/etc/snmp/snmpd.conf"
TALLY = "*+-#.xo"  # ntpq's first column: how ntpd uses the peer


def _cpu_usage(first: list[str], second: list[str]) -> dict[int, models.CPUDict]:
    """Busy share of each CPU between two /proc/stat samples (percent)."""
    cpus: dict[int, models.CPUDict] = {}
    for before, after in zip(first, second, strict=False):
        a = [int(x) for x in before.split()[1:]]
        b = [int(x) for x in after.split()[1:]]
        idle = (b[3] + (b[4] if len(b) > 4 else 0)) - (a[3] + (a[4] if len(a) > 4 else 0))
        total = sum(b) - sum(a)
        index = int(before.split()[0].removeprefix("cpu"))
        busy = 100.0 * (total - idle) / total if total > 0 else 0.0
        cpus[index] = {"%usage": round(busy, 1)}
    return cpus


def _milli(text: str) -> float | None:
    try:
        return int(text) / 1000.0
    except ValueError:
        return None


def parse_environment(output: str) -> models.EnvironmentDict:
    """get_environment from ``ENVIRONMENT_PROBE``.

    cpu: per-CPU busy percent over half a second; memory in bytes (``available_ram`` the
    total, ``used_ram`` what is not available). Temperatures and fans from hwmon (alert at
    the sensor's max, critical at its crit), power supplies from /sys/class/power_supply
    (Linux knows their state, not their output or capacity: -1.0). A box or namespace
    without sensors reports none: those dicts are empty.
    """
    stat1: list[str] = []
    stat2: list[str] = []
    memory = {"MemTotal:": 0, "MemAvailable:": 0}
    temperature: dict[str, models.TemperatureDict] = {}
    fans: dict[str, models.FanDict] = {}
    power: dict[str, models.PowerDict] = {}
    for line in output.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "stat1":
            stat1.append(rest)
        elif tag == "stat2":
            stat2.append(rest)
        elif tag == "mem" and len(rest.split()) >= 2:
            memory[rest.split()[0]] = int(rest.split()[1]) * 1024
        else:
            fields = line.split("|")
            if fields[0] == "temp" and len(fields) == 5:
                value = _milli(fields[2])
                if value is None:
                    continue
                high, crit = _milli(fields[3]), _milli(fields[4])
                temperature[fields[1]] = {
                    "temperature": value,
                    "is_alert": high is not None and value >= high,
                    "is_critical": crit is not None and value >= crit,
                }
            elif fields[0] == "fan" and len(fields) == 3:
                fans[fields[1]] = {"status": fields[2].strip().isdigit() and int(fields[2]) > 0}
            elif fields[0] == "power" and len(fields) == 3:
                power[fields[1]] = {
                    "status": fields[2].strip() == "1",
                    "output": -1.0,
                    "capacity": -1.0,
                }
    total = memory["MemTotal:"]
    return {
        "fans": fans,
        "temperature": temperature,
        "power": power,
        "cpu": _cpu_usage(stat1, stat2),
        "memory": {"available_ram": total, "used_ram": total - memory["MemAvailable:"]},
    }


def parse_users(output: str) -> dict[str, models.UsersDict]:
    """get_users from ``USERS_PROBE``: Linux login accounts (FRR has none of its own).

    ``level`` 15 for root and members of sudo/wheel/admin/frrvty, 1 otherwise;
    ``password`` is always "" (the hash stays in /etc/shadow, which is never read);
    ``sshkeys`` the public keys of ``~/.ssh/authorized_keys``.
    """
    users: dict[str, models.UsersDict] = {}
    for line in output.splitlines():
        fields = line.split("|", 3)
        if fields[0] == "user" and len(fields) == 4:
            name, uid, groups = fields[1], fields[2], set(fields[3].split())
            admin = uid.strip() == "0" or bool(groups & ADMIN_GROUPS)
            users[name] = {"level": 15 if admin else 1, "password": "", "sshkeys": []}
        elif fields[0] == "key" and len(fields) >= 3 and fields[1] in users:
            users[fields[1]]["sshkeys"].append("|".join(fields[2:]).strip())
    return users


def _ntp_lines(output: str) -> list[list[str]]:
    lines: list[list[str]] = []
    for line in output.splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0].startswith("NTP="):
            lines.extend(["server", name] for name in line.split("=", 1)[1].split())
        elif words:
            lines.append(words)
    return lines


def parse_ntp_servers(output: str) -> dict[str, models.NTPServerDict]:
    """get_ntp_servers from the NTP daemon's configuration (chrony, ntpd, ntpsec, openntpd,
    systemd-timesyncd): every ``server`` and ``pool`` line."""
    servers: dict[str, models.NTPServerDict] = {}
    for words in _ntp_lines(output):
        if words[0] in ("server", "pool") and len(words) > 1:
            servers[words[1]] = {
                "address": words[1],
                "association_type": words[0].upper(),
                "iburst": "iburst" in words[2:],
                "prefer": "prefer" in words[2:],
            }
    return servers


def parse_ntp_peers(output: str) -> dict[str, models.NTPPeerDict]:
    """get_ntp_peers: the configuration's symmetric ``peer`` lines."""
    return {words[1]: {} for words in _ntp_lines(output) if words[0] == "peer" and len(words) > 1}


def _stats_entry(remote: str, **values: Any) -> models.NTPStats:
    entry: dict[str, Any] = {
        "remote": remote,
        "referenceid": "",
        "synchronized": False,
        "stratum": 16,
        "type": "",
        "when": "",
        "hostpoll": 0,
        "reachability": 0,
        "delay": 0.0,
        "offset": 0.0,
        "jitter": 0.0,
    }
    entry.update(values)
    return entry


def _chrony_stats(fields: list[str]) -> models.NTPStats | None:
    """``chronyc -c sources``: mode,state,name,stratum,poll,reach,lastrx,adj,offset,error."""
    if len(fields) < 10:
        return None
    try:
        return _stats_entry(
            fields[2],
            synchronized=fields[1] == "*",
            stratum=int(fields[3]),
            type={"^": "server", "=": "peer", "#": "refclock"}.get(fields[0], fields[0]),
            when=fields[6],
            hostpoll=2 ** int(fields[4]) if int(fields[4]) >= 0 else 1,
            reachability=int(fields[5], 8),
            offset=float(fields[8]) * 1000.0,
            jitter=float(fields[9]) * 1000.0,
        )
    except ValueError:
        return None


def _ntpq_stats(line: str) -> models.NTPStats | None:
    """``ntpq -pn``: tally+remote refid st t when poll reach delay offset jitter."""
    words = line.split()
    if len(words) < 10 or words[0] == "remote" or words[0].startswith("="):
        return None
    tally = words[0][:1] if words[0][:1] in TALLY else ""
    remote = words[0][len(tally) :]
    try:
        return _stats_entry(
            remote,
            referenceid=words[1],
            synchronized=tally == "*",
            stratum=int(words[2]),
            type=words[3],
            when=words[4],
            hostpoll=int(words[5]),
            reachability=int(words[6], 8),
            delay=float(words[7]),
            offset=float(words[8]),
            jitter=float(words[9]),
        )
    except ValueError:
        return None


def parse_ntp_stats(output: str) -> list[models.NTPStats]:
    """get_ntp_stats from ``NTP_STATS_PROBE`` (chronyc or ntpq, whichever runs); [] when no
    NTP daemon runs on the box. Offsets and jitter in milliseconds."""
    stats: list[models.NTPStats] = []
    for line in output.splitlines():
        tag, _, rest = line.partition(" ")
        entry = None
        if tag == "chrony":
            entry = _chrony_stats(rest.split(","))
        elif tag == "ntpq":
            entry = _ntpq_stats(rest)
        if entry is not None:
            stats.append(entry)
    return stats


def parse_snmp_information(snmpd_conf: str) -> models.SNMPDict:
    """get_snmp_information from net-snmp's snmpd.conf (FRR's SNMP is an AgentX subagent of
    snmpd, so snmpd's configuration is the device's). Without snmpd: NAPALM's empty shape.

    Communities come from ``rocommunity``/``rwcommunity`` (``acl`` is their source
    restriction) and ``com2sec`` lines, as NAPALM returns them: by name.
    """
    info: models.SNMPDict = {"chassis_id": "", "community": {}, "contact": "", "location": ""}
    for line in snmpd_conf.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        if not words:
            continue
        key, args = words[0].lower(), words[1:]
        if key == "syslocation":
            info["location"] = " ".join(args)
        elif key == "syscontact":
            info["contact"] = " ".join(args)
        elif key == "sysname":
            info["chassis_id"] = " ".join(args)
        elif key in ("rocommunity", "rwcommunity", "rocommunity6", "rwcommunity6") and args:
            mode = "rw" if key.startswith("rw") else "ro"
            info["community"][args[0]] = {"acl": args[1] if len(args) > 1 else "", "mode": mode}
        elif key == "com2sec" and len(args) >= 3:
            info["community"][args[2]] = {"acl": args[1], "mode": "ro"}
    return info
