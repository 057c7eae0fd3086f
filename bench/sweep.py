"""``python -m bench.sweep``: one worker process at several ``RELAY_IN_FLIGHT`` caps, to choose
the default. Same method as ``bench.run`` (backlog first, steady-state window)."""

from __future__ import annotations

import argparse
import sys

from bench.run import LOGS, redis_url, run_ours
from tests.helpers import start_sandbox, stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--latencies", default="0,200")
    parser.add_argument("--in-flight", default="32,64,128,256,512")
    args = parser.parse_args()
    LOGS.mkdir(exist_ok=True)
    url, server = redis_url()
    caps = [int(x) for x in args.in_flight.split(",")]
    print("| latency | RELAY_IN_FLIGHT | events/s | CPU s / 1,000 | peak RSS MB |")
    print("|---|---|---|---|---|")
    try:
        for latency in args.latencies.split(","):
            box = start_sandbox("--latency-ms", latency, log=LOGS / "sandbox.log")
            try:
                for cap in caps:
                    box.reset()
                    box.configure(latency_ms=float(latency))
                    r = run_ours(url, box, args.events, 1, 600, RELAY_IN_FLIGHT=str(cap),
                                 RELAY_POOL_LIMIT=str(max(cap, 100)))
                    print(f"| {latency} ms | {cap} | {r['events_per_s']:,.0f}/s | "
                          f"{r['cpu_s_per_1000']:.2f} | {r['peak_rss_mb']:.0f} |", flush=True)
            finally:
                stop(box.proc)
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
