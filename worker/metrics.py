"""Per-process worker metrics: ``GET /metrics`` on ``RELAY_METRICS_PORT`` + the process's index.

The pool-wide figures live in Redis and the API serves them (``producers.prometheus``); what
only a process knows (its calls, their outcomes and latency, what it holds now) is served by
that process, one port each (``relay worker --processes 3`` with port 9200 serves 9200, 9201
and 9202), so ``sum()`` across targets is the pool's figure. The consumer counts into plain
ints on its event loop (no lock on the hot path); the collector copies them at scrape time from
the HTTP server's thread. Off unless ``RELAY_METRICS_PORT`` is set.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from relay.exposition import plain_integers

log = logging.getLogger("relay.worker")
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Tally:
    """What this process did since it started: SOAP calls (with their latency) and the
    outcomes it recorded, by outcome and signal (a bounded set: unknown codes share
    ``code:other``)."""

    calls: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS) + 1))
    latency_sum: float = 0.0
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)

    def call(self, seconds: float) -> None:
        self.calls += 1
        self.latency[bisect_left(BOUNDS, seconds)] += 1
        self.latency_sum += seconds

    def outcome(self, outcome: str, signal: str) -> None:
        key = (outcome, signal)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


class WorkerCollector:
    """This process's figures; ``read`` returns the consumer's (figures, tally), or None
    before the consumer started."""

    def __init__(self, read: Callable[[], tuple[dict[str, Any], Tally] | None]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        found = self.read()
        figures, tally = found if found else ({}, Tally())
        yield _single(CounterMetricFamily, "relay_worker_calls",
                      "RecordInteraction calls this process made.", tally.calls)
        outcomes = CounterMetricFamily("relay_worker_outcomes", "Outcomes this process "
                                       "recorded, by signal (return code or error).",
                                       labels=["outcome", "signal"])
        for (outcome, signal), n in sorted(dict(tally.outcomes).items()):
            outcomes.add_metric([outcome, signal], n)
        yield outcomes
        buckets, cumulative = [], 0
        for bound, n in zip((*(str(b) for b in BOUNDS), "+Inf"), list(tally.latency),
                            strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        latency = HistogramMetricFamily("relay_worker_call_seconds",
                                        "RecordInteraction call latency in this process.")
        latency.add_metric([], buckets, tally.latency_sum)
        yield latency
        yield _single(GaugeMetricFamily, "relay_worker_in_flight",
                      "SOAP calls in flight in this process now.", figures.get("in_flight", 0))
        yield _single(GaugeMetricFamily, "relay_worker_held",
                      "Events this process holds a lease on now.", figures.get("held", 0))
        for name, key, text in (
                ("relay_worker_claimed", "claimed", "Events this process claimed."),
                ("relay_worker_stale_outcomes", "stale",
                 "Outcomes not recorded: another worker had taken the lease over."),
                ("relay_worker_leases_lost", "lost",
                 "Calls dropped because their lease lapsed and was taken over."),
                ("relay_worker_redis_errors", "redis_errors",
                 "Redis refusals this process retried.")):
            yield _single(CounterMetricFamily, name, text, figures.get(key, 0))


def serve(host: str, port: int, read: Callable[[], tuple[dict[str, Any], Tally] | None]
          ) -> Callable[[], None] | None:
    """Serve this process's metrics; returns how to stop serving. A port already taken is
    logged, not fatal: metrics never stop deliveries."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(read))
    registry.register(ProcessCollector(registry=None))
    try:
        server = make_server(host, port, _whole_numbers(make_wsgi_app(registry)),
                             _ThreadingServer, handler_class=_QuietHandler)
    except OSError as exc:
        log.warning("worker metrics not served: cannot listen on %s:%d (%s)", host, port,
                    exc.strerror or type(exc).__name__)
        return None
    threading.Thread(target=server.serve_forever, name="relay-metrics", daemon=True).start()
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    return server.shutdown


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


def _whole_numbers(app: Any) -> Any:
    """The WSGI app with whole numbers written out (``relay.exposition``)."""

    def wrapped(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return [plain_integers(b"".join(app(environ, start_response)))]

    return wrapped


def _single(kind: Any, name: str, text: str, value: float) -> Metric:
    metric: Metric = kind(name, text, value=value)
    return metric
