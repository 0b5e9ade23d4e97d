"""The NetBox gateway without a NetBox: error mapping, plan diffs, dry-run refusal, bulk
conditional writes, drift naming, working-set parsing, undo bodies (a fake transport)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import requests

from runbooks.config import NetBoxSettings
from runbooks.core.errors import (
    AuthenticationError,
    ConnectError,
    DriftError,
    DryRunViolation,
    GatewayError,
    GatewayTimeout,
    RejectedError,
    RunbookError,
)
from runbooks.core.gateway import Mode
from runbooks.core.results import Diff
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_changes import META, ObjectChange, PlannedWrite, restore_body
from runbooks.gateways.netbox_http import GuardedSession
from runbooks.gateways.netbox_model import etag_of
from tests.unit.gateways.netbox_fake import TOKEN, URL, Answer, FakeNetBox, Sent, fake_gateway

ETAG = 'W/"2026-11-28T10:00:00.000001+00:00"'
DEVICE = {
    "id": 5,
    "display": "leaf3",
    "name": "leaf3",
    "status": {"value": "planned", "label": "Planned"},
    "rack": {"id": 1, "url": "http://x/api/dcim/racks/1/", "display": "R01"},
    "position": 36.0,
    "face": {"value": "front", "label": "Front"},
    "last_updated": "2026-11-28T10:00:00.000001Z",
}


def change_record(
    obj_id: int,
    pre: dict[str, object],
    post: dict[str, object],
    message: str,
    user: str = "olivia",
    cid: int = 1,
) -> dict[str, object]:
    return {
        "id": cid,
        "request_id": "req-x",
        "action": {"value": "update", "label": "Updated"},
        "changed_object_type": "dcim.device",
        "changed_object_id": obj_id,
        "object_repr": "leaf3",
        "message": message,
        "time": "2026-11-28T10:01:00Z",
        "user_name": user,
        "prechange_data": pre,
        "postchange_data": post,
    }


# -- errors: one clear line, NetBox's own detail, never the token ---------------------------

ERRORS = [
    (Answer(401, {"detail": "Invalid v2 token"}), AuthenticationError, "refused the token"),
    (Answer(403, {"detail": "No credentials provided."}), AuthenticationError, "refused the token"),
    (
        Answer(403, {"detail": "You do not have permission"}),
        AuthenticationError,
        "lacks permission",
    ),
    (Answer(404, {"detail": "No Device matches the given query."}), RejectedError, "No Device"),
    (Answer(400, {"status": ["bogus is not a valid choice."]}), RejectedError, "valid choice"),
    (Answer(412, {"detail": "Precondition failed."}, {"ETag": ETAG}), DriftError, "changed"),
    (Answer(500, text="<h1>Server Error</h1>", content_type="text/html"), GatewayError, "500"),
    (
        Answer(200, text="<!DOCTYPE html>", content_type="text/html"),
        AuthenticationError,
        "HTML page instead of JSON",
    ),
    (Answer(200, text="hello", content_type="text/plain"), GatewayError, "instead of JSON"),
]


@pytest.mark.parametrize(("answer", "error", "words"), ERRORS)
def test_answers_become_one_line_errors(
    answer: Answer, error: type[RunbookError], words: str
) -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("GET", "/api/dcim/devices/5/", answer)
    with pytest.raises(error) as caught:
        gw.get("dcim.device", 5)
    text = str(caught.value)
    assert words in text and "\n" not in text and TOKEN not in text


def test_render_config_forbidden_says_write_permission() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on(
        "POST",
        "/api/dcim/devices/5/render-config/",
        Answer(403, {"detail": "You do not have permission to perform this action."}),
    )
    with pytest.raises(AuthenticationError, match="write-enabled token"):
        gw.render_config(5)
    assert fake.sent[0].headers["Accept"] == "text/plain"


def test_timeout_and_unreachable() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("GET", "/api/dcim/devices/5/", requests.ReadTimeout("slow"))
    with pytest.raises(GatewayTimeout, match="did not answer"):
        gw.get("dcim.device", 5)
    closed = NetBoxGateway(NetBoxSettings("http://127.0.0.1:9", TOKEN), Mode.PLAN, timeout=2)
    with pytest.raises(ConnectError, match=r"unreachable \(connection refused\)"):
        closed.get("dcim.device", 5)


def test_graphql_errors_are_rejections() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("POST", "/graphql/", Answer(200, {"data": None, "errors": [{"message": "no field"}]}))
    with pytest.raises(RejectedError, match="no field"):
        gw.working_set("leaf3")


def test_token_is_sent_as_bearer_and_registered_for_masking() -> None:
    from runbooks.core.secrets import mask_text

    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("GET", "/api/dcim/devices/5/", Answer(200, DEVICE, {"ETag": ETAG}))
    gw.get("dcim.device", 5)
    assert fake.sent[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in mask_text(f"header {TOKEN}")
    assert TOKEN not in repr(gw.http.settings)


# -- plans ----------------------------------------------------------------------------------


def test_plan_update_diff_carries_etag_and_only_changed_fields() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("GET", "/api/dcim/devices/5/", Answer(200, DEVICE, {"ETag": ETAG}))
    diff = gw.plan_update("dcim.device", 5, {"status": "active", "rack": 1, "position": 20})
    assert [(f.name, f.before, f.after) for f in diff.fields] == [
        ("status", "planned", "active"),
        ("position", 36.0, 20),
    ]
    assert diff.before[META] == {
        "action": "update",
        "type": "dcim.device",
        "id": 5,
        "display": "leaf3",
        "etag": ETAG,
    }
    assert diff.after == {"status": "active", "position": 20}
    # the record round trip keeps everything apply and undo need
    again = PlannedWrite.from_diff(Diff.from_dict(diff.to_dict()))
    assert again is not None and again.etag == ETAG and again.after == diff.after
    assert len(fake.sent) == 1


def test_plan_without_change_is_empty_and_unknown_field_refused() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("GET", "/api/dcim/devices/5/", Answer(200, DEVICE, {"ETag": ETAG}))
    assert gw.plan_update("dcim.device", 5, {"status": "planned"}).empty
    with pytest.raises(RunbookError, match="no field colour"):
        gw.plan_update("dcim.device", 5, {"colour": "red"})


def test_plan_updates_reads_many_objects_in_one_request() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    cables = [
        {
            "id": i,
            "display": f"#{i}",
            "status": {"value": "planned", "label": "P"},
            "last_updated": f"2026-11-28T10:00:0{i}Z",
        }
        for i in (3, 6)
    ]
    fake.on("GET", "/api/dcim/cables/", Answer(200, {"count": 2, "results": cables}))
    diffs = gw.plan_updates("dcim.cable", {3: {"status": "connected"}, 6: {"status": "connected"}})
    assert [d.before[META]["etag"] for d in diffs] == [
        'W/"2026-11-28T10:00:03+00:00"',
        'W/"2026-11-28T10:00:06+00:00"',
    ]
    assert len(fake.sent) == 1 and ("id", "3") in fake.sent[0].query


def test_etag_from_graphql_and_rest_timestamps() -> None:
    assert etag_of("2026-11-28T16:45:50.023761Z") == 'W/"2026-11-28T16:45:50.023761+00:00"'
    assert etag_of("2026-11-28T16:45:50.023761+00:00") == 'W/"2026-11-28T16:45:50.023761+00:00"'
    assert etag_of(None) is None


# -- dry run --------------------------------------------------------------------------------


def test_plan_refuses_every_write_before_sending_anything() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    diff = PlannedWrite(
        "update", "dcim.device", 5, "leaf3", ETAG, {"status": "planned"}, {"status": "active"}
    ).to_diff()
    with pytest.raises(DryRunViolation):
        gw.apply([diff])
    with pytest.raises(DryRunViolation):
        gw.journal("dcim.device", 5, "hello")
    with pytest.raises(DryRunViolation, match="planning never writes"):
        gw.session.patch("http://netbox.invalid/api/dcim/devices/5/", json={})
    assert fake.sent == []


# -- runs -----------------------------------------------------------------------------------


def test_apply_is_one_bulk_patch_with_if_match_and_run_message() -> None:
    gw, fake = fake_gateway(Mode.RUN, run_id="run-7")
    status = PlannedWrite(
        "update", "dcim.device", 5, "leaf3", ETAG, {"status": "planned"}, {"status": "active"}
    ).to_diff()
    position = PlannedWrite(
        "update", "dcim.device", 5, "leaf3", ETAG, {"position": 36.0}, {"position": 20}
    ).to_diff()
    fake.on(
        "PATCH",
        "/api/dcim/devices/",
        Answer(200, [{**DEVICE, "last_updated": "2026-11-28T11:00:00Z"}]),
    )
    record = change_record(
        5,
        {"status": "planned", "position": "36.0"},
        {"status": "active", "position": "20.0"},
        "runbook unit run run-7: leaf3",
    )
    fake.on("GET", "/api/core/object-changes/", Answer(200, {"count": 1, "results": [record]}))

    applied = gw.apply([status, position])

    patch = fake.sent[0]
    assert patch.headers["If-Match"] == ETAG
    assert patch.body == [
        {
            "id": 5,
            "status": "active",
            "position": 20,
            "changelog_message": "runbook unit run run-7: leaf3",
        }
    ]
    assert fake.sent[1].query[0] == ("request_id", "req-1")
    evidence = applied.evidence()
    assert evidence["netbox_requests"][0]["request_id"] == "req-1"
    assert evidence["netbox_changes"][0]["changed"]["status"] == {
        "before": "planned",
        "after": "active",
    }


def test_drift_names_the_object_and_who_edited_it() -> None:
    gw, fake = fake_gateway(Mode.RUN)
    diff = PlannedWrite(
        "update", "dcim.device", 5, "leaf3", ETAG, {"status": "planned"}, {"status": "active"}
    ).to_diff()
    fake.on("PATCH", "/api/dcim/devices/", Answer(412, {"detail": "Precondition failed."}))
    fake.on(
        "GET",
        "/api/dcim/devices/",
        Answer(200, {"results": [{"id": 5, "last_updated": "2026-11-28T12:00:00Z"}]}),
    )
    edit = change_record(5, {}, {"serial": "X"}, "", user="rachel")
    fake.on("GET", "/api/core/object-changes/", Answer(200, {"results": [edit]}))
    with pytest.raises(DriftError) as caught:
        gw.apply([diff])
    assert str(caught.value) == (
        "NetBox dcim.device leaf3 #5 changed since the plan by rachel; nothing was written"
    )


def test_multi_batch_apply_checks_every_etag_before_writing() -> None:
    gw, fake = fake_gateway(Mode.RUN)
    device = PlannedWrite(
        "update", "dcim.device", 5, "leaf3", ETAG, {"status": "planned"}, {"status": "active"}
    ).to_diff()
    cable = PlannedWrite(
        "update", "dcim.cable", 3, "#3", 'W/"old"', {"status": "planned"}, {"status": "connected"}
    ).to_diff()
    fake.on(
        "GET",
        "/api/dcim/devices/",
        Answer(200, {"results": [{"id": 5, "last_updated": "2026-11-28T10:00:00.000001Z"}]}),
    )
    fake.on(
        "GET",
        "/api/dcim/cables/",
        Answer(200, {"results": [{"id": 3, "last_updated": "2026-11-28T12:00:00Z"}]}),
    )
    fake.on("GET", "/api/core/object-changes/", Answer(200, {"results": []}))
    with pytest.raises(DriftError, match=r"dcim\.cable #3 changed since the plan"):
        gw.apply([device, cable])
    assert all(s.method == "GET" for s in fake.sent)


def test_undo_restores_fields_from_prechange_data() -> None:
    gw, fake = fake_gateway(Mode.RUN, run_id="run-7")
    diff = PlannedWrite(
        "update", "dcim.device", 5, "leaf3", ETAG, {"status": "planned"}, {"status": "active"}
    ).to_diff()
    ours = change_record(
        5,
        {"status": "planned", "serial": ""},
        {"status": "active", "serial": ""},
        "runbook unit run run-7: leaf3",
        cid=9,
    )
    fake.on("GET", "/api/core/object-changes/", Answer(200, {"results": [ours]}))
    fake.on(
        "GET",
        "/api/dcim/devices/",
        Answer(200, {"results": [{"id": 5, "last_updated": "2026-11-28T11:00:00Z"}]}),
    )
    fake.on("PATCH", "/api/dcim/devices/", Answer(200, [DEVICE]))
    gw.undo([diff])
    patch = next(s for s in fake.sent if s.method == "PATCH")
    assert patch.body == [
        {"id": 5, "status": "planned", "changelog_message": "runbook unit run run-7 undo"}
    ]
    assert patch.headers["If-Match"] == 'W/"2026-11-28T11:00:00+00:00"'


def test_undo_refuses_when_someone_changed_the_object_after_the_run() -> None:
    gw, fake = fake_gateway(Mode.RUN, run_id="run-7")
    diff = PlannedWrite(
        "update", "dcim.device", 5, "leaf3", ETAG, {"status": "planned"}, {"status": "active"}
    ).to_diff()
    ours = change_record(
        5, {"status": "planned"}, {"status": "active"}, "runbook unit run run-7: leaf3", cid=9
    )
    theirs = change_record(5, {"serial": ""}, {"serial": "X"}, "", user="rachel", cid=10)
    fake.on("GET", "/api/core/object-changes/", Answer(200, {"results": [theirs, ours]}))
    with pytest.raises(RunbookError, match="changed by rachel after this run"):
        gw.undo([diff])
    assert all(s.method == "GET" for s in fake.sent)


def test_restore_body_converts_change_record_data() -> None:
    change = ObjectChange.parse(
        {
            **change_record(
                5,
                {"tags": ["a"], "status": "planned", "interface_count": 3},
                {"tags": ["a", "b"], "status": "active", "interface_count": 4},
                "m",
            ),
        }
    )
    assert restore_body(change) == {"tags": [{"name": "a"}], "status": "planned"}


# -- the working set ------------------------------------------------------------------------

GRAPHQL_DEVICE = {
    "id": "5",
    "name": "leaf3",
    "status": "planned",
    "serial": "",
    "asset_tag": None,
    "position": "36.0",
    "face": "front",
    "description": "",
    "custom_fields": {"bgp_asn": 65103},
    "last_updated": "2026-11-28T10:00:00.000001+00:00",
    "config_context": {"ntp": ["a"]},
    "site": {"id": "1", "name": "Lab DC1", "slug": "lab-dc1"},
    "location": None,
    "rack": {"id": "1", "name": "R01"},
    "platform": {"id": "1", "name": "FRRouting", "slug": "frr"},
    "role": {"id": "2", "name": "Leaf", "slug": "leaf"},
    "tenant": None,
    "device_type": {
        "id": "1",
        "model": "FRR Switch 8",
        "slug": "frr-switch-8",
        "u_height": "1.0",
        "manufacturer": {"id": "1", "name": "Lab Whitebox", "slug": "lab-whitebox"},
    },
    "primary_ip4": {"id": "19", "address": "198.18.0.23/24"},
    "primary_ip6": None,
    "oob_ip": None,
    "interfaces": [
        {
            "id": "43",
            "name": "swp1",
            "type": "10gbase-x-sfpp",
            "enabled": True,
            "mgmt_only": False,
            "description": "",
            "mtu": None,
            "last_updated": "2026-11-28T10:00:01+00:00",
            "primary_mac_address": None,
            "ip_addresses": [
                {
                    "id": "21",
                    "address": "198.18.1.5/31",
                    "status": "reserved",
                    "role": None,
                    "dns_name": "",
                    "description": "",
                    "vrf": None,
                    "last_updated": "2026-11-28T10:00:02+00:00",
                }
            ],
            "cable": {
                "id": "3",
                "status": "planned",
                "label": "",
                "type": None,
                "last_updated": "2026-11-28T10:00:03+00:00",
            },
            "link_peers": [
                {
                    "__typename": "InterfaceType",
                    "id": "5",
                    "name": "swp3",
                    "device": {"id": "1", "name": "spine1", "status": "active"},
                }
            ],
        },
        {
            "id": "44",
            "name": "swp2",
            "type": "10gbase-x-sfpp",
            "enabled": True,
            "mgmt_only": False,
            "description": "",
            "mtu": 9000,
            "last_updated": None,
            "primary_mac_address": {"mac_address": "02:00:00:00:00:01"},
            "ip_addresses": [],
            "cable": None,
            "link_peers": [],
        },
    ],
}


def test_working_set_is_one_request_and_typed() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("POST", "/graphql/", Answer(200, {"data": {"device_list": [GRAPHQL_DEVICE]}}))
    ws = gw.working_set("leaf3")
    assert len(fake.sent) == 1
    assert fake.sent[0].body["variables"] == {"name": "leaf3"}
    assert (ws.id, ws.status, ws.position, ws.rack and ws.rack.name) == (5, "planned", 36.0, "R01")
    assert ws.etag == 'W/"2026-11-28T10:00:00.000001+00:00"'
    assert [i.name for i in ws.cabled] == ["swp1"]
    peer = ws.interface("swp1").peer
    assert peer is not None and (peer.kind, peer.device, peer.name) == (
        "interface",
        "spine1",
        "swp3",
    )
    assert ws.cables[0].etag == 'W/"2026-11-28T10:00:03+00:00"'
    assert ws.interface("swp2").mac_address == "02:00:00:00:00:01"
    assert [ip.address for ip in ws.ip_addresses] == ["198.18.1.5/31"]
    # plans from the working set need no further request
    diffs = [gw.plan_device_status(ws, "active"), *gw.plan_cable_status(ws, "connected")]
    assert [d.before[META]["etag"] for d in diffs] == [ws.etag, ws.cables[0].etag]
    assert len(fake.sent) == 1


def test_working_set_of_unknown_device() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("POST", "/graphql/", Answer(200, {"data": {"device_list": []}}))
    with pytest.raises(RunbookError, match="no device named 'nope'"):
        gw.working_set("nope")


def test_open_builds_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    monkeypatch.setenv("RUNBOOKS_NETBOX_URL", "http://netbox.invalid/")
    monkeypatch.setenv("RUNBOOKS_NETBOX_TOKEN", TOKEN)
    ctx = SimpleNamespace(mode=Mode.RUN, run_id="r-42", runbook=SimpleNamespace(name="rack-in"))
    gw = NetBoxGateway.open(ctx, "leaf3")  # type: ignore[arg-type]
    assert gw.mode is Mode.RUN and gw.session.allow_writes
    assert gw.message == "runbook rack-in run r-42"
    assert gw.http.settings.url == "http://netbox.invalid"
    monkeypatch.delenv("RUNBOOKS_NETBOX_URL")
    with pytest.raises(RunbookError, match="NetBox is not configured"):
        NetBoxGateway.open(ctx, "leaf3")  # type: ignore[arg-type]


# -- no write escapes the declaration: the session, pynetbox and raw calls --------------------


def former_escapes(gw: NetBoxGateway) -> dict[str, Callable[[], object]]:
    """Every way past the gateway's declared writes that it hands out."""
    url = "http://netbox.invalid/api/dcim/devices/"
    return {
        "session.post": lambda: gw.session.post(url, json={"name": "x"}),
        "session.patch": lambda: gw.session.patch(f"{url}5/", json={"status": "active"}),
        "session.put": lambda: gw.session.put(f"{url}5/", json={}),
        "session.delete": lambda: gw.session.delete(f"{url}5/"),
        "pynetbox create": lambda: gw.pynetbox().dcim.devices.create(name="x"),
        "pynetbox bulk update": lambda: gw.pynetbox().dcim.devices.update([{"id": 5}]),
        "http.call": lambda: gw.http.call("POST", "/api/extras/journal-entries/", body={}),
    }


