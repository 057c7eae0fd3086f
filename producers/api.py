"""HTTP ingestion API (aiohttp.web), for POS and web apps that cannot import Python.

``POST /v1/interactions`` answers 202 as soon as Redis holds the event. Keys are Bearer tokens
from ``RELAY_API_KEYS``, optionally bound to tenants (``producers.auth``); operators' endpoints
under ``/v1/admin`` take ``RELAY_ADMIN_KEYS`` (401 for a missing or unknown key, 403 for a
valid key without the right). Errors are JSON; Redis away is a 503 with Retry-After, never a
500. Submits and status reads await the ``AsyncProducer`` on the event loop; the operators'
endpoints (rare, paged) run the blocking store code in a thread.

Slow clients cannot hold connections: request headers must arrive within
``RELAY_API_HEADER_TIMEOUT`` seconds (default 10) of the connection or of the previous answer,
and a body within ``RELAY_API_BODY_TIMEOUT`` (default 30) of its headers (408, then close).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import redis
from aiohttp import web

from producers.async_producer import AsyncProducer
from producers.auth import ApiKey, bearer, match, parse_keys
from producers.openapi import spec
from producers.producer import Producer, unknown_tenant
from producers.prometheus import exposition
from relay import keys
from relay.deadletters import DeadLetters, Filter
from relay.errors import ConfigError, EnqueueError, FieldError, ValidationError
from relay.events import DEFAULT_TENANT, Interaction
from relay.overview import overview
from relay.sentry import init_sentry
from relay.settings import env_number, env_whole, environment

log = logging.getLogger("relay.api")
BATCH_MAX = 1000
RETRY_AFTER_S = "5"
DEFAULT_HOST = "127.0.0.1"  # only this machine unless asked (compose and Procfile say 0.0.0.0)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ApiSettings:
    """``api_keys``/``admin_keys``: ``RELAY_API_KEYS``/``RELAY_ADMIN_KEYS`` (see
    ``producers.auth``); ``max_body``: ``RELAY_API_MAX_BODY`` bytes (1 MiB);
    ``header_timeout``/``body_timeout``: ``RELAY_API_HEADER_TIMEOUT`` (10 s) and
    ``RELAY_API_BODY_TIMEOUT`` (30 s), how long a client may take to send them."""

    api_keys: tuple[ApiKey, ...]
    admin_keys: tuple[ApiKey, ...]
    max_body: int = 1 << 20
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __repr__(self) -> str:
        return f"ApiSettings(<{len(self.api_keys)} api keys>, <{len(self.admin_keys)} admin keys>)"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        values = environment(env)
        api = parse_keys(values.get("RELAY_API_KEYS", ""), "RELAY_API_KEYS")
        admin = parse_keys(values.get("RELAY_ADMIN_KEYS", ""), "RELAY_ADMIN_KEYS",
                           bindable=False)
        if not api:
            raise ConfigError("RELAY_API_KEYS is empty: set at least one API key")
        return cls(api, admin, env_whole(values, "RELAY_API_MAX_BODY", 1 << 20),
                   env_number(values, "RELAY_API_HEADER_TIMEOUT", 10.0, positive=True),
                   env_number(values, "RELAY_API_BODY_TIMEOUT", 30.0, positive=True))


class BodyTimeout(Exception):
    """The client did not send its whole body in time."""


PRODUCER = web.AppKey("producer", Producer)
ASYNC_PRODUCER = web.AppKey("async_producer", AsyncProducer)
SETTINGS = web.AppKey("settings", ApiSettings)
CALLER = "relay.caller"  # request key: the ApiKey that authenticated the request


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


def _unauthorized() -> web.Response:
    return web.json_response({"error": "missing or invalid API key"}, status=401,
                             headers={"WWW-Authenticate": "Bearer"})


def _authenticate(request: web.Request, settings: ApiSettings) -> web.Response | None:
    """401 for a missing or unknown key, 403 for a known key on the wrong side; None when
    the caller may go on (its key then in ``request[CALLER]``)."""
    given = bearer(request.headers.get("Authorization", ""))
    caller, operator = match(given, settings.api_keys), match(given, settings.admin_keys)
    if request.path.startswith("/v1/admin/"):
        if operator is not None:
            return None
        return _error(403, "this API key is not an admin key (RELAY_ADMIN_KEYS)") \
            if caller is not None else _unauthorized()
    if caller is None:
        return _unauthorized()
    request[CALLER] = caller
    return None


def _check_tenant(request: web.Request, tenant: Any) -> None:
    """403 when the caller's key is bound to tenants and ``tenant`` is not one of them (a
    non-string tenant is left to validation, which answers 422)."""
    tenant = tenant or DEFAULT_TENANT
    if isinstance(tenant, str) and not request[CALLER].allows(tenant):
        raise web.HTTPForbidden(reason=f"this API key may not act for tenant {tenant[:64]!r}")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Auth, then one place that turns every failure into a JSON answer."""
    settings = request.app[SETTINGS]
    if request.path.startswith("/v1/"):
        refused = _authenticate(request, settings)
        if refused is not None:
            return refused
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body larger than {settings.max_body} bytes")
    except BodyTimeout:
        response = _error(408, f"request body not received within {settings.body_timeout:g} s")
        response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(exc.status, exc.reason)
        for name in ("Allow", "Retry-After"):  # e.g. 405 must say which methods exist
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except ValidationError as exc:
        return _error(422, "validation failed", errors=exc.as_dicts())
    except (EnqueueError, redis.RedisError) as exc:
        log.warning("Redis unavailable: %s", type(exc).__name__)
        return _error(503, "queue unavailable, try again later")


