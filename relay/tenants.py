"""The tenants a relay serves: configuration (the workers' ``RELAY_TENANTS``), published in
Redis so that the edge refuses an unknown tenant before it can create a key, a counter or a
metric label.

Workers replace the set at start-up with the tenants they hold tokens for. The enqueue script
checks every event against it; producers and the HTTP API read it (cached a second) to answer
422 per item. Until a worker has ever registered, only ``default`` is accepted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from relay.events import DEFAULT_TENANT
from relay.keys import Keys

CACHE_S = 1.0


def register(client: Any, keys: Keys, names: Iterable[str]) -> None:
    """Make ``names`` the set of tenants (one transaction: never empty in between)."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.tenants)
    pipe.sadd(keys.tenants, *sorted(set(names)))
    pipe.execute()


def known(client: Any, keys: Keys) -> frozenset[str]:
    return names(client.smembers(keys.tenants))


def names(members: Iterable[Any]) -> frozenset[str]:
    """The set's members as names (only ``default`` until a worker registered)."""
    found = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)
    return found or frozenset({DEFAULT_TENANT})


class Cache:
    """``known`` at most once a second: the HTTP API checks every item against it."""

    def __init__(self) -> None:
        self._names: frozenset[str] = frozenset()
        self._at = float("-inf")

    def get(self, client: Any, keys: Keys) -> frozenset[str]:
        if self.stale():
            self.keep(known(client, keys))
        return self._names

    async def get_async(self, client: Any, keys: Keys) -> frozenset[str]:
        if self.stale():
            self.keep(names(await client.smembers(keys.tenants)))
        return self._names

    def stale(self) -> bool:
        return time.monotonic() - self._at > CACHE_S

    def keep(self, found: frozenset[str]) -> None:
        self._names, self._at = found, time.monotonic()
