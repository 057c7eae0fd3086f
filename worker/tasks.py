"""The delivery task. Decisions live in ``worker.delivery``; this is only the Celery face."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task
from celery.exceptions import Reject

from relay import keys
from worker.app import app, current
from worker.durable import REDIS_DOWN, RIDE_OUT_S

log = logging.getLogger("relay.task")
MAX_CRASHES = 5


@app.task(name=keys.TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True,
          ignore_result=True, max_retries=None)
def deliver(self: Task[Any, Any], message: Any) -> str:
    deadline = time.monotonic() + RIDE_OUT_S
    while True:
        try:
            return current().deliver(message)
        except REDIS_DOWN as exc:
            # Redis is away: nothing can be decided or recorded. Wait for it a while, then
            # hand the message back (if Redis is still away, kombu restores it from the
            # unacked set once the visibility timeout passes): never acked, never lost.
            if time.monotonic() > deadline:
                raise Reject(exc, requeue=True) from exc
            log.warning("Redis unreachable; delivery waits for it")
            time.sleep(1.0)
        except Exception as exc:
            # A bug, not an outage: retry a few times, then dead-letter the message whole
            # rather than crash-loop on it.
            log.exception("delivery crashed (attempt %d)", self.request.retries + 1)
            if self.request.retries + 1 >= MAX_CRASHES:
                return current().deliverer.refuse(message, "worker_error",
                                                  f"worker error: {type(exc).__name__}")
            raise self.retry(countdown=5, exc=exc) from exc
