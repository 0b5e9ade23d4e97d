"""System getters' parsing where the lab has nothing to show (no NTP daemon, no snmpd, no
sensors), with the tools' documented output as data tables."""

from __future__ import annotations

from napalm.base import models
from napalm.base.test import helpers

from napalm_frr import system

# chronyc -n -c sources (chrony 4.3): mode,state,name,stratum,poll,reach,lastrx,adj,offset,err
CHRONY = (
    "chrony ^,*,198.18.255.1,2,6,377,34,-0.000012345,-0.000013000,0.000120000\n"
    "chrony ^,-,198.18.255.2,3,6,17,3,0.000400000,0.000410000,0.000900000\n"
)
NTPQ = (
    "ntpq      remote           refid      st t when poll reach   delay   offset  jitter\n"
    "ntpq ==============================================================================\n"
    "ntpq *198.18.255.1    .GPS.            1 u   35   64  377    0.123   -0.045   0.010\n"
    "ntpq  198.18.255.2    198.18.255.1     2 u    3   64    1    0.200    0.100   0.020\n"
)


def test_ntp_stats_from_chrony() -> None:
    stats = system.parse_ntp_stats(CHRONY)
    assert [s["remote"] for s in stats] == ["198.18.255.1", "198.18.255.2"]
    assert stats[0]["synchronized"] and not stats[1]["synchronized"]
    assert stats[0]["hostpoll"] == 64 and stats[0]["reachability"] == 255
    assert round(stats[0]["offset"], 3) == -0.013
    assert all(helpers.test_model(models.NTPStats, s) for s in stats)


def test_ntp_stats_from_ntpq() -> None:
    stats = system.parse_ntp_stats(NTPQ)
    assert [(s["remote"], s["referenceid"], s["synchronized"]) for s in stats] == [
        ("198.18.255.1", ".GPS.", True),
        ("198.18.255.2", "198.18.255.1", False),
    ]
    assert stats[0]["delay"] == 0.123 and stats[1]["reachability"] == 1
    assert all(helpers.test_model(models.NTPStats, s) for s in stats)


def test_ntp_stats_without_daemon_is_empty() -> None:
    assert system.parse_ntp_stats("") == []


def test_ntp_servers_and_peers_from_configuration() -> None:
    config = (
        "server 198.18.255.1 iburst prefer\n"
        "pool 2.debian.pool.ntp.org iburst # comment\n"
        "peer 198.18.255.2\n"
        "NTP=198.18.255.3 198.18.255.4\n"
    )
    servers = system.parse_ntp_servers(config)
    assert servers["198.18.255.1"] == {
        "address": "198.18.255.1",
        "association_type": "SERVER",
        "iburst": True,
        "prefer": True,
    }
    assert servers["2.debian.pool.ntp.org"]["association_type"] == "POOL"
    assert {"198.18.255.3", "198.18.255.4"} <= servers.keys()
    assert system.parse_ntp_peers(config) == {"198.18.255.2": {}}


def test_snmp_information_from_snmpd_conf() -> None:
    conf = (
        'sysLocation "Lab DC1, rack R01"\n'
        "sysContact noc@lab.example\n"
        "sysName spine1\n"
        "rocommunity public 198.18.0.0/24\n"
        "rwcommunity private\n"
        "# rocommunity commented\n"
    )
    info = system.parse_snmp_information(conf)
    assert info == {
        "chassis_id": "spine1",
        "contact": "noc@lab.example",
        "location": "Lab DC1, rack R01",
        "community": {
            "public": {"acl": "198.18.0.0/24", "mode": "ro"},
            "private": {"acl": "", "mode": "rw"},
        },
    }
    assert system.parse_snmp_information("") == {
        "chassis_id": "",
        "community": {},
        "contact": "",
        "location": "",
    }


def test_environment_with_sensors_and_power() -> None:
    output = (
        "stat1 cpu0 100 0 100 800 0 0 0 0 0 0\n"
        "stat2 cpu0 150 0 150 850 0 0 0 0 0 0\n"
        "mem MemTotal:        1000 kB\n"
        "mem MemAvailable:     250 kB\n"
        "temp|coretemp Core 0|85000|80000|100000\n"
        "temp|acpitz temp1|40000||\n"
        "fan|nct6775 fan1|1200\n"
        "fan|nct6775 fan2|0\n"
        "power|AC|1\n"
    )
    env = system.parse_environment(output)
    assert env["cpu"] == {0: {"%usage": 66.7}}
    assert env["memory"] == {"available_ram": 1024000, "used_ram": 768000}
    assert env["temperature"]["coretemp Core 0"] == {
        "temperature": 85.0,
        "is_alert": True,
        "is_critical": False,
    }
    assert not env["temperature"]["acpitz temp1"]["is_alert"]
    assert env["fans"] == {"nct6775 fan1": {"status": True}, "nct6775 fan2": {"status": False}}
    assert env["power"] == {"AC": {"status": True, "output": -1.0, "capacity": -1.0}}


def test_users_levels_and_keys_never_a_password() -> None:
    output = (
        "user|root|0|root\n"
        "key|root|ssh-ed25519 AAAAC3Nz root@lab\n"
        "user|olivia|1001|olivia sudo\n"
        "user|guest|1002|guest\n"
    )
    users = system.parse_users(output)
    assert users["root"] == {
        "level": 15,
        "password": "",
        "sshkeys": ["ssh-ed25519 AAAAC3Nz root@lab"],
    }
    assert users["olivia"]["level"] == 15 and users["guest"]["level"] == 1
