"""Flower, started as the compose service starts it (`celery -A worker.app flower`), sees a real
worker: online from its heartbeats, and reachable by remote control (same broker, key prefix
and transport options). Events are not Celery tasks, so Flower has no task to show."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
import yaml

from tests.helpers import (
    ROOT,
    Worker,
    free_port,
    start,
    start_worker,
    stop,
    system_redis_url,
    wait_until,
)

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[Worker, dict[str, str]]]:
    url = system_redis_url()
    assert url, "this test needs the machine's Redis at 127.0.0.1:6379"
    redis.Redis.from_url(url).flushdb()
    env = {"RELAY_REDIS_URL": url, "RELAY_SOAP_URL": "http://127.0.0.1:9/unused",
           "RELAY_SECURITY_TOKEN": "flower-test"}
    running = start_worker(env, tmp_path / "worker.log")
    yield running, env
    stop(running.proc)


def flower_argv(port: int) -> list[str]:
    """The compose service's command, run by this interpreter, on a free port."""
    command = [str(a) for a in COMPOSE["services"]["flower"]["command"]]
    assert command[:3] == ["celery", "-A", "worker.app"] and "flower" in command, command
    assert any(a.startswith("--port=") for a in command), command
    return ["-m", *(f"--port={port}" if a.startswith("--port=") else a for a in command)]


def online(base: str) -> list[str]:
    try:
        data = requests.get(base + "/workers?json=1", timeout=5).json()["data"]
    except (requests.RequestException, ValueError, KeyError):
        return []
    return [w["hostname"] for w in data if w.get("status")]


def test_flower_sees_the_worker_and_reaches_it(worker: tuple[Worker, dict[str, str]],
                                               tmp_path: Path) -> None:
    running, env = worker
    port = free_port()
    flower = start(flower_argv(port), env={**env, "FLOWER_UNAUTHENTICATED_API": "true"},
                   log=tmp_path / "flower.log")
    try:
        base = f"http://127.0.0.1:{port}"
        node = f"relay-{running.proc.pid}@"
        names = wait_until(lambda: [n for n in online(base) if n.startswith(node)], 60, 0.5,
                           "Flower to list the worker from its heartbeats")
        inspected = requests.get(base + "/api/workers?refresh=1", timeout=30).json()
        assert names[0] in inspected, inspected
        assert inspected[names[0]]["stats"]["pid"] == running.proc.pid
        assert requests.get(base + "/api/tasks", timeout=10).json() == {}
    finally:
        stop(flower)
