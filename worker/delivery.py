"""One delivery attempt, start to finish: admit, call, classify, record, then let Celery ack.

The outcome (status record, counters, dead letter or schedule entry) is written in one Redis
pipeline *before* the task returns, so an ack never precedes the record of what happened.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from producers import deadletters, keys
from producers.errors import ConfigError, DeliveryError, ValidationError
from producers.events import Interaction
from producers.status import (
    DEAD_LETTER,
    DELIVERED,
    REJECTED,
    TERMINAL,
    WAITING,
    append_history,
    finished,
)
from producers.status import write as write_status
from worker import durable, observe, schedule, stats
from worker.admission import Admission, Admitter
from worker.circuit import Circuit
from worker.client import Endpoint
from worker.policy import Outcome, Verdict
from worker.ratelimit import RateLimiter
from worker.settings import Settings
from worker.soap import Reply

Call = Callable[[Interaction, Endpoint], Reply]  # raises DeliveryError


class Deliverer:
    def __init__(self, settings: Settings, client: redis.Redis, call: Call,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.redis = client
        self.call = call
        self.rng = rng or random.Random()
        self.admitter = Admitter(client, probe_ttl_s=settings.transport.total_timeout + 5)
        self.circuit = Circuit(client, settings.breaker)
        self.limiter = RateLimiter(client, settings.rate_limit) if settings.rate_limit else None

    def deliver(self, message: Any) -> str:
        """Handle one queue message; returns what happened. Never raises for a bad message."""
        try:
            event = Interaction.from_message(message)
        except ValidationError as exc:
            return self.refuse(message, "invalid_message", f"invalid message: {exc}")
        try:
            endpoint = self.settings.endpoint(event.tenant)
        except ConfigError as exc:
            return self.refuse(event.to_message(), "config:tenant", str(exc))
        admission = self.admitter.admit(event.event_id, event.tenant)
        if admission.verdict == "skip":
            self._count_only("skipped", event, f"already {admission.state}")
            return "skipped"
        if admission.verdict == "wait":
            self._hold(event, time.time() + admission.wait_s)
            return "waiting"
        if self.limiter and not self.limiter.acquire(event.tenant):
            # The tenant's rate is saturated for a minute: wait in the schedule instead.
            pipe = self.redis.pipeline(transaction=False)
            pipe.hincrby(keys.event(event.event_id), "charged", -1)
            durable.execute(pipe)
            self._hold(event, time.time() + 5)
            return "waiting"
        started = time.perf_counter()
        try:
            result: Reply | DeliveryError = self.call(event, endpoint)
        except DeliveryError as exc:
            result = exc
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        verdict = self.settings.policy.classify(result)
        return self._record(event, endpoint, admission, verdict, latency_ms)

    def _record(self, event: Interaction, endpoint: Endpoint, adm: Admission, verdict: Verdict,
                latency_ms: float) -> str:
        now = time.time()
        outcome = verdict.outcome
        reason = endpoint.token.scrub(verdict.reason)
        pipe = self.redis.pipeline(transaction=False)
        fields: dict[str, Any] = {"last_code": verdict.code, "last_signal": verdict.signal,
                                  "last_error": "" if outcome is Outcome.DELIVERED else reason}
        opened = False
        if outcome is Outcome.DELIVERED:
            fields.update(state=DELIVERED, interaction_id=verdict.interaction_id)
        elif outcome is Outcome.REJECTED:
            fields.update(state=REJECTED)
        elif outcome is Outcome.DEAD_LETTER:
            fields.update(state=DEAD_LETTER)
            self._dead_letter(pipe, event, adm, verdict.code, verdict.signal, reason, now)
        else:  # RETRY or SYSTEMIC
            outcome, due, opened = self._plan_retry(pipe, event, adm, verdict, reason, now)
            if outcome is Outcome.DEAD_LETTER:
                fields.update(state=DEAD_LETTER)
            else:
                fields.update(state=WAITING, next_attempt=due)
        if verdict.trips_breaker and outcome is not Outcome.RETRY and not opened:
            opened = self.circuit.failure(event.tenant, reason)
        elif not verdict.trips_breaker and verdict.outcome is not Outcome.SYSTEMIC:
            Circuit.success(pipe, event.tenant)  # the service answered sensibly
        write_status(pipe, event.event_id, fields)
        if fields["state"] in TERMINAL:
            finished(pipe, event.event_id)
        append_history(pipe, event.event_id, {"at": now, "attempt": adm.attempts, "signal":
                                        verdict.signal, "outcome": outcome.value,
                                        "latency_ms": latency_ms, "reason": reason[:200]})
        stats.count(pipe, outcome.value, event.tenant, verdict.signal)
        stats.observe_latency(pipe, latency_ms / 1000)
        if verdict.ambiguous:
            pipe.hincrby(keys.STATS, "ambiguous", 1)
        durable.execute(pipe)
        if opened:
            observe.alert("circuit opened", tenant=event.tenant, reason=reason)
        if outcome is Outcome.DEAD_LETTER:
            observe.dead_letter(event_id=event.event_id, tenant=event.tenant, code=verdict.code,
                                signal=verdict.signal, reason=reason)
        observe.outcome(outcome.value, event_id=event.event_id, tenant=event.tenant,
                        code=verdict.code, signal=verdict.signal, attempt=adm.attempts,
                        latency_ms=latency_ms, reason=None if outcome is Outcome.DELIVERED
                        else reason)
        return outcome.value

    def _plan_retry(self, pipe: Any, event: Interaction, adm: Admission, verdict: Verdict,
                    reason: str, now: float) -> tuple[Outcome, float, bool]:
        """Retry later, or wait for the circuit without spending the attempt, or give up."""
        systemic = verdict.outcome is Outcome.SYSTEMIC
        opened = self.circuit.failure(event.tenant, reason, force=systemic) \
            if systemic or verdict.trips_breaker else False
        incident = opened or adm.probe or bool(
            self.redis.exists(keys.circuit(event.tenant, "incident")))
        if systemic or incident:
            pipe.hincrby(keys.event(event.event_id), "charged", -1)
            wait = max(0.05, self.redis.pttl(keys.circuit(event.tenant, "open")) / 1000)
            due = now + (wait if incident else self.settings.breaker.cooldown)
        elif self.settings.backoff.exhausted(adm.charged, now - adm.created_at):
            self._dead_letter(pipe, event, adm, verdict.code, verdict.signal,
                              f"retries exhausted after {adm.charged} attempts: {reason}", now)
            return Outcome.DEAD_LETTER, now, opened
        else:
            due = now + max(self.settings.backoff.delay(adm.charged, self.rng),
                            verdict.retry_after or 0.0)
        schedule.add(pipe, event.to_message(), due)
        return Outcome.RETRY if not systemic else Outcome.SYSTEMIC, due, opened

    def _dead_letter(self, pipe: Any, event: Interaction | dict[str, Any], adm: Admission | None,
                     code: int | None, signal: str, reason: str, now: float) -> None:
        message = event.to_message() if isinstance(event, Interaction) else event
        deadletters.add(pipe, {
            "event": message, "tenant": message.get("tenant", ""), "code": code,
            "signal": signal, "reason": reason, "attempts": adm.attempts if adm else 0,
            "first_attempt_at": adm.created_at if adm else now, "last_attempt_at": now,
            "dead_at": now})

    def _hold(self, event: Interaction, due: float) -> None:
        """Park the event (circuit open, or rate saturated), spending nothing."""
        pipe = self.redis.pipeline(transaction=False)
        schedule.add(pipe, event.to_message(), due)
        write_status(pipe, event.event_id, {"state": WAITING, "next_attempt": due})
        pipe.hincrby(keys.STATS, "held", 1)
        durable.execute(pipe)

    def refuse(self, message: Any, signal: str, reason: str) -> str:
        """A message no attempt can fix here: dead-letter it whole, never crash the worker."""
        if not isinstance(message, dict):
            message = {"raw": repr(message)[:2000]}
        event_id = message.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            message = {**message, "event_id": f"invalid-{uuid.uuid4().hex}"}
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        self._dead_letter(pipe, message, None, None, signal, reason, now)
        tenant = str(message.get("tenant") or "default")
        write_status(pipe, str(message["event_id"]), {"state": DEAD_LETTER, "last_error": reason,
                                                      "last_signal": signal, "tenant": tenant})
        stats.count(pipe, Outcome.DEAD_LETTER.value, tenant, signal)
        finished(pipe, str(message["event_id"]))
        durable.execute(pipe)
        observe.outcome("dead_letter", event_id=message["event_id"], signal=signal,
                        reason=reason)
        observe.dead_letter(event_id=message["event_id"], tenant=tenant, signal=signal,
                            reason=reason)
        return Outcome.DEAD_LETTER.value

    def _count_only(self, outcome: str, event: Interaction, reason: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        stats.count(pipe, outcome, event.tenant)
        finished(pipe, event.event_id)
        durable.execute(pipe)
        observe.outcome(outcome, event_id=event.event_id, tenant=event.tenant, reason=reason)

