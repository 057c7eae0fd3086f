"""Producer side of interaction-relay: validate, dedupe and enqueue interactions."""

from producers.async_producer import AsyncProducer
from producers.producer import Producer
from relay.errors import EnqueueError, RelayError, ValidationError
from relay.events import Interaction

__all__ = ["AsyncProducer", "EnqueueError", "Interaction", "Producer", "RelayError",
           "ValidationError"]
