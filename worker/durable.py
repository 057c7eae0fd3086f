"""Riding out a short Redis outage without losing or repeating work.

An outcome must be recorded before the message is acked; if Redis drops mid-write, replaying
the SOAP call would risk a duplicate, so the same writes are retried until Redis is back (or a
deadline passes and the caller lets the message be redelivered).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

log = logging.getLogger("relay.durable")
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
RIDE_OUT_S = 60.0


def execute(pipe: Any, ride_out: float = RIDE_OUT_S) -> list[Any]:
    """``pipe.execute()``, retried with the same commands while Redis is unreachable."""
    commands = list(pipe.command_stack)
    deadline = time.monotonic() + ride_out
    delay = 0.2
    while True:
        try:
            result: list[Any] = pipe.execute()
            return result
        except REDIS_DOWN:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("Redis unreachable while recording an outcome; retrying in %.1f s",
                        delay)
            time.sleep(delay)
            delay = min(5.0, delay * 2)
            pipe.command_stack = list(commands)
