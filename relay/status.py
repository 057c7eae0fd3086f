"""Per-event status records (design.md section 5): what a caller or operator can look up.

A record is created when an event is accepted (which is also the dedupe check), updated by the
worker at every attempt, and expires ``STATUS_TTL_S`` after its last change.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from relay import keys

STATUS_TTL_S = 7 * 24 * 3600
HISTORY_MAX = 50

# States an event can be in; terminal ones are never delivered again.
QUEUED, IN_FLIGHT, WAITING, DELIVERED, REJECTED, DEAD_LETTER = (
    "queued", "in_flight", "waiting", "delivered", "rejected", "dead_letter")
TERMINAL = frozenset({DELIVERED, REJECTED, DEAD_LETTER})

# Create the record only if none exists: one round trip is dedupe, bookkeeping and outbox.
# KEYS: record, pending, pending events. ARGV: ttl, event id, now, message, fields...
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
return 1
"""


class StatusStore:
    """Reads and writes status records; the one place that knows their layout."""

    def __init__(self, client: redis.Redis, ttl: int = STATUS_TTL_S) -> None:
        self.redis = client
        self.ttl = ttl
        self._create = client.register_script(_CREATE)

    def create(self, message: dict[str, Any], now: float | None = None) -> bool:
        """Record a newly accepted event; False when the ``event_id`` is already known."""
        now = time.time() if now is None else now
        event_id = message["event_id"]
        fields: list[Any] = ["state", QUEUED, "tenant", message.get("tenant", ""), "attempts", 0,
                             "charged", 0, "created_at", now, "updated_at", now]
        return bool(self._create(keys=[keys.event(event_id), keys.PENDING, keys.PENDING_EVENTS],
                                 args=[self.ttl, event_id, now, json.dumps(message), *fields]))

    def forget(self, event_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(keys.event(event_id))
        finished(pipe, event_id)
        pipe.execute()

    def get(self, event_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(keys.event(event_id))
        if not raw:
            return None
        record: dict[str, Any] = {_text(k): _text(v) for k, v in raw.items()}
        for name in ("attempts", "charged", "last_code", "interaction_id"):
            if record.get(name, "") not in ("", None):
                record[name] = int(record[name])
        history = self.redis.lrange(keys.event(event_id) + ":history", 0, -1)
        record["history"] = [json.loads(h) for h in history]
        record["event_id"] = event_id
        return record


def write(pipe: Any, event_id: str, fields: dict[str, Any]) -> None:
    """Queue an update of a status record on ``pipe`` (so it rides with other writes)."""
    key = keys.event(event_id)
    pipe.hset(key, mapping={**{k: _flat(v) for k, v in fields.items()},
                            "updated_at": time.time()})
    pipe.expire(key, STATUS_TTL_S)


def finished(pipe: Any, *event_ids: str) -> None:
    """Queue the removal of events from the outbox (they ended, or were never sent)."""
    if event_ids:
        pipe.zrem(keys.PENDING, *event_ids)
        pipe.hdel(keys.PENDING_EVENTS, *event_ids)


def pending(pipe: Any, message: dict[str, Any], now: float) -> None:
    """Queue (re)adding an event to the outbox, e.g. when a dead letter is replayed."""
    pipe.zadd(keys.PENDING, {message["event_id"]: now})
    pipe.hset(keys.PENDING_EVENTS, message["event_id"], json.dumps(message))


def append_history(pipe: Any, event_id: str, entry: dict[str, Any]) -> None:
    """Queue one attempt's entry on the event's bounded history list."""
    key = keys.event(event_id) + ":history"
    pipe.rpush(key, json.dumps(entry))
    pipe.ltrim(key, -HISTORY_MAX, -1)
    pipe.expire(key, STATUS_TTL_S)


def _flat(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return value
    return json.dumps(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
