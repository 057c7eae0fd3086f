"""The README's aiohttp example for AsyncProducer runs as printed, against a real Redis."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from relay.keys import Keys
from tests.helpers import ROOT


def readme_example(after: str) -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(re.escape(after) + r"\s*```python\n(.*?)```", text, re.S)
    assert found, f"no python block after {after!r} in README.md"
    return found.group(1)


def test_the_aiohttp_example_records_dedupes_and_names_bad_fields(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    monkeypatch.setenv("RELAY_REDIS_URL", redis_url)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(readme_example("Create one per process at start-up and close it at "
                                "shut-down. aiohttp:"), "README.md", "exec"), namespace)
    app: web.Application = namespace["app"]

    async def go() -> list[tuple[int, Any]]:
        async with TestClient(TestServer(app)) as client:
            answers = []
            for body in ({"account": "123456", "order_id": "o-1"},
                         {"account": "123456", "order_id": "o-1"}, {"order_id": "o-2"}):
                r = await client.post("/checkin", json=body)
                answers.append((r.status, await r.json()))
            return answers

    first, again, broken = asyncio.run(go())
    assert first == (202, {"event_id": "o-1"}) and again == first
    assert broken[0] == 422 and broken[1]["errors"][0]["field"] == "account_id"
    assert redis.Redis.from_url(redis_url).zcard(Keys().due) == 1