@pytest.mark.parametrize("mode", [Mode.PLAN, Mode.RUN])
def test_no_write_passes_the_session_outside_a_declared_write(mode: Mode) -> None:
    gw, fake = fake_gateway(mode)
    said = "planning never writes" if mode is Mode.PLAN else "not a declared write"
    for name, escape in former_escapes(gw).items():
        with pytest.raises(DryRunViolation, match=said):
            escape()
        assert fake.sent == [], name
    # reads still pass: pynetbox reads, GraphQL and render-config are POSTs that store nothing
    fake.on("GET", "/api/dcim/devices/5/", Answer(200, DEVICE, {"ETag": ETAG}))
    assert gw.pynetbox().dcim.devices.get(5).name == "leaf3"


def test_a_plan_session_cannot_be_switched_to_writing() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    with pytest.raises(AttributeError):
        gw.session.allow_writes = True  # type: ignore[misc]  # read-only: the refusal is the test
    with gw.session.permit(), pytest.raises(DryRunViolation, match="planning never writes"):
        gw.session.post("http://netbox.invalid/api/dcim/devices/", json={})
    assert fake.sent == []
    writing = GuardedSession(allow_writes=True)
    with pytest.raises(DryRunViolation, match="given for a plan"):
        NetBoxGateway(NetBoxSettings(URL, TOKEN), Mode.PLAN, session=writing)


