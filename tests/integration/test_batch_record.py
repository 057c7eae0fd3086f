"""Recording a batch of outcomes against a real Redis: the circuit breaker sees the outcomes
in the order the calls finished, and a batch costs a few counters, not five per event."""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from relay.errors import DeliveryError
from relay.events import Interaction
from tests.helpers import counters
from worker.admission import Admission
from worker.batch import Attempt, Finished
from worker.delivery import Deliverer
from worker.errors import ServerFault
from worker.settings import BreakerSettings, Settings
from worker.soap import Reply

OK = Reply(0, 1)


def deliverer(url: str) -> Deliverer:
    client = redis.Redis.from_url(url)
    client.flushdb()
    settings = Settings.from_env({"RELAY_REDIS_URL": url, "RELAY_SECURITY_TOKEN": "t"})
    settings = Settings(**{**settings.__dict__, "breaker": BreakerSettings(threshold=3)})
    return Deliverer(settings, client, call=lambda e, p: OK)


def batch(d: Deliverer, results: Sequence[Reply | DeliveryError]) -> list[Finished]:
    endpoint = d.settings.endpoint("default")
    done = []
    for n, result in enumerate(results):
        event = Interaction.create(account_id="123456", location="STORE-001",
                                   interaction_type="VISIT", note=f"{n}")
        admission = Admission("go", attempts=1, charged=1, created_at=time.time())
        done.append(Finished(Attempt(event, endpoint, admission), result, 1.0))
    return done


def circuit_open(d: Deliverer) -> bool:
    return bool(d.redis.exists("relay:circuit:default:incident"))


def fault() -> ServerFault:
    return ServerFault("soap:Server", "boom")


def test_a_success_before_a_failure_run_does_not_hide_it(redis_url: str) -> None:
    d = deliverer(redis_url)
    d.record(batch(d, [fault(), fault(), OK, fault(), fault(), fault()]))
    assert circuit_open(d)  # three in a row after the success


def test_a_success_between_failures_splits_their_runs(redis_url: str) -> None:
    d = deliverer(redis_url)
    d.record(batch(d, [fault(), fault(), OK, fault(), fault()]))
    assert not circuit_open(d)
    assert d.redis.hget("relay:stats", "circuit_opened") is None  # never opened, even briefly


def test_a_success_after_failures_ends_their_run(redis_url: str) -> None:
    d = deliverer(redis_url)
    d.record(batch(d, [fault(), fault(), OK]))
    d.record(batch(d, [fault(), fault()]))
    assert not circuit_open(d)
    d.record(batch(d, [fault()]))
    assert circuit_open(d)


def test_counters_are_summed_per_batch(redis_url: str) -> None:
    d = deliverer(redis_url)
    outcomes = d.record(batch(d, [OK] * 20 + [Reply(300, -1)] * 3))
    assert outcomes == ["delivered"] * 20 + ["dead_letter"] * 3
    stats = counters(d.redis)
    assert stats["outcome:delivered"] == 20 and stats["outcome:dead_letter"] == 3
    assert stats["signal:code:300"] == 3 and stats["latency_le:0.005"] == 23
    assert d.redis.hlen("relay:dlq") == 3
