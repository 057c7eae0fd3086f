"""The Python producer API against a real Redis-protocol server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from producers import EnqueueError, Producer, ValidationError
from tests.helpers import free_port


@pytest.fixture
def producer(redis_url: str) -> Producer:
    redis.Redis.from_url(redis_url).flushdb()
    return Producer(redis_url)


def test_record_returns_id_and_queues_one_json_message(producer: Producer) -> None:
    event_id = producer.record(account_id="123456", location="STORE-001",
                               interaction_type="VISIT", note="hello")
    assert producer.status(event_id)["state"] == "queued"  # type: ignore[index]
    raw = producer.redis.lrange("relay:inbox", 0, -1)
    assert len(raw) == 1
    assert json.loads(raw[0]) == {"account_id": "123456", "location": "STORE-001",
                                  "interaction_type": "VISIT", "note": "hello",
                                  "tenant": "default", "event_id": event_id}


def test_duplicate_event_id_enqueues_once(producer: Producer) -> None:
    for _ in range(3):
        producer.record(account_id="1234567", location="STORE-001", interaction_type="VISIT",
                        event_id="dup-1")
    assert producer.redis.llen("relay:inbox") == 1


def test_invalid_input_enqueues_nothing(producer: Producer) -> None:
    with pytest.raises(ValidationError, match="account_id: must be at most 60"):
        producer.record(account_id="1" * 61, location="STORE-001", interaction_type="VISIT")
    assert producer.redis.llen("relay:inbox") == 0


def test_unreachable_redis_fails_fast_with_a_clear_error() -> None:
    producer = Producer(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(EnqueueError, match="unreachable") as info:
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
    assert back.redis.llen("relay:inbox") == 5
    assert [back.status(i)["state"] for i in ids] == ["queued"] * 5  # type: ignore[index]
    assert back.flush_spool() == 0
    # drained lines sent twice (a crash mid-drain) are still enqueued once
    for i in ids[:2]:
        back.spool.append({"account_id": "123456", "location": "STORE-001",  # type: ignore[union-attr]
                           "interaction_type": "VISIT", "note": "", "tenant": "default",
                           "event_id": i})
    back.flush_spool()
    assert back.redis.llen("relay:inbox") == 5