def test_a_declared_write_opens_the_session_in_its_own_thread_only() -> None:
    """A write declared in one thread does not let another thread write undeclared."""
    gw, fake = fake_gateway(Mode.RUN)
    inside, release = threading.Event(), threading.Event()

    def declared() -> None:
        with gw.session.permit():
            inside.set()
            release.wait(5)

    writer = threading.Thread(target=declared)
    writer.start()
    try:
        assert inside.wait(5)
        with pytest.raises(DryRunViolation, match="not a declared write"):
            gw.session.post("http://netbox.invalid/api/dcim/devices/", json={})
    finally:
        release.set()
        writer.join(5)
    assert fake.sent == []


def test_rack_units_is_a_declared_read() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    units = {"results": [{"id": 20.0, "device": {"name": "leaf9"}}, {"id": 21.0, "device": None}]}
    fake.on("GET", "/api/dcim/racks/1/elevation/", Answer(200, units))
    assert [u["id"] for u in gw.rack_units(1, "front", exclude=5)] == [20.0, 21.0]
    assert ("exclude", "5") in fake.sent[0].query and ("face", "front") in fake.sent[0].query


# -- the journal: found before it is written ---------------------------------------------------

JOURNAL = "/api/extras/journal-entries/"
WITNESS = "**rack-in** — run `run-7`\n\nRecord head hash before this entry: `ab12`."


