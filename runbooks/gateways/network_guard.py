"""What may reach a device through a read path: a wire-level guard, like NetBox's session.

- ``cli`` takes read-only commands only, in plans and in runs alike: ``show …`` on every
  platform, with the output filters a platform's CLI offers (``| include`` on IOS, ``| match``
  on Junos…), never a pipe or redirect that writes (``| redirect``, ``| save``, ``> file``),
  nor a second line or a shell metacharacter (FRR's and BIRD's drivers run a shell), nor
  anything but printable ASCII (no Unicode line separator, NEL, no-break space…).
- In a plan the gateway hands its driver on only through `ReadOnlyDriver`: getters pass, the
  load → compare → discard sequence passes inside `ReadOnlyDriver.comparing` only, anything
  else (commit, confirm, rollback, a load outside a compare, a non-read command) raises
  `ReadOnlyViolation` before the device sees it, whatever the caller does.
- A driver whose compare itself writes on the device (`COMPARE_WRITES`: NAPALM's IOS and
  NX-OS copy the candidate to the box's flash) gets no load, compare or discard in a plan,
  not even inside ``comparing``: the gateway diffs its running configuration locally.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from runbooks.core.errors import ReadOnlyViolation

# Output filters (the word after "|") each platform's CLI offers that only read; a platform
# not listed gets none (FRR's vtysh and BIRD's birdc run through a shell on the device).
_CISCO_FILTERS = frozenset(
    {"include", "inc", "i", "exclude", "exc", "e", "begin", "b", "section", "sec", "s", "count"}
)
PIPE_FILTERS: dict[str, frozenset[str]] = {
    "ios": _CISCO_FILTERS,
    "iosxr": _CISCO_FILTERS,
    "nxos": _CISCO_FILTERS | {"json", "json-pretty", "xml", "grep", "egrep", "head", "last"},
    "nxos_ssh": _CISCO_FILTERS | {"json", "json-pretty", "xml", "grep", "egrep", "head", "last"},
    "eos": _CISCO_FILTERS | {"json", "grep", "nz", "no-more", "head", "tail"},
    "junos": frozenset({"display", "match", "except", "count", "no-more", "last", "find", "trim"}),
}
_VERB = re.compile(r"show(?:\s.*)?\Z", re.DOTALL)
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f;&<>`$\\]")  # line breaks, shell and redirects


def _refuse(device: str, command: object, why: str) -> ReadOnlyViolation:
    shown = repr(command)[:120]
    return ReadOnlyViolation(
        f"{device}: refused {shown}: {why}", device=device, command=str(command)[:120]
    )


def check_read_only(device: str, driver: str, command: object) -> None:
    """Raise `ReadOnlyViolation` unless ``command`` only reads on ``driver``'s platform.

    >>> check_read_only("r1", "ios", "show ip bgp summary | include Estab")
    >>> check_read_only("r1", "ios", "show running-config | redirect flash:x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    runbooks.core.errors.ReadOnlyViolation: r1: refused 'show running-config | redirect ...
    """
    if not isinstance(command, str):
        raise _refuse(device, command, "a command is one string")
    if not (command.isascii() and command.isprintable()):
        # a device's CLI or a shell may take U+2028, U+0085, U+00A0… as a line break or a
        # blank the checks below do not see
        raise _refuse(device, command, "only printable ASCII characters")
    if _FORBIDDEN.search(command):
        raise _refuse(device, command, "a line break, redirect or shell character")
    head, *pipes = command.split("|")
    if not _VERB.match(head.strip()):
        raise _refuse(device, command, "only show commands may run through cli")
    allowed = PIPE_FILTERS.get(driver, frozenset())
    for pipe in pipes:
        word = pipe.strip().split(" ", 1)[0]
        if word not in allowed:
            raise _refuse(device, command, f"'| {word}' is not a read-only filter on {driver}")


def check_commands(device: str, driver: str, commands: Sequence[str]) -> None:
    if isinstance(commands, str) or not isinstance(commands, Sequence):
        raise _refuse(device, commands, "cli takes a list of commands")
    for command in commands:
        check_read_only(device, driver, command)


# Drivers whose load → compare → discard writes on the device: a fact of their code, which
# no driver can be asked (napalm 5.x, napalm/ios/ios.py and napalm/nxos/nxos.py):
# - ios: load_replace/merge_candidate copy the candidate to flash by SCP or TCL
#   (_load_candidate_wrapper, _xfer_file; ~246-333, 725-798); discard_config is wrapped in
#   @_file_prompt_quiet, which sends "file prompt quiet" as configuration (433-456), then
#   copies running-config to flash:/candidate_config.txt and null: over merge_config.txt
#   (649-655); close() sends "no file prompt quiet" (182-189).
# - nxos, nxos_ssh (NXOSDriverBase, nxos_ssh inherits it unchanged): load_replace_candidate
#   copies the file to bootflash: (file_transfer, 130-166); compare_config writes the
#   checkpoint bootflash:sot_file (_get_diff → _create_sot_file, 254-277, 322-333), which
#   no discard removes; discard_config deletes the candidate file (312-318). (A merge stays
#   in memory and is diffed offline, _get_merge_diff; the plan diffs locally all the same.)
COMPARE_WRITES: dict[str, str] = {
    "ios": "NAPALM's ios driver copies the candidate to flash and sets 'file prompt quiet'",
    "nxos": "NAPALM's nxos driver copies the candidate and a checkpoint to bootflash",
    "nxos_ssh": "NAPALM's nxos_ssh driver copies the candidate and a checkpoint to bootflash",
}

_READS = frozenset({"is_alive", "has_pending_commit"})
_COMPARE = frozenset(
    {"load_replace_candidate", "load_merge_candidate", "compare_config", "discard_config"}
)


class ReadOnlyDriver:
    """A NAPALM driver as a plan sees it: reads only (see the module's docstring)."""

    def __init__(self, driver: Any, device: str, driver_name: str) -> None:
        self._driver = driver
        self._device = device
        self._driver_name = driver_name
        self._comparing = False

    @contextmanager
    def comparing(self) -> Iterator[None]:
        """Let a load, compare and discard through (the gateway's ``compare`` only)."""
        self._comparing = True
        try:
            yield
        finally:
            self._comparing = False

    def cli(self, commands: list[str], encoding: str = "text") -> Any:
        check_commands(self._device, self._driver_name, commands)
        if encoding == "text":
            return self._driver.cli(list(commands))
        return self._driver.cli(list(commands), encoding=encoding)

    def __getattr__(self, name: str) -> Any:
        writes_on_compare = self._driver_name in COMPARE_WRITES
        comparing = self._comparing and not writes_on_compare
        if name.startswith("get_") or name in _READS or (comparing and name in _COMPARE):
            return getattr(self._driver, name)
        if name in _COMPARE and writes_on_compare:
            where = f"in a plan ({COMPARE_WRITES[self._driver_name]})"
        else:
            where = "outside a compare" if name in _COMPARE else "in a plan"
        raise ReadOnlyViolation(
            f"{self._device}: {name} refused {where}: a plan only reads the device",
            device=self._device,
            method=name,
        )
