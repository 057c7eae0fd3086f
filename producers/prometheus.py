"""``/metrics``: the pool-wide figures as Prometheus metrics (design.md section 5).

A custom collector over one ``relay.overview`` read per scrape (the figures ``relay status``
shows, from the same script), encoded by ``prometheus_client``: exact values, the text format
(``version=0.0.4``) by default and OpenMetrics when the scraper's Accept header asks for it.

Every series here carries ``scope="pool"``: it describes the whole pool, not this process, so
each API replica serves the same values. Aggregate with ``max()`` (or ``avg()``) across
replicas, never ``sum()``. Per-process figures come from each worker (``worker.metrics``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from relay.exposition import plain_integers

# The latency buckets complete.lua counts into (its LABELS), in seconds.
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
           "30.0", "+Inf")

# Per-tenant counters kept in the stats hash as ``<field>:<tenant>`` (bounded: the enqueue
# script refuses tenants outside the configured set).
TENANT_COUNTERS = {
    "accepted": ("relay_accepted", "Events accepted onto the queue (first enqueue only)."),
    "dead_lettered": ("relay_dead_lettered",
                      "Events moved to the dead-letter store (a dead-letter outcome)."),
    "replayed": ("relay_dead_letters_replayed",
                 "Dead letters replayed by an operator (back on the queue)."),
    "purged": ("relay_dead_letters_purged", "Dead letters purged by an operator."),
    "circuit_opened": ("relay_circuit_openings", "Circuit incidents opened."),
    "circuit_closed": ("relay_circuit_closings", "Circuits closed again after an incident."),
}
# Pool counters kept as one field each.
PLAIN_COUNTERS = {
    "ambiguous": ("relay_ambiguous",
                  "Attempts that may have been recorded remotely without a reply (timeouts, "
                  "resets)."),
    "stale": ("relay_stale_outcomes",
              "Late outcomes ignored because another worker held the event (possible "
              "duplicates)."),
    "leases_expired": ("relay_leases_expired",
                       "Leases that lapsed (a worker died or froze); their events went back."),
    "released": ("relay_released", "Events given back unattempted by stopping workers."),
}


class PoolCollector:
    """The metric families of one overview (``relay.overview.overview``) plus the
    dead-letter cap, if any. Build one per scrape: it holds that scrape's figures."""

    def __init__(self, view: Mapping[str, Any], dead_letter_cap: int = 0) -> None:
        self.view, self.cap = view, dead_letter_cap

    def collect(self) -> Iterator[Metric]:
        view, counters = self.view, self.view["counters"]
        yield from self._outcomes(counters)
        # Every tenant that ever had an event gets each counter, at 0 until it moves: a series
        # that appears at 1 would be missed by increase() (it needs two samples).
        tenants = {tenant for tenant, _ in _by_prefix(counters, "accepted:")}
        for field, (name, text) in TENANT_COUNTERS.items():
            family = CounterMetricFamily(name, text, labels=["scope", "tenant"])
            values = {tenant: 0.0 for tenant in tenants} | dict(_by_prefix(counters, field + ":"))
            for tenant, value in sorted(values.items()):
                family.add_metric(["pool", tenant], value)
            yield family
        for field, (name, text) in PLAIN_COUNTERS.items():
            yield _counter(name, text, counters.get(field, 0))
        dropped = CounterMetricFamily(
            "relay_dead_letters_dropped",
            "Dead letters dropped past RELAY_DLQ_MAX (reason=cap) or RELAY_DLQ_MAX_AGE "
            "(reason=age).", labels=["scope", "reason"])
        dropped.add_metric(["pool", "cap"], counters.get("dead_letters_dropped", 0))
        dropped.add_metric(["pool", "age"], counters.get("dead_letters_expired", 0))
        yield dropped
        yield from self._gauges(view)
        yield _latency(counters)

    def _outcomes(self, counters: Mapping[str, float]) -> Iterator[Metric]:
        outcomes = CounterMetricFamily("relay_outcomes", "Recorded attempts by outcome and "
                                       "tenant.", labels=["scope", "tenant", "outcome"])
        for rest, value in _by_prefix(counters, "tenant:"):
            tenant, _, outcome = rest.rpartition(":")
            outcomes.add_metric(["pool", tenant, outcome], value)
        yield outcomes
        signals = CounterMetricFamily("relay_signals", "Attempts by signal (return code or "
                                      "error).", labels=["scope", "signal"])
        for signal, value in _by_prefix(counters, "signal:"):
            signals.add_metric(["pool", signal], value)
        yield signals

    def _gauges(self, view: Mapping[str, Any]) -> Iterator[Metric]:
        for name, key, text in (
                ("relay_queue_depth", "due_now", "Events due now, waiting for a worker."),
                ("relay_held", "held", "Events leased by workers (calls in flight or starting)."),
                ("relay_retry_scheduled", "scheduled",
                 "Events waiting for a later due time (retries)."),
                ("relay_parked", "parked", "Events waiting for their tenant's circuit to close."),
                ("relay_dead_letters", "dead_letters", "Events in the dead-letter store.")):
            yield _gauge(name, text, view[key])
        circuits = GaugeMetricFamily("relay_circuit_open", "1 while a tenant's circuit is open "
                                     "or half-open.", labels=["scope", "tenant"])
        for circuit in view["circuits"]:
            circuits.add_metric(["pool", str(circuit["tenant"])], 1)
        yield circuits
        if self.cap:
            yield _gauge("relay_dead_letters_cap", "RELAY_DLQ_MAX: the dead-letter store's cap.",
                         self.cap)


def exposition(view: Mapping[str, Any], dead_letter_cap: int = 0,
               accept: str = "") -> tuple[bytes, str]:
    """The body and content type of one scrape, in the format the Accept header asks for."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PoolCollector(view, dead_letter_cap))
    encode, content_type = choose_encoder(accept)
    return plain_integers(encode(registry)), content_type


def _by_prefix(counters: Mapping[str, float], prefix: str) -> list[tuple[str, float]]:
    return sorted((k.removeprefix(prefix), v) for k, v in counters.items()
                  if k.startswith(prefix))


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=["scope"])
    family.add_metric(["pool"], value)
    return family


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=["scope"])
    family.add_metric(["pool"], value)
    return family


def _latency(counters: Mapping[str, float]) -> HistogramMetricFamily:
    cumulative, buckets = 0.0, []
    for bound in BUCKETS:
        cumulative += counters.get(f"latency_le:{bound}", 0)
        buckets.append((bound, cumulative))
    family = HistogramMetricFamily("relay_soap_latency_seconds",
                                   "RecordInteraction call latency, every worker.",
                                   labels=["scope"])
    family.add_metric(["pool"], buckets, counters.get("latency_sum", 0))
    return family
