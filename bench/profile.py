"""``python -m bench.profile``: where one worker process spends its CPU under load.

Runs one ``relay worker --processes 1`` against the sandbox (default 100 ms latency, a backlog
queued first), samples it with py-spy (``pip install py-spy``; it reads the process from
outside, so the worker runs unmodified) while it delivers, and sorts every sampled stack into
one category by the innermost frame that names one: SOAP encode, SOAP parse, HTTP client
(aiohttp and the asyncio transport under it), Redis round trips (redis-py), our own
bookkeeping (consumer, planner, moves), Celery, and the event loop itself.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
from pathlib import Path

import redis

from bench.run import LOGS, TOKEN, events, redis_url
from producers import Producer
from relay.events import Interaction
from tests.helpers import start, start_sandbox, stop, wait_until

# (category, substrings of a frame "function (file:line)"), first match from the innermost
CATEGORIES = [
    ("SOAP encode", ("worker/soap.py:build_request", "render (worker/soap.py",
                     "build_request (worker/soap.py", "_text (worker/soap.py")),
    ("SOAP parse", ("xmltodict", "parse_reply", "parse_fault", "expat")),
    ("HTTP client", ("aiohttp", "yarl", "multidict", "http/cookies", "selector_events",
                     "ssl", "streams.py")),
    ("Redis round trips", ("redis/",)),
    ("our bookkeeping", ("worker/consumer.py", "worker/plan.py", "worker/moves.py",
                         "worker/policy.py", "relay/", "worker/client.py",
                         "worker/transport.py")),
    ("Celery/kombu", ("celery/", "kombu/", "billiard/", "vine/")),
    ("event loop", ("asyncio/",)),
]


def categorise(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "other (interpreter, GC, threads)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    LOGS.mkdir(exist_ok=True)
    url, server = redis_url()
    box = start_sandbox("--latency-ms", str(args.latency_ms), log=LOGS / "profile-sandbox.log")
    worker = None
    try:
        redis.Redis.from_url(url).flushdb()
        producer = Producer(url)
        backlog = [Interaction.create(**f) for f in events(args.events, "prof")]
        for i in range(0, args.events, 500):
            producer.enqueue_many(backlog[i:i + 500])
        producer.close()
        log = LOGS / "profile-worker.log"
        log.write_text("")
        worker = start(["-m", "relay", "worker", "--processes", "1"], log=log,
                       env={"RELAY_REDIS_URL": url, "RELAY_SOAP_URL": box.url,
                            "RELAY_SECURITY_TOKEN": TOKEN, "RELAY_ALLOW_INSECURE_SOAP": "1"})
        wait_until(lambda: box.calls(limit=0)["count"] > args.events // 10, 120, 0.1, "warm")
        out = Path(LOGS / "profile.txt")
        py_spy = Path(sys.executable).with_name("py-spy")
        subprocess.run([str(py_spy) if py_spy.exists() else "py-spy", "record",
                        "--pid", str(worker.pid), "--duration", str(int(args.seconds)),
                        "--format", "raw", "--rate", "200", "--full-filenames",
                        "--output", str(out), "--nonblocking"], check=True,
                       capture_output=True)
        totals: collections.Counter[str] = collections.Counter()
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            totals[categorise(stack)] += int(count)  # py-spy leaves idle threads out
        all_samples = sum(totals.values())
        print(f"{all_samples} samples of the worker's busy threads "
              f"({args.latency_ms:g} ms latency, {args.seconds:g} s):")
        for name, n in totals.most_common():
            print(f"  {name:<34} {n / all_samples:6.1%}")
    finally:
        if worker is not None:
            stop(worker)
        stop(box.proc)
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
