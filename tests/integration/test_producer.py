"""The Python producer API against a real Redis-protocol server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from producers import EnqueueError, Producer, ValidationError
from relay.events import Interaction
from relay.keys import Keys
from tests.helpers import free_port, wait_until


@pytest.fixture
def producer(redis_url: str) -> Producer:
    redis.Redis.from_url(redis_url).flushdb()
    return Producer(redis_url)


KEYS = Keys()


def test_record_returns_id_and_queues_one_json_record(producer: Producer) -> None:
    event_id = producer.record(account_id="123456", location="STORE-001",
                               interaction_type="VISIT", note="hello")
    record = producer.status(event_id)
    assert record is not None and record["state"] == "waiting"
    assert record["event"] == {"account_id": "123456", "location": "STORE-001",
                               "interaction_type": "VISIT", "note": "hello"}
    assert producer.redis.zrange(KEYS.due, 0, -1) == [f"default/{event_id}".encode()]
    raw = producer.redis.hget(KEYS.record("default", event_id), "m")
    assert raw is not None and json.loads(raw) == ["123456", "STORE-001", "VISIT", "hello"]


def test_duplicate_event_id_enqueues_once(producer: Producer) -> None:
    for _ in range(3):
        producer.record(account_id="1234567", location="STORE-001", interaction_type="VISIT",
                        event_id="dup-1")
    assert producer.redis.zcard(KEYS.due) == 1


def test_invalid_input_enqueues_nothing(producer: Producer) -> None:
    with pytest.raises(ValidationError, match="account_id: must be at most 60"):
        producer.record(account_id="1" * 61, location="STORE-001", interaction_type="VISIT")
    assert producer.redis.zcard(KEYS.due) == 0


def test_every_redis_refusal_is_an_enqueue_error(tmp_path: Path) -> None:
    """Out of memory (and, the same way, READONLY after a failover) is an EnqueueError, and
    with a spool the event is journalled instead of lost."""
    from relay.embedded import start_embedded

    server = start_embedded(tmp_path / "valkey")
    url = f"{server.connection_url}/0"
    try:
        client = redis.Redis.from_url(url)
        client.config_set("maxmemory", "1")
        producer = Producer(url)
        with pytest.raises(EnqueueError, match="OutOfMemoryError"):
            producer.record(account_id="123456", location="STORE-001", interaction_type="VISIT")
        spooled = Producer(url, spool_dir=tmp_path / "spool")
        event_id = spooled.record(account_id="123456", location="STORE-001",
                                  interaction_type="VISIT")
        assert len(spooled.spool) == 1  # type: ignore[arg-type]
        client.config_set("maxmemory", "0")
        assert spooled.flush_spool() == 1
        record = spooled.status(event_id)
        assert record is not None and record["state"] == "waiting"
    finally:
        server.stop()


def test_unreachable_redis_fails_fast_with_a_clear_error() -> None:
    producer = Producer(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(EnqueueError, match="is unreachable") as info:
        producer.record(account_id="123456", location="STORE-001", interaction_type="VISIT")
    assert time.monotonic() - started < 5
    assert "hunter2" not in str(info.value)


def test_spool_journals_while_redis_is_down_and_drains_after(redis_url: str,
                                                             tmp_path: Path) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    down = Producer(f"redis://127.0.0.1:{free_port()}/0", spool_dir=tmp_path)
    started = time.monotonic()
    ids = [down.record(account_id="123456", location="STORE-001", interaction_type="VISIT",
                       note=f"offline {i}") for i in range(5)]
    assert time.monotonic() - started < 5  # only the first call waits for the refusal
    assert len(down.spool) == 5  # type: ignore[arg-type]
    back = Producer(redis_url, spool_dir=tmp_path)
    assert back.flush_spool() == 5
    assert len(back.spool) == 0  # type: ignore[arg-type]
    assert back.redis.zcard(KEYS.due) == 5
    assert [back.status(i)["state"] for i in ids] == ["waiting"] * 5  # type: ignore[index]
    assert back.flush_spool() == 0
    # drained lines sent twice (a crash mid-drain) are still enqueued once
    for i in ids[:2]:
        back.spool.append({"account_id": "123456", "location": "STORE-001",  # type: ignore[union-attr]
                           "interaction_type": "VISIT", "note": "", "tenant": "default",
                           "event_id": i})
    back.flush_spool()
    assert back.redis.zcard(KEYS.due) == 5


def test_a_spooled_event_redis_refuses_is_set_aside_not_blocking(redis_url: str,
                                                                  tmp_path: Path) -> None:
    """An event spooled while Redis was down for a tenant no worker serves is refused once
    Redis answers: it moves to rejected.jsonl (importable as it is), the events behind it go
    through, and the caller's own event is enqueued."""
    redis.Redis.from_url(redis_url).flushdb()
    down = Producer(f"redis://127.0.0.1:{free_port()}/0", spool_dir=tmp_path)
    fields = {"account_id": "123456", "location": "STORE-001", "interaction_type": "VISIT"}
    down.record(**fields, event_id="before")
    down.record(**fields, event_id="poison", tenant="nobody-serves-this")
    down.record(**fields, event_id="after")
    back = Producer(redis_url, spool_dir=tmp_path)
    assert back.record(**fields, event_id="mine") == "mine"
    assert len(back.spool) == 0  # type: ignore[arg-type]
    states = {i: (back.status(i) or {}).get("state") for i in ("before", "after", "mine")}
    assert states == dict.fromkeys(("before", "after", "mine"), "waiting")
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [(r["event_id"], r["tenant"]) for r in rejected] == [("poison", "nobody-serves-this")]


def test_acceptance_can_wait_for_a_replica(tmp_path: Path) -> None:
    """With replicas=1 the producer answers only once a replica holds the event; without a
    replica in time it says so (and a retry of the same event is deduped)."""
    from tests.topology import server

    primary = server(tmp_path, "primary")
    try:
        url = f"redis://127.0.0.1:{primary.port}/0"
        lonely = Producer(url, replicas=1)
        lonely.wait_ms = 200
        with pytest.raises(EnqueueError, match="0 of 1 replicas"):
            lonely.record(account_id="123456", location="STORE-001", interaction_type="VISIT",
                          event_id="w-1")
        replica = server(tmp_path, "replica", f"replicaof 127.0.0.1 {primary.port}")
        try:
            wait_until(lambda: replica.client.info("replication")["master_link_status"] == "up",
                       15, 0.05, "replica in sync")
            backed = Producer(url, replicas=1)
            assert backed.enqueue_many([Interaction.create(
                account_id="123456", location="STORE-001", interaction_type="VISIT",
                event_id=f"w-{i}") for i in (1, 2)]) == [False, True]  # w-1 was kept
            assert replica.client.zcard(KEYS.due) == 2
        finally:
            replica.kill()
    finally:
        primary.kill()
