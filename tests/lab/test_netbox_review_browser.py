"""The review of a change in NetBox's web UI, in a real browser (Debian's chromium driven by
chromedriver through Selenium; nothing downloaded): olivia plans the rack-in of leaf3 with the
`runbook` command; rachel opens it from the Runbooks menu, reads the configuration diffs and
reviews it naming the hash; arthur is refused for a wrong hash, with the server's sentence,
then approves; olivia, its preparer, is offered neither. Screenshots are kept as artifacts
($RUNBOOKS_ARTIFACTS, else under the test's tmp_path), and their place is reported."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cli_support import Machine, device_env
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from runbooks.lab import netbox
from tests.support.browser import chromium, installed

WAIT_S = 20


def plan_rack_in(home: Path) -> dict[str, Any]:
    """`runbook plan rack-in device=leaf3` as olivia, on a machine (home) of her own."""
    olivia = Machine(home, **device_env())
    argv = ["plan", "rack-in", "device=leaf3", "--window-start", "-5m", "--window-end", "+2h"]
    return dict(json.loads(olivia("operator", *argv, "--json").stdout))


def last_refusal(change_url: str) -> str:
    """The reason of the change's last chain entry, as the API gives it to anyone."""
    url, token = netbox.credentials("admin")
    pk = change_url.rstrip("/").rsplit("/", 1)[-1]
    rows = requests.get(
        f"{url}/api/plugins/runbooks/changes/{pk}/entries/",
        params={"limit": 0},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=30,
    ).json()["results"]
    assert rows[-1]["kind"] == "change.refused", rows[-1]
    return str(rows[-1]["payload"]["reason"])


class Browser:
    """One chromium, signing people in and out, keeping a screenshot of each moment."""

    def __init__(self, driver: WebDriver, shots: Path) -> None:
        self.driver, self.shots, self.taken = driver, shots, 0
        self.wait = WebDriverWait(driver, WAIT_S)

    def sign_in(self, role: str) -> str:
        url, username, password = netbox.web_login(role)
        self.driver.delete_all_cookies()
        self.driver.get(url + "/login/")
        self.driver.find_element(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".navbar-nav")))
        return username

    def open_change_from_menu(self, name: str) -> None:
        """Runbooks > Changes in the menu, then the change in the list: as a person would."""
        menu = (By.CSS_SELECTOR, 'button.nav-link.dropdown-toggle[aria-label="Runbooks"]')
        toggle = self.wait.until(seen.element_to_be_clickable(menu))
        if toggle.get_attribute("aria-expanded") != "true":
            toggle.click()
        item = '//button[@aria-label="Runbooks"]/following-sibling::div//a[text()="Changes"]'
        self.wait.until(seen.element_to_be_clickable((By.XPATH, item))).click()
        self.wait.until(seen.element_to_be_clickable((By.LINK_TEXT, name))).click()
        self.wait.until(seen.presence_of_element_located((By.ID, "plan-hash")))

    def sign(self, authority: str, digest: str) -> str:
        """Press the button, name the hash, submit; the message the page then shows."""
        self.driver.find_element(By.ID, f"sign-{authority}-button").click()
        field = self.wait.until(
            seen.visibility_of_element_located((By.ID, f"sign-{authority}-hash"))
        )
        field.send_keys(digest)
        self.driver.find_element(By.ID, f"sign-{authority}-submit").click()
        self.wait.until(seen.staleness_of(field))
        return self.message()

    def message(self) -> str:
        toast = self.wait.until(
            seen.presence_of_element_located((By.CSS_SELECTOR, "#django-messages .toast-body"))
        )
        return str(toast.get_attribute("textContent")).strip()

    def buttons(self) -> set[str]:
        found = self.driver.find_elements(By.CSS_SELECTOR, "button[id^='sign-'][id$='-button']")
        return {str(b.get_attribute("id")) for b in found}

    def shoot(self, what: str) -> Path:
        """The whole page (the window grown to its height), numbered in the order taken."""
        height = self.driver.execute_script("return document.body.scrollHeight")
        self.driver.set_window_size(1400, min(int(height) + 120, 16000))
        self.taken += 1
        path = self.shots / f"{self.taken:02d}-{what}.png"
        assert self.driver.save_screenshot(str(path)), path
        self.driver.set_window_size(1400, 1000)
        return path


