"""The dead-letter store: events we could not deliver, kept (no TTL) until replayed or purged.

The worker writes entries (``add``); operators read, replay and purge them from the CLI and
the HTTP API, which is why the store lives on the producer side.

An entry is the event message plus code, reason, attempts, first/last attempt time and a
scrubbed excerpt of the last response; never a token or a SOAP request body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from relay import keys
from relay.status import QUEUED, pending, write


@dataclass(frozen=True)
class Filter:
    code: int | None = None
    tenant: str | None = None
    signal: str | None = None
    older_than: float | None = None  # seconds since dead-lettered
    newer_than: float | None = None

    def matches(self, entry: dict[str, Any], now: float) -> bool:
        age = now - float(entry.get("dead_at", now))
        return ((self.code is None or entry.get("code") == self.code)
                and (self.tenant is None or entry.get("tenant") == self.tenant)
                and (self.signal is None or entry.get("signal") == self.signal)
                and (self.older_than is None or age >= self.older_than)
                and (self.newer_than is None or age <= self.newer_than))


def add(pipe: Any, entry: dict[str, Any]) -> None:
    """Queue the write on a pipeline (it rides with the outcome's other writes)."""
    event_id = entry["event"]["event_id"]
    pipe.hset(keys.DLQ, event_id, json.dumps(entry))
    pipe.zadd(keys.DLQ_INDEX, {event_id: entry["dead_at"]})


class DeadLetters:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def size(self) -> int:
        return int(self.redis.hlen(keys.DLQ))

    def get(self, event_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(keys.DLQ, event_id)
        return json.loads(raw) if raw else None

    def entries(self, flt: Filter | None = None, limit: int | None = None
                ) -> Iterator[dict[str, Any]]:
        """Oldest first, read in pages so an export of millions stays flat in memory."""
        flt, now, found, start = flt or Filter(), time.time(), 0, 0
        while limit is None or found < limit:
            ids = cast(list[bytes], self.redis.zrange(keys.DLQ_INDEX, start, start + 499))
            if not ids:
                return
            start += len(ids)
            for raw in self.redis.hmget(keys.DLQ, ids):
                if raw is None:
                    continue
                entry = json.loads(raw)
                if flt.matches(entry, now):
                    found += 1
                    yield entry
                    if limit is not None and found >= limit:
                        return

    def remove(self, event_ids: list[str]) -> int:
        if not event_ids:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(keys.DLQ, *event_ids)
        pipe.zrem(keys.DLQ_INDEX, *event_ids)
        removed, _ = pipe.execute()
        return int(removed)

    def replay(self, event_ids: list[str], send: Callable[[dict[str, Any]], None]) -> list[str]:
        """Give each event a fresh retry budget and enqueue it again; returns the replayed ids."""
        replayed = []
        for event_id in event_ids:
            entry = self.get(event_id)
            if entry is None:
                continue
            event = entry["event"]
            pipe = self.redis.pipeline(transaction=False)
            write(pipe, event_id, {"state": QUEUED, "charged": 0, "tenant": event.get("tenant", ""),
                                   "replayed_at": time.time()})
            pending(pipe, event, time.time())
            pipe.execute()
            send(event)
            self.remove([event_id])
            replayed.append(event_id)
        return replayed
