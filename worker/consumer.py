"""The batch consumer that ``relay worker`` runs: claims events from the inbox in batches and
keeps their SOAP calls in flight on the process's event loop.

Two threads share the work. This one talks to Redis a batch at a time: claim N events, admit
them in one round trip, and record every outcome that has finished since the last pass in one
pipeline that also drops their leases. The event loop thread only makes the calls, as tasks
(no thread per call), and hands each result back through a queue. So the per-event cost is the
HTTP exchange plus a share of three round trips, and the calls in flight are bounded by
``in_flight`` rather than by a pool of threads.

It lives inside the Celery worker (started on ``worker_ready``, drained on shutdown), next to
the ``relay.deliver`` task that still serves messages published through Celery.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from relay.errors import DeliveryError
from relay.events import Interaction
from worker.batch import Attempt, Finished
from worker.client import Endpoint
from worker.delivery import Deliverer
from worker.durable import REDIS_DOWN
from worker.errors import WorkerError
from worker.inbox import Inbox
from worker.soap import Reply

log = logging.getLogger("relay.consumer")
AsyncCall = Callable[[Interaction, Endpoint], Awaitable[Reply]]  # raises DeliveryError


class BatchConsumer(threading.Thread):
    def __init__(self, deliverer: Deliverer, inbox: Inbox, loop: asyncio.AbstractEventLoop,
                 call: AsyncCall, *, in_flight: int, batch: int = 128,
                 idle_s: float = 0.02) -> None:
        super().__init__(name="relay-consumer", daemon=True)
        self.deliverer, self.inbox, self.loop, self.call = deliverer, inbox, loop, call
        self.capacity, self.batch, self.idle_s = max(1, in_flight), batch, idle_s
        self.stopping = threading.Event()
        self.drain_until = float("inf")
        self._results: queue.SimpleQueue[tuple[bytes, Finished]] = queue.SimpleQueue()
        self._held: set[bytes] = set()  # leases of events claimed and not yet recorded
        self._release: list[bytes] = []  # leases to drop with the next write
        self._tasks: set[asyncio.Task[None]] = set()  # touched on the loop thread only

    def run(self) -> None:
        idle = False
        while True:
            try:
                full = len(self._held) >= self.capacity
                done = self._collect(wait=idle or full or self.stopping.is_set())
                if done or self._release:
                    self._record(done)
                if self.stopping.is_set():
                    if not self._held:
                        return
                    if time.monotonic() > self.drain_until:
                        self._give_back()
                        return
                    continue
                room = self.capacity - len(self._held)
                idle = room > 0 and self._claim(min(self.batch, room)) == 0
            except Exception:  # keep consuming whatever one pass ran into
                log.exception("consumer pass failed; carrying on")
                self.stopping.wait(1.0)

    def _collect(self, wait: bool) -> list[tuple[bytes, Finished]]:
        """Every result that has come back; waits a moment for the first when told to."""
        done = []
        try:
            if wait:
                done.append(self._results.get(timeout=self.idle_s))
            while True:
                done.append(self._results.get_nowait())
        except queue.Empty:
            return done

    def _claim(self, count: int) -> int:
        try:
            claimed = self.inbox.claim(count)
        except REDIS_DOWN:
            log.warning("inbox unreachable; retrying")
            self.stopping.wait(1.0)
            return 0
        fresh: list[tuple[bytes, Any]] = []
        for lease_id, message in claimed:
            # A second copy of an event in hand (re-sent from the outbox) shares its lease,
            # which goes when the first copy is recorded: one call, not two.
            if lease_id not in self._held:
                self._held.add(lease_id)
                fresh.append((lease_id, message))
        if not fresh:
            return len(claimed)
        try:
            admitted = self.deliverer.admit([m for _, m in fresh])
        except Exception as exc:
            self._forget([lease_id for lease_id, _ in fresh], exc)
            return len(claimed)
        calls = []
        for (lease_id, _), attempt in zip(fresh, admitted, strict=True):
            if isinstance(attempt, Attempt):
                calls.append((lease_id, attempt))
            else:  # already recorded (refused, skipped, waiting): drop the lease
                self._held.discard(lease_id)
                self._release.append(lease_id)
        if calls:
            self.loop.call_soon_threadsafe(self._start, calls)
        return len(claimed)

    def _start(self, calls: list[tuple[bytes, Attempt]]) -> None:
        for lease_id, attempt in calls:
            task = self.loop.create_task(self._call(lease_id, attempt))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _call(self, lease_id: bytes, attempt: Attempt) -> None:
        if attempt.delay > 0:
            await asyncio.sleep(attempt.delay)  # the rate limit's slot
        started = time.perf_counter()
        result: Reply | DeliveryError
        try:
            result = await self.call(attempt.event, attempt.endpoint)
        except DeliveryError as exc:
            result = exc
        except Exception as exc:  # a bug around the call: retried like any error, logged
            log.exception("delivery of %s crashed", attempt.event.event_id)
            result = WorkerError(f"worker error: {type(exc).__name__}")
        latency_ms = (time.perf_counter() - started) * 1000
        self._results.put((lease_id, Finished(attempt, result, latency_ms)))

    def _record(self, done: list[tuple[bytes, Finished]]) -> None:
        leases = [lease_id for lease_id, _ in done]
        release, self._release = [*self._release, *leases], []
        try:
            self.deliverer.record([f for _, f in done],
                                  tail=lambda pipe: self.inbox.release(pipe, release))
        except Exception as exc:
            self._forget(leases, exc)
            return
        self._held.difference_update(leases)

    def _forget(self, leases: list[bytes], exc: Exception) -> None:
        """Let go of events whose writes failed; their leases expire and they come back."""
        if isinstance(exc, REDIS_DOWN):
            log.warning("Redis unreachable; %d leased events come back when their leases "
                        "expire", len(leases))
        else:
            log.error("batch of %d failed (%s); its events come back when their leases "
                      "expire", len(leases), type(exc).__name__, exc_info=exc)
        self._held.difference_update(leases)

    def _give_back(self) -> None:
        """Out of time while stopping: cancel the calls left, return their events now."""
        self.loop.call_soon_threadsafe(self._cancel_all)
        self._record(self._collect(wait=False))  # what finished meanwhile is recorded, not redone
        try:
            self.inbox.give_back(list(self._held))
        except REDIS_DOWN:
            log.warning("Redis unreachable; %d leased events come back when their leases "
                        "expire", len(self._held))
        self._held.clear()

    def _cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop claiming; finish and record the calls in hand (for up to ``timeout``)."""
        self.drain_until = time.monotonic() + timeout
        self.stopping.set()
        self.join(timeout + 10)
