"""Producer side of interaction-relay: validate, dedupe and enqueue interactions."""

from producers.errors import EnqueueError, RelayError, ValidationError
from producers.events import Interaction
from producers.producer import Producer

__all__ = ["EnqueueError", "Interaction", "Producer", "RelayError", "ValidationError"]
