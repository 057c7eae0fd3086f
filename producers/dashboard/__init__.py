"""The operator dashboard, served by ``relay api`` under ``/ui/`` (issue 13).

Pages over the same code as ``relay status``, ``relay dlq`` and ``/metrics`` (``relay.overview``,
``relay.status``, ``relay.deadletters``): nothing here counts anything itself. Admin keys only,
by a signed session cookie or a Bearer header; CSRF token on every POST; Jinja2 autoescapes
every field; a strict Content-Security-Policy allows only our own script and style.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from producers.dashboard import auth, views
from producers.dashboard.session import Sessions
from producers.producer import Producer
from relay.deadletters import DeadLetters
from relay.settings import environment

PREFIX = "/ui"
STATIC = Path(__file__).with_name("static")

__all__ = ["PREFIX", "create_app"]


def create_app(producer: Producer, admin_keys: Sequence[str]) -> web.Application:
    """The dashboard as a sub-application, to mount at ``PREFIX``."""
    app = web.Application(middlewares=[auth.guard])
    secret = environment().get("RELAY_DASHBOARD_SECRET", "")
    app[auth.SESSIONS] = Sessions.create(admin_keys, secret)
    app[views.PRODUCER] = producer
    app[views.STORE] = DeadLetters(producer.redis, producer.keys)
    env = aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("producers.dashboard"),
                               autoescape=True)
    env.globals["base"] = PREFIX
    # Event ids may hold any printable character ("/", "?", "#"): quote all of them in paths.
    env.filters["path"] = lambda value: quote(str(value), safe="")
    r = app.router
    r.add_get("/", views.overview_page)
    r.add_get("/live", views.overview_live)
    r.add_get("/dead-letters", views.dead_letters_page)
    r.add_get("/dead-letters/export", views.export)
    r.add_post("/dead-letters/replay", views.replay)
    r.add_post("/dead-letters/purge", views.purge)
    r.add_get("/dead-letters/{tenant}/{event_id:.+}", views.dead_letter_page)
    r.add_get("/events", views.event_page)
    r.add_get("/login", auth.login_page)
    r.add_post("/login", auth.login)
    r.add_post("/logout", auth.logout)
    r.add_static("/static", STATIC)
    return app
