"""A real stack for the dashboard's browser tests: Redis, the sandbox, a worker, ``relay api``
and headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium).

A missing browser fails loudly (``.ci/run`` installs it): a skipped security test proves
nothing. Screenshots go to ``tests/browser/screenshots/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.helpers import Sandbox, system_redis_url
from tests.integration.pipeline import Pipeline, pipeline_with_api

API_KEY, ADMIN_KEY = "browser-api-key", "browser-admin-key"
SHOTS = Path(__file__).with_name("screenshots")


@dataclass
class Stack:
    pipeline: Pipeline
    base: str  # the API's root URL

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          sandbox_server: Sandbox) -> Iterator[Stack]:
    """Per module, not per session: its worker consumes the test database, so it is stopped
    before another module's tests (which run their own workers) enqueue there."""
    url = system_redis_url() or str(request.getfixturevalue("embedded_redis_url"))
    logs = tmp_path_factory.mktemp("browser")
    with pipeline_with_api(url, sandbox_server, logs, API_KEY, ADMIN_KEY) as (pipeline, base):
        yield Stack(pipeline, base)


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("headless Chromium is missing: apt-get install -y chromium chromium-driver "
                    "(.ci/run does this when it runs as root)")
    return browser, driver


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A fresh browser (no cookies) at 1280x800; width changes per test when needed. Its
    profile and the singleton socket Chromium leaves behind go to the test's own temporary
    folder, not /tmp."""
    binary, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--disable-extensions"):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    service = Service(driver, env={**os.environ, "TMPDIR": str(tmp_path)})
    chrome = webdriver.Chrome(options=options, service=service)
    chrome.set_page_load_timeout(20)
    try:
        yield chrome
    finally:
        chrome.quit()


def screenshot(chrome: webdriver.Chrome, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    chrome.save_screenshot(str(path))
    return path
