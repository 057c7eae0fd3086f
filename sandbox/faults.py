"""Fault injection for the sandbox: latency with jitter, weighted faults, forced codes, outages."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

# Each fault a request can draw; rates are probabilities per request.
FAULTS = ("error", "exception", "html502", "hang", "reset", "malformed", "huge", "bomb",
          "trickle", "http400", "http415", "http429")
OUTAGE_MODES = ("html503", "reset", "error")
# Where each fault strikes decides whether the call is on the record (which counts duplicates).
# In front of the service (a proxy, the network): the call never arrives, nothing is recorded.
# "http400"/"http415" are the bare refusals .asmx gives a body that is not well-formed XML or a
# media type it does not serve (design.md section 11), for a request the client sent intact but
# something on the way (a proxy rewriting it, a broken client build) spoiled.
IN_FRONT = frozenset({"html502", "html503", "reset", "malformed", "huge", "bomb", "http400",
                      "http415", "http429"})
# After the service has committed the call: it answers late or never, as a real one does when
# its reply is held up. The call is recorded although the client may give up on it.
AFTER_COMMIT = frozenset({"hang", "trickle"})
# Inside the method: "error" answers code 1, "exception" a soap:Server fault; neither records.


@dataclass
class FaultConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    force_code: int | None = None
    outage_until: float = 0.0  # epoch seconds; every call fails until then
    outage_mode: str = "html503"
    hang_s: float = 600.0
    retry_after_s: int = 1  # the Retry-After header of the "http429" fault
    # Accounts the method chokes on, every time (a soap:Server fault): a poison event.
    poison_accounts: list[str] = field(default_factory=list)

    def update(self, change: dict[str, Any]) -> None:
        """Merge a control-endpoint body; ``outage_seconds`` starts an outage window now."""
        for key, value in change.items():
            if key == "rates":
                self._rates(value)
            elif key == "outage_seconds":
                self.outage_until = time.time() + float(value) if value else 0.0
            elif key == "outage_mode":
                if value not in OUTAGE_MODES:
                    raise ValueError(f"outage_mode must be one of {OUTAGE_MODES}")
                self.outage_mode = value
            elif key == "force_code":
                self.force_code = None if value is None else int(value)
            elif key == "poison_accounts":
                if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                    raise ValueError("poison_accounts must be a list of account ids")
                self.poison_accounts = list(value)
            elif key == "retry_after_s":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError("retry_after_s must be a whole number of seconds >= 0")
                self.retry_after_s = value
            elif key in ("latency_ms", "jitter_ms", "hang_s"):
                setattr(self, key, max(0.0, float(value)))
            else:
                raise ValueError(f"unknown setting {key!r}")

    def _rates(self, value: dict[str, Any]) -> None:
        for name, rate in value.items():
            if name not in FAULTS:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
            if not 0 <= float(rate) <= 1:
                raise ValueError(f"rate of {name!r} must be within 0..1")
            self.rates[name] = float(rate)

    def delay(self, rng: random.Random) -> float:
        jitter = rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000

    def draw(self, rng: random.Random) -> str | None:
        """The fault this request suffers, if any."""
        if self.outage_until > time.time():
            return "outage"
        roll = rng.random()
        for name, rate in self.rates.items():
            if roll < rate:
                return name
            roll -= rate
        return None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outage_remaining_s"] = max(0.0, self.outage_until - time.time())
        return data
