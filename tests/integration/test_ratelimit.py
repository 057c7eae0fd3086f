"""Limits: the Redis rate limiter shared by a pool (two processes together stay within it),
and the per-process cap on calls in flight."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.helpers import ROOT, Sandbox, start_worker, stop
from tests.integration.pipeline import start_pipeline, stop_pipeline

CHILD = """
import sys, time, redis
from worker.ratelimit import RateLimiter
limiter = RateLimiter(redis.Redis.from_url(sys.argv[1]), float(sys.argv[2]))
start = float(sys.argv[4])
time.sleep(max(0.0, start - time.time()))
end = start + float(sys.argv[3])
n = 0
while time.time() < end:
    wait = limiter.reserve(["acme"])[0]
    time.sleep(abs(wait))
    if wait >= 0 and time.time() < end:  # a slot taken and reached in time
        n += 1
print(n)
"""


def test_two_processes_share_one_limit(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    rate, seconds = 200.0, 3.0
    start = time.time() + 1.5  # both begin together, after their imports
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, redis_url, str(rate), str(seconds),
                               str(start)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    counts = [int(p.communicate(timeout=30)[0]) for p in procs]
    total = sum(counts)
    assert abs(total - rate * seconds) <= 0.05 * rate * seconds, counts
    assert min(counts) > 0.3 * total  # both really took part


def test_limiter_says_how_long_to_wait(redis_url: str) -> None:
    from worker.ratelimit import RateLimiter

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    limiter = RateLimiter(client, per_second=2, burst=1)
    assert limiter.reserve(["t"], horizon=0) == [0.0]
    wait = limiter.reserve(["t"], horizon=0)[0]
    assert -0.5 <= wait < -0.3  # not taken: the next slot is that far off
    time.sleep(-wait)
    assert limiter.reserve(["t"], horizon=0) == [0.0]
    assert limiter.reserve(["other"], horizon=0) == [0.0]  # per tenant


def test_a_batch_reserves_consecutive_slots_up_to_the_horizon(redis_url: str) -> None:
    from worker.ratelimit import RateLimiter

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    limiter = RateLimiter(client, per_second=10, burst=1, horizon=0.25)
    waits = limiter.reserve(["t", "t", "t", "t", "u"])
    assert waits[0] == 0 and 0.09 < waits[1] < 0.11 and 0.19 < waits[2] < 0.21
    assert -0.06 < waits[3] < -0.04  # 0.3 s off: not taken; ask again in 0.05 s
    assert waits[4] == 0  # another tenant's slots are its own
    assert 0.28 < limiter.reserve(["t"], horizon=1.0)[0] < 0.31  # the refused one took nothing


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
                              RELAY_RATE_LIMIT=str(rate))
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
