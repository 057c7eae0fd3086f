"""Dashboard pages: overview, dead letters (filter, group, detail, replay, purge, export) and
event lookup. Every figure comes from ``relay.overview``, ``relay.status`` or
``relay.deadletters``; these handlers only choose what to ask and render it."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from producers.dashboard.auth import HEADERS
from producers.dashboard.chart import chart
from producers.producer import Producer
from relay.codes import meaning
from relay.deadletters import DeadLetters, Filter
from relay.events import DEFAULT_TENANT
from relay.overview import by_signal, overview, rates

PRODUCER = web.AppKey("producer", Producer)
STORE = web.AppKey("store", DeadLetters)
LISTED = 200  # rows shown on the dead-letter page; replay/purge/export act on every match
GROUPED = 100_000  # most matches a page view reads to count groups (about a second of Redis)
# Age choices on the filter form: name -> (older_than, newer_than) in seconds.
AGES: Mapping[str, tuple[float | None, float | None]] = {
    "": (None, None), "lt1h": (None, 3600), "lt24h": (None, 86400),
    "gt1h": (3600, None), "gt24h": (86400, None), "gt7d": (7 * 86400, None)}
FILTER_FIELDS = ("code", "signal", "tenant", "location", "interaction_type", "age")


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    # redis-py is synchronous; keep the event loop free while it waits.
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


def _store(request: web.Request) -> DeadLetters:
    return request.config_dict[STORE]


def _page(request: web.Request, template: str, **context: Any) -> web.Response:
    return aiohttp_jinja2.render_template(template, request,
                                          {"csrf": request.get("csrf", ""), **context})


def _live_context(producer: Producer) -> dict[str, Any]:
    view = overview(producer.redis, producer.keys)
    return {"view": view, "signals": by_signal(view),
            "chart": chart(rates(producer.redis, producer.keys))}


async def overview_page(request: web.Request) -> web.Response:
    context = await _run(_live_context, request.config_dict[PRODUCER])
    return _page(request, "overview.html", nav="overview", **context)


async def overview_live(request: web.Request) -> web.Response:
    """The overview's changing part alone, which the page's script swaps in every few seconds."""
    context = await _run(_live_context, request.config_dict[PRODUCER])
    return _page(request, "_live.html", **context)


def parse_filter(query: Mapping[str, str]) -> tuple[Filter, dict[str, str]]:
    """The filter form's values as a ``Filter``, and the non-empty ones to echo back."""
    chosen = {k: query[k].strip() for k in FILTER_FIELDS if query.get(k, "").strip()}
    code = chosen.get("code")
    if code is not None and not code.lstrip("-").isdigit():
        raise web.HTTPBadRequest(reason="code must be a whole number")
    if chosen.get("age", "") not in AGES:
        raise web.HTTPBadRequest(reason=f"age must be one of {', '.join(a for a in AGES if a)}")
    older, newer = AGES[chosen.get("age", "")]
    return Filter(code=int(code) if code is not None else None, signal=chosen.get("signal"),
                  tenant=chosen.get("tenant"),
                  location=chosen.get("location"),
                  interaction_type=chosen.get("interaction_type"),
                  older_than=older, newer_than=newer), chosen


async def dead_letters_page(request: web.Request) -> web.Response:
    flt, chosen = parse_filter(request.query)
    store = _store(request)
    rows = await _run(lambda: list(store.entries(flt, LISTED + 1)))
    groups = await _run(store.groups, flt, GROUPED)
    matching = sum(g["count"] for g in groups)
    return _page(request, "dead_letters.html", nav="dead-letters", rows=rows[:LISTED],
                 more=len(rows) > LISTED, groups=groups[:20], matching=matching,
                 capped=matching >= GROUPED, chosen=chosen,
                 query=urlencode(chosen), total=await _run(store.size), ages=list(AGES),
                 meaning=meaning, done=_done(request.query))


def _done(query: Mapping[str, str]) -> dict[str, int]:
    """What the last action did, from the redirect's query (numbers only: nothing echoed)."""
    return {k: int(query[k]) for k in ("replayed", "purged") if query.get(k, "").isdigit()}


async def dead_letter_page(request: web.Request) -> web.Response:
    tenant, event_id = request.match_info["tenant"], request.match_info["event_id"]
    entry = await _run(_store(request).get, tenant, event_id)
    record = await _run(request.config_dict[PRODUCER].status, event_id, tenant)
    if entry is None and record is None:
        raise web.HTTPNotFound(reason="no such dead letter (replayed, purged or unknown)")
    return _page(request, "dead_letter.html", nav="dead-letters", entry=entry, record=record,
                 tenant=tenant, event_id=event_id, meaning=meaning)


async def event_page(request: web.Request) -> web.Response:
    event_id = request.query.get("event_id", "").strip()
    tenant = request.query.get("tenant", "").strip() or DEFAULT_TENANT
    record = None
    if event_id:
        record = await _run(request.config_dict[PRODUCER].status, event_id, tenant)
    return _page(request, "event.html", nav="events", event_id=event_id, tenant=tenant,
                 record=record, meaning=meaning)


async def _selection(request: web.Request) -> tuple[list[str], dict[str, str]]:
    """The members an action names: ``one``/``selected`` ids, or every match of the filter."""
    form = await request.post()
    flt, chosen = parse_filter({k: v for k, v in form.items() if isinstance(v, str)})
    scope = form.get("scope")
    if scope in ("one", "selected"):
        picked = [v for v in form.getall("member", []) if isinstance(v, str) and "/" in v]
        if not picked:
            raise web.HTTPBadRequest(reason="member: select at least one dead letter")
        return picked, chosen
    if scope == "matching":
        return await _run(_store(request).members, flt), chosen
    raise web.HTTPBadRequest(reason="scope must be one, selected or matching")


async def replay(request: web.Request) -> web.StreamResponse:
    members, chosen = await _selection(request)
    moved = await _run(_store(request).replay, members)
    raise web.HTTPSeeOther(f"/ui/dead-letters?{urlencode({**chosen, 'replayed': len(moved)})}")


async def purge(request: web.Request) -> web.StreamResponse:
    """Asks first: a purge without ``confirm=yes`` renders what it would remove. A confirmed
    "everything matching" purge removes exactly what was shown: the page carries a digest of
    those members, and if the matches changed meanwhile it asks again."""
    members, chosen = await _selection(request)
    form = await request.post()
    digest = hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()
    confirmed = form.get("confirm") == "yes"
    changed = confirmed and form.get("scope") == "matching" and form.get("digest") != digest
    if not confirmed or changed:
        return _page(request, "confirm.html", nav="dead-letters", members=members,
                     chosen=chosen, scope=form.get("scope"), digest=digest, changed=changed)
    removed = await _run(_store(request).purge, members)
    raise web.HTTPSeeOther(f"/ui/dead-letters?{urlencode({**chosen, 'purged': removed})}")


async def export(request: web.Request) -> web.StreamResponse:
    """Every match as JSON lines, the format ``relay dlq export`` writes and ``relay import``
    reads back."""
    flt, _ = parse_filter(request.query)
    response = web.StreamResponse(headers={
        **HEADERS, "Content-Type": "application/x-ndjson; charset=utf-8",
        "Content-Disposition": 'attachment; filename="dead-letters.jsonl"'})
    await response.prepare(request)
    store = _store(request)
    entries = store.entries(flt)
    while True:
        page = await _run(lambda: [e for _, e in zip(range(500), entries, strict=False)])
        if not page:
            break
        await response.write("".join(json.dumps(e) + "\n" for e in page).encode())
    await response.write_eof()
    return response

