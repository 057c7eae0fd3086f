"""Pool-wide rate limit per tenant (GCRA in Redis).

Celery's own ``rate_limit`` counts per worker instance; a limit the platform imposes applies to
the whole pool, so the state lives in Redis. GCRA keeps one timestamp per tenant: each call
pushes the tenant's "theoretical arrival time" one interval further. A caller *reserves* the
next free slot and is told how long to wait for it, so a batch of events needs one round trip
and its calls start at their slots without polling; a slot further off than ``horizon`` is not
taken, and the event waits in the retry schedule instead of in memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from relay import keys

# KEYS: one rate key per call (repeats allowed). ARGV: now, interval, burst, horizon.
# Returns one number per call: the seconds until its slot (reserved), or minus the seconds
# until a slot is within the horizon (nothing reserved).
_RESERVE = """
local now, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local slack, horizon = interval * tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local wait = tat - slack - now
  if wait < 0 then wait = 0 end
  if wait > horizon then
    out[i] = tostring(-(wait - horizon))
  else
    local ttl_ms = math.ceil((tat + interval - now) * 1000) + 1000
    redis.call('SET', key, tostring(tat + interval), 'PX', ttl_ms)
    out[i] = tostring(wait)
  end
end
return out
"""


class RateLimiter:
    def __init__(self, client: redis.Redis, per_second: float, burst: float | None = None,
                 horizon: float = 5.0) -> None:
        self.interval = 1.0 / per_second
        # A little slack (2% of a second's calls) so callers that wake a moment late do not
        # lose their slots; it bounds the overshoot just as well.
        burst = max(1.0, per_second / 50) if burst is None else burst
        self.burst = max(0.0, burst - 1)
        self.horizon = horizon
        self._reserve = client.register_script(_RESERVE)

    def reserve(self, tenants: Sequence[str], horizon: float | None = None) -> list[float]:
        """One slot per entry: seconds to wait for it (>= 0, taken), or minus the seconds
        after which to ask again (< 0, not taken)."""
        if not tenants:
            return []
        horizon = self.horizon if horizon is None else horizon
        raw = self._reserve(keys=[keys.rate(t) for t in tenants],
                            args=[time.time(), self.interval, self.burst, horizon])
        return [float(x) for x in raw]
