"""The sandbox's reference data and validation rules (design.md section 6).

Validation order matches the platform: token, permission, account, inactive, location, type.
Operators and tests change the data at runtime (``/_sandbox/seed``) to show "fix, then replay".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ACTIVE = re.compile(r"[0-8][0-9]{5,19}")
_INACTIVE = re.compile(r"9[0-9]{5,19}")
KINDS = ("tokens", "noperm_tokens", "accounts", "inactive_accounts", "invalid_accounts",
         "locations", "interaction_types")


def _default_locations() -> set[str]:
    return {f"STORE-{n:03d}" for n in range(1, 51)}


@dataclass
class Seed:
    tokens: set[str] = field(default_factory=lambda: {"sandbox-token"})
    noperm_tokens: set[str] = field(default_factory=lambda: {"sandbox-noperm"})
    accounts: set[str] = field(default_factory=set)  # active beyond the digit rule
    inactive_accounts: set[str] = field(default_factory=set)
    invalid_accounts: set[str] = field(default_factory=set)  # removed at runtime
    locations: set[str] = field(default_factory=_default_locations)
    interaction_types: set[str] = field(
        default_factory=lambda: {"VISIT", "CHECKIN", "SURVEY", "REVIEW"})

    @classmethod
    def load(cls, path: str | Path) -> Seed:
        """A JSON file whose keys (any of ``KINDS``) replace the default sets."""
        data = json.loads(Path(path).read_text())
        seed = cls()
        seed.apply({"replace": data})
        return seed

    def apply(self, change: dict[str, Any]) -> None:
        """``{"add": {kind: [...]}, "remove": {...}, "replace": {...}}``."""
        for verb in ("replace", "add", "remove"):
            for kind, values in change.get(verb, {}).items():
                if kind not in KINDS:
                    raise ValueError(f"unknown seed kind {kind!r}; known: {', '.join(KINDS)}")
                target: set[str] = getattr(self, kind)
                items = {str(v) for v in values}
                if verb == "replace":
                    target.clear()
                    target |= items
                elif verb == "add":
                    target |= items
                    if kind == "accounts":
                        self.invalid_accounts -= items
                        self.inactive_accounts -= items
                else:
                    target -= items
                    if kind == "accounts":
                        self.invalid_accounts |= items

    def as_dict(self) -> dict[str, list[str]]:
        return {kind: sorted(getattr(self, kind)) for kind in KINDS}

    def return_code(self, token: str, account: str, location: str, interaction_type: str) -> int:
        if token not in self.tokens and token not in self.noperm_tokens:
            return 100
        if token in self.noperm_tokens:
            return 101
        if account in self.invalid_accounts or len(account) > 60:
            return 300
        inactive = account in self.inactive_accounts or (
            _INACTIVE.fullmatch(account) is not None and account not in self.accounts)
        if not inactive and account not in self.accounts and not _ACTIVE.fullmatch(account):
            return 300
        if inactive:
            return 301
        if location not in self.locations:
            return 503
        if interaction_type not in self.interaction_types:
            return 1200
        return 0
