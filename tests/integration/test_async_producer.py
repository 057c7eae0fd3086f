"""AsyncProducer against a real Redis-protocol server: the same answers as Producer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from producers import AsyncProducer, EnqueueError, Producer, ValidationError
from relay.events import Interaction
from relay.keys import Keys
from tests.helpers import free_port

KEYS = Keys()
GOOD = {"account_id": "123456", "location": "STORE-001", "interaction_type": "VISIT"}
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def clean(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return client


def test_record_dedupes_on_event_id_and_stores_what_producer_stores(
        redis_url: str, clean: redis.Redis) -> None:
    async def go() -> tuple[list[str], list[bool], dict[str, Any] | None]:
        producer = AsyncProducer(redis_url)
        try:
            ids = [await producer.record(**GOOD, note="hi", event_id="dup-1") for _ in range(3)]
            again = await producer.enqueue_many([Interaction.create(**GOOD, event_id=i)
                                                 for i in ("dup-1", "new-1", "new-1")])
            return ids, again, await producer.status("dup-1")
        finally:
            await producer.close()

    ids, again, record = run(go())
    assert ids == ["dup-1"] * 3 and again == [False, True, False]
    assert clean.zcard(KEYS.due) == 2
    assert record is not None and record["state"] == "waiting"
    assert record["event"] == {**GOOD, "note": "hi"}
    # the sync producer sees the same event as already known, and reads the same record
    sync = Producer(redis_url)
    assert sync.enqueue(Interaction.create(**GOOD, event_id="dup-1")) is False
    assert sync.status("dup-1") == record
    raw = clean.hget(KEYS.record("default", "dup-1"), "m")
    assert raw is not None and json.loads(raw) == ["123456", "STORE-001", "VISIT", "hi"]


def test_validation_errors_name_field_and_rule_and_enqueue_nothing(
        redis_url: str, clean: redis.Redis) -> None:
    async def go() -> list[ValidationError]:
        producer = AsyncProducer(redis_url)
        errors = []
        for fields in ({**GOOD, "account_id": "1" * 61}, {**GOOD, "tenant": "nobody"},
                       {**GOOD, "colour": "red"}):
            with pytest.raises(ValidationError) as info:
                await producer.record(**fields)
            errors.append(info.value)
        await producer.close()
        return errors

    long, tenant, unknown = run(go())
    assert [(e.field, e.rule) for e in long.errors] == [("account_id", "max_length")]
    assert [(e.field, e.rule) for e in tenant.errors] == [("tenant", "unknown")]
    assert [(e.field, e.rule) for e in unknown.errors] == [("colour", "unknown")]
    assert clean.zcard(KEYS.due) == 0 and clean.dbsize() == 0


def test_unreachable_redis_is_a_one_line_enqueue_error() -> None:
    async def go() -> tuple[str, float]:
        producer = AsyncProducer(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
        started = time.monotonic()
        with pytest.raises(EnqueueError, match="is unreachable") as info:
            await producer.record(**GOOD)
        took = time.monotonic() - started
        with pytest.raises(EnqueueError, match="is unreachable"):
            await producer.status("x")
        await producer.close()
        return str(info.value), took

    message, took = run(go())
    assert took < 5 and "hunter2" not in message and "\n" not in message


def test_spool_takes_events_while_redis_is_down_and_drains_after(
        redis_url: str, clean: redis.Redis, tmp_path: Path) -> None:
    async def offline() -> list[str]:
        down = AsyncProducer(f"redis://127.0.0.1:{free_port()}/0", spool_dir=tmp_path)
        ids = [await down.record(**GOOD, note=f"offline {i}") for i in range(5)]
        await down.close()
        return ids

    started = time.monotonic()
    ids = run(offline())
    assert time.monotonic() - started < 5  # only the first call waits for the refusal
    # the sync producer's spool format: either kind drains the other's journal
    assert len(Producer(redis_url, spool_dir=tmp_path).spool) == 5  # type: ignore[arg-type]

    async def back_online() -> tuple[bool, int]:
        back = AsyncProducer(redis_url, spool_dir=tmp_path)
        # the next record drains the journal first, then enqueues itself
        new = await back.enqueue(Interaction.create(**GOOD, event_id="after"))
        left = await back.flush_spool()
        await back.close()
        return new, left

    assert run(back_online()) == (True, 0)
    assert clean.zcard(KEYS.due) == 6
    assert {json.loads(clean.hget(KEYS.record("default", i), "m"))[3]  # type: ignore[arg-type]
            for i in ids} == {f"offline {i}" for i in range(5)}


def test_every_redis_refusal_is_an_enqueue_error_and_spooled(tmp_path: Path) -> None:
    """Out of memory (like READONLY after a failover) is an EnqueueError; with a spool the
    event is journalled instead of lost, and delivered once Redis takes writes again."""
    from relay.embedded import start_embedded

    server = start_embedded(tmp_path / "valkey")
    url = f"{server.connection_url}/0"
    client = redis.Redis.from_url(url)

    async def go() -> None:
        plain = AsyncProducer(url)
        with pytest.raises(EnqueueError, match=r"refused the event \(OutOfMemoryError"):
            await plain.record(**GOOD)
        spooled = AsyncProducer(url, spool_dir=tmp_path / "spool")
        event_id = await spooled.record(**GOOD)
        assert len(spooled.spool) == 1  # type: ignore[arg-type]
        client.config_set("maxmemory", "0")
        assert await spooled.flush_spool() == 1
        record = await spooled.status(event_id)
        assert record is not None and record["state"] == "waiting"
        await plain.close()
        await spooled.close()

    try:
        client.config_set("maxmemory", "1")
        run(go())
    finally:
        server.stop()


def test_a_drain_in_progress_is_not_repeated_by_a_second_one(redis_url: str,
                                                             clean: redis.Redis,
                                                             tmp_path: Path) -> None:
    """Two drains at once (two requests on one loop) must neither block the loop on the
    spool's lock nor enqueue a line twice."""
    Producer(f"redis://127.0.0.1:{free_port()}/0", spool_dir=tmp_path).record(**GOOD)

    async def go() -> list[int]:
        producer = AsyncProducer(redis_url, spool_dir=tmp_path)
        done = await asyncio.wait_for(asyncio.gather(producer.flush_spool(),
                                                     producer.flush_spool()), 5)
        await producer.close()
        return sorted(done)

    assert run(go()) == [0, 1]
    assert clean.zcard(KEYS.due) == 1


def test_acceptance_can_wait_for_a_replica(tmp_path: Path) -> None:
    """replicas=1 without a replica in time: an EnqueueError saying so (as Producer does)."""
    from tests.topology import server

    primary = server(tmp_path, "primary")

    async def go() -> None:
        lonely = AsyncProducer(f"redis://127.0.0.1:{primary.port}/0", replicas=1)
        lonely.wait_ms = 200
        with pytest.raises(EnqueueError, match="0 of 1 replicas confirmed"):
            await lonely.record(**GOOD, event_id="w-1")
        # the primary kept it: a retry is deduped, and nothing new means nothing to wait for
        assert await lonely.enqueue(Interaction.create(**GOOD, event_id="w-1")) is False
        await lonely.close()

    try:
        run(go())
    finally:
        primary.kill()
