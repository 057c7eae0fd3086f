"""Pool-wide counters in one Redis hash (read by ``producers.overview``): per outcome, per signal
(return code or error) and per tenant, plus a SOAP latency histogram."""

from __future__ import annotations

from typing import Any

from producers import keys


def count(pipe: Any, outcome: str, tenant: str, signal: str | None = None) -> None:
    """Queue the increments on ``pipe`` (a pipeline), so they ride with the outcome's write."""
    pipe.hincrby(keys.STATS, f"outcome:{outcome}", 1)
    pipe.hincrby(keys.STATS, f"tenant:{tenant}:{outcome}", 1)
    if signal:
        pipe.hincrby(keys.STATS, f"signal:{signal}", 1)



# Upper bounds (seconds) of the SOAP latency histogram, as Prometheus buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def observe_latency(pipe: Any, seconds: float) -> None:
    for bound in LATENCY_BUCKETS:
        if seconds <= bound:
            pipe.hincrby(keys.STATS, f"latency_le:{bound}", 1)
            break
    else:
        pipe.hincrby(keys.STATS, "latency_le:+Inf", 1)
    pipe.hincrbyfloat(keys.STATS, "latency_sum", seconds)
