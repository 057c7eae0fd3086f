"""The consumer's own loops against a real Redis, with a stand-in for the SOAP call: a stop
drains what is in hand and gives back what cannot finish; a lease taken over stops its call."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable

import redis
from redis.asyncio import Redis as AsyncRedis

from producers import Producer
from relay import status
from relay.errors import DeliveryError
from relay.events import Interaction
from relay.keys import Keys
from relay.settings import StoreSettings
from worker.client import Endpoint
from worker.consumer import AsyncCall, Consumer
from worker.moves import Moves
from worker.policy import Policy, Verdict
from worker.settings import Settings
from worker.soap import Reply

KEYS = Keys()


def queued(redis_url: str, n: int) -> tuple[redis.Redis, list[str]]:
    """A clean database with ``n`` events waiting; the client and their ids."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    producer = Producer(redis_url)
    ids = [producer.record(account_id="123456", location="STORE-001", interaction_type="VISIT",
                           note=f"{i}") for i in range(n)]
    producer.close()
    return client, ids


def consumer_run(redis_url: str, seconds: float,
                 body: Callable[[Consumer, list[str]], Awaitable[None]], n: int = 3
                 ) -> tuple[redis.Redis, list[str]]:
    client, ids = queued(redis_url, n)
    settings = Settings.from_env({"RELAY_REDIS_URL": redis_url, "RELAY_SECURITY_TOKEN": "t",
                                  "RELAY_LEASE": "5", "RELAY_HEARTBEAT": "0.2"})

    async def call(event: Interaction, endpoint: Endpoint) -> Reply:
        await asyncio.sleep(seconds)
        return Reply(0, 1)

    async def main() -> None:
        aclient = AsyncRedis.from_url(redis_url)
        consumer = Consumer(settings, Moves(aclient, settings), call)
        task = asyncio.create_task(consumer.run())
        while len(consumer.held) < n:
            await asyncio.sleep(0.01)
        await body(consumer, ids)
        await asyncio.wait_for(task, 30)
        await aclient.aclose()

    asyncio.run(main())
    return client, ids


def states(client: redis.Redis, ids: list[str]) -> list[bytes | None]:
    found = [status.read(client, StoreSettings(), "default", i) for i in ids]
    return [None if r is None else str(r["state"]).encode() for r in found]


def test_stop_finishes_and_records_the_calls_in_hand(redis_url: str) -> None:
    async def stop(consumer: Consumer, _: list[str]) -> None:
        consumer.stop(drain=5)

    client, ids = consumer_run(redis_url, 0.3, stop)
    assert states(client, ids) == [b"delivered"] * 3
    assert client.zcard(KEYS.held) == 0 and client.zcard(KEYS.due) == 0


def test_stop_gives_back_the_calls_it_cannot_wait_for(redis_url: str) -> None:
    async def stop(consumer: Consumer, _: list[str]) -> None:
        await asyncio.sleep(0.1)  # the calls are out
        consumer.stop(drain=0.2)

    client, ids = consumer_run(redis_url, 30, stop)
    assert states(client, ids) == [b"waiting"] * 3  # back in the queue, for the next worker
    assert client.zcard(KEYS.held) == 0 and client.zcard(KEYS.due) == 3
    # their calls had gone out, so the attempt stays charged
    assert [client.hget(KEYS.record("default", i), "c") for i in ids] == [b"1"] * 3


def test_a_lease_taken_over_stops_its_call(redis_url: str) -> None:
    async def steal(consumer: Consumer, ids: list[str]) -> None:
        client = redis.Redis.from_url(redis_url)
        tasks = {h.task for h in consumer.held.values()}
        for i in ids:  # another worker re-claimed them (as after this one froze)
            client.hset(KEYS.record("default", i), "l", "other-token")
        while consumer.figures.lost < 3:  # the next heartbeat finds out
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.01)
        assert all(t is not None and t.cancelled() for t in tasks)  # our calls stopped
        assert not consumer.held
        consumer.stop(drain=0.5)

    client, ids = consumer_run(redis_url, 30, steal)
    # untouched: the other worker's leases stand
    assert states(client, ids) == [b"held"] * 3
    assert {client.hget(KEYS.record("default", i), "l") for i in ids} == {b"other-token"}


class SlowRecords(Moves):
    """Redis that takes claims but holds back every record until ``accept`` is set."""

    accept: asyncio.Event

    async def complete(self, done):  # type: ignore[no-untyped-def]
        await self.accept.wait()
        return await super().complete(done)


