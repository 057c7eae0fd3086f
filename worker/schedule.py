"""The retry schedule: waiting events live in Redis, not in Celery ETAs.

Celery's Redis transport re-delivers an unacked message after ``visibility_timeout``, so a
countdown longer than that would run twice. Instead a waiting event sits in a sorted set of due
times; every worker runs a mover that claims due events and puts them back on the queue.

A claim does not delete: it pushes the due time ``LEASE_S`` ahead, so an event claimed by a
mover that dies before publishing comes due again. ``done`` removes it only if that lease is
still the one we took, so a fast worker's new schedule for the same event is never erased.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from relay import keys

log = logging.getLogger("relay.schedule")
LEASE_S = 60.0

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #ids == 0 then return {} end
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids))}
"""
_DONE = """
local n = 0
for _, id in ipairs(ARGV) do
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) == tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], id); redis.call('HDEL', KEYS[2], id); n = n + 1
  end
end
return n
"""


def add(pipe: Any, message: dict[str, Any], due: float) -> None:
    """Queue the write on a pipeline, with the outcome's other writes."""
    pipe.hset(keys.SCHEDULE_EVENTS, message["event_id"], json.dumps(message))
    pipe.zadd(keys.SCHEDULE, {message["event_id"]: due})


class Schedule:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._done = client.register_script(_DONE)

    def size(self) -> int:
        return int(self.redis.zcard(keys.SCHEDULE))

    def move_due(self, send: Callable[[dict[str, Any]], None], limit: int = 500) -> int:
        """Publish every due event once; returns how many were moved."""
        lease = repr(time.time() + LEASE_S)
        claimed = self._claim(keys=[keys.SCHEDULE, keys.SCHEDULE_EVENTS],
                              args=[time.time(), limit, lease])
        if not claimed:
            return 0
        ids, payloads = claimed
        sent = []
        for event_id, payload in zip(ids, payloads, strict=True):
            if payload is None:  # payload gone (purged): drop the orphan index entry
                self.redis.zrem(keys.SCHEDULE, event_id)
                continue
            send(json.loads(payload))
            sent.append(event_id)
        if sent:
            self._done(keys=[keys.SCHEDULE, keys.SCHEDULE_EVENTS], args=[lease, *sent])
        return len(sent)


class Mover(threading.Thread):
    """Background thread in each worker process: move due events back to the queue."""

    def __init__(self, schedule: Schedule, send: Callable[[dict[str, Any]], None],
                 interval: float, chores: list[tuple[float, Callable[[], Any]]] | None = None
                 ) -> None:
        super().__init__(name="relay-schedule-mover", daemon=True)
        self.schedule, self.send, self.interval = schedule, send, interval
        self.chores = [(every, fn, [0.0]) for every, fn in chores or []]  # (period, fn, last)
        self.stopping = threading.Event()

    def _chores(self) -> None:
        now = time.monotonic()
        for every, fn, last in self.chores:
            if now - last[0] >= every:
                last[0] = now
                fn()

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                moved = self.schedule.move_due(self.send)
                self._chores()
            except Exception as exc:  # Redis away for a moment: back off, try again
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    log.warning("schedule mover cannot reach Redis (%s); retrying",
                                type(exc).__name__)
                self.stopping.wait(min(5.0, self.interval * 2 ** min(failures, 5)))
                continue
            failures = 0
            if moved == 0:
                self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
