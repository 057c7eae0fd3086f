"""The batch consumer as a Celery bootstep.

Celery owns the process: start-up and shutdown, signals, remote control (``celery inspect``),
worker heartbeats that Flower and ``inspect ping`` see. Events do not travel as Celery task
messages (design.md section 2): this step runs the consumer's event loop in a thread of the
worker process, started before Celery's own consumer and stopped after it, so a warm shutdown
(SIGTERM) lets the calls in hand finish and be recorded first.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import bootsteps

from relay import connect
from worker import metrics, processes
from worker.client import SoapClient
from worker.consumer import Consumer, figures_of
from worker.moves import Moves
from worker.settings import Settings
from worker.transport import AiohttpTransport

log = logging.getLogger("relay.worker")
_current: ConsumerThread | None = None


def figures() -> dict[str, Any]:
    """This process's consumer figures (for the ``relay_figures`` inspect command)."""
    return figures_of(_current.consumer if _current else None)


def _tally() -> tuple[dict[str, Any], metrics.Tally] | None:
    consumer = _current.consumer if _current else None
    return None if consumer is None else (figures_of(consumer), consumer.tally)


def tune_gc() -> None:
    """Fewer collector passes on the hot path. Every call allocates a task, futures and
    aiohttp objects; with the default gen-0 threshold (700) the collector runs every few
    events and walks the long-lived objects (imported modules, Celery) each time. Those are
    frozen out of its reach, and a young generation fills ten times further first. Not a
    hundred times: with 70,000 the soak's resident memory grew by 10 MB over 100,000 events
    instead of levelling off (docs/RELIABILITY.md, Soak)."""
    gc.freeze()
    gc.set_threshold(7_000, 10, 10)


class ConsumerThread(threading.Thread):
    """One event loop: Redis (redis.asyncio), the aiohttp session and every call."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="relay-consumer", daemon=True)
        self.settings = settings
        self.consumer: Consumer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            log.exception("the relay consumer stopped on an error")
        finally:
            self.ready.set()

    async def _main(self) -> None:
        tune_gc()
        s = self.settings
        client = connect.async_client(s.redis_url, socket_connect_timeout=s.leases.redis_timeout,
                                      socket_timeout=s.leases.redis_timeout,
                                      health_check_interval=30)
        transport = AiohttpTransport(s.transport)
        soap = SoapClient(transport)
        # The transport's total timeout bounds every call (aiohttp's ClientTimeout covers
        # connecting, sending and reading the reply), so no second timer per call here.
        self.consumer = Consumer(s, Moves(client, s), soap.record_interaction)
        self.loop = asyncio.get_running_loop()
        self.ready.set()
        try:
            await self.consumer.run()
        finally:
            await transport.close()
            await client.aclose()

    def stop(self, drain: float | None = None) -> None:
        """Stop claiming, drain (``drain`` seconds, default the settings'), wait for the end."""
        consumer, loop = self.consumer, self.loop
        if consumer is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(consumer.stop, drain)
        self.join((self.settings.drain if drain is None else drain) + 15)


class ConsumerStep(bootsteps.StartStopStep):
    """Runs the relay consumer inside the Celery worker blueprint."""

    label = "relay consumer"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.thread: ConsumerThread | None = None
        self.stop_metrics: Callable[[], None] | None = None

    def start(self, parent: Any) -> None:
        global _current  # noqa: PLW0603 - one consumer per worker process
        from worker.app import settings

        self.thread = _current = ConsumerThread(settings)
        self.thread.start()
        self.thread.ready.wait(30)
        if settings.metrics_port:
            self.stop_metrics = metrics.serve(settings.metrics_host,
                                              settings.metrics_port + processes.index(), _tally)

    def stop(self, parent: Any) -> None:
        if self.thread is not None:
            self.thread.stop()
        if self.stop_metrics is not None:
            self.stop_metrics()

    def terminate(self, parent: Any) -> None:
        if self.thread is not None:
            self.thread.stop(drain=0.0)
