"""What the running sandbox holds: its namespace, seed, faults, next id and record of calls."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.faults import FaultConfig
from sandbox.seed import Seed

DEFAULT_NAMESPACE = "https://app.smartbutton.com/Services/"
MAX_ID = 2**63 - 1  # InteractionId is s:long


@dataclass
class SandboxState:
    namespace: str = DEFAULT_NAMESPACE
    seed: Seed = field(default_factory=Seed)
    faults: FaultConfig = field(default_factory=FaultConfig)
    next_id: int = 1
    calls: list[dict[str, Any]] = field(default_factory=list)
    keys: Counter[tuple[str, ...]] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(default_factory=random.Random)
    in_flight: int = 0  # requests being served now, and the most at once since the reset
    peak_in_flight: int = 0

    def set_next_id(self, value: Any) -> None:
        """Where InteractionIds continue: the platform's are .NET longs, so a test can start
        above 2^31 to prove a client does not read them as 32-bit ints."""
        rule = f"next_id must be an integer within 1..{MAX_ID}"
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(rule)
        if not 1 <= value <= MAX_ID:
            raise ValueError(rule)
        self.next_id = value

    @property
    def action(self) -> str:
        return self.namespace.rstrip("/") + "/RecordInteraction"

    def accept(self, fields: dict[str, str | None]) -> int:
        """Record an accepted call and return its InteractionId, the one its reply carries."""
        if self.next_id > MAX_ID:  # .NET would overflow its long: the method throws
            raise OverflowError("Arithmetic operation resulted in an overflow.")
        interaction_id = self.next_id
        self.next_id += 1
        values = {k: v or "" for k, v in fields.items()}
        key = (values["AccountId"], values["LocationExternalReference"],
               values["InteractionTypeExternalReference"], values["InteractionNote"])
        self.keys[key] += 1
        self.calls.append({"interaction_id": interaction_id, "account_id": key[0],
                           "location": key[1], "interaction_type": key[2], "note": key[3],
                           "at": time.time()})
        return interaction_id


STATE = web.AppKey("state", SandboxState)
