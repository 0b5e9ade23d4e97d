"""The NetBox gateway against the lab's real NetBox 4.7.3: request counts of the working set,
drift between plan and run, exact undo from NetBox's change records, journal, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from runbooks.config import NetBoxSettings
from runbooks.core.errors import (
    AuthenticationError,
    ConnectError,
    DriftError,
    DryRunViolation,
    GatewayError,
    RejectedError,
    RunbookError,
)
from runbooks.core.gateway import Mode
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.gateways.netbox_http import NetBoxHTTP
from runbooks.lab import netbox
from tests.support.netbox_cabled import build, netbox_held  # noqa: F401


class CountingAdapter(HTTPAdapter):
    """Counts what really goes over the wire, independently of the gateway's own log."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(f"{request.method} {request.path_url.split('?')[0]}")
        return super().send(request, *args, **kwargs)


def counted(gw: NetBoxGateway) -> CountingAdapter:
    adapter = CountingAdapter()
    gw.session.mount("http://", adapter)
    return adapter


def settings(role: str) -> NetBoxSettings:
    return NetBoxSettings(*netbox.credentials(role))


@pytest.fixture
def admin(netbox_held: str) -> Iterator[NetBoxHTTP]:  # noqa: F811
    http = NetBoxHTTP(settings("admin"), allow_writes=True)
    yield http
    http.close()


def gateway(mode: Mode, role: str = "operator", run_id: str = "lab-run-1") -> NetBoxGateway:
    return NetBoxGateway(settings(role), mode, run_id=run_id, runbook="test-netbox")


def snapshot(http: NetBoxHTTP, path: str) -> dict[str, Any]:
    data = dict(http.call("GET", path).data)
    data.pop("last_updated", None)
    return data


@pytest.mark.parametrize("cabled", [4, 48])
def test_working_set_request_count_does_not_grow_with_cables(
    admin: NetBoxHTTP, cabled: int
) -> None:
    built = build(admin, f"ws{cabled}", cabled)
    gw = gateway(Mode.PLAN)
    wire = counted(gw)

    ws = gw.working_set(built.name)
    assert len(wire.sent) <= 3, wire.sent
    reads = len(wire.sent)
    with_config = gw.working_set(built.name, render=True)
    assert len(wire.sent) - reads <= 4, wire.sent  # ≤ 3 + render-config

    assert len(ws.cabled) == cabled
    assert {i.peer.device for i in ws.cabled if i.peer} == set(built.peers)
    assert all(i.cable and i.cable.status == "connected" for i in ws.cabled)
    assert all(len(i.ip_addresses) == 1 for i in ws.cabled)
    assert all(i.peer and i.peer.device_status == "active" for i in ws.cabled)
    assert ws.platform is not None and ws.platform.slug == "frr"
    assert ws.custom_fields["bgp_asn"] == 65200
    assert with_config.config and "router bgp 65200" in with_config.config
    assert with_config.config.count("remote-as") == cabled


def test_seeded_device_working_set_and_etags(netbox_held: str) -> None:  # noqa: F811
    gw = gateway(Mode.PLAN)
    ws = gw.working_set("leaf3")
    assert (ws.status, ws.rack and ws.rack.name, ws.position) == ("planned", "R01", 36.0)
    assert ws.role.slug == "leaf" and ws.device_type.slug == "frr-switch-8"
    swp1 = ws.interface("swp1")
    assert swp1.cable is not None and swp1.cable.status == "planned"
    assert swp1.peer is not None and (swp1.peer.device, swp1.peer.name) == ("spine1", "swp3")
    # the ETags derived from GraphQL are the ones NetBox's detail GETs give
    assert gw.get("dcim.device", ws.id)["_etag"] == ws.etag
    assert gw.get("dcim.cable", swp1.cable.id)["_etag"] == swp1.cable.etag


def test_plan_never_writes(netbox_held: str) -> None:  # noqa: F811
    gw = gateway(Mode.PLAN)
    ws = gw.working_set("leaf3")
    diff = gw.plan_device_status(ws, "active")
    with pytest.raises(DryRunViolation):
        gw.apply([diff])
    with pytest.raises(DryRunViolation):  # the session itself refuses, pynetbox included
        gw.pynetbox().dcim.devices.get(ws.id).update({"status": "active"})
    assert gateway(Mode.PLAN).working_set("leaf3").status == "planned"


def rack_in_diffs(gw: NetBoxGateway) -> list[Any]:
    ws = gw.working_set("leaf3")
    ip = ws.interface("swp4")  # unaddressed: assign the management-range spare to it
    return [
        gw.plan_device_status(ws, "active"),
        *gw.plan_cable_status(ws, "connected"),
        gw.plan_rack_position(ws.id, ws.rack.id if ws.rack else None, 30, "rear"),
        *gw.plan_updates(
            "ipam.ipaddress",
            {a.id: {"status": "active"} for a in ws.ip_addresses if a.status == "reserved"},
        ),
        gw.plan_update("dcim.interface", ip.id, {"description": "rack-in test"}),
    ]


