"""The Celery app that hosts the relay consumer, and ``relay worker``.

Celery is the worker runtime, not the event transport (design.md section 2): no task runs here.
The app gives each process Celery's lifecycle, signals, remote control and heartbeats; the
consumer is a bootstep (``worker.step``). ``celery -A worker.app inspect ping`` lists the
workers, ``celery -A worker.app inspect relay_figures`` reports each consumer's figures.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, signals
from celery.worker.control import inspect_command

from relay.sentry import init_sentry
from worker import step
from worker.observe import configure_logging
from worker.settings import Settings

settings = Settings.from_env()
app = Celery("relay", set_as_current=False)
app.conf.update(
    broker_url=settings.redis_url,
    broker_connection_retry_on_startup=True,
    # Celery's own keys (remote control, heartbeats) under one prefix, apart from ours.
    broker_transport_options={"global_keyprefix": "relay-celery:"},
    accept_content=["json"], task_serializer="json", result_serializer="json",
    result_backend=None, task_ignore_result=True,
    worker_hijack_root_logger=False,
    worker_concurrency=1, worker_pool="solo", worker_prefetch_multiplier=1,
)
app.steps["worker"].add(step.ConsumerStep)

log = logging.getLogger("relay.worker")
# mingle and gossip cost ~1 s of start-up and chatter, and nothing here uses them; Celery's
# worker heartbeats stay on, so `inspect ping` and Flower see every process.
CELERY_ARGS = ["-P", "solo", "--without-mingle", "--without-gossip", "-l", "WARNING"]


@inspect_command()
def relay_figures(state: Any) -> dict[str, Any]:
    """The relay consumer's figures in this worker: held, in flight, claimed, recorded."""
    return step.figures()


@signals.worker_ready.connect
def _ready(**_: Any) -> None:
    log.info("relay worker ready (pid %d)", os.getpid())


@signals.worker_init.connect
def _sentry(**_: Any) -> None:
    from sentry_sdk.integrations.celery import CeleryIntegration

    init_sentry(settings.sentry_dsn.reveal(), component="worker",
                environment=settings.environment,
                secrets=[e.token.reveal() for e in settings.tenants.values()],
                integrations=[CeleryIntegration(monitor_beat_tasks=False)])


def start_worker(argv: list[str]) -> int:
    """One Celery worker node running the consumer; our defaults first, so later arguments
    override them. Without ``-n``, the node is ``relay-<pid>@<host>`` (unique per process)."""
    configure_logging(settings.log_json)
    name = [] if any(a in ("-n", "--hostname") or a.startswith("--hostname=") for a in argv) \
        else ["-n", f"relay-{os.getpid()}@%h"]
    app.worker_main(["worker", *CELERY_ARGS, *name, *argv])
    return 0
