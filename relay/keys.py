"""Names of everything the relay keeps in Redis (docs/DATA_MODEL.md is the map), in one place.

Every key of one relay starts with ``relay:{<scope>}:``. The braces are a Redis Cluster hash
tag: every key of a scope lands in one slot, so each Lua script (which touches many of them)
runs on a cluster-mode endpoint too. The scope (``RELAY_SCOPE``, default ``main``) lets several
relays share one Redis.

An event is identified by (tenant, event_id); its *member* is ``<tenant>/<event_id>``. Tenant
names cannot hold ``/`` (relay/events.py), so the first ``/`` splits a member unambiguously and
two different events can never share a key, whatever characters the event_id holds. Per-event
keys differ by a type tag before the member (``e:`` record, ``h:`` history), so no event's key
can be another's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SCOPE = "main"
_SCOPE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def member(tenant: str, event_id: str) -> str:
    """The id an event goes by in every sorted set and list."""
    return f"{tenant}/{event_id}"


def split(value: str | bytes) -> tuple[str, str]:
    """``(tenant, event_id)`` of a member."""
    text = value.decode() if isinstance(value, bytes) else value
    tenant, _, event_id = text.partition("/")
    return tenant, event_id


def valid_scope(scope: str) -> bool:
    return bool(_SCOPE.fullmatch(scope))


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names of one scope. Lua scripts derive per-event keys from ``prefix`` the same way."""

    scope: str = DEFAULT_SCOPE

    @property
    def prefix(self) -> str:
        return f"relay:{{{self.scope}}}:"

    @property
    def due(self) -> str:
        """zset: member -> due time (ms, Redis server time): waiting events."""
        return self.prefix + "due"

    @property
    def held(self) -> str:
        """zset: member -> lease deadline (ms): events a worker holds."""
        return self.prefix + "held"

    @property
    def dlq(self) -> str:
        """zset: member -> time dead-lettered (ms): the dead-letter index."""
        return self.prefix + "dlq"

    @property
    def stats(self) -> str:
        """hash: pool-wide counters."""
        return self.prefix + "stats"

    @property
    def seq(self) -> str:
        """string: the lease (fencing) token counter."""
        return self.prefix + "seq"

    @property
    def circuits(self) -> str:
        """hash: tenant -> circuit state (JSON), present only while a circuit is not closed."""
        return self.prefix + "circuits"

    @property
    def tenants(self) -> str:
        """set: the tenants workers are configured for; enqueue refuses any other."""
        return self.prefix + "tenants"

    def done(self, bucket: int) -> str:
        """hash: member -> outcome of events that ended in one time bucket (the dedupe window);
        expires ``retention`` after the bucket closes."""
        return f"{self.prefix}done:{bucket}"

    @property
    def parked(self) -> str:
        """set: tenants with events parked behind their circuit."""
        return self.prefix + "parked"

    def record(self, tenant: str, event_id: str) -> str:
        """hash: the event's record (state, message, attempts, outcome)."""
        return self.prefix + "e:" + member(tenant, event_id)

    def history(self, tenant: str, event_id: str) -> str:
        """list: attempt history, kept only for events that failed at least once."""
        return self.prefix + "h:" + member(tenant, event_id)

    def minute(self, minute: int) -> str:
        """hash: outcome -> attempts that ended so in one minute (Redis time); 2 h TTL."""
        return f"{self.prefix}minute:{minute}"

    def park(self, tenant: str) -> str:
        """list: members waiting for the tenant's circuit, oldest first."""
        return self.prefix + "park:" + tenant

    def fails(self, tenant: str) -> str:
        """zset: member -> last failure (ms): distinct failing events in the breaker window."""
        return self.prefix + "fails:" + tenant

    def rate(self, tenant: str) -> str:
        """string: the tenant's GCRA theoretical arrival time (ms)."""
        return self.prefix + "rate:" + tenant

    def pattern(self) -> str:
        """SCAN pattern of every key of this scope (tests and ``relay`` maintenance only)."""
        return f"relay:{{{self.scope}}}:*"
