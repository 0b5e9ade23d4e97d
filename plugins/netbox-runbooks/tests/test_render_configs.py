"""``POST render-configs/``: many devices' configurations in one request, each as NetBox's own
render-config answers it: the same text for every lab device, the same refusals (no
template, no such device, a device the user may not render or view), and render-config's
own permission (a write-enabled token)."""

from __future__ import annotations

import dataclasses
import secrets
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from conftest import Lab, Person

pytestmark = pytest.mark.lab


def render_config(person: Person, device_id: int) -> tuple[int, str]:
    """NetBox's own answer for one device: its status and text (or error)."""
    resp = requests.post(
        f"{person.url}/api/dcim/devices/{device_id}/render-config/",
        headers={"Authorization": f"Bearer {person.token}", "Accept": "text/plain"},
        timeout=30,
    )
    return resp.status_code, resp.text


def render_configs(person: Person, ids: list[int]) -> dict[str, Any]:
    resp = person.post("render-configs/", {"devices": ids})
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["devices"])


def devices(nb: Lab) -> dict[str, int]:
    found = nb["admin"].get("/api/dcim/devices/", limit=0, fields="id,name").json()["results"]
    return {d["name"]: int(d["id"]) for d in found}


def same_as_render_config(person: Person, device_id: int, answer: dict[str, Any]) -> bool:
    status, text = render_config(person, device_id)
    if status == 200:
        return bool(answer == {"config": text})
    return answer.get("status") == status and str(answer.get("detail")) in text


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


def test_only_devices_the_user_may_render_and_view_are_rendered(nb: Lab) -> None:
    """A user whose permission admits spine1 only: leaf1 is 404 for them, as their own
    render-config of it is; a read-only token is refused, as render-config refuses it."""
    password = secrets.token_hex(16) + "Aa1"  # NetBox's rules: a digit, both cases
    made = nb["admin"].post("/api/users/users/", {"username": "render-one", "password": password})
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
