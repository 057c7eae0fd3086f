"""The relay's assumptions about its Redis, checked on a real server: an eviction policy that
could drop events refuses the worker in one line; persistence that can lose acknowledged
events is named, with how much; `relay check` shows both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from relay.redis_checks import findings
from tests.helpers import ROOT


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    from relay.embedded import start_embedded

    s = start_embedded(tmp_path / "valkey")
    client = redis.Redis.from_url(f"{s.connection_url}/0")
    client.config_set("appendfsync", "everysec")  # what many deployments run
    yield f"{s.connection_url}/0", client
    s.stop()


def relay(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, check=False,
                          env={**os.environ, "RELAY_REDIS_URL": url,
                               "RELAY_SECURITY_TOKEN": "t",
                               "RELAY_SOAP_URL": "http://127.0.0.1:9/Services/Interaction.asmx"})


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
def test_an_evicting_policy_refuses_the_worker_in_one_line(server: tuple[str, redis.Redis],
                                                           policy: str) -> None:
    url, client = server
    client.config_set("maxmemory-policy", policy)
    [eviction] = [f for f in findings(client) if f.name == "redis: eviction"]
    assert eviction.level == "fail" and "set maxmemory-policy noeviction" in eviction.detail
    started = relay("worker", "--processes", "1", url=url)
    assert started.returncode == 4  # exitcodes.CONFIG
    assert started.stderr.strip().count("\n") == 0, started.stderr
    assert policy in started.stderr and "noeviction" in started.stderr


def test_persistence_is_named_with_what_a_crash_can_lose(server: tuple[str, redis.Redis]
                                                         ) -> None:
    url, client = server
    levels = {f.name: (f.level, f.detail) for f in findings(client)}
    assert levels["redis: eviction"][0] == "ok"
    level, detail = levels["redis: persistence"]
    assert level == "warn" and "last second" in detail and "appendfsync always" in detail
    client.config_set("appendfsync", "always")
    assert {f.name: f.level for f in findings(client)}["redis: persistence"] == "ok"
    client.config_set("appendonly", "no")
    client.config_set("save", "")
    detail = {f.name: f.detail for f in findings(client)}["redis: persistence"]
    assert "loses every queued event" in detail
    shown = relay("check", "--json", url=url)
    checks = {c["name"]: c for c in json.loads(shown.stdout)["checks"]}
    assert checks["redis: persistence"]["warning"] and checks["redis: persistence"]["ok"]
    assert checks["redis: eviction"]["ok"]
