"""``make bench``: delivered events/s end to end against the sandbox, in one run, for
(a) our worker with its defaults, (b) the naive baseline, (c) the no-queue aiohttp ceiling;
plus enqueue rate and latency, worker CPU per 1,000 events, peak RSS and start-up time.

Rates are steady state: the workers are up before the first event is sent, and the rate is
taken between the 10th and 90th percentile of the sandbox's call timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench.procs import CpuSampler
from producers import Producer
from relay.events import Interaction
from tests.helpers import (
    ROOT,
    Sandbox,
    start,
    start_sandbox,
    stop,
    system_redis_url,
    wait_until,
)
from worker.client import Endpoint, SoapClient
from worker.secret import Secret
from worker.transport import AiohttpTransport

TOKEN = "sandbox-token"  # the sandbox's published test token
LOGS = ROOT / "bench" / "logs"


def events(n: int, tag: str) -> list[dict[str, str]]:
    return [{"account_id": str(100000 + i), "location": f"STORE-{1 + i % 50:03d}",
             "interaction_type": "VISIT", "note": f"{tag}-{i}"} for i in range(n)]


def steady_window(box: Sandbox, n: int, timeout: float) -> tuple[list[float], int, int]:
    """The sorted call timestamps, and the 10th and 90th percentile positions among them."""
    wait_until(lambda: box.calls(limit=0)["count"] >= n, timeout, 0.2, f"{n} deliveries")
    stamps = sorted(c["at"] for c in box.calls(limit=n)["calls"])
    return stamps, int(n * 0.1), int(n * 0.9)


def steady(box: Sandbox, n: int, timeout: float, sampler: CpuSampler | None = None
           ) -> dict[str, float]:
    """Delivered events/s and CPU seconds per 1,000 events, both over the steady window; and
    the CPU per 1,000 over the whole run, start-up included, for comparison."""
    stamps, lo, hi = steady_window(box, n, timeout)
    result = {"events_per_s": (hi - lo) / max(1e-9, stamps[hi] - stamps[lo])}
    if sampler is not None:
        sampler.stop()
        cpu = sampler.cpu_at(stamps[hi]) - sampler.cpu_at(stamps[lo])
        result.update(cpu_s_per_1000=cpu / (hi - lo) * 1000,
                      cpu_s_per_1000_whole_run=sampler.cpu_at(stamps[-1]) / n * 1000,
                      peak_rss_mb=sampler.peak_rss)
    return result


def redis_url() -> tuple[str, Any]:
    url = system_redis_url()
    if url:
        return url.rsplit("/", 1)[0] + "/14", None
    from relay.embedded import start_embedded

    server = start_embedded(Path(os.environ.get("TMPDIR", "/tmp")) / "relay-bench-valkey")
    return server.connection_url + "/14", server


def measure_enqueue(url: str, n: int) -> dict[str, float]:
    redis.Redis.from_url(url).flushdb()
    producer = Producer(url)
    producer.record(**events(1, "warm")[0])  # the first call pays connection set-up
    samples = []
    began = time.perf_counter()
    for fields in events(n, "enq"):
        t = time.perf_counter()
        producer.record(**fields)
        samples.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - began
    samples.sort()
    producer.close()
    return {"enqueues_per_s": n / elapsed, "p50_ms": samples[n // 2] * 1000,
            "p99_ms": samples[int(n * 0.99)] * 1000}


def run_ours(url: str, box: Sandbox, n: int, processes: int, timeout: float,
             **extra_env: str) -> dict[str, float]:
    """The backlog is in the inbox before the workers start, so the producer (on the same two
    cores) does not compete with them and the rate is the workers' own."""
    redis.Redis.from_url(url).flushdb()
    producer = Producer(url)
    for fields in events(n, "ours"):
        producer.record(**fields)
    producer.close()
    env = {"RELAY_REDIS_URL": url, "RELAY_SOAP_URL": box.url, "RELAY_SECURITY_TOKEN": TOKEN,
           **extra_env}
    began = time.monotonic()
    procs = []
    for i in range(processes):
        log = LOGS / f"worker-{i}.log"
        log.write_text("")
        procs.append((start(["-m", "relay", "worker", "--processes", "1", "-n",
                             f"bench{i}@%h"], env=env, log=log), log))
    sampler = CpuSampler([proc.pid for proc, _ in procs])
    sampler.start()
    try:
        wait_until(lambda: all("relay worker ready" in log.read_text() for _, log in procs),
                   60, 0.01, "workers")
        startup = time.monotonic() - began
        result = steady(box, n, timeout, sampler)
    finally:
        sampler.stop()
        for proc, _ in procs:
            stop(proc)
    return {**result, "startup_s": startup}


def run_naive(url: str, box: Sandbox, n: int, timeout: float) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    client.flushdb()
    env = {"NAIVE_BROKER": url, "NAIVE_URL": box.url, "NAIVE_TOKEN": TOKEN}
    os.environ.update(env)
    from bench.naive import app, record

    app.conf.update(broker_url=url)
    for fields in events(n, "naive"):
        record.apply_async(args=(fields,))
    log = LOGS / "naive.log"
    log.write_text("")
    proc = start(["-m", "celery", "-A", "bench.naive", "worker", "-P", "prefork",
                  "--concurrency=2", "-l", "INFO", "-Q", "naive"], env=env, log=log)
    sampler = CpuSampler([proc.pid])
    sampler.start()
    try:
        return steady(box, n, timeout, sampler)
    finally:
        sampler.stop()
        stop(proc)


