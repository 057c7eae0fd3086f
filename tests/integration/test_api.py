"""The HTTP ingestion API, as a real process against a real Redis-protocol server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection

from producers.openapi import spec
from relay.keys import Keys
from tests.helpers import free_port, start_relay_api, stop

KEY, ADMIN = "test-api-key", "test-admin-key"
GOOD = {"account_id": "123456", "location": "STORE-001", "interaction_type": "VISIT"}


@dataclass
class Api:
    base: str

    def post(self, path: str, key: str | None = KEY, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kwargs.pop("headers", {}))  # type: ignore[call-overload]
        return requests.post(self.base + path, headers=headers, timeout=10,
                             **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, key: str | None = KEY) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.get(self.base + path, headers=headers, timeout=10)


def start_api(redis_url: str, log: Path, **env: str) -> tuple[Api, object]:
    proc, base = start_relay_api({"RELAY_REDIS_URL": redis_url, "RELAY_API_KEYS": f"other,{KEY}",
                                  "RELAY_ADMIN_KEYS": ADMIN, "RELAY_API_MAX_BODY": "65536",
                                  **env}, log)
    return Api(base), proc


@pytest.fixture(scope="module")
def api(redis_url: str, module_tmp: Path) -> Iterator[Api]:
    redis.Redis.from_url(redis_url).flushdb()
    handle, proc = start_api(redis_url, module_tmp / "api.log")
    yield handle
    stop(proc)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dead_redis_api(module_tmp: Path) -> Iterator[Api]:
    handle, proc = start_api(f"redis://127.0.0.1:{free_port()}/0", module_tmp / "api-dead.log")
    yield handle
    stop(proc)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [None, "wrong", ADMIN, KEY[:-1]])
def test_ingestion_needs_a_valid_api_key(api: Api, key: str | None) -> None:
    r = api.post("/v1/interactions", key=key, json=GOOD)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"


def test_admin_endpoints_need_the_admin_key(api: Api) -> None:
    """401 only for a missing or unknown key; a valid key without the right gets 403."""
    for key in (None, "wrong"):
        r = api.get("/v1/admin/dead-letters", key=key)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    for key in (KEY, "other"):
        r = api.post("/v1/admin/dead-letters/replay", key=key, json={"all": True})
        assert r.status_code == 403 and "admin key" in r.json()["error"]
        assert api.get("/v1/admin/dead-letters", key=key).status_code == 403
    assert api.get("/v1/admin/dead-letters", key=ADMIN).status_code == 200


def test_accepted_event_has_a_status_url(api: Api) -> None:
    r = api.post("/v1/interactions", json={**GOOD, "event_id": "api-1"})
    assert r.status_code == 202
    body = r.json()
    assert body == {"event_id": "api-1", "status": "accepted",
                    "status_url": "/v1/interactions/api-1"}
    status = api.get(body["status_url"]).json()
    assert status["state"] == "waiting" and status["history"] == []
    again = api.post("/v1/interactions", json={**GOOD, "event_id": "api-1"})
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    assert api.get("/v1/interactions/nope").status_code == 404


@pytest.mark.parametrize(("body", "field", "rule"), [
    ({**GOOD, "account_id": "1" * 61}, "account_id", "max_length"),
    ({**GOOD, "note": 5}, "note", "type"),
    ({"location": "STORE-001", "interaction_type": "VISIT"}, "account_id", "required"),
    ({**GOOD, "extra": 1}, "extra", "unknown"),
    ([1, 2], "body", "type"),
])
def test_validation_errors_are_422_naming_field_and_rule(api: Api, body: object, field: str,
                                                        rule: str) -> None:
    r = api.post("/v1/interactions", json=body)
    assert r.status_code == 422
    assert {"field": field, "rule": rule} in [
        {"field": e["field"], "rule": e["rule"]} for e in r.json()["errors"]]


def test_malformed_json_is_422(api: Api) -> None:
    r = api.post("/v1/interactions", data=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "json"


def test_body_over_the_cap_is_413(api: Api) -> None:
    r = api.post("/v1/interactions", json={**GOOD, "note": "x" * 70000})
    assert r.status_code == 413


def test_batch_gives_a_result_per_item(api: Api) -> None:
    items = [GOOD, {**GOOD, "account_id": ""}, {**GOOD, "event_id": "b-2"}]
    r = api.post("/v1/interactions/batch", json={"interactions": items})
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert [x["status"] for x in body["results"]] == ["accepted", "invalid", "accepted"]
    assert body["results"][1]["errors"][0]["field"] == "account_id"
    too_many = api.post("/v1/interactions/batch", json={"interactions": [GOOD] * 1001})
    assert too_many.status_code in (413, 422)


def test_health_readiness_metrics_openapi(api: Api) -> None:
    assert api.get("/healthz", key=None).json() == {"status": "ok"}
    assert api.get("/readyz", key=None).status_code == 200
    metrics = api.get("/metrics", key=None).text
    assert "# TYPE relay_queue_depth gauge" in metrics
    assert "relay_soap_latency_seconds_bucket" in metrics
    assert api.get("/openapi.json", key=None).json()["openapi"] == "3.1.0"


def test_redis_down_is_503_with_retry_after(dead_redis_api: Api) -> None:
    for r in (dead_redis_api.post("/v1/interactions", json=GOOD),
              dead_redis_api.get("/v1/interactions/x"),
              dead_redis_api.get("/readyz", key=None)):
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5"
        assert "Traceback" not in r.text


# As served: no worker registered tenants here, so only "default" is accepted.
schema = schemathesis.openapi.from_dict(spec(["default"]))


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi(case: schemathesis.Case[Any], api: Api) -> None:
    key = ADMIN if case.path.startswith("/v1/admin/") else KEY
    response = case.call(base_url=api.base, headers={"Authorization": f"Bearer {key}"})
    # A body over the size cap is refused (413) before it is read, whatever else is wrong
    # with it; schemathesis' negative-data check does not count 413 as a refusal.
    excluded: list[Any] = [negative_data_rejection] if response.status_code == 413 else []
    case.validate_response(response, excluded_checks=excluded)


def test_invented_tenants_create_no_keys_labels_or_counters(api: Api, redis_url: str) -> None:
    """3,000 tenant names a caller makes up are refused at the edge (422 per item, naming the
    field), so they cannot grow the keyspace, /metrics or any counter."""
    client = redis.Redis.from_url(redis_url)
    api.post("/v1/interactions", json={**GOOD, "event_id": "warm-up"})  # counters exist
    keys_before = client.dbsize()
    stats_before = client.hgetall(Keys().stats)
    metrics_before = api.get("/metrics").text.splitlines()
    for batch in range(6):  # 3,000 names, within the API's body limit
        items = [{**GOOD, "tenant": f"made-up-{batch}-{i}"} for i in range(500)]
        r = api.post("/v1/interactions/batch", json={"interactions": items})
        assert r.status_code == 202 and r.json()["accepted"] == 0
        errors = {e["field"] + ":" + e["rule"] for item in r.json()["results"]
                  for e in item["errors"]}
        assert errors == {"tenant:unknown"}
    single = api.post("/v1/interactions", json={**GOOD, "tenant": "made-up-x"})
    assert single.status_code == 422 and single.json()["errors"][0]["field"] == "tenant"
    assert client.dbsize() == keys_before
    assert client.hgetall(Keys().stats) == stats_before
    assert len(api.get("/metrics").text.splitlines()) == len(metrics_before)


def test_the_served_document_lists_the_tenants(api: Api) -> None:
    tenant = api.get("/openapi.json").json()["components"]["schemas"]["Interaction"][
        "properties"]["tenant"]
    assert tenant["enum"] == ["default", None, ""]
