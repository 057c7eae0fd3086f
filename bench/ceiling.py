"""The honest ceiling: ``python -m bench.ceiling URL N IN_FLIGHT TAG``.

A bare aiohttp client doing only what delivery cannot avoid: POST a hand-formatted
RecordInteraction envelope (string formatting, XML escaping of the fields) over one keep-alive
session holding ``IN_FLIGHT`` calls at once, read each reply, find its ReturnCode. No queue,
no Redis, no parsing, no bookkeeping. Run as its own process against the same sandbox in the
same bench run as the worker, so events/s and CPU per event compare one to one.
"""

from __future__ import annotations

import asyncio
import sys
from xml.sax.saxutils import escape

import aiohttp

from bench.run import TOKEN, events

ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
    'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<RecordInteraction xmlns="https://app.smartbutton.com/Services/"><preqRecordInteraction>'
    "<SecurityToken>{token}</SecurityToken><AccountId>{account}</AccountId>"
    "<LocationExternalReference>{location}</LocationExternalReference>"
    "<InteractionTypeExternalReference>{kind}</InteractionTypeExternalReference>"
    "<InteractionNote>{note}</InteractionNote>"
    "</preqRecordInteraction></RecordInteraction></soap:Body></soap:Envelope>")
HEADERS = {"Content-Type": "text/xml; charset=utf-8",
           "SOAPAction": '"https://app.smartbutton.com/Services/RecordInteraction"'}


async def run(url: str, n: int, in_flight: int, tag: str) -> int:
    failures = 0
    gate = asyncio.Semaphore(in_flight)
    connector = aiohttp.TCPConnector(limit=in_flight, limit_per_host=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(fields: dict[str, str]) -> None:
            nonlocal failures
            body = ENVELOPE.format(token=TOKEN, account=escape(fields["account_id"]),
                                   location=escape(fields["location"]),
                                   kind=escape(fields["interaction_type"]),
                                   note=escape(fields["note"])).encode()
            async with gate, session.post(url, data=body, headers=HEADERS) as resp:
                reply = await resp.read()
            start = reply.find(b"<ReturnCode>")
            if start < 0 or reply[start + 12:start + 13] != b"0":
                failures += 1

        await asyncio.gather(*(one(f) for f in events(n, tag)))
    return failures


def main() -> int:
    url, n, in_flight, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    failures = asyncio.run(run(url, n, in_flight, tag))
    print(f"ceiling: {n - failures} delivered, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
