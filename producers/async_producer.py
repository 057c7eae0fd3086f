"""The producer for asyncio web apps (aiohttp, FastAPI): ``await producer.record(...)``.

Same rules as the blocking ``Producer``, from the same places: validation in
``relay.events``, dedupe and queueing in the enqueue script, error wording, replicas and spool
in ``ProducerBase``. Only the I/O differs: ``redis.asyncio``, so a request handler never holds
a thread while Redis answers. Spool writes (only while Redis is away) run in a thread so an
fsync never stalls the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from producers.producer import CLIENT_OPTIONS, ProducerBase
from relay import connect, status
from relay.errors import EnqueueError, ValidationError
from relay.events import DEFAULT_TENANT, Interaction
from relay.scripts import register
from relay.settings import StoreSettings


class AsyncProducer(ProducerBase):
    """Create it once (e.g. at app start-up) and share it; ``await close()`` at shut-down.

    Options as for ``Producer`` (see ``ProducerBase``).
    """

    def __init__(self, url: str | None = None, spool_dir: str | Path | None = None,
                 settings: StoreSettings | None = None, replicas: int | None = None) -> None:
        super().__init__(url, spool_dir, settings, replicas)
        self.redis = connect.async_client(self.url, **CLIENT_OPTIONS)
        self._enqueue_script = register(self.redis)["enqueue"]

    async def record(self, **fields: Any) -> str:
        """Validate and enqueue one interaction; returns its ``event_id``.

        Raises ``ValidationError`` naming each broken field, or ``EnqueueError`` when Redis
        cannot take it. An ``event_id`` seen before is accepted again without a second send.
        """
        event = Interaction.create(**fields)
        await self.enqueue(event)
        return event.event_id

    async def enqueue(self, event: Interaction) -> bool:
        """Enqueue a validated event; False when (tenant, ``event_id``) was already accepted."""
        return (await self.enqueue_many([event]))[0]

    async def enqueue_many(self, events: Sequence[Interaction]) -> list[bool]:
        """Enqueue several events in one round trip; per event, whether it was new."""
        if self.spool is None:
            return await self._enqueue(events)
        if self._drain_due():
            try:
                await self.flush_spool()
            except EnqueueError:
                self._went_down()
        try:
            self._check_up()
            return await self._enqueue(events)
        except EnqueueError:
            self._went_down()
            await asyncio.to_thread(self.spool.extend, [e.to_message() for e in events])
            return [True] * len(events)

    async def flush_spool(self) -> int:
        """Enqueue what the spool holds now; returns how many events left it (0 while another
        drain, in this process or another, holds the spool)."""
        if self.spool is None:
            return 0
        with self.spool.pending(wait=False) as batch:
            for message in batch.messages:
                try:
                    await self._enqueue([Interaction.from_message(message)])
                except ValidationError as exc:
                    self.spool.reject(message, exc)
                batch.done += 1
        return batch.done

    async def _enqueue(self, events: Sequence[Interaction]) -> list[bool]:
        if not events:
            return []
        call = self._script_call(events)
        try:
            if not self.replicas:
                return self._answer(await self._enqueue_script(**call))
            pipe = self.redis.pipeline(transaction=False)  # one connection: WAIT covers it
            await self._enqueue_script(**call, client=pipe)
            pipe.execute_command("WAIT", self.replicas, self.wait_ms)
            new, acked = await pipe.execute()
        except redis.RedisError as exc:
            raise self._refused(exc) from exc
        return self._answer(new, acked)

    async def known_tenants(self) -> frozenset[str]:
        """The tenants the workers are configured for (read at most once a second)."""
        try:
            names: frozenset[str] = await self._tenants.get_async(self.redis, self.keys)
            return names
        except redis.RedisError as exc:
            raise self._refused(exc) from exc

    async def status(self, event_id: str, tenant: str = DEFAULT_TENANT
                     ) -> dict[str, Any] | None:
        """The event's status record (state, attempts, codes, history), or None if unknown."""
        try:
            return await status.read_async(self.redis, self.settings, tenant, event_id)
        except redis.RedisError as exc:
            raise self._refused(exc) from exc

    async def ping(self) -> None:
        """Raises ``EnqueueError`` unless Redis answers (readiness probes)."""
        try:
            await self.redis.ping()
        except redis.RedisError as exc:
            raise self._refused(exc) from exc

    async def close(self) -> None:
        await self.redis.aclose()