def test_edit_between_plan_and_run_refuses_with_nothing_written(
    admin: NetBoxHTTP,
) -> None:
    diffs = rack_in_diffs(gateway(Mode.PLAN))
    # someone edits a cable in NetBox after the plan, with their own token and session
    cable = next(d for d in diffs if "dcim.cable" in d.target)
    cable_id = int(cable.target.rsplit("#", 1)[1])
    admin.call("PATCH", f"/api/dcim/cables/{cable_id}/", body={"label": "edited meanwhile"})

    run = gateway(Mode.RUN)
    with pytest.raises(DriftError) as caught:
        run.apply(diffs)
    message = str(caught.value)
    assert "\n" not in message and "changed since the plan" in message
    assert f"#{cable_id}" in message and "runbooks-lab" in message

    written = admin.call(
        "GET", "/api/core/object-changes/", params={"q": run.message, "limit": 0}
    ).data
    assert written["count"] == 0
    assert gateway(Mode.PLAN).working_set("leaf3").status == "planned"


def test_undo_restores_every_field_exactly(admin: NetBoxHTTP) -> None:
    paths = ["/api/dcim/devices/5/", "/api/dcim/cables/3/", "/api/dcim/cables/6/"]
    ws = gateway(Mode.PLAN).working_set("leaf3")
    paths += [f"/api/ipam/ip-addresses/{a.id}/" for a in ws.ip_addresses]
    paths += [f"/api/dcim/interfaces/{ws.interface('swp4').id}/"]
    before = {p: snapshot(admin, p) for p in paths}

    run = gateway(Mode.RUN)
    diffs = rack_in_diffs(run)
    applied = run.apply(diffs)
    evidence = applied.evidence()
    assert evidence["netbox_changes"], evidence
    assert all(c.message.startswith(run.message) for c in applied.changes)
    status_change = next(c for c in applied.changes if c.obj_type == "dcim.device")
    assert status_change.changed()["status"] == ("planned", "active")
    after = {p: snapshot(admin, p) for p in paths}
    assert after != before
    assert after["/api/dcim/devices/5/"]["status"]["value"] == "active"

    run.undo(diffs)
    restored = {p: snapshot(admin, p) for p in paths}
    assert restored == before


def test_undo_refuses_over_someone_elses_change(admin: NetBoxHTTP) -> None:
    run = gateway(Mode.RUN)
    ws = run.working_set("leaf3")
    diffs = [run.plan_device_status(ws, "active")]
    run.apply(diffs)
    admin.call("PATCH", f"/api/dcim/devices/{ws.id}/", body={"serial": "SN-LATER"})
    with pytest.raises(RunbookError, match="changed by runbooks-lab after this run"):
        run.undo(diffs)


def test_journal_entry_is_written(admin: NetBoxHTTP) -> None:
    run = gateway(Mode.RUN)
    ws = run.working_set("leaf3")
    entry = run.journal("dcim.device", ws.id, "rack-in of leaf3 finished: head `abc123`")
    found = admin.call(
        "GET",
        "/api/extras/journal-entries/",
        params={"assigned_object_type": "dcim.device", "assigned_object_id": ws.id},
    ).data["results"]
    assert [e["id"] for e in found] == [entry["id"]]
    assert "abc123" in found[0]["comments"]
    with pytest.raises(DryRunViolation):
        gateway(Mode.PLAN).journal("dcim.device", ws.id, "no")


def test_allocate_next_ip_and_create_device_then_undo(admin: NetBoxHTTP) -> None:
    run = gateway(Mode.RUN)
    prefix = admin.call("GET", "/api/ipam/prefixes/", params={"prefix": "198.18.64.0/24"})
    prefix_id = prefix.data["results"][0]["id"]
    ids = {
        path: admin.call("GET", path, params={"slug": slug}).data["results"][0]["id"]
        for path, slug in [
            ("/api/dcim/device-types/", "desktop-pc"),
            ("/api/dcim/device-roles/", "pc"),
            ("/api/dcim/sites/", "lab-dc1"),
        ]
    }
    device_type, role, site = ids.values()
    pc = run.plan_device_create(
        "pc-lab-test",
        {"device_type": device_type, "role": role, "site": site, "status": "active"},
    )
    address = run.plan_ip_allocate(prefix_id, {"status": "active", "dns_name": "pc-lab-test"})
    assert pc.kind == "create" and address.kind == "create"
    applied = run.apply([pc, address])
    assert {"dcim.device", "ipam.ipaddress"} <= set(applied.created)  # + template ports
    # a re-plan finds everything in place
    assert run.plan_device_create("pc-lab-test", {"status": "active"}).empty
    assert run.plan_ip_allocate(prefix_id, {"status": "active", "dns_name": "pc-lab-test"}).empty
    run.undo([pc, address])
    assert (
        admin.call("GET", "/api/dcim/devices/", params={"name": "pc-lab-test"}).data["count"] == 0
    )
    assert (
        admin.call("GET", "/api/ipam/ip-addresses/", params={"dns_name": "pc-lab-test"}).data[
            "count"
        ]
        == 0
    )


