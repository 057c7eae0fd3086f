"""The sandbox server: an emulated ``Services/Interaction.asmx``, plus the control API
(``sandbox.control``) when a token turns it on.

A call is recorded once it is read and accepted, before any latency or late fault: a client that
timed out on it still finds it counted, as with a real service that commits and answers late.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sandbox import asmx, control, inject, wsdl
from sandbox.faults import AFTER_COMMIT, IN_FRONT
from sandbox.state import DEFAULT_NAMESPACE, STATE, SandboxState

__all__ = ["DEFAULT_NAMESPACE", "PATH", "SandboxState", "create_app", "run"]

PATH = "/Services/Interaction.asmx"


def create_app(state: SandboxState | None = None, control_token: str | None = None
               ) -> web.Application:
    """The service; the control API only with ``control_token`` (see ``sandbox.control``)."""
    app = web.Application(client_max_size=4 << 20)
    app[STATE] = state or SandboxState()
    app.router.add_post(PATH, soap_endpoint)
    app.router.add_get(PATH, wsdl_endpoint)
    control.add_routes(app, control_token)
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
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        state.requests["chunked"] += 1  # some .asmx hosts mishandle these: clients must not
    injected = _draw(state)
    if injected in IN_FRONT:
        await _pause(state)
        return await inject.in_front(request, injected, state.faults)
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
    try:
        interaction_id = state.accept(call.fields) if code == 0 else -1
    except OverflowError as exc:  # ids past a .NET long: the method throws
        state.requests["fault"] += 1
        return _fault(version, asmx.method_exception(f"System.OverflowException: {exc}"))
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


def run(host: str, port: int, state: SandboxState, control_token: str | None = None) -> None:
    web.run_app(create_app(state, control_token), host=host, port=port, access_log=None,
                print=lambda *_: None, handle_signals=True)
