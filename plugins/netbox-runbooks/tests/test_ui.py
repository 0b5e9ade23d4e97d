"""The plugin's web UI on the lab's NetBox, as its people use it through a browser session
(requests, logged in with their web passwords): the lists, a change's page as its review
document, the buttons only the rules would allow, signatures and sign-offs posted through
the pages (refusals shown with the server's sentence and recorded), the Runbooks tab of a
device, the dashboard widget, and a 50-step change shown whole."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

import pytest
import requests

from runbooks.lab import netbox
from tests.support.synthetic_plan import plan

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab
UI = "/plugins/runbooks/"
WIDGET = "netbox_runbooks.WaitingForMeWidget"


class Web:
    """One person's logged-in browser session on the lab's NetBox."""

    def __init__(self, role: str) -> None:
        self.url, self.username, _ = netbox.web_login(role)
        self.session = netbox.web_session(role)

    def get(self, path: str, **params: Any) -> requests.Response:
        resp = self.session.get(self.url + path, params=params, timeout=60)
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
        return resp

    def post(self, path: str, data: dict[str, Any]) -> requests.Response:
        token = self.session.cookies["csrftoken"]
        body = {"csrfmiddlewaretoken": token, **data}
        headers = {"Referer": self.url + path, "X-CSRFToken": token}
        return self.session.post(self.url + path, data=body, headers=headers, timeout=60)


def messages(page: str) -> list[str]:
    """The texts of the toasts (NetBox's messages) on a page."""
    bodies = re.findall(r'<div class="toast-body">\s*(.*?)\s*</div>', page, re.S)
    return [html.unescape(b) for b in bodies]


def heading(page: str, title: str) -> int:
    """Where a card headed ``title`` starts on a page."""
    found = re.search(rf'<h2 class="card-header[^"]*">\s*{re.escape(title)}\s*<', page)
    assert found, f"no card {title!r}"
    return found.start()


def buttons(page: str) -> set[str]:
    """The signature and sign-off buttons a page offers."""
    return set(re.findall(r'id="(sign-\w+|signoff)-button"', page))


def change_page(web: Web, change: dict[str, Any]) -> str:
    return web.get(f"{UI}changes/{change['id']}/").text


def sign(web: Web, change: dict[str, Any], authority: str, digest: str) -> str:
    resp = web.post(f"{UI}changes/{change['id']}/sign/", {"authority": authority, "hash": digest})
    assert resp.status_code == 200 and resp.url.endswith(f"/changes/{change['id']}/"), resp.url
    return resp.text


def test_the_lists_filter_and_search(nb: Lab) -> None:
    first = nb.create(plan=plan("leaf1"))
    second = nb.create(plan=plan("leaf2"))
    web = Web("reviewer")
    home = web.get("/").text
    assert f'href="{UI}changes/"' in home and f'href="{UI}runs/"' in home  # the menu
    listed = web.get(f"{UI}changes/").text
    assert first["name"] in listed and second["name"] in listed
    assert "ledger" in listed and "olivia" in listed
    only = web.get(f"{UI}changes/", target="leaf2").text
    assert second["name"] in only and first["name"] not in only
    searched = web.get(f"{UI}changes/", q=first["name"]).text
    assert first["name"] in searched and second["name"] not in searched
    assert first["name"] not in web.get(f"{UI}changes/", status="approved").text
    by_olivia = web.get(f"{UI}changes/", preparer="olivia").text  # the filter form's people
    assert first["name"] in by_olivia and re.search(r'<option value="olivia"\s+selected', by_olivia)
    assert first["name"] not in web.get(f"{UI}changes/", preparer="rachel").text
    assert "Filters" in web.get(f"{UI}runs/").text


def test_a_change_page_is_its_review_document(nb: Lab) -> None:
    change = nb.create(plan=plan("leaf1", steps=2))
    page = change_page(Web("reviewer"), change)
    assert 'id="plan-hash"' in page and change["plan_hash"] in page
    order = ["Summary", "Steps", "Pre-check evidence", "NetBox objects", "Device configurations"]
    order += ["Signatures", "History", "Runs"]
    places = [heading(page, title) for title in order]
    assert places == sorted(places), dict(zip(order, places, strict=True))
    assert "2 device configurations (2 edit); 2 NetBox objects (2 update)" in page
    assert "commit-confirm" in page  # how device configurations roll back
    assert "Configure leaf1 (part 2)" in re.search(
        r'id="summary-irreversible">(.*?)</td>', page, re.S
    ).group(1)  # type: ignore[union-attr]
    assert re.search(r'rb-diff-add[^"]*">\+ description uplink<', page)
    assert re.search(r'rb-diff-del[^"]*">- description old1<', page)
    assert re.search(r'rb-diff-hunk[^"]*">@@ ', page)
    assert "uptime: <code" in page  # pre-check evidence
    assert 'data-kind="change.planned"' in page and "chain verified" in page


def test_the_buttons_are_the_rules(nb: Lab) -> None:
    change = nb.create(plan=plan("leaf1"))
    olivia, rachel, arthur = Web("operator"), Web("reviewer"), Web("approver")
    assert buttons(change_page(olivia, change)) == set()  # the preparer signs nothing
    assert buttons(change_page(rachel, change)) == {"sign-review"}
    assert buttons(change_page(arthur, change)) == set()  # approval comes after review
    assert nb.sign("reviewer", change, "review").status_code == 201
    assert buttons(change_page(rachel, change)) == set()
    assert buttons(change_page(arthur, change)) == {"sign-approve"}
    assert nb.sign("approver", change, "approve").status_code == 201
    assert buttons(change_page(arthur, change)) == set()
    # a second approver may approve too, or add the emergency approval a run outside needs
    assert buttons(change_page(Web("approver2"), change)) == {"sign-approve", "sign-emergency"}
    assert buttons(change_page(Web("supervisor"), change)) == set()


def test_signing_through_the_page(nb: Lab) -> None:
    change = nb.create(plan=plan("leaf1"))
    rachel = Web("reviewer")
    refused = sign(rachel, change, "review", "0" * 16)
    detail = nb.chain(change)[-1]
    assert detail["kind"] == "change.refused" and detail["recorded_by"] == rachel.username
    assert detail["payload"]["reason"] in messages(refused)
    assert nb.change(change)["status"] == "planned"
    signed = sign(rachel, change, "review", change["plan_hash"][:16])
    assert any("signed" in m and change["name"] in m for m in messages(signed))
    assert 'data-authority="review" data-user="rachel"' in signed
    assert nb.change(change)["status"] == "reviewed"
    again = sign(rachel, change, "review", change["plan_hash"])  # no button, but the rules say why
    assert "rachel has already reviewed this plan" in messages(again)
    olivia = sign(Web("operator"), change, "approve", change["plan_hash"])
    assert "olivia cannot approve a change: needs the 批准 approve authority (holds: handle)" in (
        messages(olivia)
    )


def finished_run(nb: Lab) -> tuple[dict[str, Any], dict[str, Any]]:
    """An approved change run by olivia to a succeeded record."""
    change = nb.approved(plan=plan("leaf1"))
    run = nb.start(change).json()
    entries = nb.entries(
        run,
        [
            nb.started(run, change),
            ("step.started", "change_1", {"title": "Configure leaf1 (part 1)", "kind": "change"}),
            ("step.finished", "change_1", {"status": "changed", "evidence": {}}),
            ("run.finished", None, {"status": "succeeded"}),
        ],
    )
    assert nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": entries}).ok
    return change, run


def test_a_run_page_and_its_sign_offs(nb: Lab) -> None:
    change, run = finished_run(nb)
    path = f"{UI}runs/{run['id']}/"
    olivia, rachel, sophia = Web("operator"), Web("reviewer"), Web("supervisor")
    page = olivia.get(path).text
    assert run["run_id"] in page and "verified by the server" in page
    assert page.count('class="rb-entry"') == 4 and "step.finished" in page
    assert "職位責任人簽字" in page and "上級主管簽字" in page
    assert buttons(page) == {"signoff"} and buttons(rachel.get(path).text) == set()
    assert buttons(sophia.get(path).text) == {"signoff"}
    signed = olivia.post(f"{path}signoff/", {"note": "done"}).text
    assert any("as 職位責任人 Responsible person" in m for m in messages(signed))
    assert buttons(signed) == set()
    refused = rachel.post(f"{path}signoff/", {"note": ""}).text
    assert "rachel cannot sign off a record: needs the 督導 supervise authority" in " ".join(
        messages(refused)
    )
    sophia.post(f"{path}signoff/", {"note": "checked"})
    markdown = sophia.get(f"{path}sheet/", format="md")
    assert "text/markdown" in markdown.headers["Content-Type"]
    assert "olivia, " in markdown.text and "sophia, " in markdown.text
    assert "<h1>Record sheet" in sophia.get(f"{path}sheet/", format="html").text
    assert change["name"] in sophia.get(path).text


def test_a_stopped_change_and_run_say_what_is_in_place(nb: Lab) -> None:
    """A run that stopped part-way: the change's page says it never runs again and names the
    batches kept, failed and not run; the run's record sheet (page and download) names them;
    the lists filter by the status."""
    change, run = nb.stopped_run()
    web = Web("operator")
    page = change_page(web, change)
    alert = page[page.index('id="stopped-alert"') :]
    alert = html.unescape(alert[: alert.index("</div>")])
    assert "Stopped part-way" in alert and "plan a new change for the rest" in alert
    named = (
        "kept: batch 1 of 3 (canary): leaf1; failed: batch 2 of 3: leaf2; "
        "not run: batch 3 of 3: spine1"
    )
    assert named in alert
    assert buttons(page) == set()  # nothing to sign any more
    run_page = html.unescape(web.get(f"{UI}runs/{run['id']}/").text)
    assert "Stopped part-way" in run_page  # the status badge
    assert "stopped part-way: the batches kept stay in place" in run_page
    assert named in run_page[run_page.index('id="sheet-batches"') :]
    markdown = web.get(f"{UI}runs/{run['id']}/sheet/", format="md").text
    assert "| Batches | stopped part-way: the batches kept stay in place" in markdown
    assert named in markdown
    assert named in html.unescape(web.get(f"{UI}runs/{run['id']}/sheet/", format="html").text)
    assert change["name"] in web.get(f"{UI}changes/", status="stopped").text
    assert change["name"] not in web.get(f"{UI}changes/", status="rolled-back").text
    assert run["run_id"] in web.get(f"{UI}runs/", status="stopped").text


def test_the_runbooks_tab_of_a_device(nb: Lab) -> None:
    change, run = finished_run(nb)
    other = nb.create(plan=plan("leaf2"))
    device = nb["admin"].get("/api/dcim/devices/", name="leaf1").json()["results"][0]
    page = Web("reviewer").get(f"/dcim/devices/{device['id']}/runbooks/").text
    assert change["name"] in page and run["run_id"] in page and other["name"] not in page
    assert f'href="/dcim/devices/{device["id"]}/runbooks/"' in page  # the tab itself


def test_the_runbooks_tab_of_a_virtual_machine_and_the_alert_on_a_device(nb: Lab) -> None:
    site = nb["admin"].get("/api/dcim/devices/", name="leaf1").json()["results"][0]["site"]
    made = nb["admin"].post(
        "/api/virtualization/virtual-machines/", {"name": "vm-ui", "site": site["id"]}
    )
    assert made.status_code == 201, made.text
    change = nb.approved(plan=plan("vm-ui"))
    web = Web("reviewer")
    page = web.get(f"/virtualization/virtual-machines/{made.json()['id']}/runbooks/").text
    assert change["name"] in page
    approved = nb.approved(plan=plan("leaf2"))
    device = nb["admin"].get("/api/dcim/devices/", name="leaf2").json()["results"][0]
    alert = re.search(
        r'<div class="alert alert-info".*?</div>\s*</div>',
        web.get(f"/dcim/devices/{device['id']}/").text,
        re.S,
    )
    assert alert and approved["name"] in alert.group(0) and "Approved" in alert.group(0)


def test_the_widget_lists_what_waits_for_me(nb: Lab) -> None:
    change = nb.create(plan=plan("leaf1"))
    people = {role: Web(role) for role in ("reviewer", "approver", "operator")}
    for web in people.values():
        web.get("/")
        web.post(
            "/extras/dashboard/widgets/add/", {"widget_class": WIDGET, "title": "", "color": ""}
        )

    def waiting(role: str) -> bool:
        home = people[role].get("/").text
        assert "Runbooks: waiting for me" in home
        return change["name"] in home

    assert (waiting("reviewer"), waiting("approver"), waiting("operator")) == (True, False, False)
    nb.sign("reviewer", change, "review")
    assert (waiting("reviewer"), waiting("approver"), waiting("operator")) == (False, True, False)


def test_a_fifty_step_change_shows_every_diff(nb: Lab) -> None:
    """All of a large change on its page: a field diff and a configuration diff a step. (How
    long NetBox takes to render it is measured in bench/netbox_records.py.)"""
    change = nb.create(plan=plan("leaf1", steps=50, lines=60))
    page = change_page(Web("reviewer"), change)
    assert page.count("rb-diff-item") == 100
    assert page.count("Configure leaf1 (part ") >= 50
