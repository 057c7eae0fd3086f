"""The worker's moves of the state machine (claim, extend, complete, reap, unpark): one
script call each over ``redis.asyncio``, arguments built and replies read here, nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from relay import keys as keynames
from relay.scripts import register
from worker.plan import Claim, Plan
from worker.settings import Settings

HISTORY_MAX = 20


class Moves:
    def __init__(self, client: Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.keys = settings.store.keys
        self._scripts = register(client)
        rate = settings.rate_limit
        # GCRA: one slot per interval; a little slack (2% of a second's calls) so callers that
        # wake a moment late keep their slots; slots past the horizon wait in the queue.
        self._rate = ([1000 / rate, max(0.0, max(1.0, rate / 50) - 1) * 1000 / rate, 5000]
                      if rate > 0 else [0, 0, 0])

    async def claim(self, count: int) -> list[Claim]:
        k = self.keys
        now, rows = await self._scripts["claim"](
            keys=[k.due, k.held, k.seq, k.circuits, k.parked, k.stats],
            args=[k.prefix, count, int(self.settings.leases.lease * 1000),
                  int(self.settings.probe_s * 1000), *self._rate])
        claims = []
        for member, token, payload, attempts, charged, accepted, probe, delay in rows:
            tenant, event_id = keynames.split(member)
            claims.append(Claim(member.decode(), tenant, event_id, str(token),
                                payload.decode("utf-8", "replace"), int(attempts), int(charged),
                                int(accepted), bool(probe), int(delay) / 1000, int(now)))
        return claims

    async def extend(self, held: Sequence[tuple[str, str]]) -> set[str]:
        """Extend leases still ours; returns the members whose lease we no longer hold."""
        args: list[Any] = [self.keys.prefix, int(self.settings.leases.lease * 1000)]
        for member, token in held:
            args += [member, token]
        _, lost = await self._scripts["extend"](keys=[self.keys.held], args=args)
        return {m.decode() for m in lost}

    async def complete(self, done: Sequence[tuple[Claim, Plan]]
                       ) -> list[tuple[str, bool]]:
        """Write each plan if its claim still holds the event: per item ('ok' | 'stale' |
        'done', whether it opened the tenant's circuit)."""
        k, b, store = self.keys, self.settings.breaker, self.settings.store
        args: list[Any] = [k.prefix, store.retention, b.threshold, int(b.window * 1000),
                           int(b.cooldown * 1000), int(b.max_cooldown * 1000), HISTORY_MAX,
                           store.bucket_ms, store.dlq_max]
        args.append(json.dumps([
            [claim.member, claim.token, plan.kind.value, int(plan.refund), plan.breaker.value,
             plan.delay_ms, _text(plan.code), plan.signal, plan.reason,
             _text(plan.interaction_id),
             "" if plan.latency_ms is None else round(plan.latency_ms, 1), int(plan.ambiguous)]
            for claim, plan in done], separators=(",", ":"), ensure_ascii=False))
        results, opened = await self._scripts["complete"](
            keys=[k.held, k.due, k.dlq, k.circuits, k.parked, k.stats], args=args)
        return [(r.decode(), bool(o)) for r, o in zip(results, opened, strict=True)]

    async def reap(self, limit: int = 500) -> int:
        k = self.keys
        return int(await self._scripts["reap"](keys=[k.held, k.due, k.stats],
                                               args=[k.prefix, limit]))

    async def prune(self, limit: int = 1000) -> int:
        """Drop dead letters past ``RELAY_DLQ_MAX_AGE`` (when set); returns how many."""
        k, age = self.keys, self.settings.store.dlq_max_age
        if not age:
            return 0
        return int(await self._scripts["prune"](keys=[k.dlq, k.stats],
                                                args=[k.prefix, age * 1000, limit]))

    async def announce_tenants(self) -> None:
        """Keep this worker's tenants in the set the edge checks (after a Redis that lost it)."""
        await self.redis.sadd(self.keys.tenants, *sorted(self.settings.tenants))

    async def dead_letters(self) -> int:
        return int(await self.redis.zcard(self.keys.dlq))

    async def unpark(self, limit: int = 1000) -> int:
        k = self.keys
        return int(await self._scripts["unpark"](
            keys=[k.circuits, k.parked, k.due],
            args=[k.prefix, limit, int(self.settings.probe_s * 1000)]))


def _text(value: int | None) -> str:
    return "" if value is None else str(value)