class JournalOf:
    """NetBox's journal entries of device #5: listed, created, deleted."""

    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []

    def listed(self, sent: Sent) -> Answer:
        assert ("assigned_object_id", "5") in sent.query
        return Answer(200, {"results": list(self.entries)})

    def created(self, sent: Sent) -> Answer:
        entry = {"id": 40 + len(self.entries), **sent.body, "display": "entry"}
        entry["last_updated"] = "2026-11-28T10:00:00Z"
        self.entries.append(entry)
        return Answer(201, entry)


def journal_fake(mode: Mode) -> tuple[NetBoxGateway, FakeNetBox, JournalOf]:
    gw, fake = fake_gateway(mode)
    journal = JournalOf()
    fake.on("GET", JOURNAL, journal.listed)
    fake.on("POST", JOURNAL, journal.created)
    return gw, fake, journal


def test_journal_is_found_before_it_is_written_once() -> None:
    gw, fake, journal = journal_fake(Mode.RUN)
    first = gw.journal("dcim.device", 5, WITNESS, "success", marker="run `run-7`")
    again = gw.journal("dcim.device", 5, WITNESS, "success", marker="run `run-7`")
    assert first["id"] == again["id"] == 40
    assert [s.method for s in fake.sent] == ["GET", "POST", "GET"]  # the second wrote nothing
    (body,) = [s.body for s in fake.sent if s.method == "POST"]
    assert body["comments"] == WITNESS and "`ab12`" in body["comments"]
    assert body["kind"] == "success" and body["changelog_message"] == gw.message
    # without a marker, the comments themselves are the marker
    gw.journal("dcim.device", 5, "another note")
    gw.journal("dcim.device", 5, "another note")
    assert len(journal.entries) == 2


