"""The project's one exception tree.

Producers and workers share it, so it lives in the core package both import::

    RelayError
    ├── ConfigError                 settings that cannot work (bad URL, unknown tenant)
    ├── ValidationError             an event that breaks the contract; names field and rule
    ├── EnqueueError                Redis refused or could not be reached when enqueuing
    └── DeliveryError               (worker.errors) one attempt to call RecordInteraction failed
        ├── TransportError          no usable HTTP exchange
        │   ├── ConnectFailed       nothing was sent: safe to retry
        │   ├── RequestTimeout      may have been recorded remotely (ambiguous)
        │   ├── ConnectionLost      reset or closed mid-exchange (ambiguous)
        │   └── ReplyTooLarge       the reply passed the size cap
        ├── HttpStatusError         a non-SOAP HTTP status (proxy 502/503/504, 429, other 4xx/5xx)
        ├── SoapFault               the .asmx stack's own fault
        │   ├── ClientFault         soap:Client / soap:Sender: our request is wrong
        │   └── ServerFault         soap:Server / soap:Receiver: the service failed
        ├── ReplyError              HTTP 200 that is not a RecordInteraction reply
        └── WorkerError             our own code failed around a call (a bug)

Foreign exceptions (aiohttp, asyncio, expat, redis) are translated into this tree at exactly one
boundary each, with ``raise ... from``.
"""

from __future__ import annotations

from dataclasses import dataclass


class RelayError(Exception):
    """Base of everything this project raises on purpose."""


class ConfigError(RelayError):
    """Settings that cannot work."""


class EnqueueError(RelayError):
    """Redis could not take the event; nothing was enqueued."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: which field, which rule, in words a caller can show."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidationError(RelayError):
    """An event that breaks the contract; carries every broken rule, not just the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))

    @classmethod
    def one(cls, field: str, rule: str, message: str) -> ValidationError:
        return cls([FieldError(field, rule, message)])

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"field": e.field, "rule": e.rule, "message": e.message} for e in self.errors]


class DeliveryError(RelayError):
    """One attempt to call RecordInteraction failed; subclasses live in ``worker.errors``.

    ``signal`` is the key the outcome policy looks up; ``ambiguous`` says the service may
    have recorded the call even though we saw no reply.
    """

    signal = "error"
    ambiguous = False
