"""Pool-wide counters in one Redis hash: per outcome, per signal (code) and per tenant."""

from __future__ import annotations

from typing import Any

import redis

from producers import keys


def count(pipe: Any, outcome: str, tenant: str, signal: str | None = None) -> None:
    """Queue the increments on ``pipe`` (a pipeline), so they ride with the outcome's write."""
    pipe.hincrby(keys.STATS, f"outcome:{outcome}", 1)
    pipe.hincrby(keys.STATS, f"tenant:{tenant}:{outcome}", 1)
    if signal:
        pipe.hincrby(keys.STATS, f"signal:{signal}", 1)


def snapshot(client: redis.Redis) -> dict[str, int]:
    raw = client.hgetall(keys.STATS)
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}


def outcomes(counters: dict[str, int]) -> dict[str, int]:
    return {k.removeprefix("outcome:"): v for k, v in counters.items()
            if k.startswith("outcome:")}
