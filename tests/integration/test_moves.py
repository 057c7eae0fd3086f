"""The state machine's moves against a real Redis (and the embedded valkey): each script
on its own, and the invariants it keeps: one state per event, fenced outcomes, terminal states
final, the budget and the breaker."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from producers import EnqueueError, Producer
from relay import status, tenants
from relay.deadletters import DeadLetters
from relay.events import Interaction
from relay.keys import Keys, member
from relay.settings import StoreSettings
from worker import plan
from worker.moves import Moves
from worker.plan import Breaker, Claim, Kind, Plan
from worker.settings import Settings

T = TypeVar("T")
KEYS = Keys()
DELIVERED = Plan(Kind.DELIVERED, breaker=Breaker.OK, code=0, signal="code:0", interaction_id=7)


def settings(redis_url: str, **env: str) -> Settings:
    return Settings.from_env({"RELAY_REDIS_URL": redis_url, "RELAY_SECURITY_TOKEN": "t",
                              "RELAY_BREAKER_THRESHOLD": "3", "RELAY_BREAKER_COOLDOWN": "0.3",
                              **env})


def run(redis_url: str, scenario: Callable[[Moves], Awaitable[T]], **env: str) -> T:
    async def main() -> T:
        client = AsyncRedis.from_url(redis_url)
        try:
            return await scenario(Moves(client, settings(redis_url, **env)))
        finally:
            await client.aclose()

    return asyncio.run(main())


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    c = redis.Redis.from_url(redis_url)
    c.flushdb()
    tenants.register(c, KEYS, ["default", "acme", "globex"])  # as workers do at start-up
    return c


def enqueue(redis_url: str, *specs: tuple[str, str]) -> list[bool]:
    producer = Producer(redis_url)
    try:
        return producer.enqueue_many([
            Interaction.create(account_id="123456", location="STORE-001",
                               interaction_type="VISIT", tenant=tenant, event_id=event_id)
            for tenant, event_id in specs])
    finally:
        producer.close()


def state(client: redis.Redis, tenant: str, event_id: str) -> str | None:
    record = status.read(client, StoreSettings(), tenant, event_id)
    return None if record is None else str(record["state"])


def test_dedupe_is_per_tenant_and_ids_cannot_collide(redis_url: str, client: redis.Redis
                                                     ) -> None:
    specs = [("acme", "receipt-1"), ("globex", "receipt-1"), ("default", "pos-7"),
             ("default", "pos-7:history"), ("default", "a/b"), ("default", "e:x")]
    assert enqueue(redis_url, *specs) == [True] * 6
    assert enqueue(redis_url, ("acme", "receipt-1"), ("default", "pos-7")) == [False, False]
    assert {state(client, t, e) for t, e in specs} == {"waiting"}
    assert client.zcard(KEYS.due) == 6

    async def deliver_all(m: Moves) -> list[str]:
        claims = await m.claim(10)
        return [s for s, _ in await m.complete([(c, DELIVERED) for c in claims])]

    assert run(redis_url, deliver_all) == ["ok"] * 6
    assert {state(client, t, e) for t, e in specs} == {"delivered"}
    for key in client.scan_iter(match=KEYS.pattern()):
        assert client.type(key) in (b"hash", b"zset", b"string", b"set"), key  # no stray lists


def test_claim_leases_with_a_token_and_delivery_compacts_the_record(
        redis_url: str, client: redis.Redis) -> None:
    enqueue(redis_url, ("default", "e1"))

    async def scenario(m: Moves) -> tuple[Claim, list[tuple[str, bool]]]:
        [claim] = await m.claim(5)
        assert state(client, "default", "e1") == "held"
        assert client.zscore(KEYS.held, claim.member) is not None
        assert client.zcard(KEYS.due) == 0
        return claim, await m.complete([(claim, DELIVERED)])

    claim, result = run(redis_url, scenario)
    assert claim.attempts == 1 and claim.charged == 1 and claim.token
    assert claim.tenant == "default" and claim.event_id == "e1"
    assert Interaction.from_payload("default", "e1", claim.payload).location == "STORE-001"
    assert result == [("ok", False)]
    # the record goes; one field in the current done bucket keeps the outcome for the window
    assert not client.exists(KEYS.record("default", "e1"))
    [bucket] = client.scan_iter(match=KEYS.prefix + "done:*")
    assert client.hgetall(bucket) == {b"default/e1": b"d7"}
    assert 7 * 86400 < client.ttl(bucket) <= 7 * 86400 * 4 // 3
    assert not client.exists(KEYS.history("default", "e1"))  # never failed: no history
    assert status.read(client, StoreSettings(), "default", "e1") == {
        "tenant": "default", "event_id": "e1", "state": "delivered", "interaction_id": 7,
        "history": []}
    assert enqueue(redis_url, ("default", "e1")) == [False]  # still deduped
    assert client.zcard(KEYS.held) == 0


def test_a_stale_worker_changes_nothing(redis_url: str, client: redis.Redis) -> None:
    """Worker A's lease lapses, B re-claims and delivers; A's late answer is counted, not
    applied, even after the event is terminal."""
    enqueue(redis_url, ("default", "e1"))

    async def scenario(m: Moves) -> tuple[list[Any], ...]:
        [a] = await m.claim(1)
        client.zadd(KEYS.held, {a.member: 0})  # A froze past its lease
        assert await m.reap() == 1
        assert await m.extend([(a.member, a.token)]) == {a.member}  # A learns it lost it
        [b] = await m.claim(1)
        assert b.token != a.token and b.attempts == 2
        late_retry = Plan(Kind.RETRY, signal="timeout", reason="late", delay_ms=0)
        first = await m.complete([(a, late_retry)])
        second = await m.complete([(b, DELIVERED)])
        late = await m.complete([(a, late_retry)])
        return first, second, late

    first, second, late = run(redis_url, scenario)
    assert first == [("stale", False)] and second == [("ok", False)]
    assert late == [("stale", False)]
    assert state(client, "default", "e1") == "delivered"
    assert client.zcard(KEYS.due) == 0 and client.zcard(KEYS.held) == 0
    assert int(client.hget(KEYS.stats, "stale") or 0) == 2


def test_a_retried_completion_is_recognised(redis_url: str, client: redis.Redis) -> None:
    """The reply to a completion was lost and the worker sends it again: applied once."""
    enqueue(redis_url, ("default", "e1"))
    retry = Plan(Kind.RETRY, signal="code:1", code=1, reason="x", delay_ms=60_000)

    async def scenario(m: Moves) -> list[list[tuple[str, bool]]]:
        [c] = await m.claim(1)
        return [await m.complete([(c, retry)]), await m.complete([(c, retry)])]

    assert run(redis_url, scenario) == [[("ok", False)], [("done", False)]]
    assert len(client.lrange(KEYS.history("default", "e1"), 0, -1)) == 1
    assert int(client.hget(KEYS.stats, "outcome:retry") or 0) == 1


def test_a_retried_delivery_is_recognised_though_its_record_is_gone(
        redis_url: str, client: redis.Redis) -> None:
    """A delivered or rejected event keeps no record, only its done-bucket field: a retried
    completion (reply lost) is 'done', not 'stale', and counts nothing twice; another
    worker's late delivery of the same event, with another interaction id, is still 'stale'."""
    enqueue(redis_url, ("default", "d1"), ("default", "r1"), ("default", "x1"))
    rejected = Plan(Kind.REJECTED, code=301, signal="code:301", reason="known")

    async def scenario(m: Moves) -> list[list[tuple[str, bool]]]:
        claims = {c.event_id: c for c in await m.claim(3)}
        d1, r1, x1 = claims["d1"], claims["r1"], claims["x1"]
        batch = [(d1, DELIVERED), (r1, rejected)]
        first, again = await m.complete(batch), await m.complete(batch)
        # x1: its first worker froze past its lease; the second delivered it (interaction 7)
        client.zadd(KEYS.held, {x1.member: 0})
        assert await m.reap() == 1
        [taken] = await m.claim(1)
        await m.complete([(taken, DELIVERED)])
        other = await m.complete([(x1, dataclasses.replace(DELIVERED, interaction_id=8))])
        return [first, again, other]

    first, again, other = run(redis_url, scenario)
    assert first == [("ok", False), ("ok", False)]
    assert again == [("done", False), ("done", False)]
    assert other == [("stale", False)]
    assert int(client.hget(KEYS.stats, "stale") or 0) == 1
    assert int(client.hget(KEYS.stats, "outcome:delivered") or 0) == 2
    assert int(client.hget(KEYS.stats, "outcome:rejected") or 0) == 1


