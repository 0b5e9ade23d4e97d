"""Lab tests of the netbox-runbooks plugin: the REST API of a real NetBox with the plugin,
called directly with the lab people's own tokens (`runbooks.lab.netbox.credentials`).

`netbox_lab` (the lab's own fixture) brings the lab's NetBox up with the plugin of this
checkout (restarted when the plugin's code changed); `nb` holds it for the test
(`netbox.held()`: reset to the seeded state first, other processes' resets wait) and gives a
`Lab`: the people, plan documents, record entries built with `runbooks_rules`, and psql on the
NetBox's own database. Set
RUNBOOKS_NETBOX_INSTANCE/RUNBOOKS_NETBOX_PORT to run them against a second lab NetBox.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from netbox_fixtures import netbox_lab  # noqa: F401 (the lab's NetBox, up: a fixture)
from runbooks_rules.chain import genesis, make_entry
from runbooks_rules.plan import plan_hash

from runbooks.lab import netbox

API = "/api/plugins/runbooks/"
# a batched run that stopped part-way, as its run.finished entry names its batches
STOPPED_BATCHES = {
    "kept": ["batch 1 of 3 (canary): leaf1"],
    "failed": ["batch 2 of 3: leaf2"],
    "not_run": ["batch 3 of 3: spine1"],
}
ROLES = ("operator", "reviewer", "approver", "approver2", "supervisor", "worker", "admin")


@dataclass
class Person:
    """A lab person acting through their own API token."""

    role: str
    username: str
    url: str
    token: str = field(repr=False)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        target = path if path.startswith("/") else API + path
        return requests.request(method, self.url + target, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.request("POST", path, json=body)


def now() -> datetime:
    return datetime.now(UTC)


def ts(at: datetime | None = None) -> str:
    return (at or now()).isoformat(timespec="microseconds")


class Lab:
    """What a test needs around the API: people, plans, entries, the database."""

    def __init__(self, people: dict[str, Person]) -> None:
        self.people = people

    def __getitem__(self, role: str) -> Person:
        return self.people[role]

    # -- changes -----------------------------------------------------------------------------
    @staticmethod
    def plan(target: str = "leaf1", value: str = "blue", runbook: str = "ledger") -> dict[str, Any]:
        """A plan document as the runbook command sends it (Plan.to_dict()), hash included."""
        doc: dict[str, Any] = {
            "runbook": runbook,
            "instruction": "99 Test instruction",
            "params": {"device": target, "colour": value},
            "actor": "olivia",
            "created": ts(),
            "refusal": None,
            "changes": 1,
            "expected_duration_s": 5.0,
            "steps": [
                {
                    "step": "check_device",
                    "kind": "check",
                    "status": "ok",
                    "targets": [target],
                    "diffs": [],
                    "title": "The device answers",
                    "duration_s": 1.0,
                    "reversible": True,
                    "evidence": {"uptime": 1234},
                    "error": None,
                },
                {
                    "step": "set_colour",
                    "kind": "change",
                    "status": "planned",
                    "targets": [target],
                    "diffs": [
                        {
                            "target": f"NetBox dcim.device {target}",
                            "kind": "fields",
                            "fields": [{"name": "colour", "before": "red", "after": value}],
                        }
                    ],
                    "title": "Paint the device",
                    "duration_s": 4.0,
                    "reversible": True,
                    "evidence": {},
                    "error": None,
                },
            ],
        }
        doc["hash"] = plan_hash(doc)
        return doc

    def create(
        self,
        role: str = "operator",
        window: tuple[datetime, datetime] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        plan = extra.pop("plan", None) or self.plan()
        start, end = window or (now() - timedelta(hours=1), now() + timedelta(hours=2))
        body = {
            "runbook": plan["runbook"],
            "instruction": plan["instruction"],
            "params": plan["params"],
            "plan": plan,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            **extra,
        }
        resp = self[role].post("changes/", body)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    def sign(self, role: str, change: dict[str, Any], authority: str, **extra: Any) -> Any:
        body = {"authority": authority, "hash": change["plan_hash"], "note": "", **extra}
        return self[role].post(f"changes/{change['id']}/sign/", body)

    def approved(self, **create: Any) -> dict[str, Any]:
        """A change reviewed by rachel and approved by arthur."""
        change = self.create(**create)
        assert self.sign("reviewer", change, "review").status_code == 201
        resp = self.sign("approver", change, "approve")
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    def change(self, change: dict[str, Any]) -> dict[str, Any]:
        resp = self["admin"].get(f"changes/{change['id']}/")
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def chain(self, change: dict[str, Any]) -> list[dict[str, Any]]:
        resp = self["admin"].get(f"changes/{change['id']}/entries/", limit=0)
        assert resp.status_code == 200, resp.text
        return list(resp.json()["results"])

    def start(self, change: dict[str, Any], role: str = "operator", **extra: Any) -> Any:
        body = {"plan_hash": change["plan_hash"], "worker": None, **extra}
        return self[role].post(f"changes/{change['id']}/runs/", body)

    def user_id(self, role: str) -> int:
        found = self["admin"].get("/api/users/users/", username=self[role].username).json()
        return int(found["results"][0]["id"])

    def grant(self, role: str, action: str) -> None:
        """Give a person an authority through a NetBox object permission with the custom
        action (handle, review, approve, supervise) on Runbooks > change."""
        body = {
            "name": f"test: {action} for {self[role].username}",
            "object_types": ["netbox_runbooks.change"],
            "actions": [action],
            "users": [self.user_id(role)],
        }
        resp = self["admin"].post("/api/users/permissions/", body)
        assert resp.status_code == 201, resp.text

    def refused(self, resp: requests.Response, change: dict[str, Any], role: str) -> str:
        """A 403 with one sentence in ``detail``, recorded as the change's last entry (a
        change.refused by the person who tried); returns the sentence."""
        assert resp.status_code == 403, resp.text
        body = resp.json()
        assert list(body) == ["detail"], body
        detail = str(body["detail"])
        assert detail and "\n" not in detail and ". " not in detail, detail
        last = self.chain(change)[-1]
        assert last["kind"] == "change.refused", last
        assert last["payload"]["reason"] == detail
        assert last["actor"] == last["recorded_by"] == self[role].username
        return detail

    def stopped_run(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """An approved change whose run stopped part-way (`STOPPED_BATCHES`): its record is
        run.started, then run.finished `stopped` naming the batches."""
        change = self.approved()
        run = self.start(change).json()
        finished = {
            "status": "stopped",
            "error": "BatchStopped: batch 2 of 3 (leaf2) failed, undone",
            "batches": STOPPED_BATCHES,
        }
        done = self.entries(run, [self.started(run, change), ("run.finished", None, finished)])
        resp = self["operator"].post(f"runs/{run['id']}/entries/", {"entries": done})
        assert resp.status_code == 201, resp.text
        return change, run

    # -- records -------------------------------------------------------------------------------
    @staticmethod
    def entries(
        run: dict[str, Any],
        kinds: list[tuple[str, str | None, dict[str, Any]]],
        *,
        after: tuple[int, str] | None = None,
        actor: str = "olivia",
    ) -> list[dict[str, Any]]:
        """Entries continuing a run's chain (from its start, or ``after`` (seq, hash))."""
        seq, prev = after or (0, genesis(run["run_id"]))
        out = []
        for kind, step, payload in kinds:
            seq += 1
            entry = make_entry(run["run_id"], seq, ts(), actor, kind, step, payload, prev)
            out.append(entry.to_dict())
            prev = entry.hash
        return out

    @staticmethod
    def started(run: dict[str, Any], change: dict[str, Any]) -> tuple[str, None, dict[str, Any]]:
        payload = {"runbook": "ledger", "plan_hash": change["plan_hash"], "change": change["name"]}
        return ("run.started", None, payload)

    # -- the database under test -------------------------------------------------------------
    @staticmethod
    def sql(statement: str) -> subprocess.CompletedProcess[str]:
        """SQL as the postgres superuser on the live database of the NetBox under test (psql on
        127.0.0.1:5432), given on stdin so that no value shows on a command line."""
        return subprocess.run(
            [
                "psql",
                "-h",
                netbox.PG_HOST,
                "-p",
                str(netbox.PG_PORT),
                "-U",
                netbox.PG_USER,
                "-d",
                netbox._db(),  # the live database of this lab NetBox
                "-qAtX",
                "-v",
                "ON_ERROR_STOP=1",
            ],
            input=statement,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


@pytest.fixture(scope="session")
def people(request: pytest.FixtureRequest) -> dict[str, Person]:
    """The lab's people, with their usernames as the plugin names them, on the lab's NetBox
    (up: the lab's own `netbox_lab` fixture)."""
    request.getfixturevalue("netbox_lab")
    found = {}
    with netbox.held(reset_first=False):  # no other session's reset in the middle of asking
        for role in ROLES:
            url, token = netbox.credentials(role)
            person = Person(role, "", url, token)
            answer = person.get("whoami/")
            assert answer.status_code == 200, f"{url} does not serve netbox-runbooks: {answer.text}"
            person.username = answer.json()["username"]
            found[role] = person
    return found


@pytest.fixture
def nb(people: dict[str, Person]) -> Iterator[Lab]:
    """The lab's NetBox reset to its seed and held for this test."""
    with netbox.held():
        yield Lab(people)
