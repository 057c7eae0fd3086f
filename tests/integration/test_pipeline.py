"""The product end to end: producer -> Redis -> real Celery worker -> sandbox over HTTP.

Runs against the machine's Redis at 6379 when it answers, and always against the embedded
valkey server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.errors import ValidationError
from tests.helpers import ROOT, Sandbox, wait_until
from tests.integration.pipeline import Pipeline, reset, start_pipeline, stop_pipeline

TENANTS = json.dumps({"acme": {"token": "acme-token"}, "globex": {"token": "sandbox-token"}})


@pytest.fixture(scope="module")
def running(redis_url: str, sandbox_server: Sandbox, module_tmp: Path) -> Iterator[Pipeline]:
    pipeline = start_pipeline(redis_url, sandbox_server, module_tmp / "worker.log",
                              RELAY_TENANTS=TENANTS)
    yield pipeline
    stop_pipeline(pipeline)


@pytest.fixture
def pipeline(running: Pipeline) -> Pipeline:
    reset(running)
    return running


def test_mixed_batch_each_outcome(pipeline: Pipeline) -> None:
    good = [pipeline.send(note=f"good-{i}", location=f"STORE-{i + 1:03d}") for i in range(20)]
    bad = {
        pipeline.send(account_id="12"): (300, "invalid account id"),
        pipeline.send(location="STORE-404"): (503, "invalid location external reference"),
        pipeline.send(interaction_type="PURCHASE"):
            (1200, "invalid interaction type external reference"),
    }
    inactive = pipeline.send(account_id="9000001")
    states = pipeline.wait_states([*good, *bad, inactive])
    assert all(states[i] == "delivered" for i in good)
    assert states[inactive] == "rejected"
    assert pipeline.producer.status(inactive)["last_code"] == 301  # type: ignore[index]
    for event_id, (code, reason) in bad.items():
        assert states[event_id] == "dead_letter"
        entry = pipeline.relay_json("dlq", "show", event_id)
        info = entry["dead_letter"]
        assert info["code"] == code and info["reason"] == reason
        assert entry["event_id"] == event_id and info["attempts"] == 1
    calls = pipeline.sandbox.calls()
    assert calls["count"] == 20 and calls["duplicates"] == 0
    ids = {pipeline.producer.status(i)["interaction_id"] for i in good}  # type: ignore[index]
    assert len(ids) == 20 and all(isinstance(i, int) and i > 0 for i in ids)


def test_code_1_is_retried_then_delivered(pipeline: Pipeline) -> None:
    pipeline.sandbox.configure(rates={"error": 1.0})
    event_id = pipeline.send(note="flaky")
    pipeline.wait_states([event_id], ("waiting",))
    time.sleep(0.5)
    pipeline.sandbox.configure(rates={"error": 0.0})
    assert pipeline.wait_states([event_id])[event_id] == "delivered"
    record = pipeline.producer.status(event_id)
    assert record is not None and len(record["history"]) >= 2  # it failed: history is kept
    assert [h["signal"] for h in record["history"]][-1] == "code:0"
    assert "code:1" in {h["signal"] for h in record["history"]}
    assert pipeline.sandbox.calls()["count"] == 1


def test_fix_the_data_then_replay(pipeline: Pipeline) -> None:
    events = [pipeline.send(location="MALL-7", note=f"m{i}") for i in range(3)]
    other = pipeline.send(account_id="12")
    pipeline.wait_states([*events, other])
    assert pipeline.relay_json("status")["dead_letters"] == 4
    pipeline.sandbox.seed(add={"locations": ["MALL-7"]})
    replay = pipeline.relay("dlq", "replay", "--code", "503")
    assert replay.returncode == 0, replay.stderr
    assert "replayed 3 event(s)" in replay.stdout
    states = pipeline.wait_states(events)
    assert set(states.values()) == {"delivered"}
    assert pipeline.state(other) == "dead_letter"
    listing = pipeline.relay_json("dlq", "list")
    assert [e["event_id"] for e in listing] == [other]


def test_same_event_id_is_delivered_once(pipeline: Pipeline) -> None:
    first = pipeline.send(event_id="pos-42-receipt-9", note="once")
    second = pipeline.send(event_id="pos-42-receipt-9", note="once")
    assert first == second
    pipeline.wait_states([first])
    time.sleep(0.5)
    assert pipeline.sandbox.calls()["count"] == 1


def test_identity_is_tenant_and_event_id(pipeline: Pipeline) -> None:
    """The same receipt number at two tenants is two events; an id that looks like another's
    key is its own event."""
    pairs = [("acme", "receipt-1"), ("globex", "receipt-1"), ("default", "pos-7"),
             ("default", "pos-7:history"), ("default", "a/b:c")]
    pipeline.sandbox.seed(add={"tokens": ["acme-token"]})
    for tenant, event_id in pairs:
        pipeline.send(tenant=tenant, event_id=event_id, note=f"{tenant} {event_id}")
    wait_until(lambda: all(pipeline.state(e, t) == "delivered" for t, e in pairs), 20, 0.05,
               "every pair delivered")
    assert pipeline.sandbox.calls()["count"] == 5


def test_outage_longer_than_backoff_dead_letters_nothing(pipeline: Pipeline) -> None:
    # The whole schedule (0.2 + 0.4 + 0.8 + 1 s, 4 attempts) would be spent in ~2.4 s.
    pipeline.sandbox.configure(outage_seconds=6)
    events = [pipeline.send(note=f"outage-{i}") for i in range(30)]
    time.sleep(3)
    assert pipeline.relay_json("status")["dead_letters"] == 0
    circuits = pipeline.relay_json("status")["circuits"]
    assert circuits and circuits[0]["tenant"] == "default"
    states = pipeline.wait_states(events, timeout=30)
    assert set(states.values()) == {"delivered"}
    assert pipeline.sandbox.calls()["count"] == 30
    assert pipeline.sandbox.calls()["duplicates"] == 0
    counters = pipeline.counters()
    assert counters.get("outcome:dead_letter", 0) == 0
    assert counters["circuit_opened:default"] == 1
    assert pipeline.relay_json("status")["circuits"] == []


def test_wrong_token_opens_the_circuit_and_events_wait(pipeline: Pipeline) -> None:
    events = [pipeline.send(tenant="acme", note=f"acme-{i}") for i in range(5)]
    wait_until(lambda: {pipeline.state(e, "acme") for e in events} <= {"waiting", "parked"}
               and pipeline.counters().get("circuit_opened:acme") == 1, 10, 0.05, "parked")
    time.sleep(1.5)
    # parked, apart from the one probe the half-open circuit lets through now and then
    assert {pipeline.state(e, "acme") for e in events} <= {"waiting", "parked", "held"}
    view = pipeline.relay_json("status")
    assert [c["tenant"] for c in view["circuits"]] == ["acme"]
    assert view["dead_letters"] == 0
    assert pipeline.counters()["circuit_opened:acme"] == 1
    # the default tenant is not held back by acme's circuit
    assert pipeline.wait_states([pipeline.send(note="default")])
    waiting = [pipeline.producer.status(e, "acme") for e in events]
    # refusals of the token cost nothing (one may be a probe in flight, charged for now)
    assert sorted(r["charged"] for r in waiting if r)[:4] == [0, 0, 0, 0]
    pipeline.sandbox.seed(add={"tokens": ["acme-token"]})
    wait_until(lambda: {pipeline.state(e, "acme") for e in events} == {"delivered"}, 15, 0.05,
               "acme's events delivered")
    assert pipeline.counters()["circuit_opened:acme"] == 1


def test_unknown_tenant_and_garbage_records_are_dead_lettered(pipeline: Pipeline) -> None:
    from relay.keys import Keys

    keys = Keys()
    with pytest.raises(ValidationError, match="tenant: 'nobody' is not a configured tenant"):
        pipeline.send(tenant="nobody")  # refused at the edge: it creates nothing
    assert not list(pipeline.redis.scan_iter(match=keys.prefix + "*nobody*"))
    # A tenant removed from the workers' configuration after its events were accepted:
    unknown = "orphaned-1"
    pipeline.redis.hset(keys.record("nobody", unknown), mapping={
        "s": "waiting", "m": '["123456", "STORE-001", "VISIT", ""]'})
    pipeline.redis.zadd(keys.due, {f"nobody/{unknown}": 0})
    # Records no producer of ours writes: not JSON, the wrong shape, a field of the wrong type.
    for event_id, payload in [("garbage-1", b"not json"), ("garbage-2", b'{"a": 1}'),
                              ("garbage-3", b'[5, "STORE-001", "VISIT", ""]')]:
        pipeline.redis.hset(keys.record("default", event_id), mapping={"s": "waiting",
                                                                       "m": payload})
        pipeline.redis.zadd(keys.due, {f"default/{event_id}": 0})
    wait_until(lambda: pipeline.state(unknown, "nobody") == "dead_letter", 20, 0.05, "unknown")
    garbage = pipeline.wait_states(["garbage-1", "garbage-2", "garbage-3"])
    assert set(garbage.values()) == {"dead_letter"}
    shown = pipeline.relay_json("dlq", "show", unknown, "--tenant", "nobody")
    assert "unknown tenant 'nobody'" in shown["dead_letter"]["reason"]
    entry = pipeline.relay_json("dlq", "show", "garbage-3")
    assert entry["dead_letter"]["signal"] == "invalid_message"
    assert "account_id: must be a string" in entry["dead_letter"]["reason"]
    assert pipeline.wait_states([pipeline.send(note="still alive")])
    assert pipeline.redis.zcard(keys.held) == 0  # refused ones are let go, not re-claimed
    assert pipeline.worker.proc.poll() is None
    record = pipeline.producer.status("garbage-1")
    assert record is not None and record["charged"] == 0  # never called: nothing spent


def test_purge_needs_confirmation(pipeline: Pipeline) -> None:
    event = pipeline.send(account_id="12")
    pipeline.wait_states([event])
    refused = pipeline.relay("dlq", "purge", "--all")
    assert refused.returncode == 2 and "without --yes" in refused.stderr
    assert pipeline.relay_json("dlq", "purge", "--all", "--yes") == {"purged": 1}
    assert pipeline.relay_json("dlq", "list") == []


def test_celery_remote_control_sees_the_worker_and_its_figures(pipeline: Pipeline) -> None:
    """Celery is the runtime: `inspect ping` finds the worker process, and the consumer's own
    figures come back through `inspect relay_figures`."""
    pipeline.wait_states([pipeline.send(note="counted")])
    env = {**os.environ, **pipeline.env}
    # Named, so inspect returns as soon as this node answers (a loaded machine gets 15 s).
    target = f"relay-{pipeline.worker.proc.pid}@{socket.gethostname()}"

    def inspect(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.app", "inspect",
                               *args, "--json", "--timeout", "15", "-d", target], cwd=ROOT,
                              env=env, text=True, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    pong = json.loads(inspect("ping"))
    node = f"relay-{pipeline.worker.proc.pid}@"
    assert [n for n in pong if n.startswith(node)], pong
    figures = json.loads(inspect("relay_figures"))
    [mine] = [v for n, v in figures.items() if n.startswith(node)]
    assert mine["claimed"] >= 1 and mine["recorded"] >= 1 and mine["held"] == 0
