"""Per-tenant circuit breaker, kept in Redis so the whole pool sees one state.

closed: no ``incident`` key. open: ``incident`` and ``open`` (a key whose TTL is the cooldown);
events wait without spending attempts. half-open: ``open`` expired; the first worker to take
``probe`` sends one event, the rest keep waiting. A success closes the incident; a failure
re-opens it with a doubled cooldown. Only the call that *creates* an incident alerts, so an
outage of hours raises one alert, not one per event or per probe.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from relay import keys
from worker.settings import BreakerSettings

FAIL_WINDOW_S = 60

# KEYS: fails, incident, open, probe, stats.
# ARGV: threshold, cooldown, max_cooldown, force, reason, now, failure window, tenant
# Returns 1 when this call opened a new incident, 0 otherwise.
_FAILURE = """
local incident = redis.call('GET', KEYS[2])
local fails = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[7])
if not incident and ARGV[4] == '0' and fails < tonumber(ARGV[1]) then return 0 end
local cooldown = tonumber(ARGV[2])
local opened_new = 1
local record = {reason = ARGV[5], opened_at = tonumber(ARGV[6]), cooldown = cooldown,
                reopenings = 0}
if incident then
  record = cjson.decode(incident)
  opened_new = 0
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  record.cooldown = math.min(tonumber(ARGV[3]), record.cooldown * 2)
  record.reopenings = record.reopenings + 1
  record.reason = ARGV[5]
end
redis.call('SET', KEYS[2], cjson.encode(record))
redis.call('SET', KEYS[3], ARGV[5], 'PX', math.floor(record.cooldown * 1000))
redis.call('DEL', KEYS[4])
if opened_new == 1 then
  redis.call('HINCRBY', KEYS[5], 'circuit_opened', 1)
  redis.call('HINCRBY', KEYS[5], 'circuit_opened:' .. ARGV[8], 1)
end
return opened_new
"""


def circuit_keys(tenant: str) -> list[str]:
    return [keys.circuit(tenant, p) for p in ("fails", "incident", "open", "probe")]


class Circuit:
    def __init__(self, client: redis.Redis, settings: BreakerSettings) -> None:
        self.redis = client
        self.settings = settings
        self._failure = client.register_script(_FAILURE)

    def failure(self, tenant: str, reason: str, force: bool = False) -> bool:
        """Count a failure (``force``: open now); True when this opened a new incident."""
        s = self.settings
        return bool(self._failure(keys=[*circuit_keys(tenant), keys.STATS],
                                  args=[s.threshold, s.cooldown, s.max_cooldown,
                                        1 if force else 0, reason[:200], time.time(),
                                        FAIL_WINDOW_S, tenant]))

    @staticmethod
    def success(pipe: Any, tenant: str) -> None:
        """Queue the reset on a pipeline: a success ends any failure run and incident."""
        fails, incident, open_, probe = circuit_keys(tenant)
        pipe.delete(fails, incident, open_, probe)