def test_plan_journal_is_empty_once_the_entry_is_there() -> None:
    gw, fake, _ = journal_fake(Mode.RUN)
    diff = gw.plan_journal("dcim.device", 5, "leaf3", WITNESS, "info", marker="run `run-7`")
    assert diff is not None and diff.kind == "create" and diff.target == "NetBox journal of leaf3"
    assert diff.after["comments"] == WITNESS and diff.after["object_id"] == 5
    gw.journal("dcim.device", 5, WITNESS, marker="run `run-7`")
    assert gw.plan_journal("dcim.device", 5, "leaf3", WITNESS, marker="run `run-7`") is None
    # an object the run has yet to create, or no marker: nothing to look up
    sent = len(fake.sent)
    assert gw.plan_journal("dcim.device", None, "pc9", "handed over") is not None
    assert len(fake.sent) == sent


def test_remove_journal_deletes_the_marked_entry_with_its_etag() -> None:
    gw, fake, journal = journal_fake(Mode.RUN)
    assert gw.remove_journal("dcim.device", 5, "run `run-7`") is None
    gw.journal("dcim.device", 5, WITNESS, marker="run `run-7`")
    fake.on("GET", f"{JOURNAL}40/", Answer(200, journal.entries[0], {"ETag": ETAG}))
    fake.on("DELETE", JOURNAL, Answer(204))
    fake.on("GET", "/api/core/object-changes/", Answer(200, {"results": []}))
    assert gw.remove_journal("dcim.device", 5, "run `run-7`") == 40
    (delete,) = [s for s in fake.sent if s.method == "DELETE"]
    assert delete.body[0]["id"] == 40 and delete.headers["If-Match"] == ETAG


