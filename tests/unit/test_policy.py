import random

import pytest
import redis

from relay.errors import ConfigError
from worker.backoff import Backoff
from worker.consumer import transient
from worker.errors import (
    ClientFault,
    ConnectFailed,
    ConnectionLost,
    HttpStatusError,
    ReplyError,
    ReplyTooLarge,
    RequestTimeout,
    ServerFault,
)
from worker.policy import Outcome, Policy
from worker.settings import Settings
from worker.soap import Reply

D, R, X, J, S = (Outcome.DELIVERED, Outcome.RETRY, Outcome.DEAD_LETTER, Outcome.REJECTED,
                 Outcome.SYSTEMIC)


@pytest.mark.parametrize(("code", "outcome"), [
    (0, D), (1, R), (2, X), (5, X), (6, S), (100, S), (101, S), (102, S), (106, S),
    (300, X), (301, J), (503, X), (1200, X), (4242, X), (-7, X),
])
def test_return_codes(code: int, outcome: Outcome) -> None:
    verdict = Policy().classify(Reply(code, 9 if code == 0 else -1))
    assert verdict.outcome is outcome
    assert verdict.interaction_id == (9 if code == 0 else None)


@pytest.mark.parametrize(("error", "outcome", "ambiguous"), [
    (ConnectFailed("x"), R, False), (RequestTimeout("x"), R, True),
    (ConnectionLost("x"), R, True), (ReplyTooLarge("x"), R, False),
    (HttpStatusError(502), R, False), (HttpStatusError(503), R, False),
    (HttpStatusError(504), R, False), (HttpStatusError(429, retry_after=7), R, False),
    (HttpStatusError(500), R, False), (HttpStatusError(404), X, False),
    (HttpStatusError(400), X, False), (ServerFault("soap:Server", "x"), R, False),
    (ClientFault("soap:Client", "x"), X, False), (ReplyError("x"), R, False),
])
def test_errors(error: Exception, outcome: Outcome, ambiguous: bool) -> None:
    verdict = Policy().classify(error)  # type: ignore[arg-type]
    assert verdict.outcome is outcome and verdict.ambiguous is ambiguous
    assert verdict.trips_breaker  # every transport or protocol failure feeds the breaker


def test_retry_after_is_kept() -> None:
    assert Policy().classify(HttpStatusError(429, retry_after=7)).retry_after == 7


def test_operators_override_the_table() -> None:
    policy = Policy.with_overrides('{"301": "dead_letter", "fault:client": "retry"}')
    assert policy.classify(Reply(301, -1)).outcome is X
    assert policy.classify(ClientFault("soap:Client", "x")).outcome is R
    assert policy.classify(Reply(300, -1)).outcome is X  # the rest stays


@pytest.mark.parametrize("raw", ['{"301": "maybe"}', "not json", "[1]"])
def test_bad_overrides_name_the_setting(raw: str) -> None:
    with pytest.raises(ConfigError, match="RELAY_POLICY"):
        Policy.with_overrides(raw)


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    backoff, rng = Backoff(base=2, factor=2, cap=60, max_attempts=5, max_age=100), random.Random(1)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (6, 60), (20, 60)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # really jittered
    assert not backoff.exhausted(4, 99) and backoff.exhausted(5, 0) and backoff.exhausted(0, 100)


def test_backoff_stays_at_its_cap_however_many_attempts() -> None:
    """2.0 ** 1100 overflows a float: a budget of thousands of attempts must not crash."""
    backoff = Backoff(base=2.0, factor=2.0, cap=60.0, max_attempts=5000, max_age=100.0)
    assert 30 <= backoff.delay(1100, random.Random(1)) <= 60


@pytest.mark.parametrize(("error", "passes"), [
    (redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB snapshots, but "
                                    "it's currently unable to persist to disk"), True),
    (redis.exceptions.ResponseError("BUSY Redis is busy running a script"), True),
    (redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica"),
     True),
    (redis.exceptions.ResponseError("ERR wrong number of arguments"), False),
])
def test_redis_refusals_that_pass_are_retried_and_errors_are_not(error: Exception,
                                                                  passes: bool) -> None:
    assert transient(error) is passes


@pytest.mark.parametrize(("env", "message"), [
    ({"RELAY_MAX_ATTEMPTS": "lots"}, "RELAY_MAX_ATTEMPTS must be a number"),
    ({"RELAY_BACKOFF_CAP": "-1"}, "must not be negative"),
    ({"RELAY_SOAP_VERSION": "2.0"}, "RELAY_SOAP_VERSION"),
    ({"RELAY_TENANTS": '{"a": {"url": "x"}}'}, "needs a string 'token'"),
    ({"RELAY_TENANTS": "/no/such/file.json"}, "neither JSON nor a readable JSON file"),
])
def test_settings_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_tenants_inherit_the_default_endpoint() -> None:
    settings = Settings.from_env({"RELAY_SOAP_URL": "https://x/Services/Interaction.asmx",
                                  "RELAY_TENANTS": '{"acme": {"token": "t"}}'})
    assert settings.endpoint("acme").url == "https://x/Services/Interaction.asmx"
    with pytest.raises(ConfigError, match="unknown tenant 'zed'"):
        settings.endpoint("zed")


@pytest.mark.parametrize(("error", "reached"), [
    (ConnectFailed("x"), False), (HttpStatusError(502), False), (HttpStatusError(503), False),
    (HttpStatusError(429), False), (HttpStatusError(504), True), (RequestTimeout("x"), True),
    (ConnectionLost("x"), True), (ServerFault("soap:Server", "x"), True),
    (ClientFault("soap:Client", "x"), True), (Reply(1, -1), True), (Reply(0, 5), True),
])
def test_only_calls_that_certainly_did_not_reach_the_service_are_unsent(
        error: Exception | Reply, reached: bool) -> None:
    assert Policy().classify(error).reached is reached  # type: ignore[arg-type]


def test_unknown_codes_share_one_signal_but_keep_their_code() -> None:
    verdict = Policy().classify(Reply(4242, -1))
    assert verdict.signal == "code:other" and verdict.code == 4242
    assert verdict.outcome is Outcome.DEAD_LETTER
    overridden = Policy.with_overrides({"4242": "retry"}).classify(Reply(4242, -1))
    assert overridden.signal == "code:4242" and overridden.outcome is Outcome.RETRY


@pytest.mark.parametrize(("env", "message"), [
    ({"RELAY_LEASE": "4", "RELAY_HEARTBEAT": "2"}, "three RELAY_HEARTBEAT"),
    ({"RELAY_LEASE": "4", "RELAY_HEARTBEAT": "1", "RELAY_REDIS_TIMEOUT": "3"}, "Redis timeout"),
    ({"RELAY_SCOPE": "a b"}, "RELAY_SCOPE"),
    ({"RELAY_RETENTION": "5"}, "RELAY_RETENTION"),
])
def test_settings_that_could_let_a_lease_lapse_are_refused(env: dict[str, str],
                                                           message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_default_leases_bring_a_dead_workers_events_back_within_15_s() -> None:
    leases = Settings.from_env({}).leases
    assert leases.lease + 1.0 <= 15  # reaped on the next chore pass (every second)
