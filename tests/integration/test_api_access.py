"""The HTTP API's access rules and slow-client limits, against a real API process and Redis."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from relay import tenants
from relay.keys import Keys
from tests.helpers import stop
from tests.integration.test_api import ADMIN, GOOD, KEY, Api, start_api


@pytest.fixture(scope="module")
def redis_url(one_redis_url: str) -> str:
    """One Redis backend is enough here: the subject is not Redis (see conftest)."""
    return one_redis_url


ACME = "acme-only-key"
TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def api(redis_url: str, module_tmp: Path) -> Iterator[Api]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    tenants.register(client, Keys(), ["default", "acme", "globex"])
    handle, proc = start_api(redis_url, module_tmp / "api-access.log",
                             RELAY_API_KEYS=f"{KEY},{ACME}:acme",
                             RELAY_API_HEADER_TIMEOUT=str(TIMEOUT_S),
                             RELAY_API_BODY_TIMEOUT=str(TIMEOUT_S))
    yield handle
    stop(proc)  # type: ignore[arg-type]


def test_a_tenant_bound_key_submits_and_reads_only_its_tenants(api: Api) -> None:
    mine = api.post("/v1/interactions", key=ACME, json={**GOOD, "tenant": "acme",
                                                        "event_id": "t-1"})
    assert mine.status_code == 202
    assert api.get("/v1/interactions/t-1?tenant=acme", key=ACME).status_code == 200
    theirs = api.post("/v1/interactions", key=KEY, json={**GOOD, "tenant": "globex",
                                                        "event_id": "t-1"})
    assert theirs.status_code == 202
    for body in ({**GOOD, "tenant": "globex", "event_id": "t-2"}, {**GOOD, "event_id": "t-3"}):
        r = api.post("/v1/interactions", key=ACME, json=body)
        assert r.status_code == 403 and "may not act for tenant" in r.json()["error"]
    for path in ("/v1/interactions/t-1?tenant=globex", "/v1/interactions/t-1"):
        assert api.get(path, key=ACME).status_code == 403
    # nothing of the refused submits reached Redis; an unbound key still reads every tenant
    assert api.get("/v1/interactions/t-2?tenant=globex", key=KEY).status_code == 404
    assert api.get("/v1/interactions/t-1?tenant=globex", key=KEY).status_code == 200


@pytest.mark.parametrize("event_id", ["su-1", "a/b", "q?x=1#f", "..", "%2F"])
def test_the_status_url_answered_reads_the_event_back(api: Api, event_id: str) -> None:
    """Whatever the id holds and whichever the tenant, GET status_url finds the event."""
    for key, tenant in ((ACME, "acme"), (KEY, "default")):
        r = api.post("/v1/interactions", key=key, json={**GOOD, "tenant": tenant,
                                                        "event_id": event_id})
        assert r.status_code == 202, r.text
        url = r.json()["status_url"]
        got = api.get(url, key=key)
        assert got.status_code == 200, (url, got.text)
        assert (got.json()["event_id"], got.json()["tenant"]) == (event_id, tenant)


def test_a_batch_with_one_foreign_tenant_is_refused_whole(api: Api) -> None:
    items = [{**GOOD, "tenant": "acme", "event_id": "b-1"},
             {**GOOD, "tenant": "globex", "event_id": "b-2"}]
    r = api.post("/v1/interactions/batch", key=ACME, json={"interactions": items})
    assert r.status_code == 403
    assert api.get("/v1/interactions/b-1?tenant=acme", key=ACME).status_code == 404
    ok = api.post("/v1/interactions/batch", key=ACME, json={"interactions": items[:1]})
    assert ok.status_code == 202 and ok.json()["accepted"] == 1


def test_a_tenant_bound_key_is_no_admin_key(api: Api) -> None:
    assert api.get("/v1/admin/dead-letters", key=ACME).status_code == 403
    assert api.get("/v1/admin/dead-letters", key=ADMIN).status_code == 200


def _raw(api: Api) -> socket.socket:
    host, port = api.base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


class Trickle:
    """Send pieces ``pause`` apart until the server answers or closes; note when it did."""

    def __init__(self, sock: socket.socket, pieces: list[bytes], pause: float) -> None:
        self.answer, started = b"", time.monotonic()
        self.answered = self.closed = float("inf")
        try:
            for piece in pieces:
                sock.sendall(piece)
                sock.settimeout(pause)
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                self._got(chunk, time.monotonic() - started)
                break
            sock.settimeout(20)
            while chunk := sock.recv(65536):
                self._got(chunk, time.monotonic() - started)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.closed = time.monotonic() - started

    def _got(self, chunk: bytes, at: float) -> None:
        if chunk and not self.answer:
            self.answered = at
        self.answer += chunk


def test_a_trickled_body_is_cut_off(api: Api) -> None:
    """One byte per second of a 200-byte body: answered 408 at the body timeout, not after
    200 s; the connection closes after aiohttp's lingering close (at most 10 s)."""
    body = b'{"account_id": "123456", "note": "' + b"x" * 160
    head = (f"POST /v1/interactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) + 40}\r\n\r\n")
    with _raw(api) as sock:
        slow = Trickle(sock, [head.encode(), *(bytes([b]) for b in body)], 1.0)
    assert slow.answer.startswith(b"HTTP/1.1 408"), slow.answer[:200]
    assert b"request body not received within 2 s" in slow.answer
    assert b"Connection: close" in slow.answer
    assert TIMEOUT_S <= slow.answered < TIMEOUT_S + 3
    assert slow.closed < TIMEOUT_S + 10 + 3


def test_trickled_headers_are_cut_off(api: Api) -> None:
    head = f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: {'y' * 100}\r\n\r\n".encode()
    with _raw(api) as sock:
        slow = Trickle(sock, [head[i:i + 1] for i in range(len(head))], 1.0)
    assert slow.answer == b""
    assert slow.closed < TIMEOUT_S + 3
