"""The sandbox server: an emulated ``Services/Interaction.asmx`` plus a control API.

Control endpoints (JSON) live under ``/_sandbox/``: ``config`` (GET/POST latency, faults, the
namespace and ``next_id``, where InteractionIds continue), ``seed`` (GET/POST add/remove reference
data), ``calls`` (the record of accepted calls, with a duplicate count and the most requests served
at once), ``reset`` (seed, faults, namespace and record; ids keep increasing so none repeats).

A call is recorded once it is read and accepted, before any latency or late fault: a client that
timed out on it still finds it counted, as with a real service that commits and answers late.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox import asmx, inject, wsdl
from sandbox.faults import AFTER_COMMIT, IN_FRONT, FaultConfig
from sandbox.seed import Seed

PATH = "/Services/Interaction.asmx"
DEFAULT_NAMESPACE = "https://app.smartbutton.com/Services/"
_MAX_ID = 2**63 - 1  # InteractionId is s:long


@dataclass
class SandboxState:
    namespace: str = DEFAULT_NAMESPACE
    seed: Seed = field(default_factory=Seed)
    faults: FaultConfig = field(default_factory=FaultConfig)
    next_id: int = 1
    calls: list[dict[str, Any]] = field(default_factory=list)
    keys: Counter[tuple[str, ...]] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(default_factory=random.Random)
    in_flight: int = 0  # requests being served now, and the most at once since the reset
    peak_in_flight: int = 0

    def set_next_id(self, value: Any) -> None:
        """Where InteractionIds continue: the platform's are .NET longs, so a test can start
        above 2^31 to prove a client does not read them as 32-bit ints."""
        next_id = int(value)
        if not 1 <= next_id <= _MAX_ID:
            raise ValueError(f"next_id must be within 1..{_MAX_ID}")
        self.next_id = next_id

    @property
    def action(self) -> str:
        return self.namespace.rstrip("/") + "/RecordInteraction"

    def accept(self, fields: dict[str, str | None]) -> int:
        """Record an accepted call and return its InteractionId, the one its reply carries."""
        interaction_id = self.next_id
        self.next_id += 1
        values = {k: v or "" for k, v in fields.items()}
        key = (values["AccountId"], values["LocationExternalReference"],
               values["InteractionTypeExternalReference"], values["InteractionNote"])
        self.keys[key] += 1
        self.calls.append({"interaction_id": interaction_id, "account_id": key[0],
                           "location": key[1], "interaction_type": key[2], "note": key[3],
                           "at": time.time()})
        return interaction_id


STATE = web.AppKey("state", SandboxState)


def create_app(state: SandboxState | None = None) -> web.Application:
    app = web.Application(client_max_size=4 << 20)
    app[STATE] = state or SandboxState()
    app.router.add_post(PATH, soap_endpoint)
    app.router.add_get(PATH, wsdl_endpoint)
    app.router.add_get("/_sandbox/config", get_config)
    app.router.add_post("/_sandbox/config", set_config)
    app.router.add_get("/_sandbox/seed", get_seed)
    app.router.add_post("/_sandbox/seed", set_seed)
    app.router.add_get("/_sandbox/calls", get_calls)
    app.router.add_post("/_sandbox/reset", reset)
    return app


async def wsdl_endpoint(request: web.Request) -> web.Response:
    if "wsdl" not in {k.lower() for k in request.query}:
        return web.Response(text="<html><body>Interaction Web Service (sandbox). "
                                 "Append ?WSDL for the service description.</body></html>",
                            content_type="text/html")
    state = request.app[STATE]
    location = str(request.url.with_query(None))
    return web.Response(text=wsdl.render(state.namespace, state.action, location),
                        content_type="text/xml")


async def soap_endpoint(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.in_flight += 1
    state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
    try:
        return await _serve(request, state)
    finally:
        state.in_flight -= 1


async def _serve(request: web.Request, state: SandboxState) -> web.StreamResponse:
    state.requests["total"] += 1
    injected = _draw(state)
    if injected in IN_FRONT:
        await _pause(state)
        return await inject.in_front(request, injected)
    answer = await _answer(request, state, injected)
    # Latency and late faults come after the record, as with a real service that commits and
    # then answers late: a call the client gave up on is still counted.
    await _pause(state)
    if injected in AFTER_COMMIT:
        return await inject.late(request, injected, state.faults)
    return answer


def _draw(state: SandboxState) -> str | None:
    """The fault this request suffers, if any, counted; an outage stands for its mode."""
    injected = state.faults.draw(state.rng)
    if injected is not None:
        state.requests[f"fault:{injected}"] += 1
        if injected == "outage":
            return state.faults.outage_mode
    return injected


async def _pause(state: SandboxState) -> None:
    delay = state.faults.delay(state.rng)
    if delay:
        await asyncio.sleep(delay)


async def _answer(request: web.Request, state: SandboxState, injected: str | None
                  ) -> web.Response:
    """Read, validate and decide the call, recording it when accepted (code 0): all a real
    service does before its reply can be held up."""
    body = await request.read()
    version = "1.1"  # the fault shape for a failure before the version is known
    try:
        version, action = _route(request)
        if action is not None and action != state.action:
            raise asmx.unrecognized_action(action)
        call = asmx.read_request(body, version, state.namespace, request.charset)
        if injected == "exception" or call.fields.get("AccountId") in \
                state.faults.poison_accounts:
            raise asmx.method_exception("sandbox: injected exception in RecordInteraction.")
    except asmx.Refusal as exc:
        state.requests[f"http:{exc.status}"] += 1
        return web.Response(status=exc.status)  # measured: no body at all
    except asmx.AsmxFault as exc:
        state.requests["fault"] += 1
        return _fault(version, exc)
    code = _return_code(state, call, injected == "error")
    interaction_id = state.accept(call.fields) if code == 0 else -1
    state.requests[f"code:{code}"] += 1
    return _soap(version, asmx.reply(version, state.namespace, code, interaction_id))


def _route(request: web.Request) -> tuple[str, str | None]:
    """The SOAP version from the media type, and the SOAPAction to check. 1.1 may quote the
    action or not; 1.2's ``action`` parameter is not checked by .asmx, so it yields None."""
    if request.content_type == "text/xml":
        return "1.1", request.headers.get("SOAPAction", "").strip().strip('"')
    if request.content_type == "application/soap+xml":
        return "1.2", None
    raise asmx.Refusal(415)