RENDERS = "/api/plugins/runbooks/render-configs/"


def test_render_configs_asks_the_plugin_once_and_maps_each_answer_as_render_config() -> None:
    """One request for the fleet, in a plan (a read): a device's text, or the error its own
    render-config would raise (no template 400, gone 404: rejected; template error 500)."""
    gw, fake = fake_gateway(Mode.PLAN)
    answers = {
        "1": {"config": "hostname a\n"},
        "2": {"status": 400, "detail": "No config template found for this device."},
        "3": {"status": 404, "detail": "No Device matches the given query."},
        "4": {"status": 500, "detail": f"UndefinedError: 'x' is undefined {TOKEN}"},
    }
    fake.on("POST", RENDERS, Answer(200, {"devices": answers}))
    got = gw.render_configs([1, 2, 3, 4, 1])
    assert [s.body for s in fake.sent] == [{"devices": [1, 2, 3, 4]}]
    assert got[1] == "hostname a\n"
    assert isinstance(got[2], RejectedError) and "(400: No config template" in str(got[2])
    assert isinstance(got[3], RejectedError) and "(404: No Device" in str(got[3])
    assert type(got[4]) is GatewayError and "failed render-config of device #4 (500" in str(got[4])
    assert TOKEN not in str(got[4])  # a template's error text is masked as every detail is
    assert gw.render_configs([]) == {} and len(fake.sent) == 1


