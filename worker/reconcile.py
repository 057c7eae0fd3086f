"""The outbox sweep: send again an accepted event whose message was lost in transit.

kombu's Redis transport pops a message (BRPOP) and only then records it as unacked; a
connection lost between the two drops the message, and its event would stay "queued" forever.
Every accepted event sits in ``relay:pending`` until it ends, so the sweep finds those left
behind and publishes them again.

To stay clear of duplicates it acts only on events that are still ``queued`` (never admitted
by any worker) after twice the visibility timeout, and only while the queue is empty and the
message is not among kombu's unacked ones (those come back by themselves): then the message
cannot be anywhere but lost.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from relay import keys
from relay.overview import QUEUE_KEY, UNACKED_KEY
from relay.status import QUEUED, TERMINAL, finished

log = logging.getLogger("relay.reconcile")
BATCH = 200


def sweep(client: redis.Redis, send: Callable[[dict[str, Any]], None],
          visibility_timeout: float, now: float | None = None) -> int:
    """Re-send lost events; returns how many."""
    now = time.time() if now is None else now
    stale = client.zrangebyscore(keys.PENDING, "-inf", now - 2 * visibility_timeout,
                                 start=0, num=BATCH)
    if not stale or client.llen(QUEUE_KEY) or client.llen(keys.INBOX):
        return 0
    unacked = _unacked_event_ids(client) | {
        k.decode() if isinstance(k, bytes) else str(k) for k in client.hkeys(keys.LEASE_EVENTS)}
    resent = 0
    for raw_id in stale:
        event_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        state = client.hget(keys.event(event_id), "state")
        state_text = state.decode() if isinstance(state, bytes) else str(state or "")
        pipe = client.pipeline(transaction=False)
        if not state_text or state_text in TERMINAL:
            finished(pipe, event_id)  # ended (or expired): nothing to keep
        elif state_text == QUEUED and event_id not in unacked:
            payload = client.hget(keys.PENDING_EVENTS, event_id)
            if payload is None:
                finished(pipe, event_id)
            else:
                send(json.loads(payload))
                resent += 1
                log.warning("re-sent event %s: its message was lost in transit", event_id)
        pipe.zadd(keys.PENDING, {event_id: now}, xx=True)  # look again a full period later
        pipe.execute()
    if resent:
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(keys.STATS, "resent_lost", resent)
        pipe.execute()
    return resent


def _unacked_event_ids(client: redis.Redis) -> set[str]:
    found = set()
    for raw in client.hvals(UNACKED_KEY):
        try:
            message = json.loads(raw)[0]
            body = json.loads(base64.b64decode(message["body"]))
            found.add(str(body[0][0]["event_id"]))
        except (ValueError, KeyError, IndexError, TypeError):
            continue
    return found
