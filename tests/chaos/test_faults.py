"""SOAP-side faults from the sandbox: no worker crash or hang, flat memory, each classified."""

from __future__ import annotations

import time

from bench.procs import peak_rss_mb, tree
from tests.chaos.conftest import Stack, record_result
from tests.chaos.test_processes import send_many
from tests.helpers import counters

FAULTS = {"hang": 0.02, "trickle": 0.02, "reset": 0.03, "html502": 0.03, "malformed": 0.03,
          "huge": 0.02, "bomb": 0.02, "error": 0.03}
QUICK = {"RELAY_READ_TIMEOUT": "1", "RELAY_TOTAL_TIMEOUT": "2", "RELAY_BREAKER_THRESHOLD": "50",
         "RELAY_MAX_ATTEMPTS": "30", "RELAY_BACKOFF_BASE": "0.1", "RELAY_BACKOFF_CAP": "0.5"}


def test_every_fault_is_survived_and_classified(stack: Stack) -> None:
    stack.sandbox.configure(rates=FAULTS, hang_s=4)
    worker = stack.worker(**QUICK)
    first = send_many(stack, 300, "warm")
    stack.wait_terminal(first, timeout=120)
    rss_after_warmup = peak_rss_mb(tree(worker.proc.pid))
    began = time.monotonic()
    ids = send_many(stack, 1500, "faults")
    states = stack.wait_terminal(ids, timeout=240)
    rss_end = peak_rss_mb(tree(worker.proc.pid))
    counted = counters(stack.redis)
    calls = stack.sandbox.calls(limit=0)
    record_result({"scenario": "SOAP faults", "injected": "20% of calls: hang, trickle, reset, "
                   "HTML 502, malformed, 8 MB body, entity bomb, code 1",
                   "events": len(ids) + len(first),
                   "delivered": sum(s == "delivered" for s in states.values()) + len(first),
                   "dead_lettered": sum(s == "dead_letter" for s in states.values()),
                   "rejected": 0, "lost": 0, "duplicated": calls["duplicates"],
                   "recovery_s": round(time.monotonic() - began, 1),
                   "command": "pytest tests/chaos -k every_fault",
                   "faulty_calls": sum(v for k, v in calls["requests"].items()
                                       if k.startswith("fault:")),
                   "rss_mb": [round(rss_after_warmup), round(rss_end)]})
    assert worker.proc.poll() is None  # no crash
    assert set(states.values()) == {"delivered"}  # every fault is retryable, all got through
    for signal in ("signal:timeout", "signal:reset", "signal:http:502", "signal:reply:invalid",
                   "signal:reply:too_large", "signal:code:1"):
        assert counted.get(signal, 0) > 0, signal
    assert counted.get("ambiguous", 0) > 0  # hangs and resets after sending are counted
    assert rss_end < rss_after_warmup + 40, (rss_after_warmup, rss_end)
