"""What the end of an attempt writes, decided purely: values in, a ``Plan`` out.

The consumer asks here before a call (a spent budget dead-letters without calling) and after
it (reply or error, through the outcome policy); ``worker.moves`` writes the plan in one fenced
script. Nothing here touches Redis or a clock, so every rule has a unit test.

Budget: claiming charges an attempt, because from then on a call may go out. A plan refunds it
when the call certainly did not reach the service (nothing sent, a proxy's 502/503, 429) or
when the answer proves nothing was recorded (credential codes: the platform checks the token
before anything else). Every other call counts, probes included, so no event is sent without
limit; an outage that refuses connections still dead-letters nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from worker.backoff import Backoff
from worker.policy import Outcome, Verdict

REASON_MAX = 200


@dataclass(frozen=True, slots=True)
class Claim:
    """A leased event, as the claim script handed it over."""

    member: str
    tenant: str
    event_id: str
    token: str
    payload: str
    attempts: int  # calls started, this one included
    charged: int  # budget spent, this one included
    accepted_ms: int  # Redis server time
    probe: bool  # the one call testing a half-open circuit
    delay_s: float  # until its rate-limit slot
    claimed_ms: int  # Redis server time of the claim


class Kind(StrEnum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    DEAD_LETTER = "dead_letter"
    RETRY = "retry"
    RELEASE = "release"  # back to waiting untouched: the worker stops, or its lease lapsed


class Breaker(StrEnum):
    NONE = ""
    OK = "ok"  # the service answered sensibly: closes the tenant's circuit
    FAIL = "fail"  # counts towards opening it (distinct events)
    FORCE = "force"  # opens it now (credentials wrong for the whole tenant)


@dataclass(frozen=True, slots=True)
class Plan:
    kind: Kind
    refund: bool = False
    breaker: Breaker = Breaker.NONE
    delay_ms: int = 0
    code: int | None = None
    signal: str = ""
    reason: str = ""
    interaction_id: int | None = None
    latency_ms: float | None = None
    ambiguous: bool = False  # sent, then no answer: the service may have recorded it


def age_s(claim: Claim, since_claim_s: float) -> float:
    """The event's age from server times plus a local duration: no wall clock involved."""
    return (claim.claimed_ms - claim.accepted_ms) / 1000 + since_claim_s


def before_call(claim: Claim, backoff: Backoff, age: float) -> Plan | None:
    """Dead-letter without calling when the budget was spent before this claim."""
    spent = claim.charged - 1
    if spent >= backoff.max_attempts:
        return Plan(Kind.DEAD_LETTER, refund=True, signal="budget",
                    reason=f"retries exhausted after {spent} attempts")
    if age >= backoff.max_age:
        return Plan(Kind.DEAD_LETTER, refund=True, signal="budget",
                    reason=f"older than the maximum age ({backoff.max_age:g} s)")
    return None


def refuse(signal: str, reason: str) -> Plan:
    """A claimed event no attempt can deliver (unreadable, unknown tenant): dead-letter it,
    uncharged, so an operator can fix and replay it."""
    return Plan(Kind.DEAD_LETTER, refund=True, signal=signal, reason=reason[:REASON_MAX])


def release(sent: bool) -> Plan:
    """Give the event back untouched; it keeps the charge only if its call may have gone out."""
    return Plan(Kind.RELEASE, refund=not sent)


def after_call(claim: Claim, verdict: Verdict, reason: str, latency_ms: float, *,
               backoff: Backoff, age: float, cooldown_s: float,
               rng: random.Random | None = None) -> Plan:
    """The plan for a finished call. ``reason`` is the verdict's reason, already scrubbed."""
    reason = reason[:REASON_MAX]
    systemic = verdict.outcome is Outcome.SYSTEMIC
    refund = systemic or not verdict.reached
    breaker = (Breaker.FORCE if systemic else
               Breaker.FAIL if verdict.trips_breaker else Breaker.OK)

    def plan(kind: Kind, why: str = reason, delay_ms: int = 0) -> Plan:
        return Plan(kind, refund=refund, breaker=breaker, delay_ms=delay_ms, code=verdict.code,
                    signal=verdict.signal, reason=why, interaction_id=verdict.interaction_id,
                    latency_ms=latency_ms, ambiguous=verdict.ambiguous)

    if verdict.outcome is Outcome.DELIVERED:
        return plan(Kind.DELIVERED, "")
    if verdict.outcome is Outcome.REJECTED:
        return plan(Kind.REJECTED)
    if verdict.outcome is Outcome.DEAD_LETTER:
        return plan(Kind.DEAD_LETTER)
    spent = claim.charged - (1 if refund else 0)
    if not systemic and spent >= backoff.max_attempts:
        return plan(Kind.DEAD_LETTER,
                    f"retries exhausted after {spent} attempts: {reason}"[:REASON_MAX])
    if not systemic and age >= backoff.max_age:
        return plan(Kind.DEAD_LETTER,
                    f"older than the maximum age ({backoff.max_age:g} s): {reason}"[:REASON_MAX])
    # The service's Retry-After is honoured up to our own backoff's cap.
    delay = cooldown_s if systemic else max(backoff.delay(max(1, spent), rng),
                                            min(verdict.retry_after or 0.0, backoff.cap))
    return plan(Kind.RETRY, delay_ms=int(delay * 1000))
