"""Delivery errors: the ``DeliveryError`` branch of the tree drawn in ``relay.errors``.

Each class carries the ``signal`` the outcome policy (``worker.policy``) looks up.
"""

from __future__ import annotations

from relay.errors import DeliveryError


class TransportError(DeliveryError):
    """No usable HTTP exchange took place."""


class ConnectFailed(TransportError):
    """Connecting (DNS, TCP, TLS) failed: nothing was sent."""

    signal = "connect"


class RequestTimeout(TransportError):
    """No reply in time after the request may have gone out: the service may have recorded it."""

    signal = "timeout"
    ambiguous = True


class ConnectionLost(TransportError):
    """The connection was reset or closed mid-exchange."""

    signal = "reset"
    ambiguous = True


class ReplyTooLarge(TransportError):
    """The reply passed the configured size cap and was not read further."""

    signal = "reply:too_large"


class HttpStatusError(DeliveryError):
    """An HTTP status that carries no SOAP reply (proxy pages, 429, other 4xx/5xx)."""

    def __init__(self, status: int, excerpt: str = "", retry_after: float | None = None) -> None:
        self.status = status
        self.excerpt = excerpt
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}" + (f": {excerpt}" if excerpt else ""))

    @property
    def signal(self) -> str:  # type: ignore[override]
        return f"http:{self.status}"


class SoapFault(DeliveryError):
    """A SOAP Fault produced by the .asmx stack itself."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")


class ClientFault(SoapFault):
    """soap:Client / soap:Sender: the service could not route or read our request."""

    signal = "fault:client"


class ServerFault(SoapFault):
    """soap:Server / soap:Receiver: the service failed while processing."""

    signal = "fault:server"


class ReplyError(DeliveryError):
    """A reply that is not a RecordInteraction reply; the message says what was found."""

    signal = "reply:invalid"


class WorkerError(DeliveryError):
    """Our own code failed around a call (a bug, not the service): retried with backoff like
    any error, and ambiguous, since the request may have gone out."""

    ambiguous = True
