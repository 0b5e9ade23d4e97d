"""The device's SSH host key, checked by the gateway itself for drivers that do not check it.

Netmiko-based drivers (NAPALM's IOS, NX-OS SSH, IOS-XR SSH, EOS over SSH; napalm-frr) take
Netmiko's ``ssh_strict`` with the known_hosts file of the settings and refuse an unknown or
changed key themselves. Others connect however their authors chose: napalm-bird2 opens
paramiko's ``SSHClient`` with ``AutoAddPolicy`` and no known hosts loaded, and has no option
to change that (napalm_bird2/bird2.py, ``_SSHTransport.open``), so it would send our
credentials to any box answering at the device's address.

Which driver is which is read from the driver object built for the device (its data, not a
table of names), see `needs_key_check`. For those the gateway checks the key on the driver's
own connection where it knows how (`open_checked`): napalm-bird2's ``open`` is two steps,
``_build_transport()`` then the transport's ``open()`` making a paramiko ``SSHClient``; the
gateway makes that client itself with paramiko's RejectPolicy and the known_hosts file
only, connects it with the arguments the transport's ``open`` would give, and hands it to
the transport. paramiko then compares the server's key with the file's during the key
exchange, before any authentication: no credential goes to a box the file does not know,
and there is one connection and one login per device. (A relaying man-in-the-middle could
pass a check made on a separate connection; not this one.)

For any other driver that checks no key, the gateway asks the box for its host key before
the driver opens (`key_refusal`): a TCP connection to host:port, SSH's key exchange, the
server's key compared with the file's, closed; no authentication tried, no credential sent.
It costs one more TCP and SSH handshake per device per run (21 ms median measured on the
lab's BIRD box when napalm-bird2 was checked so).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import paramiko
from napalm.base import exceptions as napalm_errors
from napalm.base.mock import MockDriver

SSH_PORT = 22


def needs_key_check(device: Any, known_hosts: Path) -> bool:
    """Whether the gateway must check the device's host key itself before ``device.open()``.

    No for NAPALM's mock driver (it connects nowhere); no when the driver hands our strict
    options on to Netmiko (its ``netmiko_optional_args``, filtered by NAPALM's
    ``netmiko_args``, hold ``ssh_strict`` and ``known_hosts`` as alt_key_file: Netmiko then
    refuses with paramiko's RejectPolicy); no when the driver says it does not use SSH (its
    ``transport_kind`` or ``transport`` is a name other than ``ssh``: EOS's eAPI over https,
    napalm-bird2's local socket; no SSH host key there). Yes for every other driver, also
    when the config context turned Netmiko's ``ssh_strict`` off.

    >>> class Bird2:  # napalm-bird2 before open: transport_kind "ssh", transport None
    ...     transport_kind, transport = "ssh", None
    >>> needs_key_check(Bird2(), Path("/k"))
    True
    >>> class Ios:
    ...     transport = "ssh"
    ...     netmiko_optional_args = {"ssh_strict": True, "alt_host_keys": True,
    ...                              "alt_key_file": "/k"}
    >>> needs_key_check(Ios(), Path("/k"))
    False
    """
    if isinstance(device, MockDriver):
        return False
    netmiko = getattr(device, "netmiko_optional_args", None)
    if (
        isinstance(netmiko, Mapping)
        and netmiko.get("ssh_strict") is True
        and netmiko.get("alt_host_keys") is True
        and netmiko.get("alt_key_file") == str(known_hosts)
    ):
        return False
    for attribute in ("transport_kind", "transport"):
        kind = getattr(device, attribute, None)
        if isinstance(kind, str) and kind.strip():
            return kind.strip().lower() == "ssh"
    return True


def host_key_name(host: str, port: int) -> str:
    """The name of ``host`` in a known_hosts file, as OpenSSH writes it.

    >>> host_key_name("198.18.0.31", 22), host_key_name("127.0.0.1", 2222)
    ('198.18.0.31', '[127.0.0.1]:2222')
    """
    return host if port == SSH_PORT else f"[{host}]:{port}"


def add_known_keys(keys: paramiko.HostKeys, known_hosts: Path, host: str, port: int) -> None:
    r"""Add to ``keys`` what the known_hosts file holds for ``host:port`` (its name as
    `host_key_name` gives it, plain or hashed), as paramiko's ``HostKeys.load`` would, but
    parsing only that host's lines and the ``@revoked`` ones: ``load`` parses every line and
    checks each against all before it (3 ms a device on the lab's 44-line file, in the one
    Python process all the devices' threads share). Comments and lines paramiko cannot read
    are skipped; no file: nothing added. Markers (paramiko's ``load`` fails on any):
    ``@cert-authority`` is skipped (no certificates here); a key on any ``@revoked`` line is
    never added, whatever host pattern the line names (``*`` too), as OpenSSH revokes the
    key itself (paramiko has no way to honour a revocation), so a box showing it is refused;
    a ``@revoked`` line naming the host whose key cannot be read leaves it with no known key
    at all.

    >>> import tempfile
    >>> key = "AAAAC3NzaC1lZDI1NTE5AAAAIIUm8pHRPys5VY16McnvSYe68fzgZBhRH7VuS/fLR8Th"
    >>> with tempfile.NamedTemporaryFile("w", suffix="known_hosts") as f:
    ...     _ = f.write(f"198.18.0.9,r9 ssh-ed25519 {key}\n[198.18.0.31]:2222 ssh-ed25519 {key}\n")
    ...     f.flush()
    ...     keys = paramiko.HostKeys()
    ...     add_known_keys(keys, Path(f.name), "198.18.0.31", 2222)
    >>> list(keys.keys()), list(keys.lookup("[198.18.0.31]:2222"))
    (['[198.18.0.31]:2222'], ['ssh-ed25519'])
    """
    name = host_key_name(host, port)
    found, _ = _known_and_revoked(known_hosts, name)
    for key in found:
        keys.add(name, key.get_name(), key)


def _known_and_revoked(
    known_hosts: Path, name: str
) -> tuple[list[paramiko.PKey], set[tuple[str, bytes]]]:
    """The keys the file trusts for ``name`` (none revoked), and every key it revokes."""
    try:
        text = known_hosts.read_text()
    except FileNotFoundError:
        return [], set()
    found: list[paramiko.PKey] = []
    revoked: set[tuple[str, bytes]] = set()
    unreadable_revocation = False
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("@"):
            if fields[0] == "@revoked":
                key = _line_key(" ".join(fields[1:]))
                if key is not None:
                    revoked.add(_key_id(key))
                elif len(fields) > 1 and _names(fields[1], name):
                    unreadable_revocation = True  # which key is unknown: trust none
            continue
        if not _names(fields[0], name):
            continue
        key = _line_key(line.strip())
        if key is not None:
            found.append(key)
    if unreadable_revocation:
        return [], revoked
    return [k for k in found if _key_id(k) not in revoked], revoked


def _line_key(line: str) -> paramiko.PKey | None:
    """The key of a known_hosts line (without its marker); None when paramiko cannot read
    it."""
    try:
        entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
    except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey):
        return None
    return entry.key if entry is not None else None


def _key_id(key: paramiko.PKey) -> tuple[str, bytes]:
    return key.get_name(), key.asbytes()


def _names(patterns: str, name: str) -> bool:
    """Whether a known_hosts line's first field (``a,b`` or hashed ``|1|salt|hash``) names
    ``name``."""
    for pattern in patterns.split(","):
        if pattern.startswith("|1|"):
            salt = pattern.split("|")[2] if pattern.count("|") >= 3 else ""
            if salt and paramiko.HostKeys.hash_host(name, salt) == pattern:
                return True
        elif pattern == name:
            return True
    return False


def key_refusal(host: str, port: int, known_hosts: Path, timeout: float) -> str:
    """How the key the SSH server at ``host:port`` shows compares with ``known_hosts``: ""
    (it is the file's key for that host), "is revoked in" (a ``@revoked`` line of the file
    holds it, whatever host it names), "is not in" (the file has no key for it) or "does not
    match the one in" (the file has another key for it; also when the server shows none of
    the key types the file holds for it).

    Only the key exchange runs; the transport is closed before any authentication. The key
    types the file holds for the host are offered first, as OpenSSH does. Network failures
    raise ``OSError`` (an SSH protocol failure as ``ConnectionError``), ``EOFError`` or
    ``TimeoutError``."""
    keys = paramiko.HostKeys()
    name = host_key_name(host, port)
    found, revoked = _known_and_revoked(known_hosts, name)
    for key in found:
        keys.add(name, key.get_name(), key)
    known = keys.lookup(name)
    sock = socket.create_connection((host, port), timeout=timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        if known is not None:
            options = transport.get_security_options()
            first = [_algorithm(name, options.key_types) for name in known]
            first = [name for name in first if name]
            options.key_types = [*first, *(t for t in options.key_types if t not in first)]
        try:
            transport.start_client(timeout=timeout)
        except paramiko.SSHException as exc:
            raise ConnectionError(f"SSH key exchange with {host}:{port}: {exc}") from exc
        shown = transport.get_remote_server_key()
    finally:
        transport.close()
        sock.close()
    if _key_id(shown) in revoked:
        return "is revoked in"
    if known is None:
        return "is not in"
    if known.get(shown.get_name()) != shown:
        return "does not match the one in"
    return ""


def _algorithm(key_type: str, offered: tuple[str, ...] | list[str]) -> str:
    """The host key algorithm to ask for a key of ``key_type`` (an RSA key: SHA-2 signatures)."""
    if key_type == "ssh-rsa":
        return next((a for a in ("rsa-sha2-512", "rsa-sha2-256") if a in offered), "")
    return key_type if key_type in offered else ""


def open_checked(device: Any, known_hosts: Path) -> bool:
    """Open ``device`` (a driver that checks no host key) on a connection whose host key
    is checked against ``known_hosts``, where the gateway knows how (see the module's
    docstring); False, having done nothing, where it does not: the caller checks the key
    on a connection of its own (`key_refusal`), then calls ``device.open()``.

    Known: napalm-bird2's ``BIRD2Driver`` with its own ``open`` (a subclass overriding it is
    not), whose ``_build_transport()`` gives its SSH transport (napalm_bird2/bird2.py,
    ``_SSHTransport``: ``open`` connects a paramiko ``SSHClient`` and keeps it as
    ``client``). The client is connected with what that ``open`` passes (the transport's
    hostname, username, password, timeout; ``port``, ``allow_agent``, ``look_for_keys``,
    ``key_file``, ``key_passphrase`` of its optional_args), then the driver finishes its
    open as its own would (``_announce_version_once``).

    An unknown or changed key raises NAPALM's ConnectionException caused by paramiko's
    refusal (`runbooks.gateways.network_errors` names it), refused credentials NAPALM's
    ConnectAuthError; both before the driver holds a transport."""
    transport = _bird2_ssh_transport(device)
    if transport is None:
        return False
    args = transport.optional_args
    client = paramiko.SSHClient()
    port = int(args.get("port", SSH_PORT))
    add_known_keys(client.get_host_keys(), known_hosts, transport.hostname, port)  # never written
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            hostname=transport.hostname,
            username=transport.username,
            password=transport.password,
            port=port,
            timeout=transport.timeout,
            allow_agent=bool(args.get("allow_agent", True)),
            look_for_keys=bool(args.get("look_for_keys", True)),
            key_filename=args.get("key_file"),
            passphrase=args.get("key_passphrase"),
        )
    except paramiko.AuthenticationException as exc:
        client.close()
        raise napalm_errors.ConnectAuthError(str(exc)) from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise napalm_errors.ConnectionException(str(exc)) from exc
    transport.client = client
    device.transport = transport
    announce = getattr(device, "_announce_version_once", None)
    if callable(announce):
        announce()
    return True


def _bird2_ssh_transport(device: Any) -> Any:
    """napalm-bird2's SSH transport for ``device``, not yet open; None for another driver,
    one that overrides ``open``, or one choosing another transport (its local socket)."""
    try:
        from napalm_bird2 import bird2  # type: ignore[import-untyped]
    except ImportError:
        return None
    if not isinstance(device, bird2.BIRD2Driver) or type(device).open is not bird2.BIRD2Driver.open:
        return None
    transport = device._build_transport()
    return transport if type(transport) is bird2._SSHTransport else None
