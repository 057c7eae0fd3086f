"""The product end to end: producer -> Redis -> real Celery worker -> sandbox over HTTP.

Runs against the machine's Redis at 6379 when it answers, and always against the embedded
valkey server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Sandbox, wait_until
from tests.integration.pipeline import Pipeline, reset, start_pipeline, stop_pipeline

TENANTS = json.dumps({"acme": {"token": "acme-token"}})


@pytest.fixture(scope="module")
def running(redis_url: str, sandbox_server: Sandbox, module_tmp: Path) -> Iterator[Pipeline]:
    pipeline = start_pipeline(redis_url, sandbox_server, module_tmp / "worker.log",
                              RELAY_TENANTS=TENANTS)
    yield pipeline
    stop_pipeline(pipeline)


@pytest.fixture
def pipeline(running: Pipeline) -> Pipeline:
    reset(running)
    return running


def test_mixed_batch_each_outcome(pipeline: Pipeline) -> None:
    good = [pipeline.send(note=f"good-{i}", location=f"STORE-{i + 1:03d}") for i in range(20)]
    bad = {
        pipeline.send(account_id="12"): (300, "invalid account id"),
        pipeline.send(location="STORE-404"): (503, "invalid location external reference"),
        pipeline.send(interaction_type="PURCHASE"):
            (1200, "invalid interaction type external reference"),
    }
    inactive = pipeline.send(account_id="9000001")
    states = pipeline.wait_states([*good, *bad, inactive])
    assert all(states[i] == "delivered" for i in good)
    assert states[inactive] == "rejected"
    assert pipeline.producer.status(inactive)["last_code"] == 301  # type: ignore[index]
    for event_id, (code, reason) in bad.items():
        assert states[event_id] == "dead_letter"
        entry = pipeline.relay_json("dlq", "show", event_id)
        assert entry["code"] == code and entry["reason"] == reason
        assert entry["event"]["event_id"] == event_id and entry["attempts"] == 1
    calls = pipeline.sandbox.calls()
    assert calls["count"] == 20 and calls["duplicates"] == 0
    ids = {pipeline.producer.status(i)["interaction_id"] for i in good}  # type: ignore[index]
    assert len(ids) == 20 and all(isinstance(i, int) and i > 0 for i in ids)


def test_code_1_is_retried_then_delivered(pipeline: Pipeline) -> None:
    pipeline.sandbox.configure(rates={"error": 1.0})
    event_id = pipeline.send(note="flaky")
    pipeline.wait_states([event_id], ("waiting",))
    time.sleep(0.5)
    pipeline.sandbox.configure(rates={"error": 0.0})
    assert pipeline.wait_states([event_id])[event_id] == "delivered"
    record = pipeline.producer.status(event_id)
    assert record is not None and record["attempts"] >= 2
    assert [h["signal"] for h in record["history"]][-1] == "code:0"
    assert "code:1" in {h["signal"] for h in record["history"]}
    assert pipeline.sandbox.calls()["count"] == 1


def test_fix_the_data_then_replay(pipeline: Pipeline) -> None:
    events = [pipeline.send(location="MALL-7", note=f"m{i}") for i in range(3)]
    other = pipeline.send(account_id="12")
    pipeline.wait_states([*events, other])
    assert pipeline.relay_json("status")["dead_letters"] == 4
    pipeline.sandbox.seed(add={"locations": ["MALL-7"]})
    replay = pipeline.relay("dlq", "replay", "--code", "503")
    assert replay.returncode == 0, replay.stderr
    assert "replayed 3 event(s)" in replay.stdout
    states = pipeline.wait_states(events)
    assert set(states.values()) == {"delivered"}
    assert pipeline.state(other) == "dead_letter"
    listing = pipeline.relay_json("dlq", "list")
    assert [e["event"]["event_id"] for e in listing] == [other]


def test_same_event_id_is_delivered_once(pipeline: Pipeline) -> None:
    first = pipeline.send(event_id="pos-42-receipt-9", note="once")
    second = pipeline.send(event_id="pos-42-receipt-9", note="once")
    assert first == second
    pipeline.wait_states([first])
    time.sleep(0.5)
    assert pipeline.sandbox.calls()["count"] == 1


def test_copies_of_one_message_in_the_inbox_make_one_call(pipeline: Pipeline) -> None:
    """The outbox can re-send a message whose first copy is still queued: a worker that
    claims both in one batch calls once."""
    from relay.events import Interaction

    event = Interaction.create(account_id="123456", location="STORE-001",
                               interaction_type="VISIT", note="twice in the inbox")
    assert pipeline.producer.status_store.create(event.to_message())
    raw = json.dumps(event.to_message())
    pipeline.redis.lpush("relay:inbox", raw, raw, raw)
    assert pipeline.wait_states([event.event_id]) == {event.event_id: "delivered"}
    time.sleep(0.5)
    assert pipeline.sandbox.calls()["count"] == 1
    assert pipeline.redis.zcard("relay:leases") == 0


def test_outage_longer_than_backoff_dead_letters_nothing(pipeline: Pipeline) -> None:
    # The whole schedule (0.2 + 0.4 + 0.8 + 1 s, 4 attempts) would be spent in ~2.4 s.
    pipeline.sandbox.configure(outage_seconds=6)
    events = [pipeline.send(note=f"outage-{i}") for i in range(30)]
    time.sleep(3)
    assert pipeline.relay_json("status")["dead_letters"] == 0
    circuits = pipeline.relay_json("status")["circuits"]
    assert circuits and circuits[0]["tenant"] == "default"
    states = pipeline.wait_states(events, timeout=30)
    assert set(states.values()) == {"delivered"}
    assert pipeline.sandbox.calls()["count"] == 30
    assert pipeline.sandbox.calls()["duplicates"] == 0
    counters = pipeline.counters()
    assert counters.get("outcome:dead_letter", 0) == 0
    assert counters["circuit_opened:default"] == 1
    assert pipeline.relay_json("status")["circuits"] == []


def test_wrong_token_opens_the_circuit_and_events_wait(pipeline: Pipeline) -> None:
    events = [pipeline.send(tenant="acme", note=f"acme-{i}") for i in range(5)]
    pipeline.wait_states(events, ("waiting",))
    time.sleep(1.5)
    # held, apart from the one probe the half-open circuit lets through now and then
    assert {pipeline.state(e) for e in events} <= {"waiting", "in_flight"}
    view = pipeline.relay_json("status")
    assert [c["tenant"] for c in view["circuits"]] == ["acme"]
    assert view["dead_letters"] == 0
    assert pipeline.counters()["circuit_opened:acme"] == 1
    # the default tenant is not held back by acme's circuit
    assert pipeline.wait_states([pipeline.send(note="default")])
    pipeline.sandbox.seed(add={"tokens": ["acme-token"]})
    states = pipeline.wait_states(events, timeout=15)
    assert set(states.values()) == {"delivered"}
    assert pipeline.counters()["circuit_opened:acme"] == 1


def test_unknown_tenant_and_garbage_messages_are_dead_lettered(pipeline: Pipeline) -> None:
    unknown = pipeline.send(tenant="nobody")
    pipeline.producer.send({"account_id": 5, "event_id": "garbage-1"})
    pipeline.producer.send(["not", "an", "object"])  # type: ignore[arg-type]
    assert pipeline.wait_states([unknown, "garbage-1"]) == {unknown: "dead_letter",
                                                             "garbage-1": "dead_letter"}
    assert "unknown tenant 'nobody'" in pipeline.relay_json("dlq", "show", unknown)["reason"]
    entry = pipeline.relay_json("dlq", "show", "garbage-1")
    assert entry["signal"] == "invalid_message" and "account_id: must be a string" in \
        entry["reason"]
    # Not even JSON objects, pushed by something that is not our producer.
    pipeline.redis.lpush("relay:inbox", b"not json at all", b'"a string"', b"\xff\xfe")
    assert pipeline.wait_states([pipeline.send(note="still alive")])
    wait_until(lambda: pipeline.counters().get("signal:invalid_message", 0) == 5, 10, 0.05,
               "five refused messages")
    assert pipeline.redis.zcard("relay:leases") == 0  # refused ones are let go, not re-claimed
    assert pipeline.worker.proc.poll() is None


def test_purge_needs_confirmation(pipeline: Pipeline) -> None:
    event = pipeline.send(account_id="12")
    pipeline.wait_states([event])
    refused = pipeline.relay("dlq", "purge", "--all")
    assert refused.returncode == 2 and "without --yes" in refused.stderr
    assert pipeline.relay_json("dlq", "purge", "--all", "--yes") == {"purged": 1}
    assert pipeline.relay_json("dlq", "list") == []


def test_a_message_lost_in_transit_is_sent_again(pipeline: Pipeline) -> None:
    """An accepted event whose queue message vanished (as when Redis drops between kombu's
    BRPOP and its unacked bookkeeping) is found in the outbox and delivered."""
    from relay.events import Interaction
    from worker.reconcile import sweep

    event = Interaction.create(account_id="123456", location="STORE-003",
                               interaction_type="VISIT", note="lost in transit")
    assert pipeline.producer.status_store.create(event.to_message())  # accepted, never sent
    sent: list[dict[str, object]] = []
    assert sweep(pipeline.redis, sent.append, visibility_timeout=300) == 0  # too young
    assert sweep(pipeline.redis, pipeline.producer.send, visibility_timeout=300,
                 now=time.time() + 601) == 1
    assert pipeline.wait_states([event.event_id]) == {event.event_id: "delivered"}
    assert pipeline.redis.zcard("relay:pending") == 0  # the outbox forgets finished events
    assert sweep(pipeline.redis, sent.append, visibility_timeout=300,
                 now=time.time() + 1201) == 0 and not sent
