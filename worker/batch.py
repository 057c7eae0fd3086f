"""The units of a batch: an admitted ``Attempt``, its ``Finished`` call, and the ``Batch`` of
writes that records them.

A batch's writes go on one pipeline, counters summed first; reports (log lines, alerts, Sentry)
wait until the writes are on record, so nothing is announced that Redis does not hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from relay.errors import DeliveryError
from relay.events import Interaction
from relay.status import finished
from worker import durable
from worker.admission import Admission
from worker.circuit import Circuit
from worker.client import Endpoint
from worker.soap import Reply
from worker.stats import Tally

Tail = Callable[[Any], None]  # queues the caller's own writes (e.g. lease release) on a pipeline


@dataclass(slots=True)
class Attempt:
    """An admitted event: call the service (after ``delay``, its rate-limit slot), record."""

    event: Interaction
    endpoint: Endpoint
    admission: Admission
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Finished:
    attempt: Attempt
    result: Reply | DeliveryError
    latency_ms: float


class Batch:
    """One batch's writes on one pipeline, and the reports to make once they are on record."""

    def __init__(self, client: redis.Redis) -> None:
        self.pipe = client.pipeline(transaction=False)
        self.tally = Tally()
        self.ended: list[str] = []
        self.answered: set[str] = set()  # tenants whose service answered sensibly
        self.reports: list[Callable[[], None]] = []

    def commit(self, tail: Tail | None) -> None:
        for tenant in self.answered:
            Circuit.success(self.pipe, tenant)
        finished(self.pipe, *self.ended)
        self.tally.flush(self.pipe)
        if tail is not None:
            tail(self.pipe)
        if self.pipe.command_stack:
            durable.execute(self.pipe)
        for report in self.reports:
            report()
