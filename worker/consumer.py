"""The batch consumer: the worker's one delivery path, on one asyncio event loop.

Four loops share the loop thread. *Claim* takes due events in batches (one script call
each) and keeps a few (``prefetch``) ready beyond the open calls, so a call that ends is
replaced at once, without a round trip; at most ``in_flight`` calls are open (started,
outcome not yet known). *Record* writes the plans that came back within
``GATHER_S`` of each other in one fenced script call, and retries that whole call while Redis
refuses (connection loss, OOM, READONLY): results wait in memory (at most ``in_flight`` of
them; they take no call slot), their leases kept alive. *Heartbeat* extends every held
lease, and stops calls whose lease another worker now holds. *Chores* returns expired leases
(dead workers) and parked events (closed circuits) to the queue.

Times compared across processes (lease deadlines, due times, rate slots, breaker windows) are
Redis server times inside the scripts; locally only durations on the monotonic clock are used,
e.g. to refuse to start a call whose lease may have lapsed (the process was frozen).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from relay.errors import ConfigError, DeliveryError, ValidationError
from relay.events import Interaction
from worker import observe, plan
from worker.client import Endpoint
from worker.errors import WorkerError
from worker.metrics import Tally
from worker.moves import Moves
from worker.plan import Claim, Kind, Plan
from worker.settings import Settings
from worker.soap import Reply

log = logging.getLogger("relay.consumer")
AsyncCall = Callable[[Interaction, Endpoint], Awaitable[Reply]]  # raises DeliveryError
IDLE_MIN_S, IDLE_MAX_S = 0.01, 0.1
# Outcomes finishing within this long of the first are recorded in one script call: each call
# costs a round trip, a loopback write that wakes Redis and the script's fixed work, so
# recording outcomes one or two at a time cost more than the calls themselves (bench/RESULTS.md).
GATHER_S = 0.01
CHORES_S = 1.0
# Redis refusals that pass (unreachable, out of memory, a replica after failover, loading,
# busy with a script): the same script call is tried again until Redis takes it.
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
             redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError,
             redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError)
# MISCONF: Redis cannot persist (disk full, a failing AOF) and refuses writes until it can.
TRANSIENT_PREFIXES = ("BUSY", "NOREPLICAS", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "MISCONF")


def transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT) or (isinstance(exc, redis.exceptions.ResponseError)
                                          and str(exc).startswith(TRANSIENT_PREFIXES))


@dataclass
class Held:
    """An event this process holds: its claim, and until when (monotonic) the lease surely
    lasts from what Redis last confirmed."""

    claim: Claim
    valid_until: float
    asked: float = 0.0  # monotonic: when it was claimed (no later than the lease started)
    task: asyncio.Task[None] | None = None
    started: bool = False  # out of the ready queue
    sent: bool = False
    planned: bool = False  # its outcome is known and waits to be recorded


@dataclass
class Figures:
    """What ``celery inspect relay_figures`` reports for this process."""

    claimed: int = 0
    recorded: int = 0
    stale: int = 0
    lost: int = 0
    held: int = 0
    in_flight: int = 0
    redis_errors: int = 0
    started_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Consumer:
    def __init__(self, settings: Settings, moves: Moves, call: AsyncCall,
                 rng: random.Random | None = None) -> None:
        self.settings, self.moves, self.call = settings, moves, call
        self.rng = rng or random.Random()
        self.held: dict[str, Held] = {}
        self.done: list[tuple[Held, Plan]] = []
        self.ready: collections.deque[Held] = collections.deque()  # claimed, not started
        self.planned = 0  # held events whose outcome waits to be recorded
        # Events claimed ahead of the calls: a claim per ``prefetch / 2`` calls, none waited for.
        self.prefetch = min(settings.batch, max(1, settings.in_flight // 4))
        self._claim_min = max(1, self.prefetch // 2)
        self._filling = False
        self.figures = Figures()
        self.tally = Tally()  # served by worker.metrics
        self.stopping = False
        self.drain_s = settings.drain
        self._wake = asyncio.Event()  # a result is waiting to be recorded
        self._room = asyncio.Event()  # a held slot was freed
        self._idle = asyncio.Event()  # nothing held, nothing waiting: a stop may end
        self._calls: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until ``stop``; then drain: calls in hand get ``drain`` seconds to finish
        and be recorded, the rest are given back."""
        loops = [asyncio.create_task(c) for c in (self._claim_loop(), self._record_loop(),
                                                  self._heartbeat_loop(), self._chores_loop())]
        try:
            await loops[0]
            await self._drain()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    def stop(self, drain: float | None = None) -> None:
        """Stop claiming; calls in hand get ``drain`` seconds (default: the settings')."""
        if drain is not None:
            self.drain_s = drain
        self.stopping = True
        self._room.set()

    async def _drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_s):
                await self._until_idle()
        if self.held:
            log.warning("stopping: giving back %d events whose calls did not finish in time",
                        len(self.held))
            for held in list(self.held.values()):
                if held.task is not None and not held.task.done():
                    held.task.cancel()
                    self._finish(held, plan.release(held.sent))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(5.0, self.settings.leases.redis_timeout * 2)):
                await self._until_idle()

    async def _until_idle(self) -> None:
        while self.held or self.done:
            self._idle.clear()
            await self._idle.wait()

    # -- claim and call ----------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        idle = IDLE_MIN_S
        while not self.stopping:
            want = self._wanted()
            if want < self._claim_min:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._room.wait()
                continue
            asked = time.monotonic()  # no later than the script's clock started the leases
            try:
                claims = await self.moves.claim(want)
            except redis.RedisError as exc:
                self._redis_error("claim", exc)
                await asyncio.sleep(1.0)
                continue
            except Exception:
                log.exception("claim failed; carrying on")
                await asyncio.sleep(1.0)
                continue
            for claim in claims:
                self.ready.append(self._take(claim, asked))
            self.figures.claimed += len(claims)
            self._fill()
            if claims:
                idle = IDLE_MIN_S
            else:
                await asyncio.sleep(idle)
                idle = min(IDLE_MAX_S, idle * 2)
        self._give_back_ready()

    def _open_calls(self) -> int:
        return len(self.held) - self.planned - len(self.ready)

    def _wanted(self) -> int:
        """How many to claim now: the free call slots plus ``prefetch`` ready, less what is
        ready already; at most a batch. ``in_flight`` bounds open calls; outcomes waiting to
        be recorded (Redis slow or away) take no call slot, but at most ``in_flight`` more
        events are held in memory."""
        cap = self.settings.in_flight
        free = cap - self._open_calls()
        return min(free + self.prefetch - len(self.ready), self.settings.batch,
                   2 * cap - len(self.held))

    def _take(self, claim: Claim, asked: float) -> Held:
        # The lease runs from the script's clock; our conservative copy from when we asked.
        held = Held(claim, asked + claim.delay_s + self.settings.leases.lease, asked)
        earlier = self.held.get(claim.member)
        if earlier is not None:  # our own lapsed lease, re-claimed: its call is stale now
            self._lose(earlier)
        self.held[claim.member] = held
        return held

    def _freed(self) -> None:
        """A call slot or a place in memory came free: fill it once this loop pass is over."""
        if not self._filling:
            self._filling = True
            asyncio.get_running_loop().call_soon(self._fill)

    def _fill(self) -> None:
        """Start calls from the ready queue while call slots are free (never once stopping:
        the claim loop gives the rest back); wake the claim loop only once a claim's worth is
        wanted (a wake per finished call cost more CPU than the claims)."""
        self._filling = False
        cap = self.settings.in_flight
        while self.ready and not self.stopping and self._open_calls() < cap:
            self._start(self.ready.popleft())
        if self._wanted() >= self._claim_min:
            self._room.set()

    def _give_back_ready(self) -> None:
        """Stopping: events claimed but never started go back untouched, uncharged."""
        while self.ready:
            held = self.ready.popleft()
            held.started = True
            self._finish(held, plan.release(sent=False))

    def _start(self, held: Held) -> None:
        held.started = True
        claim = held.claim
        try:
            early = plan.before_call(claim, self.settings.backoff, plan.age_s(claim, 0.0))
            if early is not None:
                self._finish(held, early)
                return
            try:
                event = Interaction.from_payload(claim.tenant, claim.event_id, claim.payload)
            except ValidationError as exc:
                self._finish(held, plan.refuse("invalid_message", f"invalid message: {exc}"))
                return
            try:
                endpoint = self.settings.endpoint(claim.tenant)
            except ConfigError as exc:
                self._finish(held, plan.refuse("config:tenant", str(exc)))
                return
        except Exception as exc:  # a bug: never crash the worker on one event
            log.exception("could not start event %s", claim.member)
            self._finish(held, plan.refuse("worker_error", f"worker error: {type(exc).__name__}"))
            return
        held.task = asyncio.create_task(self._call(held, event, endpoint))
        self._calls.add(held.task)
        held.task.add_done_callback(self._calls.discard)

    async def _call(self, held: Held, event: Interaction, endpoint: Endpoint) -> None:
        claim = held.claim
        wait = held.asked + claim.delay_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)  # the rate limit's slot
        # A lease may have lapsed while this process was frozen: another worker may hold the
        # event now, so do not call; give it back (a no-op if it is no longer ours).
        if time.monotonic() > held.valid_until - self.settings.leases.heartbeat:
            self._finish(held, plan.release(sent=False))
            return
        held.sent = True
        self.figures.in_flight += 1
        started = time.perf_counter()
        result: Reply | DeliveryError
        try:
            result = await self.call(event, endpoint)
        except DeliveryError as exc:
            result = exc
        except Exception as exc:  # a bug around the call: retried like any error, logged
            log.exception("delivery of %s crashed", claim.member)
            result = WorkerError(f"worker error: {type(exc).__name__}")
        finally:
            self.figures.in_flight -= 1
        latency_ms = (time.perf_counter() - started) * 1000
        self.tally.call(latency_ms / 1000)
        try:
            verdict = self.settings.policy.classify(result)
            reason = endpoint.token.scrub(verdict.reason)
            decided = plan.after_call(
                claim, verdict, reason, latency_ms, backoff=self.settings.backoff,
                age=plan.age_s(claim, time.monotonic() - held.asked),
                cooldown_s=self.settings.breaker.cooldown, rng=self.rng)
        except Exception:  # a bug deciding: never leave the event held for good
            log.exception("deciding the outcome of %s failed; it goes back, charged",
                          claim.member)
            decided = plan.release(sent=True)
        self._finish(held, decided)

    def _finish(self, held: Held, result: Plan) -> None:
        if not held.planned and self.held.get(held.claim.member) is held:
            held.planned = True
            self.planned += 1
            self._freed()
        self.done.append((held, result))
        self._wake.set()

    # -- record ------------------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            await self._wake.wait()
            if not self.stopping and len(self.done) < self.settings.batch:
                await asyncio.sleep(GATHER_S)
            self._wake.clear()
            if self.done:
                batch, self.done = self.done, []
                try:
                    await self._record(batch)
                except Exception:
                    log.exception("recording failed; the events come back when their leases "
                                  "lapse")
                    for held, _ in batch:
                        self._drop(held)
            if not self.held and not self.done:
                self._idle.set()

    async def _record(self, batch: list[tuple[Held, Plan]]) -> None:
        delay = 0.1
        while True:
            try:
                results = await self.moves.complete([(h.claim, p) for h, p in batch])
                break
            except redis.RedisError as exc:
                self._redis_error("record", exc)
                if not transient(exc):
                    # Not Redis being away but the call itself failing: its events' leases
                    # lapse and they come back; nothing is written half.
                    log.error("recording %d outcomes failed; their events come back when "
                              "their leases lapse", len(batch), exc_info=exc)
                    for held, _ in batch:
                        self._drop(held)
                    return
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        for (held, result), (status, opened) in zip(batch, results, strict=True):
            self._drop(held)
            if status == "stale":
                self.figures.stale += 1
                log.warning("outcome of %s not recorded: its lease was taken over "
                            "(the call may have reached the service twice)", held.claim.member)
                continue
            self.figures.recorded += 1
            self._report(held.claim, result, opened)

    def _drop(self, held: Held) -> None:
        if self.held.get(held.claim.member) is held:
            del self.held[held.claim.member]
            if held.planned:
                self.planned -= 1
            elif not held.started:  # lost while waiting in the ready queue
                self.ready.remove(held)
            self.figures.held = len(self.held)
            self._freed()

    def _report(self, claim: Claim, result: Plan, opened: bool) -> None:
        if result.kind is Kind.RELEASE:
            return
        self.tally.outcome(result.kind.value, result.signal)
        if opened:
            observe.alert("circuit opened", tenant=claim.tenant, reason=result.reason)
        if result.kind is Kind.DEAD_LETTER:
            observe.dead_letter(event_id=claim.event_id, tenant=claim.tenant, code=result.code,
                                signal=result.signal, reason=result.reason)
        observe.outcome(result.kind.value, event_id=claim.event_id, tenant=claim.tenant,
                        code=result.code, signal=result.signal, attempt=claim.attempts,
                        latency_ms=None if result.latency_ms is None
                        else round(result.latency_ms, 1),
                        reason=result.reason or None)

    # -- heartbeat and chores ------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.leases.heartbeat)
            self.figures.held = len(self.held)
            if not self.held:
                continue
            holding = list(self.held.values())
            asked = time.monotonic()
            try:
                lost = await self.moves.extend([(h.claim.member, h.claim.token)
                                                for h in holding])
            except redis.RedisError as exc:
                self._redis_error("heartbeat", exc)
                continue
            except Exception:
                log.exception("heartbeat failed; carrying on")
                continue
            for held in holding:
                if held.claim.member not in lost:
                    held.valid_until = max(held.valid_until,
                                           asked + self.settings.leases.lease)
                elif self.held.get(held.claim.member) is held and not held.planned:
                    # (a planned event's lease may be gone because our own record ran
                    # between the snapshot and the extend: its record's answer settles it)
                    self._lose(held)

    def _lose(self, held: Held) -> None:
        """Another worker holds the event now: stop our call; its result would be stale."""
        self.figures.lost += 1
        log.warning("lease of %s lapsed and was taken over; dropping our call",
                    held.claim.member)
        if held.task is not None:
            held.task.cancel()
        self._drop(held)
        if not self.held and not self.done:
            self._idle.set()

    async def _chores_loop(self) -> None:
        passes = 0
        while True:
            await asyncio.sleep(CHORES_S)
            passes += 1
            try:
                while await self.moves.reap() >= 500:
                    pass
                await self.moves.unpark()
                if passes % 60 == 1:  # a minute apart: tenants, the dead-letter store's limits
                    await self.moves.announce_tenants()
                    await self._dead_letter_limits()
            except redis.RedisError as exc:
                self._redis_error("chores", exc)
            except Exception:
                log.exception("chores failed; carrying on")

    async def _dead_letter_limits(self) -> None:
        dropped = await self.moves.prune()
        if dropped:
            log.warning("dropped %d dead letters older than RELAY_DLQ_MAX_AGE", dropped)
        cap = self.settings.store.dlq_max
        if cap and (size := await self.moves.dead_letters()) >= 0.9 * cap:
            log.warning("the dead-letter store holds %d of its cap of %d (RELAY_DLQ_MAX): "
                        "past it the oldest are dropped; replay or purge them", size, cap)

    def _redis_error(self, what: str, exc: redis.RedisError) -> None:
        self.figures.redis_errors += 1
        if self.figures.redis_errors == 1 or self.figures.redis_errors % 50 == 0:
            log.warning("Redis refused the %s step (%s: %s); retrying", what,
                        type(exc).__name__, str(exc)[:120])


def figures_of(consumer: Consumer | None) -> dict[str, Any]:
    return {} if consumer is None else {**consumer.figures.as_dict(),
                                        "held": len(consumer.held)}

