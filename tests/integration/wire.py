"""Calling the sandbox through our own client, for the wire-layer tests."""

from __future__ import annotations

import asyncio

from relay.events import Interaction
from worker.client import Endpoint, SoapClient
from worker.secret import Secret
from worker.soap import Reply
from worker.transport import AiohttpTransport, TransportSettings


def call(url: str, *, token: str = "sandbox-token", account: str = "123456",
         location: str = "STORE-001", kind: str = "VISIT", note: str = "", version: str = "1.1",
         action: str | None = None, transport: TransportSettings | None = None) -> Reply:
    event = Interaction.create(account_id=account, location=location, interaction_type=kind,
                               note=note)
    endpoint = Endpoint(url, Secret(token), version=version, action=action)

    async def once() -> Reply:
        t = AiohttpTransport(transport)
        try:
            return await SoapClient(t).record_interaction(event, endpoint)
        finally:
            await t.close()

    return asyncio.run(once())
