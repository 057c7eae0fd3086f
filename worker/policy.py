"""Outcome policy (design.md section 3) as data: a signal -> outcome table operators can override.

Signals are ``code:<n>`` for platform return codes and the ``signal`` of each delivery error
(``connect``, ``timeout``, ``reset``, ``http:<status>``, ``fault:client`` ...). A lookup falls
back from the exact signal to its family (``http:5xx``, ``code:*``), so nothing goes unmatched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from relay.codes import REASONS
from relay.errors import ConfigError, DeliveryError
from worker.errors import HttpStatusError
from worker.soap import Reply


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    REJECTED = "rejected"
    SYSTEMIC = "systemic"  # the tenant's credentials are wrong: open its circuit, keep the event


DEFAULT_TABLE: Mapping[str, Outcome] = {
    "code:0": Outcome.DELIVERED,
    "code:1": Outcome.RETRY,
    "code:2": Outcome.DEAD_LETTER,
    "code:5": Outcome.DEAD_LETTER,
    "code:6": Outcome.SYSTEMIC,
    **{f"code:{c}": Outcome.SYSTEMIC for c in range(100, 107)},
    "code:300": Outcome.DEAD_LETTER,
    "code:301": Outcome.REJECTED,
    "code:503": Outcome.DEAD_LETTER,
    "code:1200": Outcome.DEAD_LETTER,
    "code:*": Outcome.DEAD_LETTER,  # never drop what we do not understand
    "connect": Outcome.RETRY,
    "timeout": Outcome.RETRY,
    "reset": Outcome.RETRY,
    "http:429": Outcome.RETRY,
    "http:502": Outcome.RETRY,
    "http:503": Outcome.RETRY,
    "http:504": Outcome.RETRY,
    "http:5xx": Outcome.RETRY,
    "http:4xx": Outcome.DEAD_LETTER,
    "http:*": Outcome.RETRY,
    "fault:server": Outcome.RETRY,
    "fault:client": Outcome.DEAD_LETTER,
    "reply:invalid": Outcome.RETRY,
    "reply:too_large": Outcome.RETRY,
    "error": Outcome.RETRY,
}


# Failures that say "the service (or our route to it) is unwell" rather than "this event is
# bad": a run of them opens the tenant's circuit. Client faults and 4xx count too, since a
# burst of them means a wrong URL, namespace or action for everyone.
BREAKER_SIGNALS = frozenset({"code:1", "connect", "timeout", "reset", "fault:server",
                             "fault:client", "reply:invalid", "reply:too_large"})

# Calls that certainly did not reach the service: nothing was sent (connect, DNS, TLS), or a
# proxy or the front door answered for it (429, 502, 503). They do not spend the event's retry
# budget, so an outage of hours dead-letters nothing. Every other call may have been recorded
# (sent, then timed out, reset or answered) and counts, probes included.
UNSENT_SIGNALS = frozenset({"connect", "http:429", "http:502", "http:503"})


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    signal: str
    reason: str
    code: int | None = None
    interaction_id: int | None = None
    retry_after: float | None = None
    ambiguous: bool = False

    @property
    def trips_breaker(self) -> bool:
        return self.signal in BREAKER_SIGNALS or self.signal.startswith("http:")

    @property
    def reached(self) -> bool:
        """Whether the call may have reached (and been recorded by) the service."""
        return self.signal not in UNSENT_SIGNALS


@dataclass(frozen=True)
class Policy:
    table: Mapping[str, Outcome] = field(default_factory=lambda: dict(DEFAULT_TABLE))

    @classmethod
    def with_overrides(cls, overrides: str | Mapping[str, str] | None) -> Policy:
        """Overrides as JSON or a mapping, e.g. ``{"code:301": "dead_letter", "503": "retry"}``."""
        if not overrides:
            return cls()
        try:
            raw = json.loads(overrides) if isinstance(overrides, str) else dict(overrides)
            table = dict(DEFAULT_TABLE)
            for key, value in raw.items():
                signal = f"code:{key}" if str(key).lstrip("-").isdigit() else str(key)
                table[signal] = Outcome(value)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"RELAY_POLICY: {exc}; outcomes are "
                              f"{', '.join(o.value for o in Outcome)}") from exc
        return cls(table)

    def lookup(self, signal: str) -> Outcome:
        if signal in self.table:
            return self.table[signal]
        family, _, detail = signal.partition(":")
        if family == "http" and detail[:1] in "45":
            return self.table.get(f"http:{detail[0]}xx", self.table["http:*"])
        return self.table.get(f"{family}:*", self.table["error"])

    def classify(self, result: Reply | DeliveryError) -> Verdict:
        if isinstance(result, Reply):
            code = result.return_code
            # Unknown codes share one signal (and one counter): the service cannot mint labels.
            exact = f"code:{code}"
            signal = exact if code in REASONS or exact in self.table else "code:other"
            return Verdict(self.lookup(exact), signal, REASONS.get(code, f"return code {code}"),
                           code=code,
                           interaction_id=result.interaction_id if code == 0 else None)
        retry_after = result.retry_after if isinstance(result, HttpStatusError) else None
        return Verdict(self.lookup(result.signal), result.signal, str(result),
                       retry_after=retry_after, ambiguous=result.ambiguous)
