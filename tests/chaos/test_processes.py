"""Workers killed or stopped mid-flight, Redis restarted mid-run: nothing accepted is lost."""

from __future__ import annotations

import os
import signal
import time

from tests.chaos.conftest import Stack, record_result
from tests.helpers import stop, wait_until


def send_many(stack: Stack, n: int, tag: str) -> list[str]:
    producer = stack.producer()
    ids = [producer.record(account_id=str(100000 + i), location=f"STORE-{1 + i % 50:03d}",
                           interaction_type="VISIT", note=f"{tag}-{i}") for i in range(n)]
    producer.close()
    return ids


def tally(stack: Stack, ids: list[str], scenario: str, injected: str, recovery_s: float,
          command: str) -> dict[str, object]:
    states = stack.wait_terminal(ids, timeout=90)
    calls = stack.sandbox.calls(limit=0)
    row = {"scenario": scenario, "injected": injected, "events": len(ids),
           "delivered": sum(s == "delivered" for s in states.values()),
           "dead_lettered": sum(s == "dead_letter" for s in states.values()),
           "rejected": sum(s == "rejected" for s in states.values()),
           "lost": len(ids) - len(states), "duplicated": calls["duplicates"],
           "recovery_s": round(recovery_s, 1), "command": command}
    record_result(row)
    return row


def test_kill_9_with_events_in_flight(stack: Stack) -> None:
    stack.sandbox.configure(latency_ms=300)
    worker = stack.worker(RELAY_VISIBILITY_TIMEOUT="5")
    ids = send_many(stack, 300, "kill9")
    wait_until(lambda: stack.sandbox.calls(limit=0)["count"] >= 40, 30, message="some delivered")
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    killed_at = time.monotonic()
    stack.worker(RELAY_VISIBILITY_TIMEOUT="5")
    states = stack.wait_terminal(ids, timeout=90)
    recovery = time.monotonic() - killed_at
    row = tally(stack, ids, "worker kill -9", "SIGKILL with ~100 events in flight",
                recovery, "pytest tests/chaos -k kill_9")
    assert set(states.values()) == {"delivered"}
    assert row["lost"] == 0
    # duplicates are possible (a call answered but not yet recorded); they must be rare
    assert int(row["duplicated"]) <= 100  # type: ignore[call-overload]


def test_sigterm_finishes_or_returns_in_flight_events(stack: Stack) -> None:
    stack.sandbox.configure(latency_ms=300)
    worker = stack.worker()
    ids = send_many(stack, 300, "term")
    wait_until(lambda: stack.sandbox.calls(limit=0)["count"] >= 40, 30, message="some delivered")
    stopped_at = time.monotonic()
    stop(worker.proc, signal.SIGTERM, timeout=60)
    assert worker.proc.returncode == 0
    stack.worker()
    states = stack.wait_terminal(ids, timeout=90)
    row = tally(stack, ids, "graceful shutdown", "SIGTERM mid-run, then a new worker",
                time.monotonic() - stopped_at, "pytest tests/chaos -k sigterm")
    assert set(states.values()) == {"delivered"}
    assert row["duplicated"] == 0


def test_redis_restart_with_aof_loses_nothing(stack: Stack) -> None:
    stack.sandbox.configure(latency_ms=50)
    # A message fetched just as the connection dropped stays in kombu's unacked set until
    # the visibility timeout returns it: keep that short here so the test sees it come back.
    stack.worker(RELAY_VISIBILITY_TIMEOUT="10")
    ids = send_many(stack, 200, "before")
    wait_until(lambda: stack.sandbox.calls(limit=0)["count"] >= 20, 30, message="some delivered")
    stack.valkey.stop()
    down_at = time.monotonic()
    producer = stack.producer()
    refused = 0
    try:
        producer.record(account_id="123456", location="STORE-001", interaction_type="VISIT")
    except Exception:  # EnqueueError: the caller is told at once, nothing half-accepted
        refused += 1
    time.sleep(2)
    stack.valkey.start()
    ids += send_many(stack, 100, "after")
    row = tally(stack, ids, "Redis restart (AOF)", "valkey stopped for 2 s mid-run",
                time.monotonic() - down_at, "pytest tests/chaos -k redis_restart")
    assert refused == 1
    assert row["lost"] == 0 and row["delivered"] == 300