def test_outcomes_waiting_for_redis_free_call_slots_within_a_bound(redis_url: str) -> None:
    """Invariant: at most ``in_flight`` calls open, at most twice that held in memory, and
    every outcome recorded once when Redis takes records again (nothing lost, no call twice).
    """
    client, ids = queued(redis_url, 30)
    settings = Settings.from_env({"RELAY_REDIS_URL": redis_url, "RELAY_SECURITY_TOKEN": "t",
                                  "RELAY_IN_FLIGHT": "4", "RELAY_BATCH": "4"})
    open_calls, most_open, calls = 0, 0, []

    async def call(event: Interaction, endpoint: Endpoint) -> Reply:
        nonlocal open_calls, most_open
        open_calls += 1
        most_open = max(most_open, open_calls)
        calls.append(event.event_id)
        await asyncio.sleep(0.01)
        open_calls -= 1
        return Reply(0, 1)

    async def main() -> int:
        aclient = AsyncRedis.from_url(redis_url)
        moves = SlowRecords(aclient, settings)
        moves.accept = asyncio.Event()
        consumer = Consumer(settings, moves, call)
        task = asyncio.create_task(consumer.run())
        most_held = 0
        for _ in range(100):  # 1 s with every record held back
            most_held = max(most_held, len(consumer.held))
            await asyncio.sleep(0.01)
        moves.accept.set()
        while client.zcard(KEYS.due) or consumer.held:
            most_held = max(most_held, len(consumer.held))
            await asyncio.sleep(0.01)
        consumer.stop(drain=5)
        await asyncio.wait_for(task, 30)
        await aclient.aclose()
        return most_held

    most_held = asyncio.run(main())
    assert most_open <= 4
    assert most_held == 8  # the calls went on past the first four, up to the bound
    assert sorted(calls) == sorted(ids)
    assert states(client, ids) == [b"delivered"] * 30


def record_until(redis_url: str, settings: Settings, call: AsyncCall, recorded: int,
                 moves: type[Moves] = Moves) -> Consumer:
    """Run a consumer until it has recorded ``recorded`` outcomes (else fail after 10 s: an
    event held for good), then stop it."""
    async def main() -> Consumer:
        aclient = AsyncRedis.from_url(redis_url)
        consumer = Consumer(settings, moves(aclient, settings), call)
        task = asyncio.create_task(consumer.run())
        async with asyncio.timeout(10):
            while consumer.figures.recorded < recorded:
                await asyncio.sleep(0.01)
        consumer.stop(drain=5)
        await asyncio.wait_for(task, 30)
        await aclient.aclose()
        return consumer

    return asyncio.run(main())


class LateReplies(Moves):
    """Redis applies each record at once, but its reply reaches the worker only after a few
    heartbeats have run (a slow network, a busy event loop)."""

    async def complete(self, done):  # type: ignore[no-untyped-def]
        results = await super().complete(done)
        await asyncio.sleep(0.5)
        return results


def test_our_own_record_is_not_taken_for_a_lost_lease(redis_url: str) -> None:
    """Between a heartbeat's snapshot and its extend, our own record may end the lease: that
    event is recorded, not 'taken over' (no false alarm, no lost figure)."""
    client, ids = queued(redis_url, 3)
    settings = Settings.from_env({"RELAY_REDIS_URL": redis_url, "RELAY_SECURITY_TOKEN": "t",
                                  "RELAY_LEASE": "5", "RELAY_HEARTBEAT": "0.1"})

    async def call(event: Interaction, endpoint: Endpoint) -> Reply:
        return Reply(0, 1)

    consumer = record_until(redis_url, settings, call, 3, moves=LateReplies)
    assert states(client, ids) == [b"delivered"] * 3
    assert consumer.figures.lost == 0 and consumer.figures.stale == 0


@dataclasses.dataclass(frozen=True)
class Faulty(Policy):
    """A bug in deciding an outcome, for the first ``failing`` calls."""

    failing: list[bool] = dataclasses.field(default_factory=lambda: [True])

    def classify(self, result: Reply | DeliveryError) -> Verdict:
        if self.failing and self.failing.pop():
            raise OverflowError("cannot convert float infinity to integer")
        return super().classify(result)


