"""The client of NetBox's change control: the record mirror keeps NetBox's copy of a run the
same chain as the local one (in order, through outages, after a crash), and the plugin's
refusals reach people as one-line errors. The server here is a fake that checks entries with
the same rules the plugin uses (runbooks_rules.chain); the lab tests use the real one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from runbooks_rules.chain import Entry, genesis

from runbooks.config import NetBoxSettings, netbox_settings
from runbooks.core import secrets
from runbooks.core.errors import (
    ApprovalError,
    AuthenticationError,
    ConnectError,
    GatewayError,
    InputError,
    IntegrityError,
    StoreError,
)
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox_plugin import NetBoxChanges, PluginAPI
from runbooks.gateways.netbox_records import RecordMirror

TOKEN = "nbt_" + "k" * 12 + "." + "s" * 40


class FakePlugin(PluginAPI):
    """The plugin's entries endpoint: all or nothing, each entry must continue the chain."""

    def __init__(self, away: int = 0, refuse: Exception | None = None) -> None:
        super().__init__(NetBoxSettings("http://127.0.0.1:9", TOKEN))
        self.held: list[Entry] = []
        self.away = away  # this many requests fail as if NetBox were down or overloaded
        self.refuse = refuse
        self.posts = 0

    def post(self, path: str, body: Any) -> Any:
        self.posts += 1
        if self.away > 0:
            self.away -= 1
            if self.away % 2:
                raise GatewayError("NetBox failed POST entries (502: Bad Gateway)", status=502)
            raise ConnectError("NetBox at http://127.0.0.1:9 is unreachable (connection refused)")
        if self.refuse is not None:
            raise self.refuse
        for raw in body["entries"]:
            entry = Entry.from_dict(raw)
            head = self.held[-1].hash if self.held else genesis(entry.run_id)
            if entry.seq != len(self.held) + 1 or entry.prev_hash != head:
                raise IntegrityError(f"entry #{entry.seq} does not continue the run's chain")
            if entry.content_hash() != entry.hash:
                raise IntegrityError(f"entry #{entry.seq} does not match its hash")
            self.held.append(entry)
        return {"length": len(self.held), "head": self.held[-1].hash}

    def get(self, path: str, **params: Any) -> Any:
        return {"length": len(self.held), "head": self.held[-1].hash if self.held else ""}


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    return RecordStore(tmp_path / "records.sqlite3")


def mirrored(store: RecordStore, api: FakePlugin, run: str = "run-1") -> RecordMirror:
    mirror = RecordMirror(api, store.path, retry_s=0.05)
    store.observers.append(mirror.observe)
    mirror.track(run, 7)
    return mirror


def write(store: RecordStore, n: int, run: str = "run-1") -> None:
    for i in range(n):
        store.append(run, "step.finished", {"i": i}, actor="olivia", step=f"s{i}")


def test_netbox_holds_the_same_chain_in_order(store: RecordStore) -> None:
    api = FakePlugin()
    mirror = mirrored(store, api)
    write(store, 25)
    held = mirror.flush("run-1", timeout=10)
    mirror.close()
    assert [e.hash for e in api.held] == [e.hash for e in store.entries("run-1")]
    assert held.head == store.run_head("run-1") and held.sent == 25
    assert held.url == "http://127.0.0.1:9/plugins/runbooks/runs/7/"


def test_what_waits_goes_in_one_request(store: RecordStore) -> None:
    write(store, 150)  # e.g. written while NetBox was away, or before the run was granted
    api = FakePlugin()
    mirror = mirrored(store, api)
    assert mirror.flush("run-1", timeout=10).sent == 150
    mirror.close()
    assert api.posts == 1


def test_entries_written_while_netbox_is_away_arrive_later(store: RecordStore) -> None:
    api = FakePlugin(away=4)  # connection refused, 502, refused, 502
    mirror = mirrored(store, api)
    write(store, 4)
    assert mirror.flush("run-1", timeout=10).sent == 4
    mirror.close()
    assert [e.seq for e in api.held] == [1, 2, 3, 4]


def test_netbox_away_past_the_wait_says_how_to_send_the_rest(store: RecordStore) -> None:
    api = FakePlugin(away=10_000)
    mirror = mirrored(store, api)
    write(store, 2)
    with pytest.raises(ConnectError, match=r"2 entries of run-1 are not in NetBox yet.*push run-1"):
        mirror.flush("run-1", timeout=0.5)
    mirror.close()


