"""Per-process worker runtime: one event loop thread, one aiohttp session, one Redis pool.

Celery has no native asyncio. Every SOAP call of the process runs on one event loop in a
background thread, over one keep-alive session: the batch consumer starts its calls there as
tasks, and Celery's task threads (for messages published through Celery) hand theirs over and
wait.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import redis

from relay.events import Interaction
from worker import reconcile
from worker.client import Endpoint, SoapClient
from worker.consumer import BatchConsumer
from worker.delivery import Deliverer
from worker.errors import RequestTimeout
from worker.inbox import Inbox
from worker.schedule import Mover, Schedule
from worker.settings import Settings
from worker.soap import Reply
from worker.transport import AiohttpTransport

Send = Callable[[dict[str, Any]], None]


class Runtime:
    def __init__(self, settings: Settings, send: Send) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="relay-io",
                                        daemon=True)
        self._thread.start()
        self.transport = AiohttpTransport(settings.transport)
        self.client = SoapClient(self.transport)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5,
                                          socket_timeout=10, health_check_interval=30)
        self.deliverer = Deliverer(settings, self.redis, self.call)
        vt = settings.visibility_timeout
        inbox = Inbox(self.redis, vt)
        self.consumer = BatchConsumer(self.deliverer, inbox, self.loop, self.call_async,
                                      in_flight=settings.in_flight)
        self.mover = Mover(Schedule(self.redis), send, settings.scheduler_interval, chores=[
            (1.0, inbox.expire),
            (max(1.0, vt / 4), lambda: reconcile.sweep(self.redis, send, vt))])

    async def call_async(self, event: Interaction, endpoint: Endpoint) -> Reply:
        """One SOAP call, on the I/O loop; a guard past the transport's own total timeout."""
        try:
            async with asyncio.timeout(self.settings.transport.total_timeout + 5):
                return await self.client.record_interaction(event, endpoint)
        except TimeoutError:
            raise RequestTimeout("no reply in time (worker-side guard)") from None

    def call(self, event: Interaction, endpoint: Endpoint) -> Reply:
        """Run one SOAP call on the I/O loop and wait for it (from a Celery task thread)."""
        return asyncio.run_coroutine_threadsafe(self.call_async(event, endpoint),
                                                self.loop).result()

    def deliver(self, message: Any) -> str:
        return self.deliverer.deliver(message)

    def start(self) -> None:
        """Start the background threads: the schedule mover and the batch consumer."""
        if not self.mover.is_alive():
            self.mover.start()
        if not self.consumer.is_alive():
            self.consumer.start()

    def close(self) -> None:
        if self.consumer.is_alive():
            self.consumer.stop()
        self.mover.stop()
        asyncio.run_coroutine_threadsafe(self.transport.close(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.redis.close()


_runtime: Runtime | None = None
_lock = threading.Lock()


def get(settings: Settings, send: Send) -> Runtime:
    global _runtime  # noqa: PLW0603 - one runtime per process, made on first use
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = Runtime(settings, send)
    return _runtime


def shutdown() -> None:
    global _runtime  # noqa: PLW0603
    with _lock:
        if _runtime is not None:
            _runtime.close()
            _runtime = None


def forget_after_fork() -> None:
    """A forked child inherits the parent's runtime object but not its loop thread."""
    global _runtime  # noqa: PLW0603
    _runtime = None
