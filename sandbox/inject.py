"""What an injected fault sends instead of the service's reply.

``in_front`` answers for a proxy or network in front of the service, before the call arrives;
``late`` for a service that has committed the call and then holds its reply up.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sandbox import asmx
from sandbox.faults import FaultConfig

REFUSALS = {"http400": 400, "http415": 415}
_HTML = ("<html><head><title>{status} {title}</title></head><body><center><h1>{status} {title}"
         "</h1></center><hr><center>nginx</center></body></html>")


async def in_front(request: web.Request, fault: str, cfg: FaultConfig) -> web.Response:
    """A proxy page, a throttle, a reset, a bare refusal, or a body that is no usable reply."""
    if fault in REFUSALS:  # as .asmx refuses a body it cannot parse or a media type it
        return web.Response(status=REFUSALS[fault])  # does not serve: no body at all
    if fault == "http429":  # a throttling front door, saying when to come back
        response = _html(429, "Too Many Requests")
        response.headers["Retry-After"] = str(cfg.retry_after_s)
        return response
    if fault == "html502":
        return _html(502, "Bad Gateway")
    if fault == "html503":
        return _html(503, "Service Temporarily Unavailable")
    if fault == "reset":
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing more to say on a dead connection
    if fault == "malformed":
        return web.Response(body=b'<?xml version="1.0"?><soap:Envelope xmlns:soap="'
                            + asmx.SOAP11.encode() + b'"><soap:Body><RecordInter',
                            content_type="text/xml", charset="utf-8")
    if fault == "huge":
        return web.Response(body=b"<x>" + b"A" * (8 << 20) + b"</x>", content_type="text/xml")
    if fault == "bomb":
        lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
        return web.Response(text=f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{lol}]>'
                                 "<r>&l9;</r>", content_type="text/xml")
    raise ValueError(f"{fault!r} is not a fault in front of the service")


async def late(request: web.Request, fault: str, cfg: FaultConfig) -> web.StreamResponse:
    """No reply for ``hang_s``: then a gateway's 504 (hang) or whitespace trickled meanwhile."""
    if fault == "hang":
        await asyncio.sleep(cfg.hang_s)
        return _html(504, "Gateway Time-out")
    if fault == "trickle":
        response = web.StreamResponse(headers={"Content-Type": "text/xml"})
        await response.prepare(request)
        for _ in range(int(cfg.hang_s)):
            await response.write(b" ")
            await asyncio.sleep(1)
        return response
    raise ValueError(f"{fault!r} is not a late fault")


def _html(status: int, title: str) -> web.Response:
    return web.Response(status=status, text=_HTML.format(status=status, title=title),
                        content_type="text/html")
