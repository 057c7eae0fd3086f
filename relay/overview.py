"""Pool-wide picture for ``relay status``, ``relay dev``, the HTTP API and ``/metrics``.

Reads what the worker writes (counters, schedule, dead letters, circuits) straight from Redis,
so operator tools need nothing from the worker side.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from relay import keys

QUEUE_KEY = keys.PREFIX + keys.QUEUE  # kombu's list, under our global key prefix
UNACKED_KEY = keys.PREFIX + "unacked"


def counters(client: redis.Redis) -> dict[str, float]:
    raw = client.hgetall(keys.STATS)
    return {_text(k): float(v) for k, v in raw.items()}


def circuits(client: redis.Redis) -> list[dict[str, Any]]:
    found = []
    for key in client.scan_iter(match=keys.circuit("*", "incident"), count=500):
        tenant = _text(key).removeprefix(keys.PREFIX + "circuit:").removesuffix(":incident")
        raw = client.get(keys.circuit(tenant, "incident"))
        if raw is None:
            continue
        ttl = int(client.pttl(keys.circuit(tenant, "open")))
        found.append({"tenant": tenant, "state": "open" if ttl > 0 else "half-open",
                      "retry_in_s": max(0, ttl) / 1000, **json.loads(raw)})
    return sorted(found, key=lambda c: str(c["tenant"]))


def overview(client: redis.Redis) -> dict[str, Any]:
    pipe = client.pipeline(transaction=False)
    pipe.llen(keys.INBOX)
    pipe.llen(QUEUE_KEY)
    pipe.zcard(keys.LEASES)
    pipe.hlen(UNACKED_KEY)
    pipe.zcard(keys.SCHEDULE)
    pipe.hlen(keys.DLQ)
    inbox, celery_depth, leased, unacked, scheduled, dead = pipe.execute()
    depth, unacked = int(inbox) + int(celery_depth), int(leased) + int(unacked)
    stats = counters(client)
    return {
        "queue_depth": int(depth), "unacked": int(unacked), "scheduled": int(scheduled),
        "dead_letters": int(dead),
        "outcomes": {k.removeprefix("outcome:"): int(v) for k, v in stats.items()
                     if k.startswith("outcome:")},
        "counters": stats,
        "circuits": circuits(client),
    }


def one_line(view: dict[str, Any]) -> str:
    o = view["outcomes"]
    state = ",".join(f"{c['tenant']}={c['state']}" for c in view["circuits"]) or "all closed"
    return (f"queue={view['queue_depth']} in-flight={view['unacked']} "
            f"scheduled={view['scheduled']} dlq={view['dead_letters']} | "
            f"delivered={o.get('delivered', 0)} retry={o.get('retry', 0)} "
            f"dead_letter={o.get('dead_letter', 0)} rejected={o.get('rejected', 0)} "
            f"systemic={o.get('systemic', 0)} | circuits: {state}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
