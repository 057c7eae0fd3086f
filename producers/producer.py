"""The Python producer API: what a POS or web app calls.

``record`` returns as soon as Redis holds the event: it never waits on the SOAP service. One
script call creates the event's record (the dedupe check) and queues it, so an event is either
accepted whole or not at all, whatever Redis refuses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from producers.spool import Spool
from relay import keys as keynames
from relay import status
from relay.errors import EnqueueError
from relay.events import DEFAULT_TENANT, Interaction
from relay.scripts import register
from relay.settings import StoreSettings, environment, mask_url


class Producer:
    """Validates, dedupes on (tenant, ``event_id``) and enqueues; one per process is plenty."""

    def __init__(self, url: str | None = None, spool_dir: str | Path | None = None,
                 settings: StoreSettings | None = None) -> None:
        settings = settings or StoreSettings.from_env()
        self.url = url or settings.redis_url
        self.keys = settings.keys
        spool_dir = spool_dir or environment().get("RELAY_SPOOL_DIR")
        self.spool = Spool(spool_dir) if spool_dir else None
        self._next_drain = 0.0
        self.redis = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        self._enqueue_script = register(self.redis)["enqueue"]

    def record(self, **fields: Any) -> str:
        """Validate and enqueue one interaction; returns its ``event_id``.

        Raises ``ValidationError`` naming each broken field, or ``EnqueueError`` when Redis
        cannot take it. An ``event_id`` seen before is accepted again without a second send.
        """
        event = Interaction.create(**fields)
        self.enqueue(event)
        return event.event_id

    def enqueue(self, event: Interaction) -> bool:
        """Enqueue a validated event; False when (tenant, ``event_id``) was already accepted.

        With a spool, an event Redis cannot take now is journalled to disk instead (True), and
        the journal is drained on a later call once Redis answers.
        """
        return self.enqueue_many([event])[0]

    def enqueue_many(self, events: Sequence[Interaction]) -> list[bool]:
        """Enqueue several events in one round trip; per event, whether it was new."""
        if self.spool is None:
            return self._enqueue(events)
        if time.monotonic() >= self._next_drain and self.spool.has_events():
            try:
                self.flush_spool()
            except EnqueueError:
                self._next_drain = time.monotonic() + 1.0  # still down: don't pay it per call
        try:
            if self._next_drain > time.monotonic():
                raise EnqueueError("Redis was unreachable a moment ago")
            return self._enqueue(events)
        except EnqueueError:
            self._next_drain = max(self._next_drain, time.monotonic() + 1.0)
            for event in events:
                self.spool.append(event.to_message())
            return [True] * len(events)

    def flush_spool(self) -> int:
        """Enqueue what the spool holds now; returns how many events left it."""
        if self.spool is None:
            return 0
        return self.spool.drain(lambda message: self._enqueue([Interaction.from_message(message)]))

    def _enqueue(self, events: Sequence[Interaction]) -> list[bool]:
        if not events:
            return []
        args: list[str] = [self.keys.prefix]
        for event in events:
            args += [keynames.member(event.tenant, event.event_id), event.payload()]
        try:
            new = self._enqueue_script(keys=[self.keys.due, self.keys.stats], args=args)
        except redis.RedisError as exc:
            # Every class, not only connection loss: OOM, READONLY (a replica after failover),
            # a script error; the move is atomic, so nothing was half-written.
            raise EnqueueError(_refusal(self.url, exc)) from exc
        return [bool(n) for n in new]

    def status(self, event_id: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any] | None:
        """The event's status record (state, attempts, codes, history), or None if unknown."""
        try:
            return status.read(self.redis, self.keys, tenant, event_id)
        except redis.RedisError as exc:
            raise EnqueueError(_refusal(self.url, exc)) from exc

    def close(self) -> None:
        self.redis.close()


def _refusal(url: str, exc: redis.RedisError) -> str:
    """One line saying what Redis did, never the URL's password."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"Redis at {mask_url(url)} is unreachable ({type(exc).__name__})"
    return f"Redis at {mask_url(url)} refused the event ({type(exc).__name__})"
