"""The batch consumer that ``relay worker`` runs: claims events from the inbox in batches and
delivers them on a pool of threads sharing the process's event loop and aiohttp session.

It lives inside the Celery worker (started on ``worker_ready``, drained on shutdown), next to
the ``relay.deliver`` task that still serves messages published through Celery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from worker.durable import REDIS_DOWN
from worker.inbox import Inbox

log = logging.getLogger("relay.consumer")


class BatchConsumer(threading.Thread):
    def __init__(self, client: redis.Redis, deliver: Callable[[Any], str], *, lease_s: float,
                 concurrency: int, batch: int = 100, idle_s: float = 0.02) -> None:
        super().__init__(name="relay-consumer", daemon=True)
        self.redis, self.deliver = client, deliver
        self.inbox = Inbox(client, lease_s)
        self.capacity, self.batch, self.idle_s = concurrency * 2, batch, idle_s
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="relay-deliver")
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._done: list[str] = []
        self._room = threading.Condition(self._lock)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._release_finished()
                with self._room:
                    while self._in_flight >= self.capacity and not self.stopping.is_set():
                        self._room.wait(0.1)
                    free = self.capacity - self._in_flight
                messages = self.inbox.claim(min(self.batch, free)) if free > 0 else []
            except REDIS_DOWN:
                log.warning("inbox unreachable; retrying")
                self.stopping.wait(1.0)
                continue
            if not messages:
                self.stopping.wait(self.idle_s)
                continue
            with self._lock:
                self._in_flight += len(messages)
            for message in messages:
                self.pool.submit(self._one, message)

    def _one(self, message: Any) -> None:
        event_id = message.get("event_id") if isinstance(message, dict) else None
        finished = False
        try:
            self.deliver(message)
            finished = True
        except REDIS_DOWN:
            log.warning("Redis unreachable; the lease of %s will expire and it comes back",
                        event_id)
        except Exception:
            log.exception("delivery crashed; the lease of %s will expire and it comes back",
                          event_id)
        finally:
            with self._room:
                self._in_flight -= 1
                if finished and isinstance(event_id, str):
                    self._done.append(event_id)
                self._room.notify()

    def _release_finished(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        if done:
            pipe = self.redis.pipeline(transaction=False)
            self.inbox.release(pipe, done)
            pipe.execute()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop claiming, finish what is in hand, drop its leases."""
        self.stopping.set()
        self.join(timeout)
        deadline = time.monotonic() + timeout
        self.pool.shutdown(wait=True, cancel_futures=False)
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        self._release_finished()
