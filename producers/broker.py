"""Celery settings both sides must agree on: broker, queue, serializer, key prefix.

Producers publish by task name, so a web app needs neither the worker's code nor its
settings; the worker builds its app from the same function.
"""

from __future__ import annotations

from typing import Any

from relay import keys

# Celery's Redis transport re-delivers any message left unacked longer than this, and a
# killed worker's events come back only then: minutes, not the 1 h default. Nothing we
# schedule waits inside Celery (retries wait in relay:schedule), so no ETA can outlive it.
VISIBILITY_TIMEOUT_S = 300


def celery_config(redis_url: str, visibility_timeout: int = VISIBILITY_TIMEOUT_S) -> dict[str, Any]:
    return {
        "broker_url": redis_url,
        "broker_transport": "producers.redis_transport:Transport",
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            # kombu sweeps for abandoned messages every interval x throttle seconds (default
            # 10 x 10 = 100 s); sweep every tenth of the timeout instead, so a killed
            # worker's events are back within ~1.1 x visibility_timeout.
            "unacked_restore_interval": max(1, min(30, visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
            "global_keyprefix": keys.PREFIX,
            # Fail fast at the producer instead of hanging a POS when Redis is away.
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
            "max_retries": 1,
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": keys.QUEUE,
        "task_routes": {keys.TASK_NAME: {"queue": keys.QUEUE}},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_hijack_root_logger": False,
        "task_publish_retry": False,
    }
