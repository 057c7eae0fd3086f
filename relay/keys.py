"""Names of everything the relay keeps in Redis (design.md section 5), in one place.

Every key starts with ``relay:``; Celery's own keys get the same prefix through kombu's
``global_keyprefix``, so one Redis can be shared with other applications.
"""

from __future__ import annotations

PREFIX = "relay:"
QUEUE = "deliveries"  # Celery queue name; kombu stores it at relay:deliveries
TASK_NAME = "relay.deliver"

INBOX = PREFIX + "inbox"  # list: event messages (JSON) waiting for a worker
LEASES = PREFIX + "leases"  # zset: event_id -> lease deadline, while a worker holds it
LEASE_EVENTS = PREFIX + "leases:events"  # hash: event_id -> the leased message
STATS = PREFIX + "stats"  # hash: outcome/code/tenant counters, pool-wide
DLQ = PREFIX + "dlq"  # hash: event_id -> dead-letter entry (JSON), no TTL
DLQ_INDEX = PREFIX + "dlq:index"  # zset: event_id -> time dead-lettered
SCHEDULE = PREFIX + "schedule"  # zset: event_id -> due time (epoch seconds)
SCHEDULE_EVENTS = PREFIX + "schedule:events"  # hash: event_id -> event message (JSON)
# The outbox: every accepted event until it ends, so one lost in transit can be sent again.
PENDING = PREFIX + "pending"  # zset: event_id -> accepted (or last re-sent) time
PENDING_EVENTS = PREFIX + "pending:events"  # hash: event_id -> event message (JSON)


def event(event_id: str) -> str:
    """Status record of one event (hash, with a TTL)."""
    return f"{PREFIX}event:{event_id}"


def circuit(tenant: str, part: str) -> str:
    """Circuit-breaker state of one tenant: ``open``, ``incident``, ``probe``, ``fails``."""
    return f"{PREFIX}circuit:{tenant}:{part}"


def rate(tenant: str) -> str:
    """Pool-wide rate-limit window of one tenant."""
    return f"{PREFIX}rate:{tenant}"


def app_key_patterns() -> list[str]:
    """Patterns of the relay's own data (not Celery's), for operators' and tests' cleanup."""
    return [PREFIX + p for p in ("stats", "dlq*", "schedule*", "pending*", "event:*",
                                 "circuit:*", "rate:*", "inbox", "leases*")]
