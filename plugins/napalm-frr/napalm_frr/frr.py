"""NAPALM driver for FRRouting on Linux, over SSH through Netmiko.

The device is a Linux box: we log in to a shell (root, or a user allowed ``sudo -n``) and
reach FRR with ``vtysh -c``. Getters read FRR's JSON where it has some (``show interface
json``, ``show bgp ... json``) and lldpd's ``lldpcli -f json0``. Configuration goes through
FRR's own ``frr-reload.py``: ``--test`` is the diff, ``--reload`` applies it; see
``napalm_frr.config`` for candidates, commit-confirm and rollback.
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields
from typing import Any

from napalm.base import NetworkDriver, models
from napalm.base import constants as c
from napalm.base.exceptions import (
    CommandTimeoutException,
    ConnectAuthError,
    ConnectionClosedException,
    ConnectionException,
    MergeConfigException,
    ReplaceConfigException,
)
from napalm.base.helpers import sanitize_configs
from napalm.base.netmiko_helpers import netmiko_args
from netmiko import ConnectHandler
from netmiko.exceptions import (
    NetmikoAuthenticationException,
    NetmikoTimeoutException,
    ReadTimeout,
)
from paramiko.ssh_exception import SSHException

from napalm_frr import bgp, kernel, parsers, probes, readers, routes, shell, system
from napalm_frr.config import ConfigSession
from napalm_frr.errors import FRROutputError

log = logging.getLogger(__name__)

# One probe for get_facts: hostname, uptime, DMI model and serial, FRR version.
FACTS_LINES = 5
FACTS_PROBE = (
    'printf \'%s\\n\' "$(hostname)" "$(cat /proc/uptime)"'
    ' "$(cat /sys/class/dmi/id/product_name 2>/dev/null)"'
    ' "$(cat /sys/class/dmi/id/product_serial 2>/dev/null)"'
    " \"$({vtysh} -c 'show version' | head -n1)\""
)
SUDO_NOISE = re.compile(r"^sudo: unable to resolve host .*\n?", re.M)
SESSION_SETUP = "set +o history; unset HISTFILE"
DEVICE_TIME = "date '+%Y/%m/%d %H:%M:%S'"


class FRRDriver(NetworkDriver):  # type: ignore[misc]
    """NAPALM driver for FRRouting.

    optional_args (all optional):
      * Netmiko's own: ``port``, ``key_file``, ``use_keys``, ``conn_timeout``,
        ``auth_timeout``, ``ssh_config_file``, ...
      * ``sudo`` (bool): prefix privileged commands with ``sudo -n`` (login is not root).
      * ``command_timeout`` (seconds, default 30): how long one command may run.
      * paths on the device: ``vtysh``, ``frr_reload``, ``lldpcli``, ``startup_config``,
        ``state_dir`` (default /etc/frr/napalm), ``reload_args`` (extra frr-reload.py
        arguments, e.g. ``["--vty_socket", "/run/frr/r1"]``).
    """

    platform = "frr"

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        self.hostname = hostname
        self.username = username
        self.password = password
        self.timeout = timeout
        args = dict(optional_args or {})
        self.sudo = bool(args.get("sudo", False))
        self.command_timeout = float(args.get("command_timeout", 30))
        path_args = {f.name: args[f.name] for f in fields(shell.Paths) if f.name in args}
        if "reload_args" in path_args:
            path_args["reload_args"] = tuple(path_args["reload_args"])
        self.paths = shell.Paths(**path_args)
        self.netmiko_optional_args = netmiko_args(args)
        if self.netmiko_optional_args.get("key_file"):
            self.netmiko_optional_args.setdefault("use_keys", True)
        self.device: Any = None
        self._prompt: str | None = None  # what ends each command's output (see _send)
        self._config = ConfigSession(self._send, self.paths, self.sudo, self.command_timeout)

    # -- connection ---------------------------------------------------------------

    def open(self) -> None:
        try:
            self.device = ConnectHandler(
                device_type="linux",
                host=self.hostname,
                username=self.username,
                password=self.password,
                timeout=self.timeout,
                **self.netmiko_optional_args,
            )
        except NetmikoAuthenticationException as exc:
            raise ConnectAuthError(f"{self.hostname}: authentication failed: {exc}") from exc
        except (TimeoutError, NetmikoTimeoutException, SSHException, OSError) as exc:
            raise ConnectionException(f"Cannot connect to {self.hostname}: {exc}") from exc
        self._prompt = _prompt_pattern(self.device)
        # Candidates travel inside commands: keep them (and any secret in them) out of
        # the login shell's history file.
        self._send(SESSION_SETUP)

    def close(self) -> None:
        if self.device is not None:
            try:
                if self._config.candidate is not None:  # its files die with the session
                    self._config.discard()
            except Exception as exc:  # closing must not fail; stale files expire in a day
                log.warning("%s: could not delete the candidate files: %s", self.hostname, exc)
            try:
                self.device.disconnect()
            finally:
                self.device = None
                self._prompt = None

    def is_alive(self) -> models.AliveDict:
        if self.device is None:
            return {"is_alive": False}
        try:
            return {"is_alive": bool(self.device.is_alive())}
        except Exception:  # a dead transport raises instead of answering
            return {"is_alive": False}

    def _send(self, command: str, timeout: float | None = None, *, raw: bool = False) -> str:
        """Run one shell command in the session and return what it printed.

        ``raw`` skips Netmiko's echo check: needed for multi-line input (here-documents).
        """
        if self.device is None:
            raise ConnectionClosedException(f"{self.hostname}: not connected, call open()")
        log.debug("%s: %s", self.hostname, command.split("\n", maxsplit=1)[0][:200])
        kwargs: dict[str, Any] = {"read_timeout": timeout or self.command_timeout}
        if self._prompt:
            # the shell's prompt found at open: without it Netmiko looks for the prompt
            # again before every command (send_command's auto_find_prompt: a RETURN, two
            # buffer-clearing sleeps and a read, ~60 ms a command on the lab)
            kwargs["expect_string"] = self._prompt
        if raw:
            kwargs["cmd_verify"] = False
        try:
            output = str(self.device.send_command(command, **kwargs))
        except ReadTimeout as exc:
            raise CommandTimeoutException(
                f"{self.hostname}: no prompt within {kwargs['read_timeout']}s after "
                f"{command.split(chr(10), maxsplit=1)[0][:120]!r}"
            ) from exc
        except (OSError, EOFError) as exc:
            raise ConnectionClosedException(f"{self.hostname}: {exc}") from exc
        if self.sudo:
            # a box that cannot resolve its own name makes sudo warn before every command
            output = SUDO_NOISE.sub("", output)
        return output

    def _sh(self, command: str, timeout: float | None = None) -> str:
        """Run a read-only shell snippet with root rights (sudo when configured)."""
        return self._send(shell.privileged(command, self.sudo), timeout)

    def _probe(self, script: str, timeout: float | None = None) -> str:
        """Run a long read-only snippet with root rights: its output is framed by markers
        (``shell.with_rc``), as the terminal's echo of a long line cannot be matched."""
        wrapped = shell.with_rc(shell.privileged(script, self.sudo))
        output, _ = readers.split_rc(self._send(wrapped, timeout, raw=True))
        return output

    def _interfaces_command(self) -> str:
        return f"{DEVICE_TIME}; {shell.vtysh(self.paths, 'show interface json')}"

    @staticmethod
    def _split_interfaces(output: str) -> tuple[Any, str]:
        """(show interface json, device time) from the output of ``_interfaces_command``."""
        first, _, rest = output.lstrip("\n").partition("\n")
        return readers.load_json(rest, "show interface json"), first

    def _interfaces_json(self) -> tuple[Any, str]:
        return self._split_interfaces(self._sh(self._interfaces_command()))

    # -- getters ------------------------------------------------------------------

    def get_facts(self) -> models.FactsDict:
        # one round trip: the probe prints exactly FACTS_LINES lines, then the interfaces
        probe = FACTS_PROBE.format(vtysh=self.paths.vtysh)
        output = self._sh(f"{probe}; {self._interfaces_command()}").lstrip("\n").split("\n")
        interfaces, _ = self._split_interfaces("\n".join(output[FACTS_LINES:]))
        return parsers.parse_facts("\n".join(output[:FACTS_LINES]), interfaces)

    def get_interfaces(self) -> dict[str, models.InterfaceDict]:
        interfaces, now = self._interfaces_json()
        return parsers.parse_interfaces(interfaces, parsers.parse_device_time(now))

    def get_interfaces_ip(self) -> dict[str, models.InterfacesIPDict]:
        interfaces, _ = self._interfaces_json()
        return parsers.parse_interfaces_ip(interfaces)

    def get_interfaces_counters(self) -> dict[str, models.InterfaceCounterDict]:
        links = readers.load_json(self._sh("ip -j -s link show"), "ip -j -s link show")
        return parsers.parse_interfaces_counters(links)

    def _lldp(self) -> Any:
        output = self._sh(f"{self.paths.lldpcli} -f json0 show neighbors details")
        return readers.load_json(output, "lldpcli -f json0 show neighbors details")

    def get_lldp_neighbors(self) -> dict[str, list[models.LLDPNeighborDict]]:
        return parsers.parse_lldp_neighbors(self._lldp())

    def get_lldp_neighbors_detail(self, interface: str = "") -> models.LLDPNeighborsDetailDict:
        detail = parsers.parse_lldp_neighbors_detail(self._lldp())
        if interface:
            return {interface: detail.get(interface, [])}
        return detail

    def get_bgp_neighbors(self) -> dict[str, models.BGPStateNeighborsPerVRFDict]:
        # one vtysh run, two documents: the summary has router ids and received counts
        commands = ("show bgp vrf all summary json", "show bgp vrf all neighbors json")
        output = self._sh(shell.vtysh(self.paths, *commands))
        summary, neighbors = readers.load_json_documents(output, " + ".join(commands), 2)
        result = parsers.parse_bgp_neighbors(summary, neighbors)
        # FRR counts what a session received before inbound policy only with
        # soft-reconfiguration inbound, and only in received-routes: one more round trip
        # for those sessions (none in most networks)
        sessions = parsers.soft_reconfig_peers(neighbors)
        if sessions:
            greps = "; ".join(
                f"{shell.vtysh(self.paths, parsers.received_routes_command(*s))}"
                " | grep -o '\"totalPrefixCounter\":[0-9]*' || echo none"
                for s in sessions
            )
            totals = parsers.parse_received_totals(self._sh(greps), len(sessions))
            parsers.apply_received(result, sessions, totals)
        return result

    def get_bgp_neighbors_detail(
        self, neighbor_address: str = ""
    ) -> dict[str, dict[int, list[models.PeerDetailsDict]]]:
        command = "show bgp vrf all neighbors json"
        neighbors = readers.load_json(self._sh(shell.vtysh(self.paths, command)), command)
        return bgp.parse_bgp_neighbors_detail(neighbors, neighbor_address)

    def get_bgp_config(
        self, group: str = "", neighbor: str = ""
    ) -> dict[str, models.BGPConfigGroupDict]:
        """From the running configuration's ``router bgp`` (default VRF); a neighbour's
        password is reported as ``<removed>``, never in clear."""
        running = self._sh(shell.vtysh(self.paths, "show running-config"))
        return bgp.parse_bgp_config(running, group, neighbor)

    def get_route_to(
        self, destination: str = "", protocol: str = "", longer: bool = False
    ) -> dict[str, list[models.RouteDict]]:
        """zebra's routes to ``destination`` in every VRF, one entry per next hop;
        ``current_active`` = selected by zebra and installed in the kernel. An address
        gives the longest match, a prefix that prefix (and more specific ones with
        ``longer``). BGP routes carry bgpd's attributes (default VRF)."""
        commands = routes.route_commands(destination or "0.0.0.0/0", longer or not destination)
        output = self._sh(shell.vtysh(self.paths, *commands))
        documents = readers.load_json_all(output, " + ".join(commands))
        if len(documents) < 3:
            raise FRROutputError(f"{commands!r}: expected 3 JSON documents: {output[:300]!r}")
        *ribs, bgp_paths, summary = documents
        local_as = routes.local_as_of(summary)
        result: dict[str, list[models.RouteDict]] = {}
        for rib in ribs:
            for prefix, entries in routes.parse_route_to(
                rib, bgp_paths, protocol, local_as
            ).items():
                result.setdefault(prefix, []).extend(entries)
        return result

    def _ip_json(self, command: str) -> Any:
        output = self._sh(command)
        return readers.load_json(output, command) if output.strip() else []

    def get_arp_table(self, vrf: str = "") -> list[models.ARPTableDict]:
        """The kernel's IPv4 neighbours (FRR keeps no ARP table); ``vrf`` limits them to
        one VRF's interfaces, "" gives every interface's."""
        return kernel.parse_arp_table(self._ip_json(kernel.neigh_command(kernel.ARP, vrf)))

    def get_ipv6_neighbors_table(self) -> list[models.IPV6NeighborDict]:
        return kernel.parse_ipv6_neighbors(self._ip_json(kernel.NDP))

    def get_mac_address_table(self) -> list[models.MACAdressTable]:
        """The Linux bridges' forwarding database; [] on a box without bridges."""
        return kernel.parse_mac_address_table(self._ip_json(kernel.FDB))

    def get_vlans(self) -> dict[int, models.VlanDict]:
        """VLAN-aware bridges' VLANs and 802.1Q subinterfaces; {} on a routed-only box."""
        output = self._sh(f"{kernel.BRIDGE_VLANS}; echo; {kernel.LINKS}")
        documents = readers.load_json_all(output, f"{kernel.BRIDGE_VLANS}; {kernel.LINKS}")
        links = documents[-1]
        bridge_vlans = documents[0] if len(documents) > 1 else []
        return kernel.parse_vlans(bridge_vlans, links)

    def get_network_instances(self, name: str = "") -> dict[str, models.NetworkInstanceDict]:
        """The default instance and the kernel's VRF devices (FRR's VRFs)."""
        return kernel.parse_network_instances(self._ip_json(kernel.LINKS), name)

    def get_environment(self) -> models.EnvironmentDict:
        return system.parse_environment(self._probe(system.ENVIRONMENT_PROBE))

    def get_users(self) -> dict[str, models.UsersDict]:
        """Linux login accounts (FRR has no users of its own); ``password`` is always ""."""
        return system.parse_users(self._probe(system.USERS_PROBE))

    def get_ntp_servers(self) -> dict[str, models.NTPServerDict]:
        """``server``/``pool`` lines of the NTP daemon's configuration (FRR has no NTP)."""
        return system.parse_ntp_servers(self._probe(system.NTP_CONFIG_PROBE))

    def get_ntp_peers(self) -> dict[str, models.NTPPeerDict]:
        """``peer`` lines of the NTP daemon's configuration; {} when it has none."""
        return system.parse_ntp_peers(self._probe(system.NTP_CONFIG_PROBE))

    def get_ntp_stats(self) -> list[models.NTPStats]:
        """chronyc's or ntpq's view of the sources; [] when no NTP daemon runs."""
        return system.parse_ntp_stats(self._probe(system.NTP_STATS_PROBE))

    def get_snmp_information(self) -> models.SNMPDict:
        """From snmpd.conf (FRR is only snmpd's AgentX subagent); without snmpd, NAPALM's
        empty shape: no chassis id, contact, location or community."""
        return system.parse_snmp_information(
            self._sh(f"cat {shell.q(system.SNMPD_CONF)} 2>/dev/null")
        )

    def ping(  # noqa: PLR0917 - NAPALM's signature
        self,
        destination: str,
        source: str = c.PING_SOURCE,
        ttl: int = c.PING_TTL,
        timeout: int = c.PING_TIMEOUT,
        size: int = c.PING_SIZE,
        count: int = c.PING_COUNT,
        vrf: str = c.PING_VRF,
        source_interface: str = c.PING_SOURCE_INTERFACE,
    ) -> models.PingResultDict:
        """iputils' ping from the box; requests 0.2 s apart."""
        command = probes.ping_command(
            destination,
            source=source,
            ttl=ttl,
            timeout=timeout,
            size=size,
            count=count,
            vrf=vrf,
            source_interface=source_interface,
        )
        wait = probes.ping_deadline(count, timeout) + self.command_timeout
        return probes.parse_ping(self._send(f"{command} 2>&1", wait))

    def traceroute(
        self,
        destination: str,
        source: str = c.TRACEROUTE_SOURCE,
        ttl: int = c.TRACEROUTE_TTL,
        timeout: int = c.TRACEROUTE_TIMEOUT,
        vrf: str = c.TRACEROUTE_VRF,
    ) -> models.TracerouteResultDict:
        """``traceroute -n`` from the box (package traceroute); at most 30 hops when
        ``ttl`` is NAPALM's default 255. Without traceroute: ``{"error": ...}``."""
        command = probes.traceroute_command(destination, source, ttl, timeout, vrf)
        wait = probes.traceroute_hops(ttl) * timeout + self.command_timeout
        return probes.parse_traceroute(self._send(f"{command} 2>&1", wait))

    def get_config(
        self,
        retrieve: str = "all",
        full: bool = False,
        sanitized: bool = False,
        format: str = "text",
    ) -> models.ConfigDict:
        """running from vtysh, startup from frr.conf, candidate as loaded (merge: its lines).

        ``full`` is accepted and ignored: FRR has no "show running-config all".
        """
        if format != "text":
            raise NotImplementedError(f"format {format!r}: FRR configuration is text only")
        config: models.ConfigDict = {"running": "", "startup": "", "candidate": ""}
        if retrieve in ("all", "running"):
            config["running"] = readers.strip_running_header(
                self._sh(shell.vtysh(self.paths, "show running-config"))
            )
        if retrieve in ("all", "startup"):
            startup = self._sh(f"cat {shell.q(self.paths.startup_config)}")
            config["startup"] = startup.strip("\n") + "\n" if startup.strip() else ""
        if retrieve in ("all", "candidate"):
            config["candidate"] = self._config.candidate_text()
        if sanitized:
            return sanitize_configs(config, readers.SANITIZE_FILTERS)
        return config

    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, str | dict[str, Any]]:
        """Run vtysh commands; ``encoding="json"`` parses the output (add ``json`` yourself)."""
        if encoding not in ("text", "json"):
            raise NotImplementedError(f"encoding {encoding!r} is not supported")
        if not isinstance(commands, list):
            raise TypeError("commands must be a list of strings")
        result: dict[str, str | dict[str, Any]] = {}
        for command in commands:
            output = self._sh(shell.vtysh(self.paths, command))
            result[command] = (
                readers.load_json(output, command) if encoding == "json" else output.strip("\n")
            )
        return result

    # -- configuration (see napalm_frr.config) --------------------------------------

    def load_replace_candidate(
        self, filename: str | None = None, config: str | None = None
    ) -> None:
        self._config.load("replace", _read(filename, config, ReplaceConfigException))

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self._config.load("merge", _read(filename, config, MergeConfigException))

    def compare_config(self) -> str:
        return self._config.compare()

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        self._config.commit(message, revert_in)

    def confirm_commit(self) -> None:
        self._config.confirm()

    def has_pending_commit(self) -> bool:
        return self._config.has_pending()

    def discard_config(self) -> None:
        self._config.discard()

    def rollback(self) -> None:
        self._config.rollback()


def _read(filename: str | None, config: str | None, error: type[Exception]) -> str:
    """NAPALM's rule: the file wins over the string."""
    if filename is not None:
        try:
            with open(filename, encoding="utf-8") as handle:
                return handle.read()
        except OSError as exc:
            raise error(f"cannot read {filename}: {exc}") from exc
    if config is None:
        raise error("give a filename or a config string")
    return config


def _prompt_pattern(connection: Any) -> str | None:
    r"""The pattern of the login shell's prompt Netmiko found at open (its ``base_prompt``,
    the prompt without its last character, then ``#`` or ``$``: what Netmiko's own prompt
    search would have matched); None when the connection has none.

    >>> class Shell:
    ...     base_prompt = "root@leaf1:~"
    >>> _prompt_pattern(Shell())
    'root@leaf1:\\~[#$]'
    """
    base = getattr(connection, "base_prompt", None)
    if not isinstance(base, str) or not base.strip():
        return None
    return re.escape(base.strip()) + r"[#$]"
