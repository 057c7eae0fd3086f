"""The dead-letter store: events no attempt could deliver, kept until replayed or purged.

A dead letter is an event record in state ``dead_letter`` plus its entry in the ``dlq`` index
(member -> time dead-lettered). Reading pages through the index; replay and purge are scripts
that move only events still dead-lettered, so two operators racing move each event once.

An entry, as listed and exported, is the event's own fields at the top level (what
``relay import`` reads back) plus a ``dead_letter`` object with code, signal, reason, attempts
and time; never a token or a SOAP body.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from relay import keys as keynames
from relay.connect import server_ms
from relay.keys import Keys
from relay.scripts import register
from relay.status import DEAD_LETTER, fields, iso

PAGE = 500


@dataclass(frozen=True)
class Filter:
    """Which dead letters to act on; every set field must match. Ages are in seconds."""

    code: int | None = None
    tenant: str | None = None
    signal: str | None = None
    location: str | None = None
    interaction_type: str | None = None
    older_than: float | None = None
    newer_than: float | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in self.__dict__.values())

    def matches(self, entry: dict[str, Any], age_s: float) -> bool:
        info = entry["dead_letter"]
        return ((self.code is None or info.get("code") == self.code)
                and (self.tenant is None or entry["tenant"] == self.tenant)
                and (self.signal is None or info.get("signal") == self.signal)
                and (self.location is None or entry.get("location") == self.location)
                and (self.interaction_type is None
                     or entry.get("interaction_type") == self.interaction_type)
                and (self.older_than is None or age_s >= self.older_than)
                and (self.newer_than is None or age_s <= self.newer_than))


def entry(member: bytes | str, raw: dict[bytes, bytes], dead_at_ms: float) -> dict[str, Any]:
    tenant, event_id = keynames.split(member)
    r = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
    return {"tenant": tenant, "event_id": event_id, **fields(r.get("m")),
            "dead_letter": {"code": int(r["k"]) if r.get("k") else None,
                            "signal": r.get("g", ""), "reason": r.get("r", ""),
                            "attempts": int(r.get("a") or 0), "dead_at": iso(dead_at_ms)}}


class DeadLetters:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._scripts = register(client)

    def size(self) -> int:
        return int(self.redis.zcard(self.keys.dlq))

    def get(self, tenant: str, event_id: str) -> dict[str, Any] | None:
        member = keynames.member(tenant, event_id)
        score = self.redis.zscore(self.keys.dlq, member)
        if score is None:
            return None
        raw = cast(dict[bytes, bytes], self.redis.hgetall(self.keys.record(tenant, event_id)))
        if raw.get(b"s") != DEAD_LETTER.encode():
            return None
        return entry(member, raw, score)

    def entries(self, flt: Filter | None = None, limit: int | None = None
                ) -> Iterator[dict[str, Any]]:
        """Oldest first, read in pages so an export of millions stays flat in memory."""
        flt = flt or Filter()
        now_ms = server_ms(self.redis)
        found, start = 0, 0
        while limit is None or found < limit:
            page = cast(list[tuple[bytes, float]], self.redis.zrange(
                self.keys.dlq, start, start + PAGE - 1, withscores=True))
            if not page:
                return
            start += len(page)
            pipe = self.redis.pipeline(transaction=False)
            for member, _ in page:
                pipe.hgetall(self.keys.record(*keynames.split(member)))
            for (member, dead_at), raw in zip(page, pipe.execute(), strict=True):
                if raw.get(b"s") != DEAD_LETTER.encode():
                    continue  # replayed or purged since the page was read
                item = entry(member, raw, dead_at)
                if flt.matches(item, (now_ms - dead_at) / 1000):
                    found += 1
                    yield item
                    if limit is not None and found >= limit:
                        return

    def groups(self, flt: Filter | None = None, limit: int | None = None
               ) -> list[dict[str, Any]]:
        """Matching dead letters counted by (code or signal, tenant, location), largest first:
        "503 at STORE-031: 40" tells an operator what to fix before replaying. ``limit`` caps
        how many oldest matches are read (a page view must not read millions)."""
        counts: dict[tuple[str, str, str], int] = {}
        for item in self.entries(flt, limit):
            info = item["dead_letter"]
            why = f"code:{info['code']}" if info.get("code") is not None else info["signal"]
            key = (why, item["tenant"], str(item.get("location", "")))
            counts[key] = counts.get(key, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [{"signal": s, "code": int(s[5:]) if s.startswith("code:") else None,
                 "tenant": t, "location": loc, "count": n} for (s, t, loc), n in ranked]

    def members(self, flt: Filter) -> list[str]:
        return [keynames.member(e["tenant"], e["event_id"]) for e in self.entries(flt)]

    def replay(self, members: Sequence[str]) -> list[str]:
        """Back to waiting with a fresh budget; returns the members this call moved."""
        moved: list[str] = []
        for chunk in _chunks(members):
            done = self._scripts["replay"](
                keys=[self.keys.dlq, self.keys.due, self.keys.stats],
                args=[self.keys.prefix, *chunk])
            moved += [m.decode() for m in done]
        return moved

    def purge(self, members: Sequence[str]) -> int:
        """Drop for good; returns how many this call removed."""
        return sum(int(self._scripts["purge"](keys=[self.keys.dlq, self.keys.stats],
                                              args=[self.keys.prefix, *chunk]))
                   for chunk in _chunks(members))


def _chunks(members: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(members), PAGE):
        yield members[i:i + PAGE]