def test_render_configs_without_the_plugin_renders_each_device_and_remembers() -> None:
    """NetBox without the plugin (404 on the endpoint): render-config per device, with the
    same answers; the endpoint is not asked again."""
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("POST", RENDERS, Answer(404, {"detail": "Not found."}))
    fake.on("POST", "/api/dcim/devices/1/render-config/", Answer(text="hostname a\n"))
    no_template = {"error": "No config template found for this device."}
    fake.on("POST", "/api/dcim/devices/2/render-config/", Answer(400, no_template))
    got = gw.render_configs([1, 2])
    assert got[1] == "hostname a\n" and isinstance(got[2], RejectedError)
    assert "No config template" in str(got[2])
    gw.render_configs([1])
    assert [s.path for s in fake.sent].count(RENDERS) == 1


def test_render_configs_raises_what_is_not_a_device_s_answer() -> None:
    """A refused token or an unreachable NetBox is the request's error, not a device's."""
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("POST", RENDERS, Answer(403, {"detail": "You do not have permission."}))
    with pytest.raises(AuthenticationError, match="write-enabled token"):
        gw.render_configs([1])


def test_render_config_refused_as_text_says_netbox_s_sentence() -> None:
    """render-config answers a text request's refusal as a Python dict's text; the error
    says NetBox's sentence, as render-configs does for the same device."""
    gw, fake = fake_gateway(Mode.PLAN)
    said = "{'error': 'No config template found for this device.'}"
    fake.on(
        "POST",
        "/api/dcim/devices/7/render-config/",
        Answer(400, text=said, content_type="text/plain"),
    )
    with pytest.raises(RejectedError) as caught:
        gw.render_config(7)
    assert str(caught.value) == (
        "NetBox rejected render-config of device #7 (400: No config template found for this "
        "device.)"
    )
    fake.on("POST", "/api/dcim/devices/8/render-config/", Answer(400, text="{not python"))
    with pytest.raises(RejectedError, match=r"\(400: \{not python\)"):
        gw.render_config(8)


