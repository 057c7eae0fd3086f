"""What the relay assumes of its Redis, checked rather than hoped: read by the worker at
start-up and by ``relay check``.

- ``maxmemory-policy`` must be ``noeviction``. An ``allkeys-*`` policy can evict queued events;
  a ``volatile-*`` one evicts the dedupe window's outcomes (they carry TTLs) first, so
  duplicates slip through silently. Under ``noeviction`` a full Redis refuses writes, which
  the relay rides out without losing anything.
- Persistence decides what a host crash can lose of events already acknowledged to
  producers: AOF with ``appendfsync always`` nothing, ``everysec`` about a second, RDB alone
  everything since the last snapshot, neither everything. That is a warning, not a refusal:
  the operator may accept it (or accept only after a replica has the event, see
  ``RELAY_ENQUEUE_REPLICAS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

SAFE_POLICY = "noeviction"


@dataclass(frozen=True)
class Finding:
    """One checked assumption: ``level`` is ok, warn (deliveries work, at a stated risk) or
    fail (the relay must not run on this)."""

    name: str
    level: str
    detail: str


def findings(client: Any) -> list[Finding]:
    """Every assumption checked on every primary the client reaches."""
    memory = _per_node(client.info("memory"))
    persistence = _per_node(client.info("persistence"))
    out = [_policy(str(info.get("maxmemory_policy", "unknown"))) for info in memory]
    for info in persistence:
        out.append(_persistence(info, _config(client, "appendfsync"), _config(client, "save")))
    return out


def _policy(policy: str) -> Finding:
    if policy == SAFE_POLICY:
        return Finding("redis: eviction", "ok", "maxmemory-policy noeviction: nothing is evicted; "
                       "a full Redis refuses writes and the relay waits")
    return Finding("redis: eviction", "fail",
                   f"maxmemory-policy is {policy}: Redis may evict queued events or the dedupe "
                   f"window; set maxmemory-policy noeviction (CONFIG SET maxmemory-policy "
                   f"noeviction, or in the server's config)")


def _persistence(info: dict[str, Any], appendfsync: str | None, save: str | None) -> Finding:
    if int(info.get("aof_enabled", 0)):
        if appendfsync == "always":
            return Finding("redis: persistence", "ok",
                           "AOF with appendfsync always: an accepted event survives a crash")
        return Finding("redis: persistence", "warn",
                       f"AOF with appendfsync {appendfsync or 'unknown (CONFIG not allowed)'}: a "
                       "host crash can lose about the last second of accepted events; set "
                       "appendfsync always, or RELAY_ENQUEUE_REPLICAS=1 with a replica")
    if save:
        return Finding("redis: persistence", "warn",
                       f"RDB snapshots only (save {save!r}): a crash loses every event accepted "
                       "since the last snapshot; enable AOF (appendonly yes, appendfsync always)")
    return Finding("redis: persistence", "warn",
                   "no persistence (no AOF, no RDB): a restart loses every queued event; enable "
                   "AOF (appendonly yes, appendfsync always)")


def _config(client: Any, name: str) -> str | None:
    """A CONFIG value, or None where managed Redis forbids CONFIG."""
    try:
        raw = client.config_get(name)
    except redis.RedisError:
        return None
    values = _per_node(raw)
    value = values[0].get(name) if values else None
    return value.decode() if isinstance(value, bytes) else value


def _per_node(result: Any) -> list[dict[str, Any]]:
    """A cluster client answers per node ({node: result}); a single server just the result."""
    if isinstance(result, dict) and result and all(isinstance(v, dict)
                                                   for v in result.values()):
        return list(result.values())
    return [result]
