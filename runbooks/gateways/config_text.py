r"""Configuration text without its secrets, and the secrets put back.

What a plan, a record, a review page or a log shows of a device's configuration (running
configuration, candidate, diff) goes through `sanitize` first: every secret value becomes
the placeholder ``<removed>``, and every value removed is registered with
`runbooks.core.secrets`, so it is masked wherever else it turns up (an error message, a
log line). The filters are netutils' format (``regex`` → ``replace``, applied by
`netutils.config.clean.sanitize_config`): ours first, each removing the value only and
keeping the rest of the line; then NAPALM's Cisco/Arista filters as a net for what ours
miss (they skip a line ours already cleaned). A few filters apply only inside a section
(`SECTION_FILTERS`: a bare ``key`` under ``radius server X``), and secret-named JSON keys
are cleaned however many a line holds. Diff lines keep their mark (``+ - ! > *``).
Structured answers (``cli(..., encoding="json")``) go through `sanitize_data`.

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
from collections.abc import Iterator, Mapping
from typing import Any

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


# Secret-named elements of Junos XML and JSON keys.
_XML_NAMES = (
    r"authentication-key|encrypted-password|simple-password|secret|pre-shared-key|ascii-text"
    r"|hexadecimal|plain-text-password-value|key-string|password"
)
_JSON_NAMES = rf"(?:{_XML_NAMES}|community|auth(?:entication)?[-_]?(?:key|password)|psk)"

# Ours: one value each, the rest of the line kept (so `fill_secrets` finds the line again).
FILTERS: list[dict[str, str]] = [
    # BGP/LDP neighbour passwords: FRR, IOS, EOS, NX-OS ("password 7 <hash>"), BIRD
    _filter(r"(?:(?:bgp|mpls ldp) )?neighbor \S+ password(?:\s+\d)?\s+"),
    _filter(r'password\s+"', r'(?:[^"\\]|\\.)+', r'".*'),  # BIRD: password "…"; (\" inside)
    # enable secrets, user passwords (IOS, EOS, NX-OS, FRR's vty "password"/"enable password")
    _filter(rf"enable (?:password|secret)(?: level \d+)?{_TYPE} "),
    _filter(rf"username \S+(?: .*)? (?:password|secret){_TYPE} ", r"\S+", r"(?: \S+)*"),
    _filter(rf"aaa root secret{_TYPE} "),
    _filter(r"ip (?:ftp|http client) password(?: \d)? "),
    # FRR's interface "isis password clear|md5 …" (and the bare "password" of vty/IS-IS)
    _filter(r"(?:isis )?password(?: \d| clear| md5)? "),
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
    # SNMPv3 users (IOS, EOS, NX-OS): the auth and the priv key
    {
        "regex": rf"^{_UNCLEANED}(?P<keep>\s*{_NO}snmp-server user \S+ (?:\S+ )*?auth \S+ )"
        r"(?P<auth>\S+)(?P<mid> priv \S+(?: \d+)? )(?P<priv>\S+)(?P<rest>(?: .*)?)$",
        "replace": rf"\g<keep>{PLACEHOLDER}\g<mid>{PLACEHOLDER}\g<rest>",
    },
    _filter(r"snmp-server user \S+ (?:\S+ )*?auth \S+ ", r"\S+", r"(?: .*)?"),
    # IKE pre-shared keys (IOS "crypto isakmp key", keyrings, IKEv2 profiles)
    _filter(r"crypto isakmp key(?: \d)? ", r"\S+", r" (?:address|hostname) .*"),
    _filter(r"pre-shared-key (?:address|hostname|ipv6) \S+(?: \S+)? key(?: \d)? "),
    _filter(r"pre-shared-key (?:local|remote)(?: \d)? "),
    _filter(r"pre-shared-key(?: \d)? "),
    # routing protocol keys (FRR's OSPF virtual links too)
    _filter(r"(?:ip )?ospf authentication-key(?: \d)? "),
    _filter(r"(?:ip )?ospf message-digest-key \d+ md5(?: \d)? "),
    _filter(r"area \S+ virtual-link \S+ (?:\S+ )*?authentication-key "),
    _filter(r"area \S+ virtual-link \S+ (?:\S+ )*?message-digest-key \d+ md5 "),
    _filter(r"ipv6 ospf authentication ipsec spi \d+ (?:md5|sha1)(?: \d)? "),
    _filter(r"ipv6 ospf6 authentication key-id \d+ hash-algo \S+ key "),
    _filter(r"ip rip authentication string "),
    _filter(r"(?:isis )?(?:area|domain)-password(?: (?:clear|md5))? ", r"\S+", r"(?: .*)?"),
    _filter(r"key-string(?: \d)? "),
    _filter(r"(?:tacacs|radius)-server (?:\S+ )*?key(?: \d)? "),
    _filter(r"server-private \S+ (?:\S+ )*?key(?: \d)? "),
    _filter(r"key \d "),
    _filter(r"ntp authentication-key \d+ md5 ", r"\S+", r"(?: \d+)?"),
    # Junos: every "$<n>$…" value, and whatever the device itself marks SECRET-DATA
    _filter(r'.*?"', r"\$\d+\$[^\"]+", r'".*'),
    _filter(r'.*? "', r'[^"]+', r'";\s*## SECRET-DATA'),
    _filter(r".*? ", r"[^\s\";]+", r";\s*## SECRET-DATA"),
    _filter(r"set system (?:tacplus|radius)-server \S+ secret ", r"[^\s\"]+"),
    _filter(r"set system login user \S+ authentication plain-text-password-value ", r"[^\s\"]+"),
    # XML answers (Junos "| display xml"): a secret-named element, or any "$<n>$…" value
    _filter(r".*?<(?P<tag>" + _XML_NAMES + r")(?: [^>]*)?>", r"[^<]+", r"</(?P=tag)>.*"),
    _filter(r".*?<(?P<tag>[\w-]+)(?: [^>]*)?>", r"\$\d+\$[^<]+", r"</(?P=tag)>.*"),
]

# JSON answers as text (Junos "| display json", "| json"): every secret-named key's string,
# however many a line holds.
_JSON_VALUE = re.compile(
    rf'(?P<keep>"{_JSON_NAMES}"\s*:\s*")(?!{PLACEHOLDER}")(?P<value>(?:[^"\\]|\\.)+)"'
)

# Filters that apply only inside a section (its line matching the first pattern): a bare
# "key <value>" is a secret under IOS' "radius server X"/"tacacs server X" but is a key
# chain's key number elsewhere; Junos XML's community is the <name> inside <community>.
SECTION_FILTERS: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(r"(?:radius|tacacs) server \S+$"), _filter(r"key(?: \d)? ")),
    (re.compile(r"<community>$"), _filter(r"<name>", r"[^<]+", r"</name>")),
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

# unified and NAPALM diffs ("+line", "-line", "+ line"), IOS/EOS session diffs and
# context diffs ("! line", "> line", "* line")
_DIFF_MARK = ("+", "-", "!", ">", "*")


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
    ours = sanitize_config(_everywhere(_in_sections(body)), FILTERS).split("\n")
    net = sanitize_config("\n".join(ours), NET_FILTERS).split("\n")
    if not len(ours) == len(net) == len(lines):  # no filter above joins or splits lines
        raise AssertionError("sanitising changed the number of lines")
    # a line ours cleaned stays as ours cleaned it (some of NAPALM's filters span lines, so
    # their guard sees only the first: "radius server X … key 7 <removed>" → "key <removed>")
    clean_lines = [
        mine if PLACEHOLDER in mine else theirs for mine, theirs in zip(ours, net, strict=True)
    ]
    for raw, cleaned in zip(body.split("\n"), clean_lines, strict=True):
        if cleaned != raw:
            secrets.register(*_values(cleaned, raw))
    return "\n".join(mark + line for mark, line in zip(marks, clean_lines, strict=True))


def _everywhere(text: str) -> str:
    """``text`` with the filters that may match several times a line applied."""
    return _JSON_VALUE.sub(rf'\g<keep>{PLACEHOLDER}"', text)


def _in_sections(text: str) -> str:
    """``text`` with `SECTION_FILTERS` applied to the lines of their sections."""
    lines = text.split("\n")
    out = []
    for raw, path in zip(lines, _sections(lines), strict=True):
        line = raw
        for head, table in SECTION_FILTERS:
            if path and head.match(path[-1]):
                line = re.sub(table["regex"], table["replace"], line)
        out.append(line)
    return "\n".join(out)


_DATA_SECRET = re.compile(
    r"(?:password|passwd|passphrase|secret|passwordvalue|authenticationkey|authkey"
    r"|presharedkey|psk|keystring|md5key|privkey|community)$"
)
_HASHED = re.compile(r"\$\d+\$\S+")  # Junos "$9$…", crypt "$6$…"


def _secret_name(key: object) -> bool:
    """Whether a mapping key names a secret (``password``, ``authentication-key``,
    ``authKey``, ``pre_shared_key``, ``community``…), whatever its case and separators."""
    return (  # a name, not a command ("show snmp community" is an answer's key, no secret)
        isinstance(key, str)
        and re.fullmatch(r"[\w-]+", key) is not None
        and bool(_DATA_SECRET.search(re.sub(r"[^a-z0-9]", "", key.lower())))
    )


def sanitize_data(obj: Any, *, secret: bool = False) -> Any:
    """``obj`` (a structured answer: a ``cli(..., encoding="json")`` dict, a getter's) with
    every string sanitised as configuration text, and every string under a secret-named key
    (at any depth below it), or shaped like a hash (``$9$…``), replaced by ``<removed>``;
    every value removed is registered with `runbooks.core.secrets`.

    >>> sanitize_data({"neighbor": {"10.0.0.1": {"authentication-key": "s3cr3t-bgp", "as": 1}}})
    {'neighbor': {'10.0.0.1': {'authentication-key': '<removed>', 'as': 1}}}
    """
    if isinstance(obj, Mapping):
        return {k: sanitize_data(v, secret=secret or _secret_name(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(sanitize_data(v, secret=secret) for v in obj)
    if isinstance(obj, str):
        if obj and obj != PLACEHOLDER and (secret or _HASHED.fullmatch(obj)):
            secrets.register(obj)
            return PLACEHOLDER
        return sanitize(obj)
    return obj


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
