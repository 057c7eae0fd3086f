"""The dashboard in headless Chromium against a real worker, the sandbox, Redis and relay api
(issue 13's "Must show")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from relay.deadletters import DeadLetters
from relay.keys import member
from tests.browser.conftest import ADMIN_KEY, API_KEY, Stack, screenshot
from tests.integration.pipeline import reset

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def clean(stack: Stack) -> Iterator[Stack]:
    reset(stack.pipeline)
    yield stack


def log_in(chrome: webdriver.Chrome, stack: Stack, key: str) -> None:
    chrome.get(stack.url("/ui/"))
    WebDriverWait(chrome, 10).until(lambda c: "/ui/login" in c.current_url)
    field = chrome.find_element(By.ID, "key")
    field.send_keys(key)
    field.send_keys(Keys.ENTER)  # keyboard only


def text(chrome: webdriver.Chrome, css: str) -> str:
    return str(chrome.find_element(By.CSS_SELECTOR, css).text)


def wait_text(chrome: webdriver.Chrome, css: str, expected: str, timeout: float = 15) -> None:
    def shows(c: webdriver.Chrome) -> bool:
        found = c.find_elements(By.CSS_SELECTOR, css)
        return bool(found) and found[0].text == expected

    # The page may be replaced between finding the element and reading it (a form posted,
    # the live refresh): a stale element means "look again", not a failure.
    WebDriverWait(chrome, timeout, 0.1, ignored_exceptions=(StaleElementReferenceException,)
                  ).until(shows, f"{css} to show {expected!r}")


def dead(stack: Stack, **fields: str) -> str:
    event_id = stack.pipeline.send(**fields)
    stack.pipeline.wait_states([event_id], ("dead_letter",))
    return event_id


def no_alert(chrome: webdriver.Chrome) -> bool:
    try:
        chrome.switch_to.alert.dismiss()
    except NoAlertPresentException:
        return True
    return False


@pytest.mark.parametrize("key", [API_KEY, "not-a-key", ADMIN_KEY[:-1]])
def test_a_non_admin_key_cannot_log_in(browser: webdriver.Chrome, clean: Stack,
                                       key: str) -> None:
    log_in(browser, clean, key)
    wait_text(browser, "#error", "not an admin key")
    assert browser.get_cookie("relay_ui") is None
    browser.get(clean.url("/ui/dead-letters"))
    assert "/ui/login" in browser.current_url


def test_dead_letter_filtered_replayed_from_the_page_and_delivered(
        browser: webdriver.Chrome, clean: Stack) -> None:
    box = clean.pipeline.sandbox
    bad_location = dead(clean, location="STORE-777", note="first")
    bad_type = dead(clean, interaction_type="BOGUS")
    other = dead(clean, location="STORE-777", note=SCRIPT)
    log_in(browser, clean, ADMIN_KEY)
    wait_text(browser, "#dead-letters", "3")
    assert text(browser, "#delivered") == "0"
    assert "invalid location external reference" in text(browser, "#signals")
    screenshot(browser, "overview-before")

    browser.find_element(By.LINK_TEXT, "Dead letters").click()
    groups = text(browser, "#groups")
    assert "503" in groups and "STORE-777" in groups and "1200" in groups
    screenshot(browser, "dead-letters")
    code = browser.find_element(By.NAME, "code")
    code.send_keys("503")
    code.submit()
    WebDriverWait(browser, 10).until(lambda c: "code=503" in c.current_url)
    listed = text(browser, "#entries")
    assert bad_location in listed and other in listed and bad_type not in listed
    screenshot(browser, "dead-letters-503")

    browser.find_element(By.LINK_TEXT, bad_location).click()
    assert text(browser, "#state") == "dead_letter"
    assert text(browser, ".field-location") == "STORE-777"
    assert "503" in text(browser, "#timeline")
    screenshot(browser, "dead-letter-detail")

    box.seed(add={"locations": ["STORE-777"]})  # the operator fixes the location
    browser.find_element(By.ID, "replay-one").click()
    wait_text(browser, "#done", "Replayed 1 event(s).")
    clean.pipeline.wait_states([bad_location], ("delivered",))

    browser.find_element(By.LINK_TEXT, "Overview").click()
    wait_text(browser, "#delivered", "1")
    assert text(browser, "#dead-letters") == "2"
    # Counters move on the open page (live refresh): replay another one behind its back.
    store = DeadLetters(clean.pipeline.redis, clean.pipeline.producer.keys)
    assert store.replay([member("default", other)])
    wait_text(browser, "#delivered", "2", timeout=20)
    wait_text(browser, "#dead-letters", "1", timeout=10)
    screenshot(browser, "overview")

    browser.find_element(By.LINK_TEXT, "Event lookup").click()
    field = browser.find_element(By.NAME, "event_id")
    field.send_keys(bad_location)
    field.submit()
    wait_text(browser, "#state", "delivered")
    assert "delivered" in text(browser, "#timeline") and "503" in text(browser, "#timeline")
    screenshot(browser, "event-lookup")


def test_a_script_in_a_note_shows_as_text(browser: webdriver.Chrome, clean: Stack) -> None:
    event_id = dead(clean, interaction_type="BOGUS", note=SCRIPT)
    log_in(browser, clean, ADMIN_KEY)
    for path in ("/ui/dead-letters", f"/ui/dead-letters/default/{event_id}",
                 f"/ui/events?event_id={event_id}"):
        browser.get(clean.url(path))
        note = browser.find_element(By.CSS_SELECTOR, ".note, .field-note")
        assert note.text == SCRIPT
        assert no_alert(browser)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in browser.page_source


def test_an_action_without_the_csrf_token_is_refused(browser: webdriver.Chrome,
                                                    clean: Stack) -> None:
    dead(clean, interaction_type="BOGUS")
    store = DeadLetters(clean.pipeline.redis, clean.pipeline.producer.keys)
    log_in(browser, clean, ADMIN_KEY)
    browser.get(clean.url("/ui/dead-letters"))
    # The page's own replay form, its token removed: what a forged form would send.
    browser.execute_script(
        "document.querySelector('#replay-matching').form"
        ".querySelector('[name=csrf]').remove()")
    browser.find_element(By.ID, "replay-matching").click()
    wait_text(browser, "h1", "403")
    assert "CSRF" in text(browser, "#error")
    assert store.size() == 1

    cookies = {"relay_ui": browser.get_cookie("relay_ui")["value"]}  # type: ignore[index]
    action = clean.url("/ui/dead-letters/replay")
    for form, headers in [({"scope": "matching"}, {}),
                          ({"scope": "matching", "csrf": "0" * 64}, {}),
                          ({"scope": "matching"}, {"Origin": "http://evil.example"})]:
        r = requests.post(action, data=form, cookies=cookies, headers=headers, timeout=10,
                          allow_redirects=False)
        assert r.status_code == 403, form
    assert store.size() == 1


def test_usable_at_phone_width(browser: webdriver.Chrome, clean: Stack) -> None:
    dead(clean, location="STORE-404", note="x" * 200)
    log_in(browser, clean, ADMIN_KEY)
    browser.set_window_size(390, 844)
    for name, path in (("overview", "/ui/"), ("dead-letters", "/ui/dead-letters")):
        browser.get(clean.url(path))
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
        screenshot(browser, f"phone-{name}")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