def test_heartbeat_keeps_a_lease_and_reap_returns_expired_ones(redis_url: str,
                                                               client: redis.Redis) -> None:
    enqueue(redis_url, ("default", "live"), ("default", "dead"))

    async def scenario(m: Moves) -> tuple[int, set[str], list[Claim]]:
        claims = {c.event_id: c for c in await m.claim(5)}
        live, dead = claims["live"], claims["dead"]
        client.zadd(KEYS.held, {live.member: 1, dead.member: 1})  # both past their deadline
        lost = await m.extend([(live.member, live.token)])  # only live's worker beats
        return await m.reap(), lost, await m.claim(5)

    reaped, lost, again = run(redis_url, scenario, RELAY_LEASE="30", RELAY_HEARTBEAT="1")
    assert lost == set() and reaped == 1
    assert [c.event_id for c in again] == ["dead"] and again[0].charged == 2
    assert state(client, "default", "live") == "held"
    assert int(client.hget(KEYS.stats, "leases_expired") or 0) == 1


def test_retry_then_budget_then_dead_letter_then_replay(redis_url: str,
                                                       client: redis.Redis) -> None:
    enqueue(redis_url, ("default", "e1"))
    retry = Plan(Kind.RETRY, signal="code:1", code=1, reason="undefined error", delay_ms=0,
                 latency_ms=3.0)

    async def scenario(m: Moves) -> None:
        [c] = await m.claim(1)
        assert await m.complete([(c, retry)]) == [("ok", False)]
        assert state(client, "default", "e1") == "waiting"
        [c] = await m.claim(1)
        unsent = Plan(Kind.RETRY, refund=True, signal="connect", reason="refused", delay_ms=0)
        await m.complete([(c, unsent)])
        [c] = await m.claim(1)
        assert (c.attempts, c.charged) == (3, 2)  # the refused connection cost nothing
        await m.complete([(c, Plan(Kind.DEAD_LETTER, signal="code:1", code=1,
                                   reason="retries exhausted"))])

    run(redis_url, scenario)
    assert state(client, "default", "e1") == "dead_letter"
    history = client.lrange(KEYS.history("default", "e1"), 0, -1)
    assert len(history) == 3  # failed once: every attempt is kept from then on
    store = DeadLetters(client, KEYS)
    [entry] = list(store.entries())
    assert entry["event_id"] == "e1" and entry["dead_letter"]["code"] == 1
    assert entry["location"] == "STORE-001" and entry["dead_letter"]["attempts"] == 3
    assert store.replay([member("default", "e1")]) == ["default/e1"]
    assert store.replay([member("default", "e1")]) == []  # already moved
    assert state(client, "default", "e1") == "waiting"
    assert client.hget(KEYS.record("default", "e1"), "c") == b"0"  # a fresh budget
    assert store.size() == 0 and client.zcard(KEYS.due) == 1