# -- errors: one clear line each ------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


def test_bad_token_is_one_clear_line(netbox_lab: str) -> None:
    gw = NetBoxGateway(NetBoxSettings(netbox_lab, "nbt_abcdefabcdef.0123456789abcdef"), Mode.PLAN)
    with pytest.raises(AuthenticationError) as caught:
        gw.working_set("leaf3")
    assert "refused the token" in one_line(caught.value)
    assert "0123456789abcdef" not in str(caught.value)


def test_html_login_page_is_one_clear_line(netbox_lab: str) -> None:
    gw = gateway(Mode.PLAN)
    for header in ("Authorization", "Accept"):  # as a proxy that drops headers would
        del gw.session.headers[header]
    with pytest.raises(AuthenticationError) as caught:
        gw.working_set("leaf3")
    assert "login page instead of JSON" in one_line(caught.value)


def test_unreachable_is_one_clear_line() -> None:
    gw = NetBoxGateway(NetBoxSettings("http://127.0.0.1:9", "nbt_x.y"), Mode.PLAN, timeout=2)
    with pytest.raises(ConnectError) as caught:
        gw.working_set("leaf3")
    assert "unreachable" in one_line(caught.value)


def test_render_config_without_write_permission_says_so(admin: NetBoxHTTP) -> None:
    user = admin.call("GET", "/api/users/users/", params={"username": "rachel"}).data
    made = admin.call(
        "POST",
        "/api/users/tokens/",
        body={"user": user["results"][0]["id"], "write_enabled": False},
    ).data
    read_only = f"nbt_{made['key']}.{made['token']}"
    gw = NetBoxGateway(NetBoxSettings(admin.settings.url, read_only), Mode.PLAN)
    ws = gw.working_set("leaf3")  # reading works
    with pytest.raises(AuthenticationError) as caught:
        gw.render_config(ws.id)
    assert "write-enabled token" in one_line(caught.value)


def test_ip_release_assign_and_cable_delete_undo_exactly(admin: NetBoxHTTP) -> None:
    run = gateway(Mode.RUN, run_id="lab-run-ip")
    ws = run.working_set("leaf1")
    ip = ws.interface("swp1").ip_addresses[0]
    cable = ws.interface("swp2").cable
    assert cable is not None
    path = f"/api/ipam/ip-addresses/{ip.id}/"
    before = snapshot(admin, path)

    release = run.plan_ip_release(ip.id)
    assert {f.name for f in release.fields} == {
        "assigned_object_type",
        "assigned_object_id",
        "status",
    }
    run.apply([release])
    assert snapshot(admin, path)["assigned_object_id"] is None
    run.undo([release])  # change records name the content type by id: mapped back
    assert snapshot(admin, path) == before

    assign = run.plan_ip_assign(ip.id, ws.interface("swp4").id)
    run.apply([assign])
    run.undo([assign])
    assert snapshot(admin, path) == before

    delete = run.plan_delete("dcim.cable", cable.id)
    assert delete.kind == "delete"
    run.apply([delete])
    assert run.working_set("leaf1").interface("swp2").cable is None
    run.undo([delete])  # the cable comes back between the same ports (with a new id)
    back = run.working_set("leaf1").interface("swp2")
    assert back.cable is not None and back.cable.status == cable.status
    assert back.peer is not None and (back.peer.device, back.peer.name) == ("spine2", "swp1")


def test_render_configs_answers_as_render_config_in_one_request(admin: NetBoxHTTP) -> None:
    """The plugin's render-configs through the gateway: one request for the routers, a
    device with no template (400), one whose template fails (500) and an id NetBox does not
    hold (404); each answer what `render_config` gives or raises for it, word for word."""
    names = ("spine1", "spine2", "leaf1", "leaf2", "srv1", "srv2")
    listed = admin.call("GET", "/api/dcim/devices/", params={"name": list(names)}).data
    ids = {str(d["name"]): int(d["id"]) for d in listed["results"]}
    assert set(ids) == set(names)
    broken = admin.call(
        "POST",
        "/api/extras/config-templates/",
        body={"name": "broken", "template_code": "{{ device.no_such_field.nested }}"},
    ).data
    admin.call("PATCH", f"/api/dcim/devices/{ids['srv2']}/", body={"config_template": broken["id"]})
    missing = max(ids.values()) + 1000
    gw = gateway(Mode.PLAN)
    wire = counted(gw)
    answers = gw.render_configs([*ids.values(), missing])
    assert wire.sent == ["POST /api/plugins/runbooks/render-configs/"]
    for name in names[:4]:
        assert answers[ids[name]] == gw.render_config(ids[name]), name
    for i, error in (
        (ids["srv1"], RejectedError),
        (ids["srv2"], GatewayError),
        (missing, RejectedError),
    ):
        assert type(answers[i]) is error, answers[i]
        with pytest.raises(error) as caught:
            gw.render_config(i)
        assert str(answers[i]) == str(caught.value)
    assert "(400: No config template found for this device.)" in str(answers[ids["srv1"]])
    assert "(404: No Device matches the given query.)" in str(answers[missing])
