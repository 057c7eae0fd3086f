"""The delivery core under the failures it must hold against, with real processes: Redis out
of memory mid-flight, a frozen worker past its lease, operators racing replays, a worker
whose clock is wrong. Each test adds its row to docs/RELIABILITY.md's table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from relay import status
from relay.settings import StoreSettings
from tests import helpers
from tests.chaos.conftest import KEYS, Stack, record_result
from tests.chaos.test_processes import send_many
from tests.helpers import ROOT, wait_until


def counters(stack: Stack) -> dict[str, int]:
    return helpers.counters(stack.redis)


def records(stack: Stack, ids: list[str]) -> dict[str, Any]:
    """Each event's status as a caller sees it (state, InteractionId, history)."""
    client, store = stack.redis, StoreSettings()
    return {i: status.read(client, store, "default", i) for i in ids}


def row(stack: Stack, ids: list[str], scenario: str, injected: str, recovery_s: float,
        command: str, **extra: Any) -> dict[str, Any]:
    states = stack.states(ids)
    calls = stack.sandbox.calls(limit=0)
    data = {"scenario": scenario, "injected": injected, "events": len(ids),
            "delivered": sum(s == "delivered" for s in states.values()),
            "dead_lettered": sum(s == "dead_letter" for s in states.values()),
            "rejected": sum(s == "rejected" for s in states.values()),
            "lost": sum(s not in ("delivered", "dead_letter", "rejected")
                        for s in states.values()),
            "duplicated": calls["duplicates"], "recovery_s": round(recovery_s, 1),
            "command": command, **extra}
    record_result(data)
    return data


def send(stack: Stack, n: int, tag: str, **fields: str) -> list[str]:
    producer = stack.producer()
    try:
        return [producer.record(**{"account_id": str(100000 + i), "location": "STORE-001",
                                   "interaction_type": "VISIT", "note": f"{tag}-{i}", **fields})
                for i in range(n)]
    finally:
        producer.close()


def test_redis_out_of_memory_with_calls_in_flight(stack: Stack) -> None:
    """maxmemory set below used memory while 80 calls are out: their outcomes are refused,
    kept in memory and retried (leases kept alive); lifted, every one lands, none twice."""
    stack.sandbox.configure(latency_ms=1500)
    stack.worker(RELAY_IN_FLIGHT="100")
    dead = send(stack, 50, "oom-503", location="STORE-404")
    good = send(stack, 20, "oom-ok")
    inactive = send(stack, 10, "oom-301", account_id="9000001")
    ids = dead + good + inactive
    wait_until(lambda: stack.redis.zcard(KEYS.held) == 80, 20, 0.05, "80 events held")
    client = stack.redis
    try:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) // 2))
        full_at = time.monotonic()
        wait_until(lambda: stack.sandbox.calls(limit=0)["count"] >= 20, 20, 0.1,
                   "the calls answered")
        time.sleep(3)  # the outcomes meet a full Redis, more than once
        assert set(stack.states(ids).values()) == {"held"}  # none lost, none half-written
        assert client.zcard(KEYS.held) == 80
    finally:
        client.config_set("maxmemory", "0")
    lifted_at = time.monotonic()
    states = stack.wait_terminal(ids, timeout=60)
    data = row(stack, ids, "Redis out of memory", "maxmemory below used memory (noeviction) "
               "with 80 calls in flight for ~5 s, then lifted", time.monotonic() - lifted_at,
               "pytest tests/chaos -k out_of_memory", full_for_s=round(lifted_at - full_at, 1))
    assert [states[i] for i in dead] == ["dead_letter"] * 50
    assert [states[i] for i in good] == ["delivered"] * 20
    assert [states[i] for i in inactive] == ["rejected"] * 10
    assert data["lost"] == 0 and data["duplicated"] == 0
    assert client.zcard(KEYS.held) == 0 and client.zcard(KEYS.due) == 0  # nothing stuck
    assert client.zcard(KEYS.dlq) == 50


