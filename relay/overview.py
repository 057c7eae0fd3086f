"""Pool-wide picture for ``relay status``, ``relay dev``, the HTTP API and ``/metrics``.

One read-only script returns every figure in one round trip (no SCAN anywhere: circuits and
parked events are indexed), so operator tools need nothing from the worker side.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from relay.keys import Keys
from relay.scripts import register
from relay.status import iso


def overview(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    script = register(client)["overview"]
    now, waiting, ready, held, dead, parked, raw_circuits, raw_stats = script(
        keys=[keys.due, keys.held, keys.dlq, keys.circuits, keys.parked, keys.stats],
        args=[keys.prefix])
    stats = {_text(k): float(v) for k, v in _pairs(raw_stats)}
    circuits = []
    for tenant, raw in _pairs(raw_circuits):
        c = json.loads(raw)
        half_open = now >= c["open_until"]
        circuits.append({"tenant": _text(tenant), "state": "half-open" if half_open else "open",
                         "reason": c["reason"], "since": iso(c["since"]),
                         "next_probe_in_s": max(0, c["open_until"] - now) / 1000,
                         "reopenings": c["reopenings"], "probe_in_flight": bool(c["probe"])})
    return {
        "now": iso(now),
        "waiting": int(waiting), "due_now": int(ready), "scheduled": int(waiting) - int(ready),
        "parked": int(parked), "held": int(held), "dead_letters": int(dead),
        "outcomes": {k.removeprefix("outcome:"): int(v) for k, v in stats.items()
                     if k.startswith("outcome:")},
        "counters": stats,
        "circuits": sorted(circuits, key=lambda c: str(c["tenant"])),
    }


def by_signal(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Attempts per signal (return code or error) with its meaning, most frequent first: the
    ``signal:*`` counters ``/metrics`` exports as ``relay_signals_total``."""
    from relay.codes import meaning

    rows = [(k.removeprefix("signal:"), int(v)) for k, v in view["counters"].items()
            if k.startswith("signal:")]
    return [{"signal": s, "meaning": meaning(s), "count": n}
            for s, n in sorted(rows, key=lambda r: (-r[1], r[0]))]


def one_line(view: dict[str, Any]) -> str:
    o = view["outcomes"]
    state = ",".join(f"{c['tenant']}={c['state']}" for c in view["circuits"]) or "all closed"
    return (f"waiting={view['due_now']} scheduled={view['scheduled']} parked={view['parked']} "
            f"held={view['held']} dlq={view['dead_letters']} | "
            f"delivered={o.get('delivered', 0)} retry={o.get('retry', 0)} "
            f"dead_letter={o.get('dead_letter', 0)} rejected={o.get('rejected', 0)} "
            f"| circuits: {state}")


def _pairs(flat: list[Any]) -> list[tuple[Any, Any]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def rates(client: Any, keys: Keys, minutes: int = 60) -> list[dict[str, Any]]:
    """Outcomes per minute over the last ``minutes`` (Redis time), oldest first: for charts."""
    from relay.connect import server_ms

    now = server_ms(client) // 60000
    pipe = client.pipeline(transaction=False)
    for m in range(now - minutes + 1, now + 1):
        pipe.hgetall(keys.minute(m))
    out = []
    for m, raw in zip(range(now - minutes + 1, now + 1), pipe.execute(), strict=True):
        counts = {_text(k): int(v) for k, v in raw.items()}
        out.append({"minute": iso(m * 60000), **counts})
    return out