def test_concurrent_replays_move_each_event_once(redis_url: str, client: redis.Redis) -> None:
    specs = [("default", f"d{i}") for i in range(300)]
    enqueue(redis_url, *specs)

    async def dead_letter_all(m: Moves) -> None:
        claims = await m.claim(300)
        await m.complete([(c, Plan(Kind.DEAD_LETTER, signal="code:503", code=503))
                          for c in claims])

    run(redis_url, dead_letter_all, RELAY_BATCH="300")
    results: list[list[str]] = []

    def replay() -> None:
        store = DeadLetters(redis.Redis.from_url(redis_url), KEYS)
        results.append(store.replay(store.members(store_filter())))

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    moved = [m for r in results for m in r]
    assert sorted(moved) == sorted(member(t, e) for t, e in specs)  # each once, in all
    assert client.zcard(KEYS.due) == 300 and client.zcard(KEYS.dlq) == 0


def store_filter() -> Any:
    from relay.deadletters import Filter

    return Filter()


def test_purge_only_takes_dead_letters(redis_url: str, client: redis.Redis) -> None:
    enqueue(redis_url, ("default", "dead"), ("default", "live"))

    async def scenario(m: Moves) -> None:
        claims = {c.event_id: c for c in await m.claim(5)}
        await m.complete([(claims["dead"], Plan(Kind.DEAD_LETTER, signal="code:300"))])

    run(redis_url, scenario)
    store = DeadLetters(client, KEYS)
    assert store.purge([member("default", "live"), member("default", "dead")]) == 1
    assert state(client, "default", "dead") is None and state(client, "default", "live") == "held"


