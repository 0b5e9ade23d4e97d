"""An Ansible gateway in memory for unit tests: its inventory and its plays are the test's
(a subclass's ``_fake_hosts`` and ``_fake_play``), everything else is the real `AnsibleGateway`
(check/run/run_unchecked, the refusal of writes in a plan, the errors a failed play raises)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from runbooks.core.gateway import reads
from runbooks.gateways.ansible import AnsibleGateway, AnsibleSettings
from runbooks.gateways.ansible_events import PlaybookResult


class Play(NamedTuple):
    """One playbook run asked of the gateway."""

    playbook: str
    check: bool
    limit: list[str]
    extravars: dict[str, Any]
    tags: list[str]


class FakeAnsible[W](AnsibleGateway):
    """``world``: what the test's pretend hosts share."""

    world: W

    def _fake_hosts(self) -> dict[str, dict[str, Any]]:
        """The NetBox inventory's hosts and their variables."""
        raise NotImplementedError

    def _fake_play(self, play: Play) -> PlaybookResult:
        """One playbook run (``play.check``: check mode) on ``play.limit``."""
        raise NotImplementedError

    @reads
    def inventory_hosts(self) -> dict[str, dict[str, Any]]:
        return self._fake_hosts()

    def _play(
        self,
        playbook: str,
        check: bool,
        limit: Sequence[str],
        extravars: Mapping[str, Any] | None,
        tags: Sequence[str],
        hosts: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> PlaybookResult:
        return self._fake_play(
            Play(playbook, check, list(limit), dict(extravars or {}), list(tags))
        )


def factory[W](
    kind: type[FakeAnsible[W]], world: W, settings: AnsibleSettings | None = None
) -> Callable[[Any, str], AnsibleGateway]:
    """An engine's gateway factory making ``kind`` on ``world``."""

    def make(ctx: Any, key: str) -> AnsibleGateway:
        gateway = kind(ctx.mode, settings or AnsibleSettings(inventory="localhost"))
        gateway.world = world
        return gateway

    return make
