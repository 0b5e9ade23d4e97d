"""Reading what the device's shell printed: exit status markers, JSON, vtysh complaints.

Pure functions shared by the getters (``parsers``) and the configuration code (``config``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from napalm_frr.errors import FRROutputError

# Secrets that FRR keeps in clear text in its configuration.
SANITIZE_FILTERS = {
    r"^(\s*(?:enable )?password) \S+.*$": r"\1 <removed>",
    r"^(\s*neighbor \S+ password) \S+.*$": r"\1 <removed>",
    r"^(\s*ip ospf authentication-key) \S+.*$": r"\1 <removed>",
    r"^(\s*ip ospf message-digest-key \d+ md5) \S+.*$": r"\1 <removed>",
    r"^(\s*ipv6 ospf6 authentication key-id \d+ hash-algo \S+ key) \S+.*$": r"\1 <removed>",
    r"^(\s*(?:isis|area-password|domain-password) \S*\s*(?:clear|md5)) \S+.*$": r"\1 <removed>",
    r"^(\s*key-string) \S+.*$": r"\1 <removed>",
    r"^(\s*agentx|\s*snmp community) \S+.*$": r"\1 <removed>",
}


_SECRET = re.compile(
    r"\b(password|key-string|authentication-key|md5|key|community)(\s+)(?!<removed>)\S+", re.I
)


def redact(text: str) -> str:
    """Mask what follows secret-bearing keywords anywhere in a line (error messages).

    >>> redact("line 3: % Unknown command:  neighbor 10.0.0.1 pasword x password s3cr3t")
    'line 3: % Unknown command:  neighbor 10.0.0.1 pasword x password <removed>'
    """
    return _SECRET.sub(r"\1\2<removed>", text)


def load_json(output: str, command: str) -> Any:
    """Parse JSON printed by vtysh or lldpcli; raise FRROutputError with the text otherwise."""
    start = min((i for i in (output.find("{"), output.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise FRROutputError(f"{command!r} printed no JSON: {output.strip()[:300]!r}")
    try:
        return json.loads(output[start:])
    except ValueError as exc:
        raise FRROutputError(f"{command!r} printed invalid JSON: {exc}") from exc


def load_json_documents(output: str, command: str, count: int) -> list[Any]:
    """Parse ``count`` JSON documents printed one after the other (``vtysh -c A -c B``).

    >>> load_json_documents('{"a": 1}\\n{\\n}', "x", 2)
    [{'a': 1}, {}]
    """
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    for _ in range(count):
        start = min(
            (i for i in (output.find("{", position), output.find("[", position)) if i >= 0),
            default=-1,
        )
        if start < 0:
            raise FRROutputError(f"{command!r} printed no JSON: {output.strip()[:300]!r}")
        try:
            document, position = decoder.raw_decode(output, start)
        except ValueError as exc:
            raise FRROutputError(f"{command!r} printed invalid JSON: {exc}") from exc
        documents.append(document)
    return documents


def load_json_all(output: str, command: str) -> list[Any]:
    """Every JSON document printed one after the other (vtysh prints one per VRF for
    some ``vrf all`` commands, and one per ``-c``).

    >>> load_json_all('{"a": 1}{"b": 2}\\n{\\n}\\n', "x")
    [{'a': 1}, {'b': 2}, {}]
    """
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while True:
        starts = [i for i in (output.find("{", position), output.find("[", position)) if i >= 0]
        if not starts:
            break
        try:
            document, position = decoder.raw_decode(output, min(starts))
        except ValueError as exc:
            raise FRROutputError(f"{command!r} printed invalid JSON: {exc}") from exc
        documents.append(document)
    if not documents:
        raise FRROutputError(f"{command!r} printed no JSON: {output.strip()[:300]!r}")
    return documents


_RELOAD_SECTION = re.compile(r"^(Lines To Delete|Lines To Add)\s*\n=+\s*$", re.M)


def parse_reload_diff(output: str) -> str:
    """Keep the ``Lines To Delete`` / ``Lines To Add`` sections of ``frr-reload.py --test``.

    The text is FRR's own: under "Lines To Delete" the commands FRR will run to remove
    running lines (``no ...``), under "Lines To Add" the lines it will add. Returns ""
    when both are absent, i.e. nothing would change.
    """
    match = _RELOAD_SECTION.search(output)
    if not match:
        return ""
    kept = [
        line.rstrip()
        for line in output[match.start() :].split("\n")
        if not re.match(r"^\d{4}-\d\d-\d\d .*(INFO|WARNING|DEBUG)", line)
    ]
    return "\n".join(kept).strip()


_ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")
_BEGIN = re.compile(r"^__NAPALM_BEGIN__\r?$", re.M)
_RC = re.compile(r"^__NAPALM_RC=(\d+)\s*$", re.M)


def split_rc(output: str) -> tuple[str, int]:
    """Split the output of a ``shell.with_rc`` command into its text and exit status.

    >>> split_rc("echo noise\\n__NAPALM_BEGIN__\\nhello\\n__NAPALM_RC=3\\n")
    ('hello', 3)
    """
    output = _ANSI.sub("", output)
    rcs = list(_RC.finditer(output))
    if not rcs:
        raise FRROutputError(f"no exit status in output: {output.strip()[-300:]!r}")
    begins = [m for m in _BEGIN.finditer(output) if m.end() <= rcs[-1].start()]
    start = begins[-1].end() if begins else 0
    return output[start : rcs[-1].start()].strip("\n"), int(rcs[-1].group(1))


_VTYSH_ERROR = re.compile(r"^.*% (Unknown command|Ambiguous command|Command incomplete).*$", re.M)


def vtysh_errors(output: str) -> list[str]:
    """The lines of vtysh output that report a rejected command (vtysh is otherwise silent).

    >>> vtysh_errors("line 3: % Unknown command[25]:  bogus\\nok")
    ['line 3: % Unknown command[25]:  bogus']
    """
    return [m.group(0).strip() for m in _VTYSH_ERROR.finditer(output)]


def strip_running_header(config: str) -> str:
    """Drop vtysh's "Building configuration..." banner, keep the configuration itself."""
    lines = config.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("Current configuration:"):
            return "\n".join(lines[i + 1 :]).strip("\n") + "\n"
    return config
