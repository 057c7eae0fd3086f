"""The Celery app and the ``relay worker`` defaults.

Defaults: the threads pool (many SOAP calls in flight per process over one event loop),
prefetch sized for I/O, and no mingle/gossip/heartbeat (they cost ~1 s of start-up and
chatter; nothing here uses them).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from celery import Celery, signals

from producers.broker import celery_config
from relay import keys
from relay.sentry import init_sentry
from worker import runtime
from worker.observe import configure_logging
from worker.settings import Settings

settings = Settings.from_env()
app = Celery("relay")
app.conf.update(celery_config(settings.redis_url, settings.visibility_timeout))
app.conf.update(worker_prefetch_multiplier=4, worker_concurrency=64, worker_pool="threads",
                worker_cancel_long_running_tasks_on_connection_loss=False)
app.conf.include = ["worker.tasks"]

log = logging.getLogger("relay.worker")
# Celery's own per-task "received"/"succeeded" lines cost CPU on the consumer's one thread;
# our relay.outcome logger already writes one line per outcome.
DEFAULT_ARGS = ["-P", "threads", "-c", "8", "--without-mingle", "--without-gossip",
                "--without-heartbeat", "-Q", keys.QUEUE, "-l", "WARNING"]


def send(message: dict[str, Any]) -> None:
    """Put an event (back) in the inbox, e.g. a retry that has come due."""
    current().redis.lpush(keys.INBOX, json.dumps(message))


def current() -> runtime.Runtime:
    return runtime.get(settings, send)


@signals.worker_ready.connect
def _start_mover(**_: Any) -> None:
    current().start()
    log.info("relay worker ready (pid %d)", os.getpid())


@signals.worker_shutdown.connect
def _shutdown(**_: Any) -> None:
    runtime.shutdown()


@signals.worker_init.connect
def _sentry(**_: Any) -> None:
    from sentry_sdk.integrations.celery import CeleryIntegration

    init_sentry(settings.sentry_dsn.reveal(), component="worker",
                environment=settings.environment,
                secrets=[e.token.reveal() for e in settings.tenants.values()],
                integrations=[CeleryIntegration(monitor_beat_tasks=False)])


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    runtime.forget_after_fork()


def start_worker(argv: list[str]) -> int:
    """``relay worker [celery args]``: our defaults first, so later arguments override them."""
    configure_logging(settings.log_json)
    app.worker_main(["worker", *DEFAULT_ARGS, *argv])
    return 0