def run_ceiling(box: Sandbox, n: int) -> dict[str, float]:
    async def go() -> float:
        transport = AiohttpTransport()
        client = SoapClient(transport)
        endpoint = Endpoint(box.url, Secret(TOKEN))
        gate = asyncio.Semaphore(100)
        evs = [Interaction.create(**f) for f in events(n, "ceiling")]

        async def one(event: Interaction) -> None:
            async with gate:
                await client.record_interaction(event, endpoint)

        began = time.process_time()
        await asyncio.gather(*(one(e) for e in evs))
        await transport.close()
        return time.process_time() - began

    cpu = asyncio.run(go())
    return {**steady(box, n, 120), "cpu_s_per_1000": cpu / n * 1000}


def run_rate_limit(url: str, limit: float) -> dict[str, float]:
    """Two worker processes, one tenant, a pool-wide limit well under what they can do."""
    box = start_sandbox("--latency-ms", "0", log=LOGS / "sandbox.log")
    try:
        n = int(limit * 6)
        result = run_ours(url, box, n, 2, 600, RELAY_RATE_LIMIT=str(limit))
    finally:
        stop(box.proc)
    rate = result["events_per_s"]
    return {"limit": limit, "events_per_s": rate, "deviation_pct": (rate / limit - 1) * 100}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--latencies", default="0,50,100,200")
    parser.add_argument("--rate-limit", type=float, default=500.0,
                        help="pool-wide limit (calls/s) checked with two worker processes")
    args = parser.parse_args()
    LOGS.mkdir(exist_ok=True)
    url, server = redis_url()
    results: dict[str, Any] = {"redis": url, "events": args.events, "by_latency": {}}
    try:
        results["enqueue"] = measure_enqueue(url, 5000)
        enq = results["enqueue"]
        print(f"enqueue: {enq['enqueues_per_s']:,.0f}/s  p50 {enq['p50_ms']:.2f} ms  "
              f"p99 {enq['p99_ms']:.2f} ms")
        for latency in (float(x) for x in args.latencies.split(",")):
            box = start_sandbox("--latency-ms", str(latency), log=LOGS / "sandbox.log")
            try:
                row: dict[str, Any] = {}
                # the naive worker manages ~2 calls per latency period: size its run to ~15 s
                naive_n = max(100, min(args.events, int(15 * 2 / (latency / 1000 + 0.003))))
                for name in ("ours", "ours_2proc", "naive", "ceiling"):
                    box.reset()  # clears the record of calls, and the latency with it
                    box.configure(latency_ms=latency)
                    if name == "naive":
                        row[name] = run_naive(url, box, naive_n, 600)
                    elif name == "ceiling":
                        row[name] = run_ceiling(box, args.events)
                    else:
                        row[name] = run_ours(url, box, args.events, 2 if "2" in name else 1, 600)
                    print(f"latency {latency:>5.0f} ms  {name:<11} "
                          + "  ".join(f"{k}={v:,.2f}" for k, v in row[name].items()), flush=True)
                results["by_latency"][str(int(latency))] = row
            finally:
                stop(box.proc)
        if args.rate_limit:
            results["rate_limit"] = run_rate_limit(url, args.rate_limit)
    finally:
        if server is not None:
            server.stop()
    table(results)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2))
    if "rate_limit" in results:
        rl = results["rate_limit"]
        print(f"rate limit: {rl['limit']:,.0f}/s per tenant, 2 processes: {rl['events_per_s']:,.1f}"
              f"/s ({rl['deviation_pct']:+.1f}%)")
    at50 = results["by_latency"].get("50")
    if at50:
        ours = at50["ours"]["events_per_s"]
        print(f"ratios: vs_naive={ours / at50['naive']['events_per_s']:.1f} "
              f"of_ceiling={ours / at50['ceiling']['events_per_s']:.2f}")
    return 0


def table(results: dict[str, Any]) -> None:
    print("\n| latency | ours (1 proc) | ours (2 proc) | naive | ceiling | ours CPU s/1k | "
          "naive CPU s/1k | ours peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for latency, row in results["by_latency"].items():
        print(f"| {latency} ms | {row['ours']['events_per_s']:,.0f}/s | "
              f"{row['ours_2proc']['events_per_s']:,.0f}/s | {row['naive']['events_per_s']:,.0f}/s"
              f" | {row['ceiling']['events_per_s']:,.0f}/s | {row['ours']['cpu_s_per_1000']:.2f} | "
              f"{row['naive']['cpu_s_per_1000']:.2f} | {row['ours']['peak_rss_mb']:.0f} |")
    startup = statistics.mean(r["ours"]["startup_s"] for r in results["by_latency"].values())
    print(f"\nworker start-up (spawn to ready): {startup:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
