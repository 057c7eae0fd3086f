"""Admission of one delivery attempt, in one Redis round trip.

Skips an event already finished (the worker-side half of dedupe), holds it back while its
tenant's circuit is open (without spending an attempt), and otherwise counts the attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from producers import keys
from producers.status import STATUS_TTL_S
from worker.circuit import circuit_keys

# KEYS: event, incident, open, probe. ARGV: now, probe_ttl_ms, status_ttl, tenant
_ADMIT = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'delivered' or state == 'rejected' or state == 'dead_letter' then
  return {'skip', state}
end
local probe = 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  local ttl = redis.call('PTTL', KEYS[3])
  if ttl > 0 then return {'wait', tostring(ttl)} end
  if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[2]) then return {'wait', ARGV[2]} end
  probe = 1
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local charged = redis.call('HINCRBY', KEYS[1], 'charged', 1)
local created = redis.call('HGET', KEYS[1], 'created_at')
if not created then
  created = ARGV[1]
  redis.call('HSET', KEYS[1], 'created_at', created, 'tenant', ARGV[4])
end
redis.call('HSETNX', KEYS[1], 'first_attempt_at', ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'in_flight', 'updated_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {'go', attempts, charged, created, probe}
"""


@dataclass(frozen=True, slots=True)
class Admission:
    verdict: str  # "go", "wait" or "skip"
    attempts: int = 0
    charged: int = 0
    created_at: float = 0.0
    probe: bool = False
    wait_s: float = 0.0
    state: str = ""


class Admitter:
    def __init__(self, client: redis.Redis, probe_ttl_s: float) -> None:
        self._admit = client.register_script(_ADMIT)
        self.probe_ttl_ms = int(probe_ttl_s * 1000)

    def admit(self, event_id: str, tenant: str) -> Admission:
        _, incident, open_, probe = circuit_keys(tenant)
        result = self._admit(keys=[keys.event(event_id), incident, open_, probe],
                             args=[time.time(), self.probe_ttl_ms, STATUS_TTL_S, tenant])
        verdict = _text(result[0])
        if verdict == "skip":
            return Admission("skip", state=_text(result[1]))
        if verdict == "wait":
            return Admission("wait", wait_s=int(result[1]) / 1000)
        return Admission("go", attempts=int(result[1]), charged=int(result[2]),
                         created_at=float(result[3]), probe=bool(result[4]))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
