"""Sentry with the real SDK, sending to a local HTTP endpoint used as the DSN."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.helpers import Sandbox, free_port, wait_until
from tests.integration.pipeline import Pipeline, reset, start_pipeline, stop_pipeline

CANARY = "TOKEN-LEAK-CANARY-7731"


class FakeSentry:
    """Collects every envelope the SDK posts, decompressed, as text."""

    def __init__(self) -> None:
        self.port = free_port()
        self.payloads: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_until(lambda: hasattr(self, "runner"), 5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/api/{project}/envelope/", self._envelope)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.loop.run_forever()

    async def _envelope(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp has already undone Content-Encoding: gzip
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        self.payloads.append(body.decode("utf-8", "replace"))
        return web.json_response({})

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/1"

    def events(self) -> list[dict[str, object]]:
        found = []
        for payload in self.payloads:
            for line in payload.splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if isinstance(item, dict) and "event_id" in item and "level" in item:
                    found.append(item)
        return found

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def sentry() -> Iterator[FakeSentry]:
    fake = FakeSentry()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def reporting(redis_url: str, sandbox_server: Sandbox, module_tmp: Path,
              sentry: FakeSentry) -> Iterator[Pipeline]:
    pipeline = start_pipeline(
        redis_url, sandbox_server, module_tmp / "worker.log", RELAY_SENTRY_DSN=sentry.dsn,
        RELAY_ENVIRONMENT="test", RELAY_TENANTS=json.dumps({"leaky": {"token": CANARY}}))
    reset(pipeline)
    yield pipeline
    stop_pipeline(pipeline)


def test_dead_letters_and_one_circuit_alert_reach_sentry_scrubbed(
        reporting: Pipeline, sentry: FakeSentry) -> None:
    sentry.payloads.clear()  # one collector serves both Redis backends
    dead = [reporting.send(location="STORE-404", note=f"d{i}") for i in range(3)]
    held = [reporting.send(tenant="leaky", note=f"l{i}") for i in range(5)]
    reporting.wait_states(dead)
    wait_until(lambda: {reporting.state(e, "leaky") for e in held} <= {"parked", "waiting",
                                                                       "held"}
               and reporting.counters().get("circuit_opened:leaky") == 1, 20, 0.05, "parked")
    time.sleep(2)  # several half-open probes fail meanwhile: still one alert

    def messages() -> list[str]:
        return [str(e.get("message") or e.get("logentry")) for e in sentry.events()]

    wait_until(lambda: sum("dead letter" in m for m in messages()) >= 3, 15,
               message="dead-letter events in Sentry")
    events = sentry.events()
    assert sum("circuit opened" in m for m in messages()) == 1
    dead_events = [e for e in events if "dead letter" in str(e.get("message"))]
    assert {e["tags"]["code"] for e in dead_events} == {"503"}  # type: ignore[index]
    assert all(e["environment"] == "test" for e in events)
    assert all(str(e["release"]).startswith("interaction-relay@") for e in events)
    everything = "\n".join(sentry.payloads)
    assert CANARY not in everything
    assert "sandbox-token" not in everything
    assert "Envelope" not in everything and "SecurityToken" not in everything
