"""A retry delay longer than Celery's visibility timeout must not deliver twice.

Celery's Redis transport re-delivers any message unacked for longer than the visibility
timeout; a countdown of that length would run twice. Our waits live in relay:schedule instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Sandbox
from tests.integration.pipeline import Pipeline, reset, start_pipeline, stop_pipeline


@pytest.fixture(scope="module")
def slow_retry(redis_url: str, sandbox_server: Sandbox, module_tmp: Path) -> Iterator[Pipeline]:
    pipeline = start_pipeline(redis_url, sandbox_server, module_tmp / "worker.log",
                              RELAY_VISIBILITY_TIMEOUT="1", RELAY_BACKOFF_BASE="8",
                              RELAY_BACKOFF_CAP="8")
    reset(pipeline)
    yield pipeline
    stop_pipeline(pipeline)


def test_retry_delay_beyond_visibility_timeout_delivers_once(slow_retry: Pipeline) -> None:
    p = slow_retry
    p.sandbox.configure(rates={"error": 1.0})
    event_id = p.send(note="long wait")
    p.wait_states([event_id], ("waiting",))
    p.sandbox.configure(rates={"error": 0.0})
    record = p.producer.status(event_id)
    assert record is not None
    delay = float(record["next_attempt"]) - time.time()
    assert delay > 2, f"retry due in {delay:.1f}s: not longer than the visibility timeout"
    assert p.wait_states([event_id], timeout=15)[event_id] == "delivered"
    time.sleep(3)  # room for a visibility-timeout re-delivery, were there one
    calls = p.sandbox.calls()
    assert calls["count"] == 1 and calls["duplicates"] == 0
    assert p.producer.status(event_id)["attempts"] == 2  # type: ignore[index]
    assert p.redis.hlen("relay:unacked") == 0
