"""``make soak``: many events through the real pipeline with 1% injected faults.

Every event must end delivered (the faults are all retryable), none lost, and the worker's
memory must stay flat: its resident memory is sampled every second and reported at each
tenth of the events finished. Not part of CI (it takes minutes); figures go to
docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import redis

from bench.procs import peak_rss_mb, rss_mb, tree
from bench.run import LOGS, TOKEN, events, redis_url
from producers import Producer
from relay.keys import Keys
from tests.helpers import start, start_sandbox, stop, wait_until

FAULT_KINDS = ("reset", "html502", "malformed", "hang", "error")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--fault-rate", type=float, default=0.01,
                        help="share of calls that fail, spread over reset, HTML 502, "
                             "malformed XML, hang and code 1")
    args = parser.parse_args()
    LOGS.mkdir(exist_ok=True)
    url, server = redis_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    box = start_sandbox(log=LOGS / "soak-sandbox.log")
    box.configure(rates={k: args.fault_rate / len(FAULT_KINDS) for k in FAULT_KINDS}, hang_s=3)
    log = LOGS / "soak-worker.log"
    log.write_text("")
    worker = start(["-m", "relay", "worker", "--processes", "1"], log=log, env={
        "RELAY_REDIS_URL": url, "RELAY_SOAP_URL": box.url, "RELAY_SECURITY_TOKEN": TOKEN,
        "RELAY_READ_TIMEOUT": "1", "RELAY_TOTAL_TIMEOUT": "2", "RELAY_BACKOFF_BASE": "0.2",
        "RELAY_BACKOFF_CAP": "2", "RELAY_MAX_ATTEMPTS": "30", "RELAY_BREAKER_THRESHOLD": "20"})
    began = time.monotonic()
    try:
        wait_until(lambda: "relay worker ready" in log.read_text(), 60)
        rss_by_tenth: dict[int, float] = {}

        def sample() -> None:
            while len(rss_by_tenth) < 10:
                tenth = min(10, finished_count(client) * 10 // args.events)
                if tenth and tenth not in rss_by_tenth:
                    rss_by_tenth[tenth] = round(rss_mb(tree(worker.pid)), 1)
                time.sleep(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        producer = Producer(url)
        for fields in events(args.events, "soak"):
            producer.record(**fields)
        wait_until(lambda: finished_count(client) >= args.events, 3600, 1.0,
                   "every event finished")
        sampler.join(5)
        rss_samples = [rss_by_tenth.get(t) for t in range(1, 11)]
        stats = counters(client)
        calls = box.calls(limit=0)
        result = {"events": args.events, "delivered": int(stats.get("outcome:delivered", 0)),
                  "dead_lettered": int(stats.get("outcome:dead_letter", 0)),
                  "rejected": int(stats.get("outcome:rejected", 0)),
                  "accepted_by_sandbox": calls["count"], "duplicates": calls["duplicates"],
                  "faulty_calls": sum(v for k, v in calls["requests"].items()
                                      if k.startswith("fault:")),
                  "retries": int(stats.get("outcome:retry", 0)),
                  "worker_rss_mb_at_each_tenth": rss_samples,
                  "worker_peak_rss_mb": round(peak_rss_mb(tree(worker.pid)), 1),
                  "seconds": round(time.monotonic() - began, 1)}
        result["lost"] = args.events - result["delivered"] - result["dead_lettered"] - \
            result["rejected"]
        print(json.dumps(result, indent=2))
        return 0 if result["lost"] == 0 else 1
    finally:
        stop(worker)
        stop(box.proc)
        if server is not None:
            server.stop()


def counters(client: redis.Redis) -> dict[str, float]:
    raw: dict[bytes, bytes] = client.hgetall(Keys().stats)  # type: ignore[assignment]
    return {k.decode(): float(v) for k, v in raw.items()}


def finished_count(client: redis.Redis) -> int:
    stats = counters(client)
    return int(sum(stats.get(f"outcome:{o}", 0) for o in ("delivered", "dead_letter",
                                                          "rejected")))


if __name__ == "__main__":
    sys.exit(main())
