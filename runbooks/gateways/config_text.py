r"""Configuration text without its secrets, and the secrets put back.

What a plan, a record, a review page or a log shows of a device's configuration (running
configuration, candidate, diff) goes through `sanitize` first: every secret value becomes
the placeholder ``<removed>``, and every value removed is registered with
`runbooks.core.secrets`, so it is masked wherever else it turns up (an error message, a
log line). The filters are netutils' format (``regex`` → ``replace``, applied by
`netutils.config.clean.sanitize_config`): ours first, each removing the value only and
keeping the rest of the line; then NAPALM's Cisco/Arista filters as a net for what ours
miss (they skip a line ours already cleaned).

A sanitised candidate can still be committed: `fill_secrets` puts each placeholder back from
the line of a raw configuration (the device's running one, a fresh rendering) that reads the
same around it in the same section (the same enclosing section lines); when that section is
gone, no line of another section stands in for it: `SecretUnavailable` names the line.

>>> print(sanitize("router bgp 65001\n neighbor 10.0.0.1 password s3cr3t-bgp\n"), end="")
router bgp 65001
 neighbor 10.0.0.1 password <removed>
>>> print(fill_secrets("hostname r1\nenable secret 5 <removed>\n",
...                    "enable secret 5 $1$abcd$xyzXYZ\n"), end="")
hostname r1
enable secret 5 $1$abcd$xyzXYZ
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from napalm.base import constants as napalm_constants
from netutils.config.clean import sanitize_config

from runbooks.core import secrets
from runbooks.core.errors import SecretUnavailable

PLACEHOLDER = "<removed>"

_UNCLEANED = rf"(?!.*{PLACEHOLDER})"
_NO = r"(?:no\s+)?"  # FRR's diff deletes a line with "no <line>"
_TYPE = r"(?: (?:\d{1,2}|sha512))?"  # IOS/EOS hash types: 0, 5, 7, 8, 9, sha512


def _filter(keep: str, value: str = r"\S+", rest: str = r"") -> dict[str, str]:
    """A netutils filter that removes only ``value`` from a line ``keep value rest``
    (and leaves alone a line an earlier filter cleaned)."""
    return {
        "regex": rf"^{_UNCLEANED}(?P<keep>\s*{_NO}{keep})(?P<value>{value})(?P<rest>{rest})$",
        "replace": rf"\g<keep>{PLACEHOLDER}\g<rest>",
    }


# Ours: one value each, the rest of the line kept (so `fill_secrets` finds the line again).
FILTERS: list[dict[str, str]] = [
    # BGP neighbour passwords: FRR, IOS, EOS, NX-OS ("password 7 <hash>"), BIRD
    _filter(r"neighbor \S+ password(?: \d)? "),
    _filter(r'password "', r'[^"]+', r'".*'),  # BIRD: password "…";
    # enable secrets, user passwords (IOS, EOS, NX-OS, FRR's vty "password"/"enable password")
    _filter(rf"enable (?:password|secret)(?: level \d+)?{_TYPE} "),
    _filter(rf"username \S+(?: .*)? (?:password|secret){_TYPE} ", r"\S+", r"(?: \S+)*"),
    _filter(rf"aaa root secret{_TYPE} "),
    _filter(r"password(?: \d)? "),
    # SNMP communities: IOS/EOS/NX-OS, FRR's snmp, Junos (text and set forms)
    _filter(r"snmp-server community ", r"\S+", r"(?: .*)?"),
    _filter(
        r"snmp-server host \S+(?: vrf \S+)?(?: informs| traps)?(?: version (?:1|2c|3 \S+))? ",
        r"\S+",
        r"(?: .*)?",
    ),
    _filter(r"snmp community ", r"\S+", r"(?: .*)?"),
    _filter(r"set snmp community ", r"\S+", r"(?: .*)?"),
    _filter(r"community ", r"[^\s;{]+", r"(?:;.*| \{.*)"),  # Junos: community public { … }
    # routing protocol keys
    _filter(r"ip ospf authentication-key(?: \d)? "),
    _filter(r"ip ospf message-digest-key \d+ md5(?: \d)? "),
    _filter(r"ipv6 ospf6 authentication key-id \d+ hash-algo \S+ key "),
    _filter(r"ip rip authentication string "),
    _filter(r"(?:isis )?(?:area|domain)-password(?: (?:clear|md5))? ", r"\S+", r"(?: .*)?"),
    _filter(r"key-string(?: \d)? "),
    _filter(r"(?:tacacs|radius)-server (?:\S+ )*?key(?: \d)? "),
    _filter(r"key \d "),
    _filter(r"ntp authentication-key \d+ md5 ", r"\S+", r"(?: \d+)?"),
    # Junos: every "$<n>$…" value, and whatever the device itself marks SECRET-DATA
    _filter(r'.*?"', r"\$\d+\$[^\"]+", r'".*'),
    _filter(r'.*? "', r'[^"]+', r'";\s*## SECRET-DATA'),
    _filter(r".*? ", r"[^\s\";]+", r";\s*## SECRET-DATA"),
]


def _net(table: dict[str, str]) -> list[dict[str, str]]:
    """NAPALM's filters (regex → replacement with ``<removed>``), skipping lines ours cleaned."""
    return [
        {"regex": re.sub(r"^\^", f"^{_UNCLEANED}", regex), "replace": replace}
        for regex, replace in table.items()
    ]


