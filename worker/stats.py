"""Pool-wide counters in one Redis hash (read by ``relay.overview``): per outcome, per signal
(return code or error) and per tenant, plus a SOAP latency histogram.

A batch of outcomes adds up its counts first and writes one increment per counter, so the
counters cost a few commands per batch rather than five per event.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from relay import keys

# Upper bounds (seconds) of the SOAP latency histogram, as Prometheus buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.latency_sum = 0.0

    def count(self, outcome: str, tenant: str, signal: str | None = None) -> None:
        self.counts[f"outcome:{outcome}"] += 1
        self.counts[f"tenant:{tenant}:{outcome}"] += 1
        if signal:
            self.counts[f"signal:{signal}"] += 1

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def latency(self, seconds: float) -> None:
        bucket = next((b for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
        self.counts[f"latency_le:{bucket}"] += 1
        self.latency_sum += seconds

    def flush(self, pipe: Any) -> None:
        """Queue the increments on ``pipe``, so they ride with the outcomes' writes."""
        for name, n in self.counts.items():
            pipe.hincrby(keys.STATS, name, n)
        if self.latency_sum:
            pipe.hincrbyfloat(keys.STATS, "latency_sum", self.latency_sum)
        self.counts.clear()
        self.latency_sum = 0.0
