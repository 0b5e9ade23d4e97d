"""``POST render-configs/``: many devices' configurations in one request, each as NetBox's own
render-config answers it: the same text for every lab device, the same refusals (no
template, no such device, a device the user may not render or view), and render-config's
own permission (a write-enabled token)."""

from __future__ import annotations

import dataclasses
import secrets
from typing import TYPE_CHECKING, Any

import pytest

from runbooks.lab import netbox

if TYPE_CHECKING:
    from conftest import Lab, Person

pytestmark = pytest.mark.lab
PASSWORD = secrets.token_hex(16) + "Aa1"  # NetBox's rules: a digit, both cases


def render_config(person: Person, device_id: int) -> tuple[int, dict[str, Any]]:
    """NetBox's own answer for one device, as JSON: its status and body."""
    resp = person.post(f"/api/dcim/devices/{device_id}/render-config/", {})
    return resp.status_code, dict(resp.json())


def render_configs(person: Person, ids: list[int]) -> dict[str, Any]:
    resp = person.post("render-configs/", {"devices": ids})
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["devices"])


def devices(nb: Lab) -> dict[str, int]:
    found = nb["admin"].get("/api/dcim/devices/", limit=0, fields="id,name").json()["results"]
    return {d["name"]: int(d["id"]) for d in found}


def same_as_render_config(person: Person, device_id: int, answer: dict[str, Any]) -> bool:
    """The same text, or the same status and sentence (render-config's ``error`` or
    ``detail``), word for word."""
    status, body = render_config(person, device_id)
    if status == 200:
        return bool(answer == {"config": body["content"]})
    said = body.get("error") or body.get("detail")
    return answer == {"status": status, "detail": said}


def test_each_device_is_rendered_as_render_config_renders_it(nb: Lab) -> None:
    fleet = devices(nb)
    missing = max(fleet.values()) + 1000
    answers = render_configs(nb["operator"], [*fleet.values(), missing])
    rendered = [name for name, i in fleet.items() if "config" in answers[str(i)]]
    assert {"spine1", "spine2", "leaf1", "leaf2"} <= set(rendered)  # the routers have templates
    assert len(rendered) < len(fleet)  # and some devices none: both kinds of answer compared
    for name, i in fleet.items():
        assert same_as_render_config(nb["operator"], i, answers[str(i)]), name
    assert answers[str(missing)]["status"] == 404
    assert same_as_render_config(nb["operator"], missing, answers[str(missing)])


def test_only_devices_the_user_may_render_and_view_are_rendered(nb: Lab) -> None:
    """A user whose permission admits spine1 only: leaf1 is 404 for them, as their own
    render-config of it is; a read-only token is refused, as render-config refuses it."""
    made = nb["admin"].post("/api/users/users/", {"username": "render-one", "password": PASSWORD})
    assert made.status_code == 201, made.text
    user = int(made.json()["id"])
    perm = {
        "name": "test: render spine1 only",
        "object_types": ["dcim.device"],
        "actions": ["view", "render_config"],
        "constraints": {"name": "spine1"},
        "users": [user],
    }
    assert nb["admin"].post("/api/users/permissions/", perm).status_code == 201
    person = token_of(nb, user, write_enabled=True)
    fleet = devices(nb)
    answers = render_configs(person, [fleet["spine1"], fleet["leaf1"]])
    assert "config" in answers[str(fleet["spine1"])]
    assert answers[str(fleet["leaf1"])]["status"] == 404
    for name in ("spine1", "leaf1"):
        i = fleet[name]
        assert same_as_render_config(person, i, answers[str(i)]), name
    read_only = token_of(nb, user, write_enabled=False)
    refused = read_only.post("render-configs/", {"devices": [fleet["spine1"]]})
    assert refused.status_code == 403, refused.text
    assert render_config(read_only, fleet["spine1"])[0] == 403  # NetBox's own says the same


def test_view_without_render_config_renders_nothing_and_a_session_is_refused(nb: Lab) -> None:
    """Viewing devices is not rendering them (404 for each, as render-config says); a web
    session is not a token: refused, as render-config refuses it."""
    made = nb["admin"].post("/api/users/users/", {"username": "viewer", "password": PASSWORD})
    assert made.status_code == 201, made.text
    user = int(made.json()["id"])
    perm = {"name": "test: view", "object_types": ["dcim.device"], "actions": ["view"]}
    assert nb["admin"].post("/api/users/permissions/", {**perm, "users": [user]}).status_code == 201
    viewer = token_of(nb, user, write_enabled=True)
    spine1 = devices(nb)["spine1"]
    assert viewer.get(f"/api/dcim/devices/{spine1}/").status_code == 200  # they see it
    answers = render_configs(viewer, [spine1])
    assert answers[str(spine1)]["status"] == 404
    assert same_as_render_config(viewer, spine1, answers[str(spine1)])
    browser = netbox.web_session("operator")
    for path in (
        "/api/plugins/runbooks/render-configs/",
        f"/api/dcim/devices/{spine1}/render-config/",
    ):
        resp = browser.post(nb["operator"].url + path, json={"devices": [spine1]}, timeout=30)
        assert resp.status_code == 403, (path, resp.text)


def test_a_malformed_request_is_one_sentence(nb: Lab) -> None:
    for body in ({}, {"devices": []}, {"devices": ["1"]}, {"devices": [True]}):
        resp = nb["operator"].post("render-configs/", body)
        assert resp.status_code == 400, (body, resp.text)
        assert list(resp.json()) == ["detail"] and "device ids" in resp.json()["detail"]
    too_many = nb["operator"].post("render-configs/", {"devices": list(range(1, 202))})
    assert too_many.status_code == 400 and "at most 200" in too_many.json()["detail"]


def token_of(nb: Lab, user: int, *, write_enabled: bool) -> Person:
    body = {"user": user, "write_enabled": write_enabled, "version": 2}
    made = nb["admin"].post("/api/users/tokens/", body)
    assert made.status_code == 201, made.text
    token = f"nbt_{made.json()['key']}.{made.json()['token']}"
    return dataclasses.replace(nb["operator"], role="render-one", username="", token=token)
