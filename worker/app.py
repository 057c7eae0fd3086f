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

import redis
from celery import Celery, signals
from celery.worker.control import inspect_command

from relay import connect, redis_checks, tenants
from relay.errors import ConfigError
from relay.sentry import init_sentry
from relay.settings import mask_url, redis_source
from worker import step
from worker.observe import configure_logging
from worker.settings import Settings

settings = Settings.from_env()
broker_url, broker_options = connect.celery_broker(settings.redis_url, settings.broker_url)
app = Celery("relay", set_as_current=False)
app.conf.update(
    broker_url=broker_url,
    broker_connection_retry_on_startup=True,
    # Celery's own keys (remote control, heartbeats) under one prefix, apart from ours.
    broker_transport_options={"global_keyprefix": "relay-celery:", **broker_options},
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
    log.info("relay worker ready (pid %d); Redis at %s (%s)", os.getpid(),
             mask_url(settings.redis_url), redis_source() or "the default")


@signals.worker_init.connect
def _sentry(**_: Any) -> None:
    from sentry_sdk.integrations.celery import CeleryIntegration

    init_sentry(settings.sentry_dsn.reveal(), component="worker",
                environment=settings.environment,
                secrets=[e.token.reveal() for e in settings.tenants.values()],
                integrations=[CeleryIntegration(monitor_beat_tasks=False)])


def prepare(client: Any) -> None:
    """Before the first event: refuse a Redis that can lose events (one line saying what to
    set), warn about what a crash could lose, and publish the tenants this worker serves."""
    for finding in redis_checks.findings(client):
        if finding.level == "fail":
            raise ConfigError(finding.detail)
        if finding.level == "warn":
            log.warning("%s", finding.detail)
    tenants.register(client, settings.store.keys, settings.tenants)


def start_worker(argv: list[str]) -> int:
    """One Celery worker node running the consumer; our defaults first, so later arguments
    override them. Without ``-n``, the node is ``relay-<pid>@<host>`` (unique per process)."""
    configure_logging(settings.log_json, logging.getLevelNamesMapping()[settings.log_level])
    settings.check_tokens()
    client = connect.client(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        prepare(client)
    except redis.RedisError as exc:
        log.warning("Redis at %s (%s) did not answer at start-up (%s); the consumer keeps "
                    "trying", mask_url(settings.redis_url), redis_source() or "the default",
                    type(exc).__name__)
    finally:
        client.close()
    name = [] if any(a in ("-n", "--hostname") or a.startswith("--hostname=") for a in argv) \
        else ["-n", f"relay-{os.getpid()}@%h"]
    app.worker_main(["worker", *CELERY_ARGS, *name, *argv])
    return 0
