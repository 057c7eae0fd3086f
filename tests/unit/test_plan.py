"""The planner: every rule of what an attempt's end writes, without Redis or a clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import DeliveryError
from worker.backoff import Backoff
from worker.client import interpret
from worker.errors import ConnectFailed, HttpStatusError, RequestTimeout
from worker.plan import (
    Breaker,
    Claim,
    Kind,
    Plan,
    after_call,
    age_s,
    before_call,
    refuse,
    release,
)
from worker.policy import Policy
from worker.soap import Reply
from worker.transport import HttpResponse

BACKOFF = Backoff(base=2, cap=600, max_attempts=4, max_age=3600)


def claim(charged: int = 1, probe: bool = False, age_ms: int = 0) -> Claim:
    return Claim("default/e1", "default", "e1", "9", "[]", attempts=charged, charged=charged,
                 accepted_ms=1_000_000, probe=probe, delay_s=0.0, claimed_ms=1_000_000 + age_ms)


def plan_for(result: Reply | DeliveryError, c: Claim | None = None, age: float = 0.0) -> Plan:
    verdict = Policy().classify(result)
    return after_call(c or claim(), verdict, verdict.reason, 12.0, backoff=BACKOFF, age=age,
                      cooldown_s=5.0, rng=random.Random(1))


def test_delivered_closes_the_circuit_and_keeps_the_charge() -> None:
    p = plan_for(Reply(0, 77))
    assert p.kind is Kind.DELIVERED and p.interaction_id == 77
    assert p.breaker is Breaker.OK and not p.refund


@pytest.mark.parametrize(("code", "kind"), [(300, Kind.DEAD_LETTER), (503, Kind.DEAD_LETTER),
                                            (1200, Kind.DEAD_LETTER), (301, Kind.REJECTED)])
def test_data_errors_end_the_event_and_say_the_service_is_fine(code: int, kind: Kind) -> None:
    p = plan_for(Reply(code, -1))
    assert p.kind is kind and p.breaker is Breaker.OK
    assert p.code == code


def test_a_timeout_is_charged_and_retried_with_backoff() -> None:
    p = plan_for(RequestTimeout("slow"))
    assert p.kind is Kind.RETRY and not p.refund
    assert p.breaker is Breaker.FAIL and p.ambiguous
    assert 1000 <= p.delay_ms <= 2000


@pytest.mark.parametrize("error", [ConnectFailed("refused"), HttpStatusError(502),
                                   HttpStatusError(503), HttpStatusError(429)])
def test_calls_that_never_reached_the_service_cost_nothing(error: DeliveryError) -> None:
    p = plan_for(error, claim(charged=4))  # the last attempt of the budget
    assert p.kind is Kind.RETRY and p.refund


def test_credentials_open_the_circuit_at_once_and_cost_nothing() -> None:
    p = plan_for(Reply(100, -1), claim(charged=4))
    assert p.kind is Kind.RETRY and p.breaker is Breaker.FORCE
    assert p.refund and p.delay_ms == 5000


def test_the_last_charged_attempt_dead_letters() -> None:
    p = plan_for(RequestTimeout("slow"), claim(charged=4))
    assert p.kind is Kind.DEAD_LETTER
    assert p.reason.startswith("retries exhausted after 4 attempts")


def test_a_probe_is_charged_like_any_call() -> None:
    p = plan_for(RequestTimeout("slow"), claim(charged=4, probe=True))
    assert p.kind is Kind.DEAD_LETTER and not p.refund


def test_too_old_dead_letters() -> None:
    p = plan_for(Reply(1, -1), age=4000)
    assert p.kind is Kind.DEAD_LETTER and "maximum age" in p.reason


def test_retry_after_is_honoured() -> None:
    p = plan_for(HttpStatusError(429, retry_after=30))
    assert p.delay_ms == 30_000


def test_retry_after_is_honoured_up_to_our_backoff_cap() -> None:
    p = plan_for(HttpStatusError(503, retry_after=365 * 86400))  # "come back in a year"
    assert p.kind is Kind.RETRY and p.delay_ms == BACKOFF.cap * 1000


@pytest.mark.parametrize("header", ["inf", "-inf", "nan", "1e400", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_a_retry_after_that_is_no_number_of_seconds_falls_back_to_our_backoff(
        header: str) -> None:
    response = HttpResponse(503, {"Retry-After": header}, b"busy")
    with pytest.raises(HttpStatusError) as caught:
        interpret(response)
    assert caught.value.retry_after is None
    p = plan_for(caught.value)
    assert p.kind is Kind.RETRY and 1000 <= p.delay_ms <= 2000


def test_a_spent_budget_dead_letters_before_calling() -> None:
    assert before_call(claim(charged=4), BACKOFF, 0) is None
    spent = before_call(claim(charged=5), BACKOFF, 0)
    assert spent is not None and spent.kind is Kind.DEAD_LETTER and spent.refund
    old = before_call(claim(charged=1), BACKOFF, 3600)
    assert old is not None and "maximum age" in old.reason


def test_refused_and_released_events_are_not_charged_unless_sent() -> None:
    assert refuse("invalid_message", "x" * 500).reason == "x" * 200
    assert release(sent=False).refund and not release(sent=True).refund
    assert release(sent=True).kind is Kind.RELEASE


def test_age_comes_from_server_times_plus_a_local_duration() -> None:
    assert age_s(claim(age_ms=5000), 2.5) == 7.5


@given(charged=st.integers(1, 50), code=st.sampled_from([0, 1, 2, 100, 300, 301, 4242]),
       error=st.sampled_from([None, "timeout", "connect", "502", "504"]))
def test_budget_is_never_exceeded(charged: int, code: int, error: str | None) -> None:
    """Whatever the answer, an event whose budget is spent never gets another retry."""
    results: dict[str | None, Reply | DeliveryError] = {
        None: Reply(code, 1), "timeout": RequestTimeout("t"),
                      "connect": ConnectFailed("c"), "502": HttpStatusError(502),
                      "504": HttpStatusError(504)}
    p = plan_for(results[error], claim(charged=charged))
    spent = charged - (1 if p.refund else 0)
    if p.kind is Kind.RETRY and not p.refund:
        assert spent < BACKOFF.max_attempts
    assert spent <= charged
