"""Producer side of interaction-relay: validate, dedupe and enqueue interactions."""

from producers.producer import Producer
from relay.errors import EnqueueError, RelayError, ValidationError
from relay.events import Interaction

__all__ = ["EnqueueError", "Interaction", "Producer", "RelayError", "ValidationError"]
