"""The batch consumer's shutdown against a real Redis: calls in hand are finished and recorded;
calls that cannot finish in time go back to the inbox, with no lease left behind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import redis

from producers import Producer
from relay.events import Interaction
from tests.helpers import wait_until
from worker.client import Endpoint
from worker.consumer import BatchConsumer
from worker.delivery import Deliverer
from worker.inbox import Inbox
from worker.settings import Settings
from worker.soap import Reply


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def consumer_with(redis_url: str, loop: asyncio.AbstractEventLoop, seconds: float
                  ) -> tuple[BatchConsumer, redis.Redis, list[str]]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    settings = Settings.from_env({"RELAY_REDIS_URL": redis_url, "RELAY_SECURITY_TOKEN": "t"})

    async def call(event: Interaction, endpoint: Endpoint) -> Reply:
        await asyncio.sleep(seconds)
        return Reply(0, 1)

    deliverer = Deliverer(settings, client, call=lambda e, p: Reply(0, 1))
    consumer = BatchConsumer(deliverer, Inbox(client, 300), loop, call, in_flight=10)
    producer = Producer(redis_url)
    ids = [producer.record(account_id="123456", location="STORE-001",
                           interaction_type="VISIT", note=f"{i}") for i in range(3)]
    producer.close()
    consumer.start()
    wait_until(lambda: client.zcard("relay:leases") == 3, 5, 0.01, "three leases")
    return consumer, client, ids


def test_stop_finishes_and_records_the_calls_in_hand(redis_url: str,
                                                     loop: asyncio.AbstractEventLoop) -> None:
    consumer, client, ids = consumer_with(redis_url, loop, seconds=0.3)
    consumer.stop(timeout=5)
    assert [client.hget(f"relay:event:{i}", "state") for i in ids] == [b"delivered"] * 3
    assert client.zcard("relay:leases") == 0 and client.llen("relay:inbox") == 0


def test_stop_gives_back_the_calls_it_cannot_wait_for(redis_url: str,
                                                      loop: asyncio.AbstractEventLoop) -> None:
    consumer, client, ids = consumer_with(redis_url, loop, seconds=30)
    consumer.stop(timeout=0.3)
    assert not consumer.is_alive()
    assert client.llen("relay:inbox") == 3  # back at the head, for the next worker
    assert client.zcard("relay:leases") == 0 and client.hlen("relay:leases:events") == 0
    assert b"delivered" not in {client.hget(f"relay:event:{i}", "state") for i in ids}