def fail(signal: str = "timeout") -> Plan:
    return Plan(Kind.RETRY, breaker=Breaker.FAIL, signal=signal, reason=signal, delay_ms=0)


def test_one_poison_event_never_opens_the_circuit(redis_url: str, client: redis.Redis) -> None:
    enqueue(redis_url, ("default", "poison"))

    async def scenario(m: Moves) -> list[bool]:
        opened = []
        for _ in range(10):
            [c] = await m.claim(1)
            opened += [o for _, o in await m.complete([(c, fail())])]
        return opened

    assert run(redis_url, scenario) == [False] * 10
    assert not client.hlen(KEYS.circuits)


def test_distinct_failures_open_then_the_probe_rotates(redis_url: str, client: redis.Redis
                                                       ) -> None:
    specs = [("acme", f"a{i}") for i in range(5)]
    enqueue(redis_url, *specs)

    async def scenario(m: Moves) -> list[str]:
        claims = await m.claim(3)
        results = await m.complete([(c, fail()) for c in claims])
        assert [o for _, o in results] == [False, False, True]  # the third distinct one
        assert await m.claim(5) == []  # the rest are parked, not claimed
        assert client.llen(KEYS.park("acme")) == 5  # the failed three were parked too
        probes: list[str] = []
        for _ in range(3):
            await asyncio.sleep(0.35 * 2 ** len(probes))  # past the (doubling) cooldown
            assert await m.unpark() == 1
            [probe] = await m.claim(5)
            assert probe.probe
            probes.append(probe.event_id)
            await m.complete([(probe, fail())])
        return probes

    probes = run(redis_url, scenario, RELAY_BREAKER_MAX_COOLDOWN="5")
    assert len(set(probes)) == 3  # never the same event twice in a row
    assert int(client.hget(KEYS.stats, "circuit_opened:acme") or 0) == 1


def _half_open(m: Moves, client: redis.Redis) -> Awaitable[Claim]:
    """acme's circuit opened by three distinct failures, then its first probe claimed."""
    async def go() -> Claim:
        await m.complete([(c, fail()) for c in await m.claim(3)])
        await asyncio.sleep(0.35)  # past the cooldown
        assert await m.unpark() == 1
        [probe] = await m.claim(5)
        assert probe.probe
        return probe
    return go()


def _circuit(client: redis.Redis, tenant: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(client.hget(KEYS.circuits, tenant) or "null"))


def test_one_probe_at_a_time_while_its_call_is_in_hand(redis_url: str,
                                                       client: redis.Redis) -> None:
    """The probe's time runs out while its worker still holds it (heartbeats keep the lease):
    no second probe goes out, and the first one's failure still re-opens the circuit."""
    enqueue(redis_url, *[("acme", f"a{i}") for i in range(5)])

    async def scenario(m: Moves) -> None:
        probe = await _half_open(m, client)
        circuit = _circuit(client, "acme")
        circuit["probe_until"] = 0  # its time ran out, as on a saturated worker
        client.hset(KEYS.circuits, "acme", json.dumps(circuit))
        assert await m.extend([(probe.member, probe.token)]) == set()  # still ours
        assert await m.unpark() == 0 and await m.claim(5) == []
        [(status_, _)] = await m.complete([(probe, fail())])
        assert status_ == "ok"

    run(redis_url, scenario)
    circuit = _circuit(client, "acme")
    assert circuit["reopenings"] == 1 and circuit["probe"] == ""