async def _body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > \
            request.app[SETTINGS].max_body:
        raise web.HTTPRequestEntityTooLarge(max_size=request.app[SETTINGS].max_body,
                                            actual_size=request.content_length)
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout):
            raw = await request.read()
    except TimeoutError:
        raise BodyTimeout from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError.one("body", "json", "must be a JSON document") from None
    except RecursionError:
        raise ValidationError.one("body", "depth", "is nested too deeply") from None


async def _run(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    # Operators' store code is synchronous (redis-py); keep the event loop free meanwhile.
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


def _accepted(request: web.Request, event: Interaction, new: bool) -> dict[str, Any]:
    return {"event_id": event.event_id, "status": "accepted" if new else "duplicate",
            "status_url": status_url(event.tenant, event.event_id)}


def status_url(tenant: str, event_id: str) -> str:
    """Where the event's status is read: the id as one path segment whatever it holds ('/',
    '?', a bare '.' or '..'), and its tenant when not the default."""
    segment = quote(event_id, safe="")
    if segment in (".", ".."):  # a client would resolve these as dot segments
        segment = segment.replace(".", "%2E")
    query = "" if tenant == DEFAULT_TENANT else f"?tenant={quote(tenant, safe='')}"
    return f"/v1/interactions/{segment}{query}"


async def post_interaction(request: web.Request) -> web.Response:
    fields = _fields(await _body(request))
    _check_tenant(request, fields.get("tenant"))
    event = Interaction.create(**fields)
    new = await request.app[ASYNC_PRODUCER].enqueue(event)
    return web.json_response(_accepted(request, event, new), status=202)


def _fields(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError.one("body", "type", "must be a JSON object")
    return body


async def post_batch(request: web.Request) -> web.Response:
    body = await _body(request)
    if isinstance(body, dict) and set(body) - {"interactions"}:
        raise ValidationError([FieldError(n, "unknown", "is not a known field")
                               for n in sorted(set(body) - {"interactions"})])
    items = body.get("interactions") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise ValidationError.one("interactions", "required", "must be a non-empty array")
    if len(items) > BATCH_MAX:
        raise ValidationError.one("interactions", "max_items", f"must hold at most {BATCH_MAX}")
    for item in items:  # all or nothing: a key bound to tenants cannot slip one in
        if isinstance(item, dict):
            _check_tenant(request, item.get("tenant"))
    results: list[dict[str, Any]] = []
    valid: list[tuple[int, Interaction]] = []
    producer = request.app[ASYNC_PRODUCER]
    tenants = await producer.known_tenants()
    for index, item in enumerate(items):
        try:
            event = Interaction.create(**_fields(item))
            if event.tenant not in tenants:  # refused before it can create a key or a label
                raise unknown_tenant(event.tenant)
            valid.append((index, event))
        except ValidationError as exc:
            results.append({"index": index, "status": "invalid", "errors": exc.as_dicts()})
    news = await producer.enqueue_many([e for _, e in valid])
    results += [{"index": index, **_accepted(request, event, new)}
                for (index, event), new in zip(valid, news, strict=True)]
    results.sort(key=lambda r: int(r["index"]))
    accepted = sum(r["status"] != "invalid" for r in results)
    # 202 even when every item was refused: each item reports its own fate.
    return web.json_response({"accepted": accepted, "rejected": len(results) - accepted,
                              "results": results}, status=202)


async def get_interaction(request: web.Request) -> web.Response:
    tenant = request.query.get("tenant") or DEFAULT_TENANT
    _check_tenant(request, tenant)
    record = await request.app[ASYNC_PRODUCER].status(request.match_info["event_id"], tenant)
    if record is None:
        return _error(404, "no such event (unknown, or its record expired)")
    return web.json_response(record)


async def list_dead_letters(request: web.Request) -> web.Response:
    q = request.query
    unknown = sorted(set(q) - {"code", "tenant", "signal", "location", "interaction_type",
                               "limit"})
    if unknown:
        raise ValidationError([FieldError(n, "unknown", "is not a known parameter")
                               for n in unknown])
    flt = Filter(code=_integer(q, "code"), tenant=q.get("tenant"), signal=q.get("signal"),
                 location=q.get("location"), interaction_type=q.get("interaction_type"))
    limit = _integer(q, "limit")
    limit = 100 if limit is None else limit
    if not 1 <= limit <= 1000:
        raise ValidationError.one("limit", "range", "must be between 1 and 1000")
    store = DeadLetters(request.app[PRODUCER].redis, request.app[PRODUCER].keys)
    entries = await _run(request, lambda: list(store.entries(flt, limit)))
    return web.json_response({"dead_letters": entries, "total": await _run(request, store.size)})


def _integer(query: Mapping[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        raise ValidationError.one(name, "type", "must be an integer") from None


_REPLAY_FIELDS: dict[str, type] = {"event_ids": list, "code": int, "tenant": str, "all": bool}


def _replay_request(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError.one("body", "type", "must be a JSON object")
    errors = []
    for name, value in body.items():
        kind = _REPLAY_FIELDS.get(name)
        if kind is None:
            errors.append(FieldError(name, "unknown", "is not a known field"))
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or (
                isinstance(value, list) and not all(isinstance(i, str) for i in value)):
            errors.append(FieldError(name, "type", f"must be {_KIND_NAMES[kind]}"))
    if errors:
        raise ValidationError(errors)
    return body


_KIND_NAMES = {list: "an array of strings", int: "an integer", str: "a string", bool: "a boolean"}


async def replay_dead_letters(request: web.Request) -> web.Response:
    """Replay by ``event_ids`` (of ``tenant``, default "default"), or every entry matching
    ``code``/``tenant``, or ``all``. Each event moves once, however many replays race."""
    body = _replay_request(await _body(request))
    producer = request.app[PRODUCER]
    store = DeadLetters(producer.redis, producer.keys)
    ids = body.get("event_ids")
    if ids is not None:
        tenant = body.get("tenant") or DEFAULT_TENANT
        members = [keys.member(tenant, i) for i in ids]
    elif body.get("code") is None and body.get("tenant") is None and body.get("all") is not True:
        return web.json_response({"replayed": []})  # nothing selected, nothing replayed
    else:
        flt = Filter(code=body.get("code"), tenant=body.get("tenant"))
        members = await _run(request, store.members, flt)
    replayed = await _run(request, store.replay, members)
    return web.json_response({"replayed": [keys.split(m)[1] for m in replayed]})


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[ASYNC_PRODUCER].ping()
    except EnqueueError:
        return _error(503, "Redis unreachable")
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    producer = request.app[PRODUCER]
    view = await _run(request, overview, producer.redis, producer.keys)
    body, content_type = exposition(view, producer.settings.dlq_max,
                                    request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type,
                                            "X-Content-Type-Options": "nosniff"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec(await request.app[ASYNC_PRODUCER].known_tenants()))


def create_app(producer: Producer, settings: ApiSettings) -> web.Application:
    """The whole API; ``producer`` serves the operators' endpoints, and an ``AsyncProducer``
    on the same Redis, spool and replicas (opened here, closed with the app) the rest."""
    app = web.Application(middlewares=[guard], client_max_size=settings.max_body)
    app[PRODUCER] = producer
    spool = producer.spool.folder if producer.spool else None
    app[ASYNC_PRODUCER] = AsyncProducer(producer.url, spool, producer.settings,
                                        producer.replicas)
    app[SETTINGS] = settings
    app.on_cleanup.append(_close)
    r = app.router
    r.add_post("/v1/interactions", post_interaction)
    r.add_post("/v1/interactions/batch", post_batch)
    # "batch" is the POST endpoint above, never an event id (keeps 405's Allow header honest)
    r.add_get("/v1/interactions/{event_id:(?!batch$)[^/]+}", get_interaction, name="event")
    r.add_get("/v1/admin/dead-letters", list_dead_letters)
    r.add_post("/v1/admin/dead-letters/replay", replay_dead_letters)
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics)
    r.add_get("/openapi.json", openapi)
    from producers import dashboard  # the operator pages under /ui/

    admin_secrets = [key.secret for key in settings.admin_keys]
    app.add_subapp(dashboard.PREFIX, dashboard.create_app(producer, admin_secrets))
    return app


async def _close(app: web.Application) -> None:
    await app[ASYNC_PRODUCER].close()
    app[PRODUCER].close()


def serve(host: str | None = DEFAULT_HOST, port: int = 8080) -> None:
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration

    settings = ApiSettings.from_env()
    values = environment()
    init_sentry(values.get("RELAY_SENTRY_DSN") or values.get("SENTRY_DSN") or "",
                component="api", environment=values.get("RELAY_ENVIRONMENT", "production"),
                secrets=[k.secret for k in (*settings.api_keys, *settings.admin_keys)],
                integrations=[AioHttpIntegration()])
    # aiohttp closes a connection still waiting for a request's headers once its keep-alive
    # timer fires (armed at connect and after each answer): that timer is the header timeout.
    web.run_app(create_app(Producer(), settings), host=host or DEFAULT_HOST, port=port,
                access_log=None, keepalive_timeout=settings.header_timeout,
                print=lambda *_: None)
