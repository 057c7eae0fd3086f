"""Model-based test of the state machine against a real Redis (hypothesis stateful).

Random sequences of enqueue, claim (with long or instantly-lapsing leases), complete through
the real planner, stale completions from paused workers, crashes, lease expiry, heartbeats,
replays and unparking. After every step, read straight from Redis: each accepted event is in
exactly one state and its structure agrees, terminal states never change except by replay,
and no event has been charged past its budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from redis.asyncio import Redis as AsyncRedis

from producers import Producer
from relay import status, tenants
from relay.deadletters import DeadLetters
from relay.events import Interaction
from relay.keys import Keys, member, split
from tests.helpers import members
from worker import plan
from worker.moves import Moves
from worker.plan import Claim
from worker.settings import LeaseSettings, Settings
from worker.soap import Reply

KEYS = Keys()
EVENTS = [("acme", "e0"), ("acme", "e1"), ("globex", "e0")]
MAX_ATTEMPTS = 3
ANSWERS: list[Any] = ["code:0", "code:1", "code:1", "code:301", "code:503", "code:100",
                      "timeout", "timeout", "connect", "http:502"]
TERMINAL = {"delivered", "rejected", "dead_letter"}


def answer(name: str) -> Any:
    from worker.errors import ConnectFailed, HttpStatusError, RequestTimeout

    if name.startswith("code:"):
        code = int(name[5:])
        return Reply(code, 42 if code == 0 else -1)
    return {"timeout": RequestTimeout("t"), "connect": ConnectFailed("c"),
            "http:502": HttpStatusError(502)}[name]


def make_machine(redis_url: str) -> type[RuleBasedStateMachine]:
    class StateMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.sync = redis.Redis.from_url(redis_url)
            self.sync.flushdb()
            tenants.register(self.sync, KEYS, ["acme", "globex"])
            self.loop = asyncio.new_event_loop()
            self.client = AsyncRedis.from_url(redis_url)
            base = Settings.from_env({
                "RELAY_REDIS_URL": redis_url, "RELAY_SECURITY_TOKEN": "t",
                "RELAY_MAX_ATTEMPTS": str(MAX_ATTEMPTS), "RELAY_BACKOFF_BASE": "0",
                "RELAY_BACKOFF_CAP": "0", "RELAY_BREAKER_THRESHOLD": "2",
                "RELAY_BREAKER_COOLDOWN": "0.001", "RELAY_BREAKER_MAX_COOLDOWN": "0.002"})
            self.settings = base
            self.moves = Moves(self.client, base)
            # a lease that lapses at once: what a frozen or dead worker leaves behind
            self.lapsing = Moves(self.client, dataclasses.replace(
                base, leases=LeaseSettings(lease=0.001, heartbeat=0.0003, redis_timeout=0)))
            self.producer = Producer(redis_url)
            self.store = DeadLetters(self.sync, KEYS)
            self.accepted: set[str] = set()
            self.handles: list[Claim] = []  # claims some worker still means to complete
            self.terminal: dict[str, str] = {}  # member -> terminal state seen
            # member -> tokens of claims whose call may have been recorded, since its replay
            self.calls: dict[str, set[str]] = {}
            self.rng = random.Random(0)
            self.answers: dict[tuple[str, str], str] = {}  # (member, token) -> its call's answer

        def teardown(self) -> None:
            self.loop.run_until_complete(self.client.aclose())
            self.loop.close()
            self.producer.close()
            self.sync.close()

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        @rule(which=st.lists(st.sampled_from(EVENTS), min_size=1, max_size=4))
        def enqueue(self, which: list[tuple[str, str]]) -> None:
            events = [Interaction.create(account_id="123456", location="STORE-001",
                                         interaction_type="VISIT", tenant=t, event_id=e)
                      for t, e in which]
            news = self.producer.enqueue_many(events)
            for (t, e), new in zip(which, news, strict=True):
                m = member(t, e)
                assert new == (m not in self.accepted) or not new  # a repeat is never new
                if new:
                    assert m not in self.accepted
                self.accepted.add(m)

        @rule(count=st.integers(1, 5), lapsing=st.booleans())
        def claim(self, count: int, lapsing: bool) -> None:
            claims = self.run((self.lapsing if lapsing else self.moves).claim(count))
            for c in claims:
                assert c.member in self.accepted and c.member not in self.terminal
                self.handles.append(c)

        @precondition(lambda self: bool(self.handles))
        @rule(data=st.data(), result=st.sampled_from(ANSWERS), keep=st.booleans())
        def complete(self, data: st.DataObject, result: str, keep: bool) -> None:
            """A worker finishes one of its claims (``keep``: a paused copy may answer again
            later, which must change nothing)."""
            c = data.draw(st.sampled_from(self.handles))
            if not keep:
                self.handles.remove(c)
            # One claim makes one call, so it has one answer: a paused copy that reports again
            # reports the same (a second, different answer would be a call that never was).
            result = self.answers.setdefault((c.member, c.token), result)
            early = plan.before_call(c, self.settings.backoff, 0.0)
            if early is None:
                verdict = self.settings.policy.classify(answer(result))
                chosen = plan.after_call(c, verdict, verdict.reason, 1.0,
                                         backoff=self.settings.backoff, age=0.0,
                                         cooldown_s=0.001, rng=self.rng)
                if verdict.reached and verdict.outcome.value != "systemic":
                    made = self.calls.setdefault(c.member, set())
                    made.add(c.token)
                    # the budget: no event is sent more often than it allows, stale workers,
                    # probes and crashes included
                    assert len(made) <= MAX_ATTEMPTS, (c.member, made)
            else:
                chosen = early
            before = self._state(c.member)
            [(status, _)] = self.run(self.moves.complete([(c, chosen)]))
            if status == "ok":
                assert before == "held"
            else:
                assert self._state(c.member) == before  # stale: nothing moved

        @precondition(lambda self: bool(self.handles))
        @rule(data=st.data())
        def give_back(self, data: st.DataObject) -> None:
            c = data.draw(st.sampled_from(self.handles))
            self.handles.remove(c)
            self.run(self.moves.complete([(c, plan.release(sent=data.draw(st.booleans())))]))

        @rule()
        def crash(self) -> None:
            """Every worker dies: their claims are never completed."""
            self.handles.clear()

        @rule()
        def expire(self) -> None:
            time.sleep(0.003)
            self.run(self.moves.reap(100))

        @rule()
        def heartbeat(self) -> None:
            lost = self.run(self.moves.extend([(c.member, c.token) for c in self.handles]))
            for c in self.handles:
                if c.member not in lost:
                    assert self._state(c.member) == "held"

        @rule()
        def unpark(self) -> None:
            time.sleep(0.003)  # past the cooldown
            self.run(self.moves.unpark(100))

        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            dead = [m for m, s in self.terminal.items() if s == "dead_letter"]
            if not dead:
                return
            chosen = data.draw(st.lists(st.sampled_from(dead), min_size=1, unique=True))
            for m in self.store.replay(chosen):
                del self.terminal[m]
                self.calls.pop(m, None)  # a replay grants a fresh budget

        def _state(self, m: str) -> str:
            record = status.read(self.sync, self.settings.store, *split(m))
            return "" if record is None else str(record["state"])

        @invariant()
        def each_event_in_exactly_one_state(self) -> None:
            due, held, dlq = (set(members(self.sync, k)) for k in (KEYS.due, KEYS.held, KEYS.dlq))
            parked: list[str] = []
            for tenant in ("acme", "globex"):
                parked += [m.decode() for m in cast(list[bytes],
                                                    self.sync.lrange(KEYS.park(tenant), 0, -1))]
            assert len(parked) == len(set(parked)), parked
            places = [due, held, dlq, set(parked)]
            for m in self.accepted:
                state = self._state(m)
                where = [name for name, s in zip(("waiting", "held", "dead_letter", "parked"),
                                                 places, strict=True) if m in s]
                if state in ("delivered", "rejected"):
                    assert where == [], (m, state, where)
                else:
                    assert where == [state], (m, state, where)
                record = self.sync.hgetall(KEYS.record(*split(m)))
                assert (b"l" in record) == (state == "held"), (m, record)
                # a lapsed lease keeps its charge (its call may have gone out), so `c` can pass
                # the budget; the calls themselves cannot (checked in `complete`)
                assert int(record.get(b"c", b"0")) >= 0, (m, record)

        @invariant()
        def terminal_states_are_final(self) -> None:
            for m in self.accepted:
                state = self._state(m)
                if m in self.terminal:
                    assert state == self.terminal[m], (m, self.terminal[m], state)
                elif state in TERMINAL:
                    self.terminal[m] = state

    return StateMachine


def test_the_state_machine_keeps_its_invariants(redis_url: str) -> None:
    machine = make_machine(redis_url)
    machine.TestCase.settings = settings(max_examples=30, stateful_step_count=50,
                                         deadline=None,
                                         suppress_health_check=list(HealthCheck))
    machine.TestCase().runTest()


@pytest.mark.slow
def test_the_state_machine_keeps_its_invariants_long(redis_url: str) -> None:
    machine = make_machine(redis_url)
    machine.TestCase.settings = settings(max_examples=300, stateful_step_count=80,
                                         deadline=None,
                                         suppress_health_check=list(HealthCheck))
    machine.TestCase().runTest()
