"""The SOAP client: envelopes, HTTP statuses and faults in; a ``Reply`` or a typed error out."""

from __future__ import annotations

import math
from dataclasses import dataclass

from relay.errors import DeliveryError
from relay.events import Interaction
from worker.errors import HttpStatusError
from worker.secret import Secret
from worker.soap import DEFAULT_NAMESPACE, Reply, build_request, parse_fault, parse_reply
from worker.transport import HttpResponse, Transport

_EXCERPT = 200


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how one tenant's calls go."""

    url: str
    token: Secret
    namespace: str = DEFAULT_NAMESPACE
    action: str | None = None
    version: str = "1.1"


class SoapClient:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def record_interaction(self, event: Interaction, endpoint: Endpoint) -> Reply:
        request = build_request(event, endpoint.token, namespace=endpoint.namespace,
                                action=endpoint.action, version=endpoint.version)
        try:
            return interpret(await self.transport.send(endpoint.url, request))
        except DeliveryError as exc:
            # Text from the far side may echo our request: scrub before it goes anywhere.
            exc.args = tuple(endpoint.token.scrub(str(a)) for a in exc.args)
            raise


def interpret(response: HttpResponse) -> Reply:
    """Map an HTTP exchange to a reply or an error, per design.md section 1."""
    if response.status == 200:
        return parse_reply(response.body)
    if response.status == 500:
        fault = parse_fault(response.body)
        if fault is not None:
            raise fault
    raise HttpStatusError(response.status, _excerpt(response.body),
                          _retry_after(response.headers.get("Retry-After")))


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff
    return max(0.0, seconds) if math.isfinite(seconds) else None  # "inf", "nan", "1e400"


def _excerpt(body: bytes) -> str:
    return " ".join(body[:_EXCERPT].decode("utf-8", "replace").split())
