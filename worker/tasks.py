"""The delivery task. Decisions live in ``worker.delivery``; this is only the Celery face."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from producers import keys
from worker.app import app, current

log = logging.getLogger("relay.task")


@app.task(name=keys.TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True,
          ignore_result=True, max_retries=None)
def deliver(self: Task[Any, Any], message: Any) -> str:
    try:
        return current().deliver(message)
    except Exception as exc:
        # Redis hiccup or a bug: the message must not be lost. Retry it through Celery
        # (a short countdown, well inside the visibility timeout).
        log.exception("delivery crashed; retrying the message in 5 s")
        raise self.retry(countdown=5, exc=exc) from exc
