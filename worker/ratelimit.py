"""Pool-wide rate limit per tenant (GCRA in Redis).

Celery's own ``rate_limit`` counts per worker instance; a limit the platform imposes applies to
the whole pool, so the state lives in Redis. GCRA keeps one timestamp per tenant: each call
pushes the tenant's "theoretical arrival time" one interval further, and a caller that would be
early is told how long to wait instead.
"""

from __future__ import annotations

import time

import redis

from producers import keys

# KEYS: tat. ARGV: now, interval, burst (calls). Returns seconds to wait (0: go, slot taken).
_ACQUIRE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - interval * tonumber(ARGV[3])
if now < allow_at then return tostring(allow_at - now) end
local ttl_ms = math.ceil((tat + interval - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', ttl_ms)
return '0'
"""


class RateLimiter:
    def __init__(self, client: redis.Redis, per_second: float, burst: float | None = None
                 ) -> None:
        self.interval = 1.0 / per_second
        # A little slack (2% of a second's calls) so callers that wake a moment late, as
        # sleeping threads do, do not lose their slots; it bounds the overshoot just as well.
        burst = max(1.0, per_second / 50) if burst is None else burst
        self.burst = max(0.0, burst - 1)
        self._acquire = client.register_script(_ACQUIRE)

    def try_acquire(self, tenant: str) -> float:
        """Take a slot now (0.0), or say how many seconds until one is free."""
        return float(self._acquire(keys=[keys.rate(tenant)],
                                   args=[time.time(), self.interval, self.burst]))

    def acquire(self, tenant: str, max_wait: float = 60.0) -> bool:
        """Block until a slot is taken (True), or give up after ``max_wait`` (False)."""
        deadline = time.monotonic() + max_wait
        while (wait := self.try_acquire(tenant)) > 0:
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)
        return True