NET_FILTERS: list[dict[str, str]] = _net(
    {**napalm_constants.CISCO_SANITIZE_FILTERS, **napalm_constants.EOS_SANITIZE_FILTERS}
)

_DIFF_MARK = ("+", "-")  # unified and NAPALM diffs: "+line", "-line", "+ line"


def sanitize(text: str) -> str:
    r"""``text`` (a configuration, candidate or diff) with each secret value replaced by
    ``<removed>``; every value removed is registered with `runbooks.core.secrets`.

    >>> sanitize("snmp-server community n0t-public RO\nusername ops secret 9 $9$q1w2e3\n")
    'snmp-server community <removed> RO\nusername ops secret 9 <removed>\n'
    >>> sanitize("+ neighbor 10.0.0.1 password s3cr3t")  # a diff's line
    '+ neighbor 10.0.0.1 password <removed>'
    """
    lines = text.split("\n")
    marks = [line[0] if line[:1] in _DIFF_MARK else "" for line in lines]
    body = "\n".join(line[len(mark) :] for line, mark in zip(lines, marks, strict=True))
    clean = sanitize_config(sanitize_config(body, FILTERS), NET_FILTERS)
    clean_lines = clean.split("\n")
    if len(clean_lines) != len(lines):  # no filter above joins or splits lines
        raise AssertionError("sanitising changed the number of lines")
    for raw, cleaned in zip(body.split("\n"), clean_lines, strict=True):
        if cleaned != raw:
            secrets.register(*_values(cleaned, raw))
    return "\n".join(mark + line for mark, line in zip(marks, clean_lines, strict=True))


def _pattern(sanitized_line: str) -> re.Pattern[str]:
    """The raw lines a sanitised line stands for: its text around each placeholder."""
    parts = [re.escape(part) for part in sanitized_line.split(PLACEHOLDER)]
    return re.compile("^" + "(.+?)".join(parts) + "$")


def _values(sanitized_line: str, raw_line: str) -> tuple[str, ...]:
    found = _pattern(sanitized_line).match(raw_line)
    return found.groups() if found else ()


def _sections(lines: list[str]) -> Iterator[tuple[str, ...]]:
    """For each line, the path of sections enclosing it: each line above it indented less
    than the one below, outermost first, stripped (``("protocols {", "bgp {", "group X {",
    "neighbor 10.0.0.1 {")``). A blank line belongs to the section around it (it ends none)."""
    stack: list[tuple[int, str]] = []
    for line in lines:
        if not line.strip():
            yield tuple(text for _, text in stack)
            continue
        depth = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= depth:
            stack.pop()
        yield tuple(text for _, text in stack)
        stack.append((depth, line.strip()))


def _same_section(path: tuple[str, ...], raw_path: tuple[str, ...]) -> bool:
    """Whether a sanitised line's section path is the raw line's (a section line may hold a
    placeholder too: Junos' ``community <removed> {``)."""
    return len(path) == len(raw_path) and all(
        _pattern(mine).match(theirs) for mine, theirs in zip(path, raw_path, strict=True)
    )


def _fill_line(line: str, path: tuple[str, ...], source: str) -> tuple[str, ...] | None:
    """The values of ``line``'s placeholders in ``source``: from the lines of the same section
    path that read the same around them; None when there is none, or several disagree. A line
    of another section is never used, even when the line's own section is gone: its secret
    is another session's, another user's (a wrong secret put back silently)."""
    pattern = _pattern(line.strip())
    lines = source.split("\n")
    found = {
        match.groups()
        for raw, above in zip(lines, _sections(lines), strict=True)
        if (match := pattern.match(raw.strip())) and _same_section(path, above)
    }
    return found.pop() if len(found) == 1 else None


def fill_secrets(sanitized: str, *sources: str) -> str:
    r"""``sanitized`` with each ``<removed>`` put back from the first of ``sources`` (raw
    configurations) holding a line that reads the same around it in the same section (the
    same path of enclosing section lines; never a line of another section).

    Raises `SecretUnavailable` naming the (sanitised) line when no source holds it.

    >>> fill_secrets("hostname r1\npassword <removed>\n", "hostname r1\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    runbooks.core.errors.SecretUnavailable: no configuration holds the secret of line 2 'pas...
    """
    if PLACEHOLDER not in sanitized:
        return sanitized
    lines = sanitized.split("\n")
    out = []
    for number, (line, path) in enumerate(zip(lines, _sections(lines), strict=True), 1):
        if PLACEHOLDER in line:
            values = next(
                (v for source in sources if (v := _fill_line(line, path, source)) is not None),
                None,
            )
            if values is None:
                raise SecretUnavailable(
                    f"no configuration holds the secret of line {number} {line.strip()!r}",
                    line=number,
                    text=line,
                )
            parts = line.split(PLACEHOLDER)
            out.append(parts[0] + "".join(v + p for v, p in zip(values, parts[1:], strict=True)))
        else:
            out.append(line)
    return "\n".join(out)
