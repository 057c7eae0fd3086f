"""The delivery inbox: events in a Redis list, claimed in batches under a lease.

Celery's Redis consumer pays several synchronous round trips and its request machinery for
every message (about 1.5 ms of CPU on one thread, measured): the wall of the per-task path.
Here one Lua call claims up to N events and leases them (a sorted set of deadlines plus the
payloads); a finished event's lease is dropped in the same pipeline as others'. A worker that
dies leaves its leases to expire, and any worker's sweep puts them back at the head of the
inbox: the same at-least-once contract as ``acks_late`` with a visibility timeout, and no
window in which a popped message is recorded nowhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import redis

from relay import keys

# KEYS: inbox, leases, lease payloads. ARGV: max count, deadline. Returns {lease ids, items}:
# an item's lease id is its event_id, or the item itself when it has none (it is refused, and
# its lease dropped, like any other).
_CLAIM = """
local items = redis.call('RPOP', KEYS[1], ARGV[1])
if not items then return {{}, {}} end
local ids = {}
for i, raw in ipairs(items) do
  local ok, message = pcall(cjson.decode, raw)
  local id = raw
  if ok and type(message) == 'table' and type(message['event_id']) == 'string'
     and message['event_id'] ~= '' then
    id = message['event_id']
  end
  ids[i] = id
  redis.call('ZADD', KEYS[2], ARGV[2], id)
  redis.call('HSET', KEYS[3], id, raw)
end
return {ids, items}
"""
# KEYS: inbox, leases, lease payloads. ARGV: the event ids to put back at the head of the
# inbox, or '*due', now, max count for every lease past its deadline.
_RETURN = """
local ids = ARGV
if ARGV[1] == '*due' then
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
end
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[3], id)
  if raw then redis.call('RPUSH', KEYS[1], raw) end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
return #ids
"""


class Inbox:
    def __init__(self, client: redis.Redis, lease_s: float) -> None:
        self.redis = client
        self.lease_s = lease_s
        self._claim = client.register_script(_CLAIM)
        self._return = client.register_script(_RETURN)

    def claim(self, count: int) -> list[tuple[bytes, Any]]:
        """Up to ``count`` messages, each with the id its lease is kept under."""
        ids, items = self._claim(keys=[keys.INBOX, keys.LEASES, keys.LEASE_EVENTS],
                                 args=[count, time.time() + self.lease_s])
        claimed: list[tuple[bytes, Any]] = []
        for lease_id, item in zip(ids, items, strict=True):
            try:
                message = json.loads(item)
            except ValueError:
                message = {"raw": item.decode("utf-8", "replace")}
            claimed.append((lease_id, message))
        return claimed

    def release(self, pipe: Any, lease_ids: Sequence[bytes | str]) -> None:
        """Queue dropping the leases of finished events on ``pipe``."""
        if lease_ids:
            pipe.zrem(keys.LEASES, *lease_ids)
            pipe.hdel(keys.LEASE_EVENTS, *lease_ids)

    def give_back(self, event_ids: Sequence[bytes | str]) -> None:
        """Return leased events to the head of the inbox now (graceful shutdown)."""
        if event_ids:
            self._return(keys=[keys.INBOX, keys.LEASES, keys.LEASE_EVENTS], args=list(event_ids))

    def expire(self, limit: int = 500) -> int:
        """Put every lease past its deadline back in the inbox (its worker died)."""
        return int(self._return(keys=[keys.INBOX, keys.LEASES, keys.LEASE_EVENTS],
                                args=["*due", time.time(), limit]))
