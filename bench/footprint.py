"""``python -m bench.footprint`` (run by ``make bench``): what each event costs Redis.

On a dedicated embedded valkey (so nothing else shares its counters): bytes of Redis memory
per queued event and per delivered event kept for the dedupe window, and Redis CPU and
commands per event over the whole pipeline (enqueue one at a time as a POS does, claim,
call the sandbox at 0 ms, record), read from ``INFO memory``, ``INFO cpu``, ``INFO stats`` and
``INFO commandstats`` before and after. Then the acceptance mode's price: enqueue latency
with and without waiting for a replica (``RELAY_ENQUEUE_REPLICAS=1``), primary and replica on
this machine, measured alternately in the same run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.run import LOGS, TOKEN, events
from producers import Producer
from relay.embedded import start_embedded
from relay.keys import Keys
from relay.settings import StoreSettings
from tests.helpers import start, start_sandbox, stop, wait_until


def snapshot(client: redis.Redis) -> dict[str, float]:
    info: dict[str, Any] = client.info("all")
    stats = {k: v for k, v in info.items() if k.startswith("cmdstat_")}
    scripts = sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    return {"memory": float(info["used_memory"]),
            "cpu": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
            "user_cpu": float(info["used_cpu_user"]),
            "scripts": float(scripts),
            "commands": float(sum(v["calls"] for v in stats.values()))}


def measure(n: int, fsync: str) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="relay-footprint-"))
    server = start_embedded(folder / "valkey")
    url = f"{server.connection_url}/0"
    client = redis.Redis.from_url(url)
    box = start_sandbox(log=LOGS / "footprint-sandbox.log")
    worker = None
    try:
        client.config_set("appendfsync", fsync)
        # The same Redis's cost of the cheapest round trip, in this run: CPU figures are
        # machine-bound (a VM's syscalls can cost ten times a bare host's), ratios are not.
        pinged = snapshot(client)
        for _ in range(n):
            client.ping()
        ping_us = (snapshot(client)["cpu"] - pinged["cpu"]) / n * 1e6
        before = snapshot(client)
        producer = Producer(url, settings=StoreSettings(redis_url=url))
        for fields in events(n, "footprint"):
            producer.record(**fields)
        producer.close()
        queued = snapshot(client)
        LOGS.mkdir(parents=True, exist_ok=True)
        worker = start(["-m", "relay", "worker", "--processes", "1"],
                       env={"RELAY_REDIS_URL": url, "RELAY_SOAP_URL": box.url,
                            "RELAY_SECURITY_TOKEN": TOKEN},
                       log=LOGS / "footprint-worker.log")
        stats = Keys().stats
        wait_until(lambda: int(client.hget(stats, "outcome:delivered") or 0) >= n, 600, 0.2,
                   "every event delivered")
        done = snapshot(client)
        def per_event(name: str, a: dict[str, float], b: dict[str, float]) -> float:
            return (b[name] - a[name]) / n

        return {
            "events": n,
            "bytes_per_queued_event": per_event("memory", before, queued),
            "bytes_per_delivered_event": per_event("memory", before, done),
            "redis_cpu_us_per_event": per_event("cpu", before, done) * 1e6,
            "redis_cpu_us_per_ping": ping_us,
            "event_cost_in_pings": per_event("cpu", before, done) * 1e6 / ping_us,
            "redis_user_cpu_us_per_event": per_event("user_cpu", before, done) * 1e6,
            "enqueue_cpu_us_per_event": per_event("cpu", before, queued) * 1e6,
            "delivery_cpu_us_per_event": per_event("cpu", queued, done) * 1e6,
            "script_calls_per_event": per_event("scripts", before, done),
            "commands_per_event": per_event("commands", before, done),
        }
    finally:
        if worker is not None:
            stop(worker)
        stop(box.proc)
        server.stop()


def measure_wait(n: int) -> dict[str, float]:
    from tests.topology import server

    root = Path(tempfile.mkdtemp(prefix="relay-wait-"))
    primary = server(root, "primary")
    replica = server(root, "replica", f"replicaof 127.0.0.1 {primary.port}")
    try:
        wait_until(lambda: replica.client.info("replication")["master_link_status"] == "up",
                   15, 0.05, "replica in sync")
        url = f"redis://127.0.0.1:{primary.port}/0"
        producers = {r: Producer(url, settings=StoreSettings(redis_url=url), replicas=r)
                     for r in (0, 1)}
        samples: dict[int, list[float]] = {0: [], 1: []}
        for i, fields in enumerate(events(2 * n, "wait")):
            r = i % 2
            began = time.perf_counter()
            producers[r].record(**fields)
            samples[r].append(time.perf_counter() - began)
        out: dict[str, float] = {}
        for r, values in samples.items():
            values.sort()
            name = "wait_1_replica" if r else "no_wait"
            out[f"{name}_p50_ms"] = values[len(values) // 2] * 1000
            out[f"{name}_p99_ms"] = values[int(len(values) * 0.99)] * 1000
        return out
    finally:
        replica.kill()
        primary.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    result: dict[str, float] = {}
    for fsync in ("always", "everysec"):
        figures = measure(args.events, fsync)
        print(f"footprint (appendfsync {fsync}): "
              + "  ".join(f"{k}={v:,.1f}" for k, v in figures.items()))
        result.update({f"{k}_{fsync}": v for k, v in figures.items()})
    wait = measure_wait(min(args.events, 5000))
    print("enqueue:   " + "  ".join(f"{k}={v:.2f}" for k, v in wait.items()))
    result.update(wait)
    out = Path(__file__).parent / "footprint.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
