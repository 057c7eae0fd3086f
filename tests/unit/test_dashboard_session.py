"""Dashboard sessions and CSRF tokens, the chart's numbers and code meanings (pure)."""

from __future__ import annotations

import pytest

from producers.dashboard.chart import HEIGHT, PAD, chart
from producers.dashboard.session import LIFETIME_S, Sessions
from relay.codes import REASONS, meaning

NOW = 1_800_000_000.0


@pytest.fixture
def sessions() -> Sessions:
    return Sessions.create(["admin-1", "admin-2"])


def test_a_session_checks_until_it_expires(sessions: Sessions) -> None:
    cookie = sessions.issue(sessions.key_id("admin-1"), now=NOW)
    assert sessions.check(cookie, now=NOW + 60)
    assert sessions.check(cookie, now=NOW + LIFETIME_S + 1) is None


@pytest.mark.parametrize("change", [
    lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # signature
    lambda c: str(int(c.split(".")[0]) + 9999) + c[c.index("."):],  # a longer life
    lambda c: "", lambda c: "garbage", lambda c: c.rpartition(".")[0],
])
def test_a_tampered_cookie_is_refused(sessions: Sessions, change: object) -> None:
    cookie = sessions.issue(sessions.key_id("admin-1"), now=NOW)
    assert sessions.check(change(cookie), now=NOW) is None  # type: ignore[operator]


def test_removing_a_key_or_changing_the_secret_ends_sessions(sessions: Sessions) -> None:
    cookie = sessions.issue(sessions.key_id("admin-2"), now=NOW)
    assert Sessions.create(["admin-1", "admin-2"]).check(cookie, now=NOW)
    assert Sessions.create(["admin-1"]).check(cookie, now=NOW) is None
    fixed = Sessions.create(["admin-1", "admin-2"], secret="s3cret")
    assert fixed.check(cookie, now=NOW) is None


def test_admin_matches_only_admin_keys_and_repr_hides_them(sessions: Sessions) -> None:
    assert sessions.admin("admin-1") == sessions.key_id("admin-1")
    assert sessions.admin("admin-") is None and sessions.admin("api-key") is None
    assert "admin-1" not in repr(sessions)


def test_csrf_token_is_bound_to_the_session(sessions: Sessions) -> None:
    nonce = sessions.check(sessions.issue(sessions.key_id("admin-1"), now=NOW), now=NOW)
    other = sessions.check(sessions.issue(sessions.key_id("admin-1"), now=NOW), now=NOW)
    assert nonce and other and nonce != other
    assert sessions.csrf_ok(nonce, sessions.csrf(nonce))
    assert not sessions.csrf_ok(nonce, sessions.csrf(other))
    assert not sessions.csrf_ok(nonce, "")


def test_chart_scales_to_the_peak() -> None:
    minutes = [{"minute": "2026-01-01T10:00:00", "delivered": 4, "retry": 1},
               {"minute": "2026-01-01T10:01:00", "dead_letter": 3, "rejected": 1}]
    c = chart(minutes)
    assert (c.peak, c.total_delivered, c.total_failed) == (4, 4, 5)
    assert c.delivered.split()[0].endswith(f",{PAD:.1f}")  # the peak touches the top
    assert c.failed.split()[1].endswith(f",{PAD:.1f}")
    assert c.delivered.split()[1].endswith(f",{HEIGHT - PAD:.1f}")
    assert (c.first, c.last) == ("10:00", "10:01")
    assert chart([]).peak == 1


@pytest.mark.parametrize(("signal", "words"), [
    ("code:503", "invalid location external reference"), ("code:42", "return code 42"),
    ("timeout", "no reply in time (the call may have been recorded)"),
    ("http:500", "HTTP status 500"), ("something", "something"),
])
def test_every_signal_has_words(signal: str, words: str) -> None:
    assert meaning(signal) == words


@pytest.mark.parametrize("code", sorted(REASONS))
def test_the_policy_gives_the_same_words(code: int) -> None:
    from worker.policy import Policy
    from worker.soap import Reply

    assert Policy().classify(Reply(code, -1)).reason == meaning(f"code:{code}")
