"""A running pipeline for integration tests: producer, real worker, real Redis, the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from producers import Producer
from tests.helpers import (
    ROOT,
    Sandbox,
    Worker,
    clear_app_data,
    counters,
    start_relay_api,
    start_worker,
    stop,
    wait_until,
)

FAST = {
    "RELAY_BACKOFF_BASE": "0.2", "RELAY_BACKOFF_CAP": "1", "RELAY_MAX_ATTEMPTS": "4",
    "RELAY_BREAKER_THRESHOLD": "5", "RELAY_BREAKER_COOLDOWN": "0.5",
    "RELAY_BREAKER_MAX_COOLDOWN": "1", "RELAY_LEASE": "5", "RELAY_HEARTBEAT": "0.5",
    "RELAY_CONNECT_TIMEOUT": "1", "RELAY_READ_TIMEOUT": "2", "RELAY_TOTAL_TIMEOUT": "3",
}
TERMINAL = ("delivered", "rejected", "dead_letter")


@dataclass
class Pipeline:
    redis_url: str
    sandbox: Sandbox
    producer: Producer
    redis: redis.Redis
    worker: Worker
    env: dict[str, str]

    def send(self, **fields: Any) -> str:
        base = {"account_id": "123456", "location": "STORE-001", "interaction_type": "VISIT"}
        return self.producer.record(**{**base, **fields})

    def state(self, event_id: str, tenant: str = "default") -> str | None:
        record = self.producer.status(event_id, tenant)
        return None if record is None else str(record["state"])

    def wait_states(self, event_ids: list[str], states: tuple[str, ...] = TERMINAL,
                    timeout: float = 20) -> dict[str, str]:
        def done() -> dict[str, str] | None:
            found = {i: self.state(i) or "" for i in event_ids}
            return found if all(s in states for s in found.values()) else None

        result: dict[str, str] = wait_until(done, timeout, 0.05, f"events in {states}")
        return result

    def counters(self) -> dict[str, int]:
        return counters(self.redis)

    def relay(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relay", *args], cwd=ROOT, text=True,
                              capture_output=True, timeout=60,
                              env={**os.environ, **self.env}, check=False)

    def relay_json(self, *args: str) -> Any:
        result = self.relay(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def start_pipeline(redis_url: str, sandbox: Sandbox, log: Path, **extra: str) -> Pipeline:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()  # our own database number only
    env = {"RELAY_REDIS_URL": redis_url, "RELAY_SOAP_URL": sandbox.url,
           "RELAY_SECURITY_TOKEN": "sandbox-token", **FAST, **extra}
    worker = start_worker(env, log)
    return Pipeline(redis_url, sandbox, Producer(redis_url), client, worker, env)


@contextmanager
def pipeline_with_api(redis_url: str, sandbox: Sandbox, folder: Path, api_key: str,
                      admin_key: str) -> Iterator[tuple[Pipeline, str]]:
    """A pipeline and ``relay api`` in front of it (one API key, one admin key); the pipeline
    and the API's base URL. Both are stopped on the way out, or when the API fails to start."""
    pipeline = start_pipeline(redis_url, sandbox, folder / "worker.log")
    try:
        api, base = start_relay_api({**pipeline.env, "RELAY_API_KEYS": api_key,
                                     "RELAY_ADMIN_KEYS": admin_key}, folder / "api.log")
    except BaseException:
        stop_pipeline(pipeline)
        raise
    try:
        yield pipeline, base
    finally:
        stop(api)
        stop_pipeline(pipeline)


def reset(pipeline: Pipeline) -> None:
    pipeline.sandbox.reset()
    clear_app_data(pipeline.redis)


def stop_pipeline(pipeline: Pipeline) -> None:
    stop(pipeline.worker.proc)
    pipeline.producer.close()
    pipeline.redis.close()
    time.sleep(0)
