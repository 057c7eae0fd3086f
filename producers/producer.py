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
from relay import connect, status, tenants
from relay import keys as keynames
from relay.errors import EnqueueError, ValidationError
from relay.events import DEFAULT_TENANT, Interaction
from relay.scripts import register
from relay.settings import StoreSettings, environment, mask_url


class Producer:
    """Validates, dedupes on (tenant, ``event_id``) and enqueues; one per process is plenty.

    ``replicas`` (``RELAY_ENQUEUE_REPLICAS``, default 0): answer only once that many replicas
    hold the event (Redis ``WAIT``, up to ``RELAY_ENQUEUE_WAIT_MS``, default 1000), so a
    failover right after cannot lose an event already acknowledged; otherwise ``EnqueueError``
    (the event may still be delivered: a retry is deduped). Costs a replication round trip.
    """

    def __init__(self, url: str | None = None, spool_dir: str | Path | None = None,
                 settings: StoreSettings | None = None, replicas: int | None = None) -> None:
        self.settings = settings or StoreSettings.from_env()
        self.url = url or self.settings.redis_url
        self.keys = self.settings.keys
        env = environment()
        spool_dir = spool_dir or env.get("RELAY_SPOOL_DIR")
        self.spool = Spool(spool_dir) if spool_dir else None
        self.replicas = int(env.get("RELAY_ENQUEUE_REPLICAS") or 0) if replicas is None \
            else replicas
        self.wait_ms = int(env.get("RELAY_ENQUEUE_WAIT_MS") or 1000)
        self._next_drain = 0.0
        self.redis = connect.client(self.url, socket_connect_timeout=2, socket_timeout=5)
        self._enqueue_script = register(self.redis)["enqueue"]
        self._tenants = tenants.Cache()

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
        args: list[Any] = [self.keys.prefix, self.settings.bucket_ms, self.settings.buckets]
        for event in events:
            args += [keynames.member(event.tenant, event.event_id), event.payload()]
        keys = [self.keys.due, self.keys.stats, self.keys.tenants]
        try:
            if self.replicas:
                # One connection for both, so WAIT covers this write.
                pipe = self.redis.pipeline(transaction=False)
                self._enqueue_script(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAIT", self.replicas, self.wait_ms)
                new, acked = pipe.execute()
                if int(acked) < self.replicas and new and new[0] != -1 and any(new):
                    raise EnqueueError(f"{int(acked)} of {self.replicas} replicas confirmed the "
                                       f"event within {self.wait_ms} ms; send it again (it "
                                       "is deduped)")
            else:
                new = self._enqueue_script(keys=keys, args=args)
        except redis.RedisError as exc:
            # Every class, not only connection loss: OOM, READONLY (a replica after failover),
            # a script error; the move is atomic, so nothing was half-written.
            raise EnqueueError(_refusal(self.url, exc)) from exc
        if new and new[0] == -1:
            raise unknown_tenant(new[1].decode())
        return [bool(n) for n in new]

    def known_tenants(self) -> frozenset[str]:
        """The tenants the workers are configured for (read at most once a second)."""
        try:
            names: frozenset[str] = self._tenants.get(self.redis, self.keys)
            return names
        except redis.RedisError as exc:
            raise EnqueueError(_refusal(self.url, exc)) from exc

    def status(self, event_id: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any] | None:
        """The event's status record (state, attempts, codes, history), or None if unknown."""
        try:
            return status.read(self.redis, self.settings, tenant, event_id)
        except redis.RedisError as exc:
            raise EnqueueError(_refusal(self.url, exc)) from exc

    def close(self) -> None:
        self.redis.close()


def _refusal(url: str, exc: redis.RedisError) -> str:
    """One line saying what Redis did, never the URL's password."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"Redis at {mask_url(url)} is unreachable ({type(exc).__name__})"
    return f"Redis at {mask_url(url)} refused the event ({type(exc).__name__})"


def unknown_tenant(tenant: str) -> ValidationError:
    return ValidationError.one("tenant", "unknown",
                               f"{tenant!r} is not a configured tenant (RELAY_TENANTS)")
