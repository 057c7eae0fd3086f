"""Pool-wide picture for ``relay status``, ``relay dev`` and metrics: counters, depths, circuits."""

from __future__ import annotations

from typing import Any

import redis

from producers import keys
from worker import stats
from worker.circuit import Circuit
from worker.deadletter import DeadLetters
from worker.schedule import Schedule
from worker.settings import BreakerSettings

QUEUE_KEY = keys.PREFIX + keys.QUEUE  # kombu's list, under our global key prefix
UNACKED_KEY = keys.PREFIX + "unacked"


def overview(client: redis.Redis) -> dict[str, Any]:
    counters = stats.snapshot(client)
    circuit = Circuit(client, BreakerSettings())
    return {
        "queue_depth": int(client.llen(QUEUE_KEY)),
        "unacked": int(client.hlen(UNACKED_KEY)),
        "scheduled": Schedule(client).size(),
        "dead_letters": DeadLetters(client).size(),
        "outcomes": stats.outcomes(counters),
        "counters": counters,
        "circuits": [circuit.state(t) for t in circuit.tenants_with_incidents()],
    }


def one_line(view: dict[str, Any]) -> str:
    o = view["outcomes"]
    circuits = ",".join(f"{c['tenant']}={c['state']}" for c in view["circuits"]) or "all closed"
    return (f"queue={view['queue_depth']} in-flight={view['unacked']} "
            f"scheduled={view['scheduled']} dlq={view['dead_letters']} | "
            f"delivered={o.get('delivered', 0)} retry={o.get('retry', 0)} "
            f"dead_letter={o.get('dead_letter', 0)} rejected={o.get('rejected', 0)} "
            f"systemic={o.get('systemic', 0)} | circuits: {circuits}")
