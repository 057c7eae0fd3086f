"""Admission of delivery attempts: a whole claimed batch in one Redis round trip.

Skips an event already finished (the worker-side half of dedupe), holds it back while its
tenant's circuit is open (without spending an attempt), and otherwise counts the attempt.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from relay import keys
from relay.status import STATUS_TTL_S
from worker.circuit import circuit_keys

# KEYS: per event, its record, incident, open, probe. ARGV: now, probe_ttl_ms, status_ttl,
# then one tenant per event. Returns one list per event.
_ADMIT = """
local out = {}
for i = 1, #KEYS / 4 do
  local record, incident, open, probe = KEYS[4*i-3], KEYS[4*i-2], KEYS[4*i-1], KEYS[4*i]
  local state = redis.call('HGET', record, 'state')
  if state == 'delivered' or state == 'rejected' or state == 'dead_letter' then
    out[i] = {'skip', state}
  else
    local wait, is_probe = nil, 0
    if redis.call('EXISTS', incident) == 1 then
      local ttl = redis.call('PTTL', open)
      if ttl > 0 then wait = tostring(ttl)
      elseif not redis.call('SET', probe, '1', 'NX', 'PX', ARGV[2]) then wait = ARGV[2]
      else is_probe = 1 end
    end
    if wait then
      out[i] = {'wait', wait}
    else
      local attempts = redis.call('HINCRBY', record, 'attempts', 1)
      local charged = redis.call('HINCRBY', record, 'charged', 1)
      local created = redis.call('HGET', record, 'created_at')
      if not created then
        created = ARGV[1]
        redis.call('HSET', record, 'created_at', created, 'tenant', ARGV[3 + i])
      end
      redis.call('HSETNX', record, 'first_attempt_at', ARGV[1])
      redis.call('HSET', record, 'state', 'in_flight', 'updated_at', ARGV[1])
      redis.call('EXPIRE', record, ARGV[3])
      out[i] = {'go', attempts, charged, created, is_probe}
    end
  end
end
return out
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

    def admit(self, events: Sequence[tuple[str, str]]) -> list[Admission]:
        """Admit ``(event_id, tenant)`` pairs in one round trip, in order."""
        if not events:
            return []
        script_keys: list[str] = []
        for event_id, tenant in events:
            _, incident, open_, probe = circuit_keys(tenant)
            script_keys += [keys.event(event_id), incident, open_, probe]
        results = self._admit(keys=script_keys,
                              args=[time.time(), self.probe_ttl_ms, STATUS_TTL_S,
                                    *(tenant for _, tenant in events)])
        return [_admission(r) for r in results]


def _admission(result: list[Any]) -> Admission:
    verdict = _text(result[0])
    if verdict == "skip":
        return Admission("skip", state=_text(result[1]))
    if verdict == "wait":
        return Admission("wait", wait_s=int(result[1]) / 1000)
    return Admission("go", attempts=int(result[1]), charged=int(result[2]),
                     created_at=float(result[3]), probe=bool(result[4]))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
