"""``python -m bench.queue_models``: the two queue models the core could have been built on,
measured on the same embedded valkey in the same run (the choice in docs/DATA_MODEL.md).

(a) this project's: a sorted set of due times plus a held sorted set of lease deadlines, moved
    by scripts (arq's single due-time sorted set, with leases);
(b) a Redis Stream with a consumer group: XADD, XREADGROUP COUNT n, XACK; a lease is the
    pending entry (reclaimed with XAUTOCLAIM by idle time).
Both keep the same per-event record (the dedupe key and the state); both enqueue one event per
call and claim and acknowledge a batch per call. Reported: Redis CPU per event, memory per
queued event. Streams have no due times, so retries with backoff would need a sorted set
beside them, and a fencing token a record write per claim anyway: counted in (b)'s favour by
leaving them out.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, cast

import redis

from relay.embedded import start_embedded

ENQ_ZSET = """
redis.call('HSET', KEYS[1], 's', 'waiting', 'm', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
"""
CLAIM_ZSET = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due == 0 then return 0 end
local leases = {}
for _, m in ipairs(due) do
  redis.call('HSET', 'e:' .. m, 's', 'held')
  leases[#leases + 1] = ARGV[1] + 10000
  leases[#leases + 1] = m
end
redis.call('ZREM', KEYS[1], unpack(due))
redis.call('ZADD', KEYS[2], unpack(leases))
return #due
"""
DONE_ZSET = """
for i = 1, #ARGV do redis.call('DEL', 'e:' .. ARGV[i]) end
redis.call('ZREM', KEYS[1], unpack(ARGV))
"""
ENQ_STREAM = """
redis.call('HSET', KEYS[1], 's', 'waiting', 'm', ARGV[2])
redis.call('XADD', KEYS[2], '*', 'm', ARGV[1])
"""
CLAIM_STREAM = """
local got = redis.call('XREADGROUP', 'GROUP', 'g', 'c1', 'COUNT', ARGV[1], 'STREAMS',
                       KEYS[1], '>')
if not got then return {} end
local ids = {}
for _, entry in ipairs(got[1][2]) do
  redis.call('HSET', 'e:' .. entry[2][2], 's', 'held')
  ids[#ids + 1] = entry[1]
  ids[#ids + 1] = entry[2][2]
end
return ids
"""
DONE_STREAM = """
local ids = {}
for i = 1, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  redis.call('DEL', 'e:' .. ARGV[i + 1])
end
redis.call('XACK', KEYS[1], 'g', unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
"""


def cpu(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def members_of(client: redis.Redis, key: str, count: int) -> list[str]:
    return [m.decode() for m in cast(list[bytes], client.zrange(key, 0, count - 1))]


def run_model(client: redis.Redis, model: str, n: int, batch: int) -> dict[str, float]:
    client.flushdb()
    if model == "stream":
        client.xgroup_create("q", "g", id="0", mkstream=True)
    enq = client.register_script(ENQ_ZSET if model == "zset" else ENQ_STREAM)
    claim = client.register_script(CLAIM_ZSET if model == "zset" else CLAIM_STREAM)
    done = client.register_script(DONE_ZSET if model == "zset" else DONE_STREAM)
    memory0, cpu0 = int(client.info("memory")["used_memory"]), cpu(client)
    for i in range(n):
        member = f"default/pos-{i:08d}"
        enq(keys=[f"e:{member}", "q"], args=[member, '["123456","STORE-001","VISIT",""]', i])
    queued = (int(client.info("memory")["used_memory"]) - memory0) / n
    while True:
        if model == "zset":
            got = claim(keys=["q", "held"], args=[n + 1, batch])
            if not got:
                break
            members = members_of(client, "held", batch)
            done(keys=["held"], args=members)
        else:
            pairs = claim(keys=["q"], args=[batch])
            if not pairs:
                break
            done(keys=["q"], args=[p.decode() for p in pairs])
    return {"redis_cpu_us_per_event": (cpu(client) - cpu0) / n * 1e6,
            "bytes_per_queued_event": queued}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    server = start_embedded(Path(tempfile.mkdtemp(prefix="relay-models-")) / "valkey")
    try:
        client = redis.Redis.from_url(f"{server.connection_url}/0")
        client.config_set("appendonly", "no")
        for round_ in range(2):  # alternate, twice, so drift touches both alike
            for model in ("zset", "stream"):
                figures = run_model(client, model, args.events, args.batch)
                print(f"round {round_ + 1} {model:<7} "
                      + "  ".join(f"{k}={v:,.1f}" for k, v in figures.items()), flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
