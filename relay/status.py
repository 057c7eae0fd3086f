"""Event records as callers and operators see them (docs/DATA_MODEL.md has the raw layout).

A record is created when an event is accepted (which is also the dedupe check), changed by
every move of the event, compacted when it ends (the message goes, the outcome stays) and
expires ``retention`` after delivery or rejection. Dead letters keep everything until replayed
or purged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis

from relay.connect import ms, server_ms
from relay.keys import member
from relay.settings import StoreSettings

# Where an event can be (one at a time); the last three never change except by replay.
WAITING, PARKED, HELD = "waiting", "parked", "held"
DELIVERED, REJECTED, DEAD_LETTER = "delivered", "rejected", "dead_letter"
STATES = (WAITING, PARKED, HELD, DELIVERED, REJECTED, DEAD_LETTER)
TERMINAL = frozenset({DELIVERED, REJECTED, DEAD_LETTER})
FIELD_NAMES = ("account_id", "location", "interaction_type", "note", "occurred_at")


def iso(ms: int | float | str | bytes | None) -> str | None:
    """Redis server milliseconds as an ISO 8601 UTC time, readable and machine-parsable."""
    if ms in (None, b"", ""):
        return None
    value = float(ms.decode() if isinstance(ms, bytes) else ms)
    return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="milliseconds")


def fields(payload: str | bytes | None) -> dict[str, Any]:
    """The event's own fields from its stored payload (a JSON array), for display."""
    if not payload:
        return {}
    try:
        values = json.loads(payload)
    except ValueError:
        return {"payload": _text(payload)}
    if not isinstance(values, list):
        return {"payload": _text(payload)}
    return {k: v for k, v in zip(FIELD_NAMES, values, strict=False) if v is not None}


def view(tenant: str, event_id: str, raw: dict[bytes, bytes], history: list[bytes]
         ) -> dict[str, Any]:
    """A raw record and history as the readable status record."""
    r = {_text(k): _text(v) for k, v in raw.items()}
    out: dict[str, Any] = {"tenant": tenant, "event_id": event_id, "state": r.get("s", ""),
                           "attempts": int(r.get("a") or 0), "charged": int(r.get("c") or 0),
                           "accepted_at": iso(r.get("t0")), "updated_at": iso(r.get("t"))}
    if r.get("i"):
        out["interaction_id"] = int(r["i"])
    if r.get("k"):
        out["last_code"] = int(r["k"])
    if r.get("g"):
        out["last_signal"] = r["g"]
    if r.get("r") and out["state"] != DELIVERED:
        out["last_error"] = r["r"]
    if r.get("p"):
        out["replays"] = int(r["p"])
    if r.get("m"):
        out["event"] = fields(r["m"])
    out["history"] = [_entry(h) for h in history]
    return out


def read(client: redis.Redis, store: StoreSettings, tenant: str, event_id: str
         ) -> dict[str, Any] | None:
    """The event's status record, or None when unknown (or past the dedupe window). An event
    that ended delivered or rejected is only its outcome then, plus any attempt history."""
    pipe = client.pipeline(transaction=False)
    _queue_reads(pipe, store, tenant, event_id, server_ms(client))
    return _record(tenant, event_id, pipe.execute())


async def read_async(client: Any, store: StoreSettings, tenant: str, event_id: str
                     ) -> dict[str, Any] | None:
    """``read`` over ``redis.asyncio`` (the HTTP API's event loop)."""
    pipe = client.pipeline(transaction=False)
    _queue_reads(pipe, store, tenant, event_id, ms(await client.time()))
    return _record(tenant, event_id, await pipe.execute())


def _queue_reads(pipe: Any, store: StoreSettings, tenant: str, event_id: str, now_ms: int
                 ) -> None:
    keys, m = store.keys, member(tenant, event_id)
    bucket = now_ms // store.bucket_ms
    pipe.hgetall(keys.record(tenant, event_id))
    pipe.lrange(keys.history(tenant, event_id), 0, -1)
    for b in range(bucket, bucket - store.buckets - 1, -1):
        pipe.hget(keys.done(b), m)


def _record(tenant: str, event_id: str, replies: list[Any]) -> dict[str, Any] | None:
    raw, history, *ended = replies
    if raw:
        return view(tenant, event_id, raw, history)
    found = next((_text(v) for v in ended if v), None)
    if found is None:
        return None
    outcome = found.partition(":")[0]  # "<d|r><id or code>:<token>"
    out: dict[str, Any] = {"tenant": tenant, "event_id": event_id}
    if outcome.startswith("d"):
        out.update(state=DELIVERED, interaction_id=int(outcome[1:]))
    else:
        out.update(state=REJECTED, last_code=int(outcome[1:]) if outcome[1:] else None)
    out["history"] = [_entry(h) for h in history]
    return out


def _entry(raw: bytes) -> dict[str, Any]:
    e = json.loads(raw)
    out = {"at": iso(e.get("t")), "attempt": e.get("n"), "outcome": e.get("o"),
           "signal": e.get("g"), "code": int(e["k"]) if e.get("k") else None,
           "reason": e.get("r"), "latency_ms": e.get("ms")}
    return {k: v for k, v in out.items() if v not in (None, "")}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