@pytest.mark.parametrize(
    ("refusal", "said"),
    [
        (ApprovalError("olivia did not start this run"), "olivia did not start this run"),
        (AuthenticationError("the token was revoked"), "the token was revoked"),
        (ValueError("Out of range float values are not JSON compliant"), "ValueError: Out of"),
    ],
)
def test_what_retrying_cannot_mend_is_raised_at_the_flush(
    store: RecordStore, refusal: Exception, said: str
) -> None:
    api = FakePlugin(refuse=refusal)
    mirror = mirrored(store, api)
    write(store, 1)
    with pytest.raises(StoreError, match=f"NetBox refused the record of run-1: {said}"):
        mirror.flush("run-1", timeout=10)
    mirror.close()
    assert api.posts == 1  # not retried


def test_numbers_json_cannot_carry_are_kept_as_text(store: RecordStore) -> None:
    api = FakePlugin()
    mirror = mirrored(store, api)
    store.append("run-1", "step.finished", {"loss": float("nan")}, actor="olivia", step="s")
    mirror.flush("run-1", timeout=10)
    mirror.close()
    assert store.entries("run-1")[0].payload == {"loss": "nan"} and store.verify().ok
    assert api.held[0].hash == store.run_head("run-1")


def test_entries_a_dead_process_sent_are_not_sent_twice(store: RecordStore) -> None:
    write(store, 5)
    api = FakePlugin()
    api.held = store.entries("run-1")[:3]  # sent before the process died, unheard
    mirror = mirrored(store, api)  # a new process, believing NetBox holds nothing
    assert mirror.flush("run-1", timeout=10).sent == 5
    mirror.close()
    assert [e.hash for e in api.held] == [e.hash for e in store.entries("run-1")]


def test_only_runs_netbox_granted_are_mirrored(store: RecordStore) -> None:
    api = FakePlugin()
    mirror = mirrored(store, api)
    write(store, 2, run="local-only")
    write(store, 1)
    mirror.flush("run-1", timeout=10)
    mirror.close()
    assert {e.run_id for e in api.held} == {"run-1"}


def response(status: int, body: dict[str, Any]) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers["Content-Type"] = "application/json"
    r._content = json.dumps(body).encode()
    r.url = "http://127.0.0.1:9/api/plugins/runbooks/changes/1/sign/"
    return r


@pytest.mark.parametrize(
    ("status", "detail", "error"),
    [
        (403, "rachel reviewed this change; another person must approve it", ApprovalError),
        (409, "entry #3 does not continue the run's chain", IntegrityError),
        (403, "Invalid v2 token", AuthenticationError),
    ],
)
def test_the_plugins_answers_become_one_line_errors(
    status: int, detail: str, error: type[Exception]
) -> None:
    api = PluginAPI(NetBoxSettings("http://127.0.0.1:9", TOKEN))
    with pytest.raises(error) as raised:
        api._check(response(status, {"detail": detail}), "POST sign", accept_text=False)
    assert detail in str(raised.value) and "\n" not in str(raised.value)


def test_a_netbox_url_without_its_scheme_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOKS_NETBOX_URL", "netbox.example:8000")
    with pytest.raises(InputError, match=r"must start with http:// or https://"):
        netbox_settings()


def test_a_plan_that_holds_a_secret_is_not_sent_for_review(store: RecordStore) -> None:
    from runbooks.core.plan import Plan, PlannedStep
    from runbooks.core.policy import HANDLE, Identity
    from runbooks.core.results import Diff, Status, StepKind

    secret = "s3cr3t-" + "x" * 12
    secrets.register(secret)
    diff = Diff.of_text("r1 configuration", "hostname r1\n", f"password {secret}\n")
    step = PlannedStep("apply", "Apply", StepKind.CHANGE, Status.PLANNED, ("r1",), diffs=(diff,))
    plan = Plan("rack-in", "7", {}, (step,), datetime.now(UTC), "olivia")
    api = FakePlugin()
    with pytest.raises(InputError, match="the plan holds a secret"):
        NetBoxChanges(api).create(plan, Identity("olivia", frozenset({HANDLE})), None)
    assert api.posts == 0