def test_a_probe_ended_without_a_word_on_the_service_frees_the_turn(
        redis_url: str, client: redis.Redis) -> None:
    """A probe refused before its call (unknown tenant, unreadable, out of budget) says
    nothing about the service: the next parked event is the probe at once."""
    enqueue(redis_url, *[("acme", f"a{i}") for i in range(5)])

    async def scenario(m: Moves) -> Claim:
        probe = await _half_open(m, client)
        await m.complete([(probe, plan.refuse("config:tenant", "unknown tenant 'acme'"))])
        assert await m.unpark() == 1  # no wait for the refused probe's time to run out
        [second] = await m.claim(5)
        return second

    second = run(redis_url, scenario)
    assert second.probe and _circuit(client, "acme")["probe"] == second.member


def test_a_success_closes_the_circuit_and_unparks_everything(redis_url: str,
                                                            client: redis.Redis) -> None:
    specs = [("acme", f"a{i}") for i in range(6)]
    enqueue(redis_url, *specs)

    async def scenario(m: Moves) -> int:
        await m.complete([(c, fail()) for c in await m.claim(3)])
        await asyncio.sleep(0.35)
        await m.unpark()
        claimed = await m.claim(5) + await m.claim(5)  # the others are parked on the way
        [probe] = claimed
        assert probe.probe
        await m.complete([(probe, DELIVERED)])
        assert await m.unpark() == 5
        claims = await m.claim(10)
        await m.complete([(c, DELIVERED) for c in claims])
        return len(claims)

    assert run(redis_url, scenario) == 5
    assert {state(client, t, e) for t, e in specs} == {"delivered"}
    assert not client.hlen(KEYS.circuits) and not client.scard(KEYS.parked)


def test_rate_limit_slots_come_from_the_server_clock(redis_url: str, client: redis.Redis
                                                      ) -> None:
    enqueue(redis_url, *[("default", f"r{i}") for i in range(20)])

    async def scenario(m: Moves) -> list[float]:
        return [c.delay_s for c in await m.claim(20)]

    delays = run(redis_url, scenario, RELAY_RATE_LIMIT="10")
    assert len(delays) == 20 and delays[0] == 0.0
    assert delays == sorted(delays)
    assert delays[-1] == pytest.approx(1.9, abs=0.05)  # one slot every 100 ms

    def more() -> list[float]:
        return run(redis_url, scenario, RELAY_RATE_LIMIT="1")

    enqueue(redis_url, *[("default", f"s{i}") for i in range(10)])
    later = more()
    assert len(later) < 10 and client.zcard(KEYS.due) == 10 - len(later)  # past the horizon