def _return_code(state: SandboxState, call: asmx.Call, fail: bool) -> int:
    """The platform's answer: a forced code, then an injected code 1, then the seed's rules."""
    if state.faults.force_code is not None:
        return state.faults.force_code
    if fail:
        return 1
    if any(v is None for v in call.fields.values()):
        return 2  # the platform expects every element, optional ones included
    f = {k: v or "" for k, v in call.fields.items()}
    code = state.seed.return_code(f["SecurityToken"], f["AccountId"],
                                  f["LocationExternalReference"],
                                  f["InteractionTypeExternalReference"])
    if code == 0 and len(f["InteractionNote"]) > 256:
        return 5
    return code


def _soap(version: str, body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type=asmx.content_type(version),
                        charset="utf-8")


def _fault(version: str, exc: asmx.AsmxFault) -> web.Response:
    """HTTP 500 with ``Connection: close``, as .asmx sends every fault."""
    response = _soap(version, asmx.fault(version, exc), status=500)
    response.force_close()
    return response


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
    limit = int(request.query.get("limit", "1000"))
    return web.json_response({
        "count": len(state.calls),
        "duplicates": sum(n - 1 for n in state.keys.values() if n > 1),
        "requests": dict(state.requests),
        "peak_in_flight": state.peak_in_flight,
        "calls": state.calls[-limit:] if limit else [],
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


def run(host: str, port: int, state: SandboxState) -> None:
    web.run_app(create_app(state), host=host, port=port, access_log=None,
                print=lambda *_: None, handle_signals=True)
