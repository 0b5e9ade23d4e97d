"""An application's hosts in memory for the app-maintenance and fault-application unit tests:
NetBox's services (GraphQL) and the app playbooks (app_deploy.yml, app_triage.yml,
fault_restart_service.yml) as the role behaves, on hosts held as a table of releases."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from runbooks.config import NetBoxSettings
from runbooks.core.engine import Engine
from runbooks.core.store import RecordStore
from runbooks.gateways.ansible import AnsibleGateway
from runbooks.gateways.ansible_events import PlaybookResult, TaskResult
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.library.app_common import SERVICES_QUERY
from runbooks.library.app_maintenance import PLAYBOOK
from runbooks.library.fault_application import KEY, TRIAGE
from runbooks.library.fault_common import RESTART
from tests.support.fake_ansible import FakeAnsible, Play, factory

GOOD = {"1.0", "1.1"}  # releases that answer 200; any other answers 500


class World:
    """Hosts as releases: host -> (version or None, running)."""

    def __init__(self, **hosts: tuple[str | None, bool]) -> None:
        self.hosts = dict(hosts)
        self.calls: list[tuple[str, bool, dict[str, Any]]] = []
        self.services = [
            {"id": i, "name": "shop",
             "parent": {"__typename": "DeviceType", "name": h}, "port_mappings": ["tcp/8080"]}
            for i, h in enumerate(sorted(hosts), 1)
        ]  # fmt: skip

    def address(self, host: str) -> str:
        return f"192.0.2.{sorted(self.hosts).index(host) + 1}"

    def state(self, host: str) -> dict[str, Any]:
        version, running = self.hosts[host]
        code = (200 if version in GOOD else 500) if running else None
        health = {"code": code, "latency_ms": 2.0, "url": "http://h:8080/health"}
        return {"version": version, "running": running, "installed": bool(version),
                "health": health}  # fmt: skip

    def triage(self, host: str) -> dict[str, Any]:
        """What app_triage.yml reads: the state, the listeners, the log's errors."""
        state = self.state(host)
        listens = [f"{self.address(host)}:8080"] if state["running"] else []
        return {**state, "process_listens": listens, "listening_on_port": listens,
                "log_errors": [], "log": "/var/log/shop/shop.log"}  # fmt: skip


class FakeGraphQL:
    """NetBox's GraphQL endpoint, for the services query only."""

    def __init__(self, world: World) -> None:
        self.world = world

    def graphql(self, query: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        assert query == SERVICES_QUERY
        return {"service_list": [s for s in self.world.services if s["name"] == variables["name"]]}

    def close(self) -> None:
        pass


class AppAnsible(FakeAnsible[World]):
    """app_deploy.yml as the role behaves: serial, a host failing its health check rolled
    back to its release before, the roll stopped there; app_triage.yml reading each host;
    fault_restart_service.yml starting the service on the release in place."""

    def _fake_hosts(self) -> dict[str, dict[str, Any]]:
        return {h: {"ansible_host": self.world.address(h)} for h in self.world.hosts}

    def _fake_play(self, play: Play) -> PlaybookResult:
        playbook, check, limit, given, _tags = play
        self.world.calls.append((playbook, check, given))
        if playbook == TRIAGE:
            tasks = [TaskResult(h, "Triage", "p", "ok", evidence={KEY: self.world.triage(h)})
                     for h in sorted(limit)]  # fmt: skip
            return PlaybookResult(playbook, check, "successful", 0, tuple(tasks))
        if playbook == RESTART:
            return self._restart(playbook, check, limit, given)
        assert playbook == PLAYBOOK
        tasks: list[TaskResult] = []
        for host in sorted(limit):
            before = self.world.state(host)
            tasks.append(TaskResult(host, "State", "p", "ok", evidence={"app_before": before}))
            if given.get("app_action") == "read":
                continue
            restore = given.get("app_restore") or {}
            target = restore[host] if host in restore else given["app_version"]
            same = before["version"] == (target or None) and (before["running"] or not target)
            if not same:
                tasks.append(TaskResult(host, "Release | current", "p", "changed", True))
            if check:
                continue
            self.world.hosts[host] = (target or None, bool(target))
            if target and target not in GOOD:  # the rescue: back to the release before
                self.world.hosts[host] = (before["version"], True)
                msg = f"shop {target} failed on {host}: rolled back to {before['version']}"
                tasks.append(TaskResult(host, "Rollback | done", "p", "failed", msg=msg))
                return PlaybookResult(playbook, check, "failed", 2, tuple(tasks))
            after = self.world.state(host)  # the play reads every host after, changed or not
            tasks.append(TaskResult(host, "State", "p", "ok", evidence={"app_after": after}))
        return PlaybookResult(playbook, check, "successful", 0, tuple(tasks))

    def _restart(
        self, playbook: str, check: bool, limit: list[str], given: dict[str, Any]
    ) -> PlaybookResult:
        assert given["triage_service"] == "shop" and given["triage_targets"] == ",".join(limit)
        tasks = []
        for host in limit:
            name = "Remedy | restart the service (init script)"
            tasks.append(TaskResult(host, name, "p", "changed", True, action="sysvinit"))
            if not check:
                self.world.hosts[host] = (self.world.hosts[host][0], True)
        return PlaybookResult(playbook, check, "successful", 0, tuple(tasks))


def engine(tmp_path: Path, world: World) -> Engine:
    """An engine on ``world``: NetBox's services and the app playbooks in memory."""

    def nb(ctx: Any, key: str) -> NetBoxGateway:
        settings = NetBoxSettings("http://127.0.0.1:9", "nbt_" + secrets.token_hex(8) + ".x")
        gw = NetBoxGateway(settings, ctx.mode, run_id=ctx.run_id)
        gw.http = FakeGraphQL(world)  # type: ignore[assignment]
        return gw

    return Engine(
        RecordStore(tmp_path / "r.sqlite3"),
        "olivia",
        gateway_factories={AnsibleGateway: factory(AppAnsible, world), NetBoxGateway: nb},
    )
