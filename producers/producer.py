"""The Python producer API: what a POS or web app calls.

``record`` returns as soon as Redis holds the event: it never waits on the SOAP service. One
script call creates the event's record (the dedupe check) and queues it, so an event is either
accepted whole or not at all, whatever Redis refuses.

``ProducerBase`` holds everything the blocking ``Producer`` and the asyncio
``AsyncProducer`` (``producers.async_producer``) share: settings, the enqueue script's
arguments, what its answer means, how a Redis failure is worded and when the spool is tried
again. The two classes only do the I/O.
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

# A producer answers fast or says Redis is away: never hangs a till or a web request.
CLIENT_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 5}
RETRY_AFTER_S = 1.0  # after a refusal, spool straight away for this long


class ProducerBase:
    """Validates, dedupes on (tenant, ``event_id``) and enqueues; one per process is plenty.

    ``replicas`` (``RELAY_ENQUEUE_REPLICAS``, default 0): answer only once that many replicas
    hold the event (Redis ``WAIT``, up to ``RELAY_ENQUEUE_WAIT_MS``, default 1000), so a
    failover right after cannot lose an event already acknowledged; otherwise ``EnqueueError``
    (the event may still be delivered: a retry is deduped). Costs a replication round trip.

    ``spool_dir`` (``RELAY_SPOOL_DIR``): an event Redis cannot take now is journalled to disk
    instead (accepted), and the journal is drained on a later call once Redis answers.
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
        self._tenants = tenants.Cache()

    def _script_call(self, events: Sequence[Interaction]) -> dict[str, list[Any]]:
        """The enqueue script's keys and arguments for ``events``."""
        args: list[Any] = [self.keys.prefix, self.settings.bucket_ms, self.settings.buckets]
        for event in events:
            args += [keynames.member(event.tenant, event.event_id), event.payload()]
        return {"keys": [self.keys.due, self.keys.stats, self.keys.tenants], "args": args}

    def _answer(self, new: list[Any], acked: Any = None) -> list[bool]:
        """The script's answer (and ``WAIT``'s, with replicas) as "was it new", per event."""
        if acked is not None and int(acked) < self.replicas and new and new[0] != -1 \
                and any(new):
            raise EnqueueError(f"{int(acked)} of {self.replicas} replicas confirmed the event "
                               f"within {self.wait_ms} ms; send it again (it is deduped)")
        if new and new[0] == -1:
            raise unknown_tenant(new[1].decode())
        return [bool(n) for n in new]

    def _refused(self, exc: redis.RedisError) -> EnqueueError:
        return EnqueueError(refusal(self.url, exc))

    def _drain_due(self) -> bool:
        return self.spool is not None and time.monotonic() >= self._next_drain \
            and self.spool.has_events()

    def _went_down(self) -> None:
        self._next_drain = max(self._next_drain, time.monotonic() + RETRY_AFTER_S)

    def _check_up(self) -> None:
        """Redis refused a moment ago: spool at once rather than pay a timeout per call."""
        if self._next_drain > time.monotonic():
            raise EnqueueError("Redis was unreachable a moment ago")


class Producer(ProducerBase):
    """The blocking producer (redis-py); see ``ProducerBase`` for the options."""

    def __init__(self, url: str | None = None, spool_dir: str | Path | None = None,
                 settings: StoreSettings | None = None, replicas: int | None = None) -> None:
        super().__init__(url, spool_dir, settings, replicas)
        self.redis = connect.client(self.url, **CLIENT_OPTIONS)
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
        """Enqueue a validated event; False when (tenant, ``event_id``) was already accepted."""
        return self.enqueue_many([event])[0]

    def enqueue_many(self, events: Sequence[Interaction]) -> list[bool]:
        """Enqueue several events in one round trip; per event, whether it was new."""
        if self.spool is None:
            return self._enqueue(events)
        if self._drain_due():
            try:
                self.flush_spool()
            except EnqueueError:
                self._went_down()
        try:
            self._check_up()
            return self._enqueue(events)
        except EnqueueError:
            self._went_down()
            self.spool.extend(e.to_message() for e in events)
            return [True] * len(events)

    def flush_spool(self) -> int:
        """Enqueue what the spool holds now; returns how many events left it."""
        if self.spool is None:
            return 0
        return self.spool.drain(lambda message: self._enqueue([Interaction.from_message(message)]))

    def _enqueue(self, events: Sequence[Interaction]) -> list[bool]:
        if not events:
            return []
        call = self._script_call(events)
        try:
            if not self.replicas:
                return self._answer(self._enqueue_script(**call))
            # One connection for both, so WAIT covers this write.
            pipe = self.redis.pipeline(transaction=False)
            self._enqueue_script(**call, client=pipe)
            pipe.execute_command("WAIT", self.replicas, self.wait_ms)
            new, acked = pipe.execute()
        except redis.RedisError as exc:
            # Every class, not only connection loss: OOM, READONLY (a replica after failover),
            # a script error; the move is atomic, so nothing was half-written.
            raise self._refused(exc) from exc
        return self._answer(new, acked)

    def known_tenants(self) -> frozenset[str]:
        """The tenants the workers are configured for (read at most once a second)."""
        try:
            names: frozenset[str] = self._tenants.get(self.redis, self.keys)
            return names
        except redis.RedisError as exc:
            raise self._refused(exc) from exc

    def status(self, event_id: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any] | None:
        """The event's status record (state, attempts, codes, history), or None if unknown."""
        try:
            return status.read(self.redis, self.settings, tenant, event_id)
        except redis.RedisError as exc:
            raise self._refused(exc) from exc

    def close(self) -> None:
        self.redis.close()


def refusal(url: str, exc: redis.RedisError) -> str:
    """One line saying what Redis did, never the URL's password."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"Redis at {mask_url(url)} is unreachable ({type(exc).__name__})"
    return f"Redis at {mask_url(url)} refused the event ({type(exc).__name__})"


def unknown_tenant(tenant: str) -> ValidationError:
    return ValidationError.one("tenant", "unknown",
                               f"{tenant!r} is not a configured tenant (RELAY_TENANTS)")
