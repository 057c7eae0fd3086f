"""Enqueue latency and throughput of the blocking ``Producer`` against the ``AsyncProducer``
(and the HTTP API, which awaits the AsyncProducer), against the same Redis in one run.

Modes, each over ``--events`` fresh events (new ``event_id`` each, so every call creates a
record and queues it):

- ``sync``: one caller, ``Producer.record`` in a loop (a POS till or a WSGI worker thread).
- ``sync threads xC``: ``--concurrency`` threads sharing one Producer (a threaded web server,
  or what the HTTP API did before: the blocking producer in the loop's thread pool).
- ``async x1``: one coroutine awaiting ``AsyncProducer.record`` in a loop: the same one-at-a-time
  shape, on redis.asyncio.
- ``async xC``: ``--concurrency`` coroutines sharing one AsyncProducer (an aiohttp or FastAPI
  app under load); latency then includes waiting for a pooled connection.
- ``http xC``: a ``relay api`` process, ``--concurrency`` keep-alive clients (aiohttp) posting
  ``/v1/interactions``; latency is the client's, request to 202.

Modes alternate within a run and ``--runs`` repeats them; the report is the median with
[min-max] across runs. p50/p99 are per call, wall clock; CPU is the calling process's
(for ``http``, the client's, not the API's).

``.venv/bin/python -m bench.producers [--events 5000] [--runs 5] [--concurrency 32] [--db 14]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import redis

from producers import AsyncProducer, Producer
from tests.helpers import ROOT, free_port, port_open, start, stop, wait_until

KEY = "bench-key"


def fields(n: int, tag: str) -> list[dict[str, str]]:
    return [{"account_id": str(100000 + i), "location": f"STORE-{1 + i % 50:03d}",
             "interaction_type": "VISIT", "note": f"{tag}-{i}", "event_id": f"{tag}-{i}"}
            for i in range(n)]


def summary(samples: list[float], elapsed: float, cpu: float) -> dict[str, float]:
    samples.sort()
    n = len(samples)
    return {"per_s": n / elapsed, "p50_ms": samples[n // 2] * 1000,
            "p99_ms": samples[int(n * 0.99)] * 1000, "cpu_us": cpu / n * 1e6}


def run_sync(url: str, n: int, tag: str) -> dict[str, float]:
    producer = Producer(url)
    producer.record(**fields(1, f"{tag}-warm")[0])  # the first call pays connection set-up
    samples = []
    began, cpu = time.perf_counter(), time.process_time()
    for item in fields(n, tag):
        t = time.perf_counter()
        producer.record(**item)
        samples.append(time.perf_counter() - t)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    producer.close()
    return summary(samples, elapsed, cpu)


def run_threads(url: str, n: int, tag: str, concurrency: int) -> dict[str, float]:
    producer = Producer(url)
    items = fields(n, tag)

    def timed(item: dict[str, str]) -> float:
        t = time.perf_counter()
        producer.record(**item)
        return time.perf_counter() - t

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, fields(concurrency, f"{tag}-warm")))
        began, cpu = time.perf_counter(), time.process_time()
        samples = list(pool.map(timed, items))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    producer.close()
    return summary(samples, elapsed, cpu)


async def _concurrently(calls: list[Callable[[], Awaitable[Any]]], concurrency: int
                        ) -> dict[str, float]:
    samples: list[float] = []
    queue = iter(calls)

    async def lane() -> None:
        for call in queue:  # lanes share one iterator: each call is made once
            t = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - t)

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return summary(samples, time.perf_counter() - began, time.process_time() - cpu)


async def run_async(url: str, n: int, tag: str, concurrency: int) -> dict[str, float]:
    producer = AsyncProducer(url)
    await asyncio.gather(*(producer.record(**f) for f in fields(concurrency, f"{tag}-warm")))
    try:
        return await _concurrently(
            [lambda f=f: producer.record(**f) for f in fields(n, tag)],  # type: ignore[misc]
            concurrency)
    finally:
        await producer.close()


async def run_http(base: str, n: int, tag: str, concurrency: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as session:
        async def post(body: dict[str, str]) -> None:
            async with session.post("/v1/interactions", json=body) as r:
                if r.status != 202:
                    raise RuntimeError(f"API answered {r.status}: {await r.text()}")

        await asyncio.gather(*(post(f) for f in fields(concurrency, f"{tag}-warm")))
        return await _concurrently([lambda f=f: post(f)  # type: ignore[misc]
                                    for f in fields(n, tag)], concurrency)


def spread(values: list[float], fmt: str) -> str:
    mid = statistics.median(values)
    if len(values) == 1:
        return format(mid, fmt)
    return f"{mid:{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--db", type=int, default=14, help="database of the Redis at 6379")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP API mode")
    args = parser.parse_args(argv)
    url = f"redis://127.0.0.1:6379/{args.db}"
    client = redis.Redis.from_url(url)
    client.ping()
    api = None
    if not args.no_http:
        port = free_port()
        (ROOT / "bench" / "logs").mkdir(exist_ok=True)
        api = start(["-m", "relay", "api", "--host", "127.0.0.1", "--port", str(port)],
                    env={"RELAY_REDIS_URL": url, "RELAY_API_KEYS": KEY},
                    log=ROOT / "bench" / "logs" / "producers-api.log")
        wait_until(lambda: port_open(port) or api.poll() is not None, 20, message="api")
    modes: dict[str, Callable[[str], dict[str, float]]] = {
        "sync": lambda tag: run_sync(url, args.events, tag),
        f"sync threads x{args.concurrency}": lambda tag: run_threads(url, args.events, tag,
                                                                     args.concurrency),
        "async x1": lambda tag: asyncio.run(run_async(url, args.events, tag, 1)),
        f"async x{args.concurrency}": lambda tag: asyncio.run(
            run_async(url, args.events, tag, args.concurrency)),
    }
    if api is not None:
        modes[f"http x{args.concurrency}"] = lambda tag: asyncio.run(
            run_http(f"http://127.0.0.1:{port}", args.events, tag, args.concurrency))
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    try:
        for run in range(args.runs):
            for index, (mode, measure) in enumerate(modes.items()):
                client.flushdb()
                results[mode].append(measure(f"r{run}m{index}"))
                r = results[mode][-1]
                print(f"run {run + 1} {mode}: {r['per_s']:,.0f}/s p50 {r['p50_ms']:.3f} ms "
                      f"p99 {r['p99_ms']:.3f} ms, {r['cpu_us']:.0f} us CPU/event", flush=True)
    finally:
        if api is not None:
            stop(api)
        client.flushdb()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{args.runs} run(s) of {args.events} events; median [min-max]; "
          f"{os.cpu_count()} cores, load average {load} at the end")
    print("| producer | enqueues/s | p50 ms | p99 ms | caller CPU us/event |")
    print("|---|---|---|---|---|")
    for mode, runs in results.items():
        print(f"| {mode} | {spread([r['per_s'] for r in runs], ',.0f')} | "
              f"{spread([r['p50_ms'] for r in runs], '.3f')} | "
              f"{spread([r['p99_ms'] for r in runs], '.3f')} | "
              f"{spread([r['cpu_us'] for r in runs], '.0f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
