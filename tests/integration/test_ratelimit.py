"""Limits: the pool-wide rate limit (two worker processes together stay within it; slots
come from the Redis clock, see test_moves.py) and the per-process cap on calls in flight."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Sandbox, start_worker, stop
from tests.integration.pipeline import start_pipeline, stop_pipeline


def test_a_worker_keeps_at_most_its_in_flight_cap(redis_url: str, sandbox: Sandbox,
                                                  tmp_path: Path) -> None:
    sandbox.configure(latency_ms=150)
    pipeline = start_pipeline(redis_url, sandbox, tmp_path / "worker.log", RELAY_IN_FLIGHT="4")
    try:
        events = [pipeline.send(note=f"capped {i}") for i in range(24)]
        assert set(pipeline.wait_states(events).values()) == {"delivered"}
        assert sandbox.calls(limit=0)["peak_in_flight"] == 4
    finally:
        stop_pipeline(pipeline)


def test_two_workers_deliver_within_the_pool_wide_limit(redis_url: str, sandbox: Sandbox,
                                                       tmp_path: Path) -> None:
    rate, n = 50.0, 150
    pipeline = start_pipeline(redis_url, sandbox, tmp_path / "worker-1.log",
                              RELAY_LOG_LEVEL="debug",
                              RELAY_RATE_LIMIT=str(rate),
                              # a small cap so one worker cannot claim the whole queue at once
                              RELAY_IN_FLIGHT="8", RELAY_BATCH="8")
    second = start_worker(pipeline.env, tmp_path / "worker-2.log", "-n", "second@%h")
    try:
        events = [pipeline.send(note=f"limited {i}") for i in range(n)]
        assert set(pipeline.wait_states(events, timeout=30).values()) == {"delivered"}
        stamps = sorted(c["at"] for c in sandbox.calls()["calls"])
        measured = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        assert abs(measured - rate) <= 0.05 * rate, measured
        for worker in (pipeline.worker, second):  # both took part
            assert "delivered event_id=" in worker.output()
    finally:
        stop(second.proc)
        stop_pipeline(pipeline)