def test_render_config_404_as_text_and_a_body_that_is_no_literal() -> None:
    """DRF's 404 as text reads as its sentence; a line that only looks like a literal
    (``{[1]: 2}`` raises TypeError in literal_eval) is kept as it is, never a crash."""
    gw, fake = fake_gateway(Mode.PLAN)
    said = "{'detail': ErrorDetail(string='No Device matches the given query.', code='not_found')}"
    fake.on("POST", "/api/dcim/devices/9/render-config/", Answer(404, text=said))
    with pytest.raises(RejectedError, match=r"\(404: No Device matches the given query\.\)$"):
        gw.render_config(9)
    fake.on("POST", "/api/dcim/devices/10/render-config/", Answer(400, text="{[1]: 2}"))
    with pytest.raises(RejectedError, match=r"\(400: \{\[1\]: 2\}\)$"):
        gw.render_config(10)


def test_render_configs_a_failed_batch_asks_each_device_a_missing_answer_is_an_error() -> None:
    """NetBox failing the whole request (500): each device asked alone, its failure its own;
    a device the answer leaves out is an error, never a rendering; a template's traceback
    is one line."""
    gw, fake = fake_gateway(Mode.PLAN)
    traceback = {"status": 500, "detail": "Traceback (most recent call last):\n  File x"}
    fake.on(
        "POST", RENDERS, Answer(500, {"detail": "boom"}), Answer(200, {"devices": {"1": traceback}})
    )
    fake.on("POST", "/api/dcim/devices/1/render-config/", Answer(text="hostname a\n"))
    fake.on("POST", "/api/dcim/devices/2/render-config/", Answer(500, {"detail": "bad"}))
    got = gw.render_configs([1, 2])
    assert got[1] == "hostname a\n" and isinstance(got[2], GatewayError)
    again = gw.render_configs([1, 3])  # the endpoint is still asked: it answered, then failed
    assert str(again[1]).endswith("(500: Traceback (most recent call last):)")
    assert type(again[3]) is GatewayError and "with nothing" in str(again[3])


def test_render_configs_netbox_unreachable_is_the_request_s_error() -> None:
    gw, fake = fake_gateway(Mode.PLAN)
    fake.on("POST", RENDERS, requests.ConnectionError("refused"))
    with pytest.raises(ConnectError):
        gw.render_configs([1, 2])
    assert [s.path for s in fake.sent] == [RENDERS]  # not ten more tries, one per device