def test_a_refused_move_writes_nothing(tmp_path: Any) -> None:
    """Over maxmemory (noeviction) a move is refused whole: no record without its queue entry,
    no lease dropped without the outcome written."""
    from relay.embedded import start_embedded

    server = start_embedded(tmp_path / "valkey")
    url = f"{server.connection_url}/0"
    try:
        client = redis.Redis.from_url(url)
        enqueue(url, ("default", "e1"))

        async def claim(m: Moves) -> Claim:
            [c] = await m.claim(1)
            return c

        c = run(url, claim)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(used // 2))
        client.config_set("maxmemory-policy", "noeviction")
        with pytest.raises(EnqueueError, match="OutOfMemoryError"):
            enqueue(url, ("default", "e2"))

        async def complete(m: Moves) -> Any:
            return await m.complete([(c, Plan(Kind.DEAD_LETTER, signal="code:503"))])

        with pytest.raises(redis.exceptions.OutOfMemoryError):
            run(url, complete)

        async def extend(m: Moves) -> set[str]:
            return await m.extend([(c.member, c.token)])

        assert run(url, extend) == set()  # heartbeats still land: the lease stays live
        client.config_set("maxmemory", "0")
        assert not client.exists(KEYS.record("default", "e2"))
        assert state(client, "default", "e1") == "held" and client.zcard(KEYS.dlq) == 0
        assert run(url, complete) == [("ok", False)]
        assert state(client, "default", "e1") == "dead_letter"
    finally:
        server.stop()


def test_times_are_the_servers(redis_url: str, client: redis.Redis) -> None:
    enqueue(redis_url, ("default", "e1"))
    seconds, _ = client.time()
    accepted = int(client.hget(KEYS.record("default", "e1"), "t0") or 0)
    assert abs(accepted / 1000 - seconds) < 5
    assert abs(accepted / 1000 - time.time()) < 60  # this machine's clock agrees, roughly


def test_the_budget_holds_across_claims_through_the_planner(redis_url: str,
                                                           client: redis.Redis) -> None:
    """Claim, call (a timeout: it may have been recorded), plan, complete, again: the event
    is sent exactly max_attempts times, then dead-lettered without another call; connection
    refusals in between cost nothing."""
    from worker import plan
    from worker.errors import ConnectFailed, RequestTimeout

    enqueue(redis_url, ("default", "e1"))

    async def scenario(m: Moves) -> tuple[int, int]:
        sent = refused = 0
        for round_ in range(20):
            [c] = await m.claim(1)
            early = plan.before_call(c, m.settings.backoff, 0.0)
            if early is not None:
                await m.complete([(c, early)])
                break
            error = ConnectFailed("x") if round_ % 3 == 2 else RequestTimeout("x")
            verdict = m.settings.policy.classify(error)
            if verdict.reached:
                sent += 1
            else:
                refused += 1
            chosen = plan.after_call(c, verdict, "x", 1.0, backoff=m.settings.backoff,
                                     age=0.0, cooldown_s=0.0)
            await m.complete([(c, dataclasses.replace(chosen, delay_ms=0))])
            if chosen.kind is Kind.DEAD_LETTER:
                break
        return sent, refused

    sent, refused = run(redis_url, scenario, RELAY_MAX_ATTEMPTS="4")
    assert sent == 4 and refused >= 1
    assert state(client, "default", "e1") == "dead_letter"


def test_the_dead_letter_store_keeps_to_its_cap_and_age(redis_url: str,
                                                        client: redis.Redis) -> None:
    """Off by default; set, the oldest dead letters go first, each counted, never silently."""
    enqueue(redis_url, *[("default", f"d{i}") for i in range(5)])

    async def dead_letter_all(m: Moves) -> None:
        for c in sorted(await m.claim(5), key=lambda c: c.event_id):
            await m.complete([(c, Plan(Kind.DEAD_LETTER, signal="code:503", code=503))])

    run(redis_url, dead_letter_all, RELAY_DLQ_MAX="3")
    store = DeadLetters(client, KEYS)
    assert [e["event_id"] for e in store.entries()] == ["d2", "d3", "d4"]
    assert int(client.hget(KEYS.stats, "dead_letters_dropped") or 0) == 2
    assert not client.exists(KEYS.record("default", "d0"))

    async def prune(m: Moves) -> int:
        await asyncio.sleep(1.1)
        return await m.prune()

    assert run(redis_url, prune) == 0  # no age limit set: nothing goes
    assert run(redis_url, prune, RELAY_DLQ_MAX_AGE="1") == 3
    assert store.size() == 0 and int(client.hget(KEYS.stats, "dead_letters_expired") or 0) == 3


def test_outcomes_are_counted_per_minute_for_charts(redis_url: str, client: redis.Redis
                                                    ) -> None:
    from relay.overview import rates

    enqueue(redis_url, ("default", "a"), ("default", "b"))

    async def scenario(m: Moves) -> None:
        first, second = await m.claim(2)
        await m.complete([(first, DELIVERED),
                          (second, Plan(Kind.DEAD_LETTER, signal="code:503", code=503))])

    run(redis_url, scenario)
    series = rates(client, KEYS, minutes=5)
    assert len(series) == 5 and series[-1]["delivered"] == 1 and series[-1]["dead_letter"] == 1
    [key] = client.scan_iter(match=KEYS.prefix + "minute:*")
    assert 0 < client.ttl(key) <= 7200