def test_a_frozen_worker_changes_no_terminal_state(stack: Stack) -> None:
    """Worker A is SIGSTOPped with 30 calls out, past its lease; B takes over and delivers
    all 30; A resumes: its late answers are counted as stale and change nothing."""
    stack.sandbox.configure(latency_ms=1500)  # within the 2 s read timeout
    a = stack.worker(RELAY_IN_FLIGHT="30")
    ids = send(stack, 30, "frozen")
    wait_until(lambda: stack.redis.zcard(KEYS.held) == 30, 20, 0.05, "A holds 30")
    time.sleep(0.5)  # A's calls are out
    os.killpg(a.proc.pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    try:
        stack.worker()
        stack.wait_terminal(ids, timeout=60)
        snapshot = records(stack, ids)
        recovered = time.monotonic() - paused_at
    finally:
        os.killpg(a.proc.pid, signal.SIGCONT)
    wait_until(lambda: counters(stack).get("stale", 0) + a.output().count("taken over") >= 30,
               20, 0.1, "A to learn it lost its leases")
    time.sleep(2)  # and anything else A might still write
    data = row(stack, ids, "worker frozen past its lease", "SIGSTOP with 30 calls out (1.5 s "
               "each), lease 5 s; another worker takes over; then SIGCONT", recovered,
               "pytest tests/chaos -k frozen")
    assert records(stack, ids) == snapshot  # not one terminal outcome moved
    assert all(r is not None and r["interaction_id"] > 0 for r in snapshot.values())
    assert set(stack.states(ids).values()) == {"delivered"}
    assert data["lost"] == 0 and int(data["duplicated"]) <= 30  # only A's calls out at the pause
    assert stack.redis.zcard(KEYS.due) == 0 and stack.redis.zcard(KEYS.held) == 0
    assert a.proc.poll() is None


def test_two_concurrent_replays_deliver_each_event_once(stack: Stack) -> None:
    stack.worker()
    stack.worker()
    ids = send(stack, 300, "replay", location="MALL-9")
    assert set(stack.wait_terminal(ids, timeout=60).values()) == {"dead_letter"}
    stack.sandbox.seed(add={"locations": ["MALL-9"]})
    env = {**os.environ, **stack.env}
    started = time.monotonic()
    replays = [subprocess.Popen([sys.executable, "-m", "relay", "dlq", "replay", "--all",
                                 "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in replays]
    states = stack.wait_terminal(ids, timeout=60)
    data = row(stack, ids, "concurrent dead-letter replays", "two `relay dlq replay --all` at "
               "once, two workers", time.monotonic() - started,
               "pytest tests/chaos -k concurrent_replays")
    import json

    moved = [len(json.loads(o)["replayed"]) for o in outputs]
    assert sum(moved) == 300  # each event replayed by exactly one of them
    assert set(states.values()) == {"delivered"}
    calls = stack.sandbox.calls(limit=0)
    assert calls["count"] == 300 and data["duplicated"] == 0


SHIM = """
import time

_time, _time_ns = time.time, time.time_ns
time.time = lambda: _time() + {skew}
time.time_ns = lambda: _time_ns() + {skew} * 1_000_000_000
"""


def test_a_worker_whose_clock_runs_5_minutes_fast(stack: Stack, tmp_path: Path) -> None:
    """Leases, due times and rate slots come from Redis: a fast clock steals nothing and
    takes no more than its share of the pool-wide rate."""
    shim = tmp_path / "fast-clock"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM.format(skew=300))
    rate, n = 50.0, 250
    # a small cap each, so that neither worker can claim the whole queue at once
    cap = {"RELAY_IN_FLIGHT": "8", "RELAY_BATCH": "8"}
    normal = stack.worker(RELAY_RATE_LIMIT=str(rate), RELAY_LOG_LEVEL="debug", **cap)
    fast = stack.worker(RELAY_RATE_LIMIT=str(rate), PYTHONPATH=str(shim),
                        RELAY_LOG_LEVEL="debug", **cap)
    stamp = fast.output().splitlines()[-1][:19]  # the shim took: its log runs 5 min ahead
    skew = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) - time.time()
    assert 280 < skew < 320, fast.output()[-300:]
    started = time.monotonic()
    ids = send_many(stack, n, "skew")
    stack.wait_terminal(ids, timeout=60)
    stamps = sorted(c["at"] for c in stack.sandbox.calls()["calls"])
    measured = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    c = counters(stack)
    data = row(stack, ids, "worker clock 5 min fast", "one of two workers with time.time() "
               "+300 s, pool rate limit 50/s", time.monotonic() - started,
               "pytest tests/chaos -k clock", rate=round(measured, 1),
               stolen_leases=c.get("leases_expired", 0), stale=c.get("stale", 0))
    assert abs(measured - rate) <= 0.05 * rate, measured
    assert c.get("leases_expired", 0) == 0 and c.get("stale", 0) == 0  # nothing stolen
    assert data["lost"] == 0 and data["duplicated"] == 0
    for worker in (normal, fast):  # both took part
        assert "delivered event_id=" in worker.output()


def calls_per_note(stack: Stack) -> dict[str, int]:
    """How many calls the service recorded for each event (by its note)."""
    counts: dict[str, int] = {}
    for call in stack.sandbox.calls()["calls"]:
        counts[call["note"]] = counts.get(call["note"], 0) + 1
    return counts


def test_a_service_that_commits_then_answers_late(stack: Stack) -> None:
    """Every call is recorded by the service and answered after the client's read timeout:
    each may have been recorded, probes included, so each event is sent at most its budget
    (4) times and then dead-lettered; the circuit's probes do not escape it."""
    stack.sandbox.configure(latency_ms=1000)
    stack.worker(RELAY_READ_TIMEOUT="0.5", RELAY_TOTAL_TIMEOUT="1",
                 RELAY_BREAKER_THRESHOLD="2", RELAY_BREAKER_COOLDOWN="0.3",
                 RELAY_BREAKER_MAX_COOLDOWN="0.6")
    started = time.monotonic()
    ids = send(stack, 3, "late")
    states = stack.wait_terminal(ids, timeout=90)
    calls = calls_per_note(stack)
    data = row(stack, ids, "service commits, then answers late", "every call recorded, answered "
               "after the 0.5 s read timeout; circuit threshold 2, cooldown 0.3-0.6 s",
               time.monotonic() - started, "pytest tests/chaos -k answers_late",
               calls_per_event=sorted(calls.values()))
    assert set(states.values()) == {"dead_letter"}
    assert sorted(calls) == [f"late-{i}" for i in range(3)]
    assert all(n <= 4 for n in calls.values()), calls  # never past the budget
    assert counters(stack).get("circuit_opened:default", 0) >= 1  # probes were involved
    assert data["lost"] == 0


def test_one_poison_event_among_slow_traffic(stack: Stack) -> None:
    """One event the service always chokes on (soap:Server) fails again and again: its
    failures alone never open the tenant's circuit, and the others go through on their first
    call, no later than one call behind."""
    stack.sandbox.configure(latency_ms=200, poison_accounts=["7777777"])
    stack.worker(RELAY_BREAKER_THRESHOLD="3", RELAY_MAX_ATTEMPTS="6")
    started = time.monotonic()
    poison = send(stack, 1, "poison", account_id="7777777")
    good: list[str] = []
    sent_at: dict[str, float] = {}
    for wave in range(5):  # traffic keeps coming while the poison event retries
        sent_at.update({f"good{wave}-{i}": time.time() for i in range(10)})
        good += send(stack, 10, f"good{wave}")
        time.sleep(0.4)
    states = stack.wait_terminal(poison + good, timeout=60)
    calls = [c for c in stack.sandbox.calls()["calls"] if c["note"] in sent_at]
    # each good event's one recorded call, from the moment it was sent (the service answers
    # 200 ms after recording it)
    waits = [c["at"] - sent_at[c["note"]] for c in calls]
    data = row(stack, poison + good, "one poison event among slow traffic", "one account "
               "always answered with soap:Server; 50 others at 200 ms", time.monotonic() - started,
               "pytest tests/chaos -k poison", slowest_good_s=round(max(waits), 2))
    assert states[poison[0]] == "dead_letter"
    assert {states[i] for i in good} == {"delivered"}
    assert sorted(calls_per_note(stack)[n] for n in sent_at) == [1] * 50  # first call each
    assert counters(stack).get("circuit_opened:default", 0) == 0
    assert max(waits) < 0.2 + 0.6  # at most one call's wait behind, and slack
    assert data["lost"] == 0 and data["duplicated"] == 0