def test_a_bug_deciding_an_outcome_gives_the_event_back_charged(redis_url: str) -> None:
    """Invariant: nothing held for good. The call went out, so the event goes back to the
    queue with its attempt charged; the other calls are recorded as usual."""
    client, ids = queued(redis_url, 3)
    settings = dataclasses.replace(
        Settings.from_env({"RELAY_REDIS_URL": redis_url, "RELAY_SECURITY_TOKEN": "t",
                           "RELAY_IN_FLIGHT": "1", "RELAY_BATCH": "1"}), policy=Faulty())
    called: list[str] = []

    async def call(event: Interaction, endpoint: Endpoint) -> Reply:
        called.append(event.event_id)
        return Reply(0, 1)

    consumer = record_until(redis_url, settings, call, 4)  # three delivered, one given back
    assert not consumer.held and consumer.planned == 0
    assert states(client, ids) == [b"delivered"] * 3
    first = called[0]
    assert called.count(first) == 2  # given back, then called again and delivered
    assert int(client.hget(KEYS.stats, "released") or 0) == 1


def _run_few(redis_url: str, n: int, env: dict[str, str],
             body: Callable[[Consumer, list[str]], Awaitable[None]]
             ) -> tuple[redis.Redis, list[str], list[str]]:
    """``n`` events, calls that never end, ``body`` once the consumer holds all it will;
    returns the client, the ids and the ids called."""
    client, ids = queued(redis_url, n)
    settings = Settings.from_env({"RELAY_REDIS_URL": redis_url, "RELAY_SECURITY_TOKEN": "t",
                                  "RELAY_LEASE": "5", "RELAY_HEARTBEAT": "0.2", **env})

    called: list[str] = []

    async def call(event: Interaction, endpoint: Endpoint) -> Reply:
        called.append(event.event_id)
        await asyncio.sleep(30)
        return Reply(0, 1)

    async def main() -> None:
        aclient = AsyncRedis.from_url(redis_url)
        consumer = Consumer(settings, Moves(aclient, settings), call)
        task = asyncio.create_task(consumer.run())
        while not consumer.ready or consumer.figures.in_flight < settings.in_flight:
            await asyncio.sleep(0.01)
        await body(consumer, ids)
        await asyncio.wait_for(task, 30)
        await aclient.aclose()

    asyncio.run(main())
    return client, ids, called


def test_events_claimed_ahead_go_back_uncharged_on_stop(redis_url: str) -> None:
    held: list[str] = []
    ready: list[str] = []

    async def stop(consumer: Consumer, _: list[str]) -> None:
        held.extend(consumer.held)
        ready.extend(h.claim.event_id for h in consumer.ready)
        consumer.stop(drain=0.2)

    client, ids, called = _run_few(redis_url, 6, {"RELAY_IN_FLIGHT": "2"}, stop)
    assert len(called) == 2 and ready[0] not in called
    assert len(held) == 3 and len(ready) == 1  # two calls out, one claimed ahead
    assert states(client, ids) == [b"waiting"] * 6
    assert client.zcard(KEYS.held) == 0
    charged = {i: client.hget(KEYS.record("default", i), "c") for i in ids}
    assert charged[ready[0]] == b"0"  # never called: its attempt refunded
    # the two calls that went out stay charged; the three never claimed were never charged
    assert Counter(charged.values()) == {b"1": 2, b"0": 1, None: 3}


def test_a_lease_lost_while_claimed_ahead_leaves_the_ready_queue(redis_url: str) -> None:
    stolen: list[str] = []

    async def steal(consumer: Consumer, ids: list[str]) -> None:
        client = redis.Redis.from_url(redis_url)
        waiting = consumer.ready[0].claim.event_id
        stolen.append(waiting)
        client.hset(KEYS.record("default", waiting), "l", "other-token")
        while consumer.figures.lost < 1:  # the next heartbeat finds out
            await asyncio.sleep(0.05)
        assert waiting not in {h.claim.event_id for h in consumer.ready}
        assert f"default/{waiting}" not in consumer.held
        consumer.stop(drain=0.2)

    client, ids, called = _run_few(redis_url, 3, {"RELAY_IN_FLIGHT": "1"}, steal)
    assert stolen[0] not in called  # another worker holds it: never called from here
    assert len(called) == 1  # one call slot: the first call never ended
    # the other worker's lease stands; ours went back, the one never claimed still waits
    assert Counter(states(client, ids)) == {b"held": 1, b"waiting": 2}
