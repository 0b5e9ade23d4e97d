"""Debian's chromium, headless, driven by chromedriver through Selenium (nothing downloaded:
the driver's path is given, so Selenium Manager is not used), for the tests that read a page
in a real browser. Both come from scripts/setup."""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def installed() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def chromium(profile: Path) -> webdriver.Chrome:
    """A headless chromium with its own profile, no background traffic, 1400 by 1000 pixels."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
