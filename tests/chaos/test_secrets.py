"""One run of the whole pipeline with recognisable secrets, then a scan of everything it left:
logs, Sentry payloads, every Redis key and value, the dead-letter export, CLI output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.chaos.conftest import REDIS_PASSWORD, Stack, record_result
from tests.helpers import ROOT, wait_until
from tests.integration.test_sentry import FakeSentry

DEFAULT_TOKEN = "CANARY-default-token-5150"
TENANT_TOKEN = "CANARY-tenant-token-8086"
SECRETS = (DEFAULT_TOKEN, TENANT_TOKEN, REDIS_PASSWORD)


def redis_dump(stack: Stack) -> str:
    client = stack.redis
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        read: dict[str, Callable[[Any], object]] = {
            "string": client.get, "hash": client.hgetall,
            "list": lambda k: client.lrange(k, 0, -1), "zset": lambda k: client.zrange(k, 0, -1),
            "set": client.smembers}
        value = read.get(kind, lambda k: b"")(key)
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)


def relay(stack: Stack, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "relay", *args], cwd=ROOT, text=True,
                            capture_output=True, timeout=60, check=False,
                            env={**os.environ, **stack.env})
    return result.stdout + result.stderr


def test_no_secret_anywhere(stack: Stack) -> None:
    sentry = FakeSentry()
    try:
        stack.sandbox.seed(add={"tokens": [DEFAULT_TOKEN]})
        stack.env.update({"RELAY_SECURITY_TOKEN": DEFAULT_TOKEN, "RELAY_LOG_FORMAT": "json",
                          "RELAY_LOG_LEVEL": "debug",
                          "RELAY_SENTRY_DSN": sentry.dsn,
                          "RELAY_TENANTS": json.dumps({"acme": {"token": TENANT_TOKEN}})})
        worker = stack.worker()
        producer = stack.producer()
        good = [producer.record(account_id="123456", location="STORE-001",
                                interaction_type="VISIT", note=f"g{i}") for i in range(20)]
        dead = [producer.record(account_id="123456", location="NOWHERE",
                                interaction_type="VISIT", note=f"d{i}") for i in range(5)]
        held = [producer.record(account_id="123456", location="STORE-002",
                                interaction_type="VISIT", tenant="acme", note=f"h{i}")
                for i in range(5)]
        stack.wait_terminal(good + dead)
        time.sleep(1.5)  # acme's circuit opens on code 100 and probes fail a few times
        stack.sandbox.seed(add={"tokens": [TENANT_TOKEN]})
        stack.wait_terminal(held, timeout=60, tenant="acme")
        wait_until(lambda: len(sentry.events()) >= 6, 15, message="sentry events")
        outputs = [relay(stack, "dlq", "export"), relay(stack, "dlq", "list", "--json"),
                   relay(stack, "status", "--json"),
                   relay(stack, "status", held[0], "--tenant", "acme", "--json"),
                   relay(stack, "check", "--json"), relay(stack, "check")]
        haystacks = {"worker log": worker.output(), "sentry": "\n".join(sentry.payloads),
                     "redis": redis_dump(stack), "cli": "\n".join(outputs)}
    finally:
        sentry.close()
    found = {where: [s for s in SECRETS if s in text] for where, text in haystacks.items()}
    record_result({"scenario": "secrets scan", "injected": "canary tokens and Redis password",
                   "events": 30, "delivered": 25, "dead_lettered": 5, "rejected": 0, "lost": 0,
                   "duplicated": stack.sandbox.calls(limit=0)["duplicates"], "recovery_s": 0,
                   "command": "pytest tests/chaos -k no_secret",
                   "secret_occurrences": sum(len(v) for v in found.values())})
    assert found == {where: [] for where in haystacks}
    assert "dead letter" in haystacks["sentry"] and "circuit opened" in haystacks["sentry"]
    assert '"outcome": "delivered"' in haystacks["worker log"]  # the scan saw real logs
    assert "acme" in haystacks["redis"] and ":***@" in haystacks["cli"]
