"""The dashboard over HTTP (no browser): sessions, CSRF, selection replay, purge confirmation,
export, circuits and what pages never show. A real worker, the sandbox, Redis and relay api."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from relay.deadletters import DeadLetters
from tests.helpers import Sandbox, wait_until
from tests.integration.pipeline import Pipeline, pipeline_with_api, reset


@pytest.fixture(scope="module")
def redis_url(one_redis_url: str) -> str:
    """One Redis backend is enough here: the subject is not Redis (see conftest)."""
    return one_redis_url


API_KEY, ADMIN_KEY = "dash-api-key", "dash-admin-key"


@pytest.fixture(scope="module")
def stack(redis_url: str, sandbox_server: Sandbox, module_tmp: Path
          ) -> Iterator[tuple[Pipeline, str]]:
    with pipeline_with_api(redis_url, sandbox_server, module_tmp, API_KEY, ADMIN_KEY) as both:
        yield both


@pytest.fixture
def pipe(stack: tuple[Pipeline, str]) -> Pipeline:
    reset(stack[0])
    return stack[0]


@pytest.fixture
def base(stack: tuple[Pipeline, str]) -> str:
    return stack[1]


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def session(base: str, key: str = ADMIN_KEY) -> tuple[requests.Session, requests.Response]:
    s = requests.Session()
    page = s.get(base + "/ui/login", timeout=10)
    r = s.post(base + "/ui/login", data={"key": key, "csrf": csrf(page.text), "next": "/ui/"},
               allow_redirects=False, timeout=10)
    return s, r


def dead(pipe: Pipeline, n: int = 1, **fields: str) -> list[str]:
    ids = [pipe.send(**{"interaction_type": "BOGUS", **fields}) for _ in range(n)]
    pipe.wait_states(ids, ("dead_letter",))
    return ids


def test_login_sets_a_signed_httponly_samesite_cookie(pipe: Pipeline, base: str) -> None:
    s, r = session(base)
    assert r.status_code == 303 and r.headers["Location"] == "/ui/"
    cookie = next(c for c in r.raw.headers.getlist("Set-Cookie")
                  if c.startswith("relay_ui="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    assert ADMIN_KEY not in cookie
    assert s.get(base + "/ui/", timeout=10).status_code == 200
    forged = s.cookies["relay_ui"][:-1] + ("0" if s.cookies["relay_ui"][-1] != "0" else "1")
    r = requests.get(base + "/ui/", cookies={"relay_ui": forged}, allow_redirects=False,
                     timeout=10)
    assert r.status_code == 303 and r.headers["Location"].startswith("/ui/login")


def test_login_needs_the_form_token_and_never_redirects_off_site(base: str) -> None:
    r = requests.post(base + "/ui/login", data={"key": ADMIN_KEY}, timeout=10)
    assert r.status_code == 403
    s = requests.Session()
    token = csrf(s.get(base + "/ui/login", timeout=10).text)
    r = s.post(base + "/ui/login", data={"key": ADMIN_KEY, "csrf": token,
                                         "next": "//evil.example/"},
               allow_redirects=False, timeout=10)
    assert r.headers["Location"] == "/ui/"


def test_bearer_admin_key_reads_pages_and_api_key_does_not(base: str) -> None:
    ok = requests.get(base + "/ui/", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                      timeout=10)
    assert ok.status_code == 200 and "Content-Security-Policy" in ok.headers
    no = requests.get(base + "/ui/", headers={"Authorization": f"Bearer {API_KEY}"},
                      allow_redirects=False, timeout=10)
    assert no.status_code == 303
    assert requests.post(base + "/ui/dead-letters/replay", data={"scope": "matching"},
                         timeout=10).status_code == 401


def test_replay_the_selection_only(pipe: Pipeline, base: str) -> None:
    a, b, c = dead(pipe, 3)
    s, _ = session(base)
    token = csrf(s.get(base + "/ui/dead-letters", timeout=10).text)
    r = s.post(base + "/ui/dead-letters/replay", timeout=10, allow_redirects=False,
               data={"csrf": token, "scope": "selected",
                     "member": [f"default/{a}", f"default/{c}"]})
    assert r.status_code == 303 and "replayed=2" in r.headers["Location"]
    store = DeadLetters(pipe.redis, pipe.producer.keys)
    assert [e["event_id"] for e in store.entries()] == [b]


def test_purge_asks_first_then_removes_only_the_matches(pipe: Pipeline, base: str) -> None:
    dead(pipe, 2)
    keep = dead(pipe, 1, interaction_type="VISIT", location="STORE-999")
    store = DeadLetters(pipe.redis, pipe.producer.keys)
    s, _ = session(base)
    token = csrf(s.get(base + "/ui/dead-letters?code=1200", timeout=10).text)
    form = {"csrf": token, "scope": "matching", "code": "1200"}
    ask = s.post(base + "/ui/dead-letters/purge", data=form, timeout=10)
    assert ask.status_code == 200 and "Purge 2 dead letter(s) for good?" in ask.text
    assert store.size() == 3
    # one more match arrives before the operator confirms: nothing is purged, it asks again
    late = dead(pipe, 1)
    again = s.post(base + "/ui/dead-letters/purge", allow_redirects=False, timeout=10,
                   data={**form, "confirm": "yes", "digest": digest(ask.text)})
    assert again.status_code == 200 and 'id="changed"' in again.text
    assert "Purge 3 dead letter(s) for good?" in again.text and store.size() == 4
    done = s.post(base + "/ui/dead-letters/purge", allow_redirects=False, timeout=10,
                  data={**form, "confirm": "yes", "digest": digest(again.text)})
    assert done.status_code == 303 and "purged=3" in done.headers["Location"]
    assert [e["event_id"] for e in store.entries()] == keep
    assert late[0] not in [e["event_id"] for e in store.entries()]


def digest(html: str) -> str:
    found = re.search(r'name="digest" value="([0-9a-f]+)"', html)
    assert found, "no digest on the confirmation page"
    return found.group(1)


def test_signal_filter_and_group_links_name_the_signal(pipe: Pipeline, base: str) -> None:
    dead(pipe, 1)
    s, _ = session(base)
    assert "code:1200" not in s.get(base + "/ui/dead-letters?signal=http:404", timeout=10).text
    page = s.get(base + "/ui/dead-letters?signal=code:1200", timeout=10).text
    assert "1 matching, grouped" in page, page
    # a code group links by code; its signal is not repeated in the link
    assert re.search(r'href="/ui/dead-letters\?code=1200&amp;location=[^"]*&amp;tenant=default"',
                     page), page


def test_export_is_the_filtered_json_lines(pipe: Pipeline, base: str) -> None:
    wanted = dead(pipe, 2, location="STORE-888")
    dead(pipe, 1)
    s, _ = session(base)
    r = s.get(base + "/ui/dead-letters/export?code=503", timeout=10)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert sorted(e["event_id"] for e in lines) == sorted(wanted)
    assert all(e["location"] == "STORE-888" and e["dead_letter"]["code"] == 503 for e in lines)


def test_bad_filter_is_a_400_naming_the_field(base: str) -> None:
    s, _ = session(base)
    r = s.get(base + "/ui/dead-letters?code=abc", timeout=10)
    assert r.status_code == 400 and "code must be a whole number" in r.text


def test_open_circuit_shows_tenant_reason_and_next_probe(pipe: Pipeline, base: str) -> None:
    pipe.sandbox.seed(remove={"tokens": ["sandbox-token"]})  # the tenant's token stops working
    try:
        pipe.send()
        s, _ = session(base)
        wait_until(lambda: 'id="circuits"' in s.get(base + "/ui/live", timeout=10).text, 15,
                   0.1, "an open circuit on the page")
        page = s.get(base + "/ui/live", timeout=10).text
        assert "default" in page and "invalid security token" in page and " s</td>" in page
    finally:
        pipe.sandbox.reset()


def test_no_secret_on_any_page(pipe: Pipeline, base: str) -> None:
    event_id = dead(pipe, 1)[0]
    s, _ = session(base)
    for path in ("/ui/", "/ui/live", "/ui/dead-letters", f"/ui/dead-letters/default/{event_id}",
                 f"/ui/events?event_id={event_id}", "/ui/dead-letters/export"):
        text = s.get(base + path, timeout=10).text
        assert (text and event_id in text) or path in ("/ui/", "/ui/live")
        for secret in ("sandbox-token", ADMIN_KEY, API_KEY, "Envelope", "SecurityToken"):
            assert secret not in text, (path, secret)


def test_any_printable_event_id_has_a_detail_page(pipe: Pipeline, base: str) -> None:
    odd = "a/b?c#d%2F&e<x>"
    pipe.send(event_id=odd, interaction_type="BOGUS")
    pipe.wait_states([odd], ("dead_letter",))
    s, _ = session(base)
    listing = s.get(base + "/ui/dead-letters", timeout=10).text
    link = re.search(r'class="event-link" href="([^"]+)"', listing)
    assert link and link.group(1) == "/ui/dead-letters/default/a%2Fb%3Fc%23d%252F%26e%3Cx%3E"
    detail = s.get(base + link.group(1).replace("&amp;", "&"), timeout=10)
    assert detail.status_code == 200 and "a/b?c#d%2F&amp;e&lt;x&gt;" in detail.text
