"""Delivery attempts, start to finish: admit, call, classify, record.

Work goes in batches: the batch consumer admits a claimed batch in one round trip and records
every outcome that finished together in one pipeline; the Celery task is a batch of one. An
outcome (status record, counters, dead letter or schedule entry) is written before the message
is acked or its lease dropped (``tail`` rides at the end of the same pipeline), so nothing is
let go before what happened to it is on record.
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis

from relay import deadletters, keys
from relay.errors import ConfigError, DeliveryError, ValidationError
from relay.events import Interaction
from relay.status import (
    DEAD_LETTER,
    DELIVERED,
    REJECTED,
    TERMINAL,
    WAITING,
    append_history,
)
from relay.status import write as write_status
from worker import durable, observe, schedule
from worker.admission import Admission, Admitter
from worker.batch import Attempt, Batch, Finished, Tail
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
        """One message start to finish (the Celery task); never raises for a bad message."""
        [admitted] = self.admit([message])
        if isinstance(admitted, str):
            return admitted
        time.sleep(admitted.delay)
        started = time.perf_counter()
        try:
            result: Reply | DeliveryError = self.call(admitted.event, admitted.endpoint)
        except DeliveryError as exc:
            result = exc
        latency_ms = (time.perf_counter() - started) * 1000
        return self.record([Finished(admitted, result, latency_ms)])[0]

    def admit(self, messages: Sequence[Any], tail: Tail | None = None) -> list[Attempt | str]:
        """Per message, an ``Attempt`` to make, or what already happened to it (refused,
        skipped, waiting), recorded before this returns."""
        batch = Batch(self.redis)
        out: list[Attempt | str] = [""] * len(messages)
        candidates = self._read(batch, messages, out)
        admissions = self.admitter.admit([(e.event_id, e.tenant) for _, e, _ in candidates])
        now = time.time()
        go: list[tuple[int, Attempt]] = []
        for (i, event, endpoint), adm in zip(candidates, admissions, strict=True):
            if adm.verdict == "skip":
                out[i] = self._count_only(batch, "skipped", event, f"already {adm.state}")
            elif adm.verdict == "wait":
                out[i] = self._hold(batch, event, now + adm.wait_s)
            else:
                go.append((i, Attempt(event, endpoint, adm)))
        self._book_slots(batch, go, out, now)
        batch.commit(tail)
        return out

    def _read(self, batch: Batch, messages: Sequence[Any], out: list[Attempt | str]
              ) -> list[tuple[int, Interaction, Endpoint]]:
        """Validate each message and find its tenant; refuse those no attempt can fix."""
        candidates = []
        for i, message in enumerate(messages):
            try:
                event = Interaction.from_message(message)
            except ValidationError as exc:
                out[i] = self._refuse(batch, message, "invalid_message", f"invalid message: {exc}")
                continue
            try:
                candidates.append((i, event, self.settings.endpoint(event.tenant)))
            except ConfigError as exc:
                out[i] = self._refuse(batch, event.to_message(), "config:tenant", str(exc))
        return candidates

    def _book_slots(self, batch: Batch, go: list[tuple[int, Attempt]],
                    out: list[Attempt | str], now: float) -> None:
        """Give each attempt its rate-limit slot; one booked past the horizon waits in the
        schedule instead, without spending its attempt."""
        waits = self.limiter.reserve([a.event.tenant for _, a in go]) if self.limiter else []
        for n, (i, attempt) in enumerate(go):
            wait = waits[n] if waits else 0.0
            if wait < 0:
                batch.pipe.hincrby(keys.event(attempt.event.event_id), "charged", -1)
                out[i] = self._hold(batch, attempt.event, now - wait)
            else:
                attempt.delay = wait
                out[i] = attempt

    def record(self, done: Sequence[Finished], tail: Tail | None = None) -> list[str]:
        """Record outcomes (in the order the calls finished) in one pipeline."""
        batch = Batch(self.redis)
        verdicts = [self.settings.policy.classify(f.result) for f in done]
        # A success ends a failure run. Within a batch the order is the order calls finished,
        # so a success that a later failure of its tenant follows resets the circuit before
        # that failure is counted; one with no failure after it resets with the batch.
        pairs = list(zip(done, verdicts, strict=True))
        last_failure = {f.attempt.event.tenant: n for n, (f, v) in enumerate(pairs)
                        if _counts_as_failure(v)}
        reset_first: set[str] = set()
        outcomes = []
        for n, (f, verdict) in enumerate(pairs):
            tenant = f.attempt.event.tenant
            if not _counts_as_failure(verdict):
                if last_failure.get(tenant, -1) > n:
                    reset_first.add(tenant)
                else:
                    batch.answered.add(tenant)
            outcomes.append(self._record(batch, f, verdict, reset_first))
        batch.commit(tail)
        return outcomes

    def _failure(self, tenant: str, reason: str, reset_first: set[str],
                 force: bool = False) -> bool:
        if tenant in reset_first:
            reset_first.discard(tenant)
            pipe = self.redis.pipeline(transaction=False)
            Circuit.success(pipe, tenant)
            durable.execute(pipe)
        return self.circuit.failure(tenant, reason, force=force)

    def _record(self, batch: Batch, f: Finished, verdict: Verdict, reset_first: set[str]
                ) -> str:
        event, adm = f.attempt.event, f.attempt.admission
        now = time.time()
        reason = f.attempt.endpoint.token.scrub(verdict.reason)
        outcome, fields, opened = self._decide(batch, f, verdict, reason, now, reset_first)
        if verdict.trips_breaker and outcome is not Outcome.RETRY and not opened:
            opened = self._failure(event.tenant, reason, reset_first)
        latency_ms = round(f.latency_ms, 1)
        write_status(batch.pipe, event.event_id, fields)
        if fields["state"] in TERMINAL:
            batch.ended.append(event.event_id)
        append_history(batch.pipe, event.event_id, {
            "at": now, "attempt": adm.attempts, "signal": verdict.signal,
            "outcome": outcome.value, "latency_ms": latency_ms, "reason": reason[:200]})
        batch.tally.count(outcome.value, event.tenant, verdict.signal)
        batch.tally.latency(latency_ms / 1000)
        if verdict.ambiguous:
            batch.tally.add("ambiguous")
        if opened:
            batch.reports.append(functools.partial(observe.alert, "circuit opened",
                                                   tenant=event.tenant, reason=reason))
        batch.reports.append(functools.partial(
            observe.outcome, outcome.value, event_id=event.event_id, tenant=event.tenant,
            code=verdict.code, signal=verdict.signal, attempt=adm.attempts,
            latency_ms=latency_ms, reason=None if outcome is Outcome.DELIVERED else reason))
        return outcome.value

    def _decide(self, batch: Batch, f: Finished, verdict: Verdict, reason: str, now: float,
                reset_first: set[str]) -> tuple[Outcome, dict[str, Any], bool]:
        """The outcome, the status fields it sets, and whether it opened the circuit."""
        event, adm = f.attempt.event, f.attempt.admission
        outcome = verdict.outcome
        fields: dict[str, Any] = {"last_code": verdict.code, "last_signal": verdict.signal,
                                  "last_error": "" if outcome is Outcome.DELIVERED else reason}
        opened = False
        if outcome is Outcome.DELIVERED:
            fields.update(state=DELIVERED, interaction_id=verdict.interaction_id)
        elif outcome is Outcome.REJECTED:
            fields.update(state=REJECTED)
        elif outcome is Outcome.DEAD_LETTER:
            fields.update(state=DEAD_LETTER)
            self._dead_letter(batch, event, adm, verdict.code, verdict.signal, reason, now)
        else:  # RETRY or SYSTEMIC
            outcome, due, opened = self._plan_retry(batch, event, adm, verdict, reason, now,
                                                    reset_first)
            if outcome is Outcome.DEAD_LETTER:
                fields.update(state=DEAD_LETTER)
            else:
                fields.update(state=WAITING, next_attempt=due)
        return outcome, fields, opened

    def _plan_retry(self, batch: Batch, event: Interaction, adm: Admission, verdict: Verdict,
                    reason: str, now: float, reset_first: set[str]
                    ) -> tuple[Outcome, float, bool]:
        """Retry later, or wait for the circuit without spending the attempt, or give up."""
        systemic = verdict.outcome is Outcome.SYSTEMIC
        opened = self._failure(event.tenant, reason, reset_first, force=systemic) \
            if systemic or verdict.trips_breaker else False
        incident = opened or adm.probe or bool(
            self.redis.exists(keys.circuit(event.tenant, "incident")))
        if systemic or incident:
            batch.pipe.hincrby(keys.event(event.event_id), "charged", -1)
            wait = max(0.05, self.redis.pttl(keys.circuit(event.tenant, "open")) / 1000)
            due = now + (wait if incident else self.settings.breaker.cooldown)
        elif self.settings.backoff.exhausted(adm.charged, now - adm.created_at):
            self._dead_letter(batch, event, adm, verdict.code, verdict.signal,
                              f"retries exhausted after {adm.charged} attempts: {reason}", now)
            return Outcome.DEAD_LETTER, now, opened
        else:
            due = now + max(self.settings.backoff.delay(adm.charged, self.rng),
                            verdict.retry_after or 0.0)
        schedule.add(batch.pipe, event.to_message(), due)
        return Outcome.RETRY if not systemic else Outcome.SYSTEMIC, due, opened

    def _dead_letter(self, batch: Batch, event: Interaction | dict[str, Any],
                     adm: Admission | None, code: int | None, signal: str, reason: str,
                     now: float) -> None:
        message = event.to_message() if isinstance(event, Interaction) else event
        tenant = str(message.get("tenant") or "default")
        deadletters.add(batch.pipe, {
            "event": message, "tenant": message.get("tenant", ""), "code": code,
            "signal": signal, "reason": reason, "attempts": adm.attempts if adm else 0,
            "first_attempt_at": adm.created_at if adm else now, "last_attempt_at": now,
            "dead_at": now})
        batch.reports.append(functools.partial(
            observe.dead_letter, event_id=message.get("event_id"), tenant=tenant, code=code,
            signal=signal, reason=reason))

    def _hold(self, batch: Batch, event: Interaction, due: float) -> str:
        """Park the event (circuit open, or rate booked up), spending nothing."""
        schedule.add(batch.pipe, event.to_message(), due)
        write_status(batch.pipe, event.event_id, {"state": WAITING, "next_attempt": due})
        batch.tally.add("held")
        return "waiting"

    def refuse(self, message: Any, signal: str, reason: str) -> str:
        """A message no attempt can fix here: dead-letter it whole, never crash the worker."""
        batch = Batch(self.redis)
        outcome = self._refuse(batch, message, signal, reason)
        batch.commit(None)
        return outcome

    def _refuse(self, batch: Batch, message: Any, signal: str, reason: str) -> str:
        if not isinstance(message, dict):
            message = {"raw": repr(message)[:2000]}
        event_id = message.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            message = {**message, "event_id": f"invalid-{uuid.uuid4().hex}"}
        event_id = str(message["event_id"])
        now = time.time()
        self._dead_letter(batch, message, None, None, signal, reason, now)
        tenant = str(message.get("tenant") or "default")
        write_status(batch.pipe, event_id, {"state": DEAD_LETTER, "last_error": reason,
                                            "last_signal": signal, "tenant": tenant})
        batch.tally.count(Outcome.DEAD_LETTER.value, tenant, signal)
        batch.ended.append(event_id)
        batch.reports.append(functools.partial(observe.outcome, "dead_letter",
                                               event_id=event_id, signal=signal, reason=reason))
        return Outcome.DEAD_LETTER.value

    def _count_only(self, batch: Batch, outcome: str, event: Interaction, reason: str) -> str:
        batch.tally.count(outcome, event.tenant)
        batch.ended.append(event.event_id)
        batch.reports.append(functools.partial(observe.outcome, outcome, event_id=event.event_id,
                                               tenant=event.tenant, reason=reason))
        return outcome


def _counts_as_failure(verdict: Verdict) -> bool:
    """Whether the outcome feeds the tenant's circuit breaker as a failure."""
    return verdict.trips_breaker or verdict.outcome is Outcome.SYSTEMIC
