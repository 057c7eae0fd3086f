"""Retry schedule: exponential backoff with equal jitter, a cap, a max attempt count and age."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Defaults: 2 s, 4 s, 8 s ... capped at 10 min; 12 charged attempts or 24 h, first wins."""

    base: float = 2.0
    factor: float = 2.0
    cap: float = 600.0
    max_attempts: int = 12
    max_age: float = 24 * 3600.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait before attempt ``attempt + 1``; half fixed, half random so a pool spreads out."""
        try:
            ceiling = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        except OverflowError:  # a budget of some thousand attempts: long past the cap
            ceiling = self.cap
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)

    def exhausted(self, attempts: int, age: float) -> bool:
        return attempts >= self.max_attempts or age >= self.max_age