@pytest.fixture
def browser(
    tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Iterator[Browser]:
    """Chromium for the test; where its screenshots are goes to the test's output whatever
    the outcome (past the capture), to its report and to the JUnit XML (a property)."""
    shots = Path(os.environ.get("RUNBOOKS_ARTIFACTS") or tmp_path) / "netbox-review-browser"
    shots.mkdir(parents=True, exist_ok=True)
    where = f"screenshots of {request.node.name}: {shots}"
    request.node.user_properties.append(("screenshots", str(shots)))
    request.node.add_report_section("call", "screenshots", str(shots))
    assert installed(), "scripts/setup installs Debian's chromium and chromium-driver"
    driver = chromium(tmp_path / "chromium-profile")
    try:
        yield Browser(driver, shots)
    finally:
        driver.quit()
        with capsys.disabled():
            print(f"\n{where}")


def coloured(cell: WebElement) -> tuple[float, float, float]:
    """The (red, green, blue) a cell or line is painted with, from its computed background:
    ``rgb(a)(…)`` in 0-255, or ``color(srgb …)`` in 0-1 (NetBox's light tints)."""
    value = str(cell.value_of_css_property("background-color"))
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", value)]
    scale = 255.0 if value.startswith("color(") else 1.0
    red, green, blue = (n * scale for n in numbers[:3])
    return red, green, blue


def assert_configuration_diffs(driver: WebDriver) -> None:
    """leaf3's configuration as a unified diff with green additions and red removals; the
    spines' confirmations with the before-state in red and the after-state in green."""
    leaf3 = driver.find_element(
        By.CSS_SELECTOR, '#system-device .rb-diff-item[data-target="leaf3 configuration"] pre'
    )
    added = leaf3.find_elements(By.CSS_SELECTOR, ".rb-diff-add")
    removed = leaf3.find_elements(By.CSS_SELECTOR, ".rb-diff-del")
    assert any(a.text.startswith("+interface swp1") for a in added), [a.text for a in added]
    assert any(r.text.startswith("-log file") for r in removed), [r.text for r in removed]
    red, green, _ = coloured(added[0])
    assert green > red, ("an added line is not green", red, green)
    red, green, _ = coloured(removed[0])
    assert red > green, ("a removed line is not red", red, green)
    for spine in ("spine1", "spine2"):
        item = f'#system-device .rb-diff-item[data-target="{spine} configuration"]'
        before = driver.find_element(By.CSS_SELECTOR, f"{item} td.rb-before")
        after = driver.find_element(By.CSS_SELECTOR, f"{item} td.rb-after")
        assert (before.text, after.text) == ("reverts by itself unless confirmed", "confirmed")
        assert coloured(before)[0] > coloured(before)[1] and coloured(after)[1] > coloured(after)[0]


def signed_by(driver: WebDriver, authority: str, username: str) -> bool:
    css = f'.rb-signature[data-authority="{authority}"][data-user="{username}"]'
    return bool(driver.find_elements(By.CSS_SELECTOR, css))


def test_review_and_approve_a_rack_in_in_the_browser(
    lab_reset: Any, browser: Browser, tmp_path: Path
) -> None:
    planned = plan_rack_in(tmp_path / "olivia-laptop")
    name, digest, page = planned["change"], planned["hash"], planned["url"]
    driver = browser.driver

    olivia = browser.sign_in("operator")
    browser.open_change_from_menu(name)
    assert browser.buttons() == set(), f"{olivia} prepared {name} and is offered a signature"
    browser.shoot("preparer-sees-no-buttons")

    rachel = browser.sign_in("reviewer")
    browser.open_change_from_menu(name)
    assert driver.current_url == page
    assert driver.find_element(By.ID, "plan-hash").text == digest
    assert_configuration_diffs(driver)
    assert browser.buttons() == {"sign-review-button"}
    browser.shoot("reviewer-reads-the-change")
    said = browser.sign("review", digest[:16])
    assert f"{rachel} signed {name}" in said, said
    assert signed_by(driver, "review", rachel)
    browser.shoot("reviewed")

    arthur = browser.sign_in("approver")
    browser.open_change_from_menu(name)
    assert browser.buttons() == {"sign-approve-button"}
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:16]
    refused = browser.sign("approve", wrong)
    assert refused == last_refusal(page), refused
    assert refused.startswith("the signature must name the plan's hash"), refused
    assert not signed_by(driver, "approve", arthur)
    browser.shoot("approver-wrong-hash-refused")
    said = browser.sign("approve", digest)
    assert f"{arthur} signed {name}" in said and "Approved" in said, said
    assert signed_by(driver, "approve", arthur)
    browser.shoot("approved")

    browser.sign_in("operator")
    browser.open_change_from_menu(name)
    assert browser.buttons() == set()
    assert signed_by(driver, "review", rachel) and signed_by(driver, "approve", arthur)
    browser.shoot("preparer-sees-the-signatures")
