"""Worker metrics: the tally's buckets, the collector's families, a taken port not fatal."""

from __future__ import annotations

import logging
import socket

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.metrics import Tally, WorkerCollector, serve


def test_latency_lands_in_the_bucket_prometheus_expects() -> None:
    tally = Tally()
    for seconds in (0.005, 0.0051, 0.9, 30.0, 31.0):
        tally.call(seconds)
    tally.outcome("delivered", "code:0")
    tally.outcome("delivered", "code:0")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(lambda: ({"in_flight": 3}, tally)))
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(generate_latest(registry).decode())
             for s in f.samples}
    bucket = "relay_worker_call_seconds_bucket"
    assert found[(bucket, (("le", "0.005"),))] == 1  # le: upper bounds are inclusive
    assert found[(bucket, (("le", "0.01"),))] == 2
    assert found[(bucket, (("le", "1.0"),))] == 3
    assert found[(bucket, (("le", "30.0"),))] == 4
    assert found[(bucket, (("le", "+Inf"),))] == 5
    assert found[("relay_worker_call_seconds_count", ())] == 5
    assert found[("relay_worker_calls_total", ())] == 5
    assert found[("relay_worker_outcomes_total",
                  (("outcome", "delivered"), ("signal", "code:0")))] == 2
    assert found[("relay_worker_in_flight", ())] == 3


def test_no_consumer_yet_serves_zeros() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(lambda: None))
    assert b"relay_worker_calls_total 0.0" in generate_latest(registry)


def test_a_taken_port_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="relay.worker"):
            assert serve("127.0.0.1", port, lambda: None) is None
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text
