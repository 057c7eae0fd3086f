"""Hostile input at every edge: always a validation error (or a 4xx), never a crash, never an
invalid event enqueued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.bulk import import_file
from relay.errors import ValidationError
from relay.events import FIELDS, Interaction
from relay.keys import Keys, split
from tests.chaos.conftest import RestartableValkey
from tests.helpers import members, start_relay_api, stop
from worker.secret import Secret
from worker.soap import build_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
field_values = st.one_of(st.text(max_size=300), st.text(min_size=5000, max_size=6000),
                         json_values)
events = st.dictionaries(st.sampled_from([*FIELDS, "extra", ""]), field_values, max_size=8)


def assert_valid_on_the_wire(event: Interaction) -> None:
    """An accepted event re-validates and makes a request our own codec can read back."""
    assert Interaction.from_message(event.to_message()) == event
    body = build_request(event, Secret("t")).body
    assert xmltodict.parse(body)  # well-formed whatever the input


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(events)
def test_python_api_any_input(fields: dict[str, Any]) -> None:
    try:
        event = Interaction.create(**fields)
    except ValidationError as exc:
        assert exc.errors and all(e.field and e.rule for e in exc.errors)
        return
    assert_valid_on_the_wire(event)


def test_import_deeply_nested_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 30000 + "]" * 30000 + "\n")  # under the 64 KiB line cap
    report = import_file(path, lambda _: True)
    assert (report.lines, report.rejected) == (1, 1)
    assert "nested too deeply" in report.first_rejections[0][1]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=3000), st.sampled_from(["x.csv", "x.jsonl"]))
def test_import_any_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes,
                          name: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(data)
    accepted: list[Interaction] = []

    def enqueue(event: Interaction) -> bool:
        accepted.append(event)
        return True

    report = import_file(path, enqueue)
    assert report.enqueued + report.rejected + report.duplicates == report.lines
    for event in accepted:
        assert_valid_on_the_wire(event)


@pytest.fixture(scope="module")
def api(valkey: RestartableValkey, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, base = start_relay_api({"RELAY_REDIS_URL": valkey.url, "RELAY_API_KEYS": "fuzz-key"},
                                 tmp_path_factory.mktemp("api") / "api.log")
    yield base
    stop(proc)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(events, json_values, st.builds(lambda e: {"interactions": e},
                                                     st.lists(events, max_size=5))),
       path=st.sampled_from(["/v1/interactions", "/v1/interactions/batch"]))
def test_http_api_any_json(api: str, body: Any, path: str) -> None:
    r = requests.post(api + path, data=json.dumps(body), timeout=10, headers={
        "Authorization": "Bearer fuzz-key", "Content-Type": "application/json"})
    assert r.status_code in (202, 413, 422), r.text
    assert r.headers["Content-Type"].startswith("application/json")
    if r.status_code == 202 and path == "/v1/interactions":
        assert r.json()["status"] in ("accepted", "duplicate")


def test_http_api_raw_garbage(api: str) -> None:
    for raw in (b"\xff\xfe\x00", b"{" * 10000, b"[" * 100000 + b"]" * 100000, b"null", b""):
        r = requests.post(api + "/v1/interactions", data=raw, timeout=10, headers={
            "Authorization": "Bearer fuzz-key", "Content-Type": "application/json"})
        assert r.status_code in (413, 422), (raw[:20], r.status_code)


def test_queue_holds_only_valid_events(api: str, valkey: RestartableValkey) -> None:
    import random

    import redis

    client = redis.Redis.from_url(valkey.url)
    client.flushdb()
    rng = random.Random(7)
    nasty = ["", " ", "\x00", "\ud800", "x" * 70, "STORE-001", "VISIT", "123456", 5, None,
             ["a"], {"b": 1}, "\u202e", "<![CDATA[", "]]>", "9" * 61, "é" * 256]
    items: list[dict[str, object]] = [
        {"account_id": "123456", "location": "STORE-001", "interaction_type": "VISIT"}]
    items += [{f: rng.choice(nasty) for f in rng.sample(FIELDS, rng.randint(0, len(FIELDS)))}
              for _ in range(300)]
    r = requests.post(api + "/v1/interactions/batch", data=json.dumps({"interactions": items}),
                      timeout=30, headers={"Authorization": "Bearer fuzz-key",
                                           "Content-Type": "application/json"})
    assert r.status_code == 202
    keys = Keys()
    queued = members(client, keys.due)
    assert len(queued) == r.json()["accepted"] >= 1
    for member in queued:
        tenant, event_id = split(member)
        payload = client.hget(keys.record(tenant, event_id), "m")
        assert payload is not None
        assert_valid_on_the_wire(Interaction.from_payload(tenant, event_id, payload))
