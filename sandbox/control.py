"""The sandbox's control API under ``/_sandbox/``: off unless a token turns it on.

It can change what the emulated service answers (forced codes, seed data, outages) and reads back
every accepted call, so it must never be reachable anonymously next to the service: with no
``RELAY_SANDBOX_CONTROL_TOKEN`` its paths answer 404; with one, every request must carry
``Authorization: Bearer <token>``. ``relay dev`` and the tests set a fresh random token.

Endpoints (JSON): ``config`` (GET/POST latency, faults, the namespace and ``next_id``, where
InteractionIds continue), ``seed`` (GET/POST add/remove reference data), ``calls`` (the record
of accepted calls, with a duplicate count and the most requests served at once), ``reset``
(seed, faults, namespace and record; ids keep increasing so none repeats).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from sandbox.faults import FaultConfig
from sandbox.seed import Seed
from sandbox.state import DEFAULT_NAMESPACE, STATE

PREFIX = "/_sandbox/"
TOKEN_ENV = "RELAY_SANDBOX_CONTROL_TOKEN"  # noqa: S105 - the variable's name, not a secret
MIN_TOKEN = 16
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def check_token(token: str) -> str:
    """The token as given, or ValueError naming the rule it breaks."""
    if len(token) < MIN_TOKEN or not token.isprintable() or token != token.strip():
        raise ValueError(f"{TOKEN_ENV}: must be at least {MIN_TOKEN} printable characters "
                         "without surrounding spaces (e.g. `openssl rand -hex 16`)")
    return token


def add_routes(app: web.Application, token: str | None) -> None:
    """The control endpoints behind the token, or, without one, a 404 that says how to turn
    them on."""
    if token is None:
        app.router.add_route("*", PREFIX + "{tail:.*}", _off)
        return
    expected = check_token(token).encode()

    def guarded(handler: Handler) -> Handler:
        async def check(request: web.Request) -> web.StreamResponse:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            # compare_digest takes as long whatever the token's first wrong byte
            if not (hmac.compare_digest(given.encode(), expected)
                    and scheme.lower() == "bearer"):
                return web.json_response(
                    {"error": "control API: missing or wrong bearer token "
                              f"(Authorization: Bearer <{TOKEN_ENV}>)"},
                    status=401, headers={"WWW-Authenticate": 'Bearer realm="sandbox control"'})
            return await handler(request)

        return check

    for method, name, handler in (("GET", "config", get_config), ("POST", "config", set_config),
                                  ("GET", "seed", get_seed), ("POST", "seed", set_seed),
                                  ("GET", "calls", get_calls), ("POST", "reset", reset)):
        app.router.add_route(method, PREFIX + name, guarded(handler))


async def _off(request: web.Request) -> web.Response:
    return web.json_response({"error": f"the sandbox control API is off; start the sandbox "
                                       f"with {TOKEN_ENV} set to turn it on"}, status=404)


async def get_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"namespace": state.namespace, "next_id": state.next_id,
                              **state.faults.as_dict()})


async def set_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        change = await request.json()
        if "namespace" in change:
            state.namespace = str(change.pop("namespace"))
        if "next_id" in change:
            state.set_next_id(change.pop("next_id"))
        state.faults.update(change)
    except (ValueError, TypeError, AttributeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return await get_config(request)


async def get_seed(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].seed.as_dict())


async def set_seed(request: web.Request) -> web.Response:
    try:
        request.app[STATE].seed.apply(await request.json())
    except (ValueError, TypeError, AttributeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return await get_seed(request)


async def get_calls(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        return web.json_response({"error": "limit: must be an integer"}, status=400)
    return web.json_response({
        "count": len(state.calls),
        "duplicates": sum(n - 1 for n in state.keys.values() if n > 1),
        "requests": dict(state.requests),
        "peak_in_flight": state.peak_in_flight,
        "calls": state.calls[-limit:] if limit > 0 else [],
    })


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.seed, state.faults = Seed(), FaultConfig()
    state.calls.clear()
    state.keys.clear()
    state.requests.clear()
    state.peak_in_flight = state.in_flight
    state.namespace = DEFAULT_NAMESPACE
    return web.json_response({"ok": True})
