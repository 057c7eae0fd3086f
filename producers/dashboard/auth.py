"""Who may see the dashboard: admin keys, by session cookie (login form) or Bearer header.

Every POST from a cookie session must carry the session's CSRF token, and a POST whose Origin
is another site is refused outright. A Bearer caller needs no token: browsers never attach that
header on their own. Failures render as HTML pages; every response gets strict security headers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
import redis
from aiohttp import web

from producers.dashboard.session import COOKIE, LIFETIME_S, LOGIN_COOKIE, Sessions
from relay.errors import EnqueueError

log = logging.getLogger("relay.dashboard")
SESSIONS = web.AppKey("sessions", Sessions)
PUBLIC = ("/ui/login", "/ui/static/")
FAILED_LOGIN_DELAY_S = 0.5
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return aiohttp_jinja2.render_template("error.html", request,
                                          {"status": status, "message": message},
                                          status=status)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None  # an opaque origin (sandboxed frame, data: URL) is refused
    return urlsplit(origin).netloc == request.host


def _bearer(request: web.Request, sessions: Sessions) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(given) and sessions.admin(given) is not None


async def _check(request: web.Request, sessions: Sessions) -> web.Response | None:
    """None when the request may go on; else the page that refuses it."""
    if _bearer(request, sessions):
        request["csrf"] = ""
        return None
    nonce = sessions.check(request.cookies.get(COOKIE, ""))
    if nonce is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(f"/ui/login?next={quote(request.path_qs)}")
        return error_page(request, 401, "log in with an admin key first")
    if request.method == "POST":
        given = (await request.post()).get("csrf")
        if not isinstance(given, str) or not sessions.csrf_ok(nonce, given):
            return error_page(request, 403, "missing or invalid CSRF token: reload the page")
    request["csrf"] = sessions.csrf(nonce)
    return None


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    sessions = request.config_dict[SESSIONS]
    response: web.StreamResponse
    try:
        refusal = None
        if request.method == "POST" and not _same_origin(request):
            refusal = error_page(request, 403, "cross-site request refused")
        elif not request.path.startswith(PUBLIC):
            refusal = await _check(request, sessions)
        response = refusal or await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers.update(HEADERS)
            raise
        response = error_page(request, exc.status, exc.reason)
    except (EnqueueError, redis.RedisError) as exc:
        log.warning("dashboard: Redis unavailable: %s", type(exc).__name__)
        response = error_page(request, 503, "Redis is unavailable; try again shortly")
    response.headers.update(HEADERS)
    return response


def _next(target: str) -> str:
    """Only a path of ours: never another site (an open redirect)."""
    return target if target.startswith("/ui/") and not target.startswith("//") else "/ui/"


async def login_page(request: web.Request, message: str = "", status: int = 200
                     ) -> web.Response:
    sessions = request.config_dict[SESSIONS]
    nonce = secrets.token_hex(16)
    response = aiohttp_jinja2.render_template(
        "login.html", request,
        {"csrf": sessions.csrf("login:" + nonce), "message": message,
         "next": _next(request.query.get("next", "/ui/")),
         "no_keys": not sessions.admin_keys}, status=status)
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="Strict", path="/ui/",
                        secure=request.secure, max_age=3600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    sessions = request.config_dict[SESSIONS]
    form = await request.post()
    nonce, token = request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf")
    if not nonce or not isinstance(token, str) or not sessions.csrf_ok("login:" + nonce, token):
        return await login_page(request, "the form expired: please try again", 403)
    key = form.get("key")
    key_id = sessions.admin(key) if isinstance(key, str) and key else None
    if key_id is None:
        log.info("dashboard: refused a login (not an admin key)")
        await asyncio.sleep(FAILED_LOGIN_DELAY_S)  # slows guessing; costs a typo little
        return await login_page(request, "not an admin key", 401)
    target = form.get("next")
    response = web.HTTPSeeOther(_next(target if isinstance(target, str) else "/ui/"))
    response.set_cookie(COOKIE, sessions.issue(key_id), httponly=True, samesite="Strict",
                        path="/ui/", secure=request.secure, max_age=LIFETIME_S)
    response.del_cookie(LOGIN_COOKIE, path="/ui/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/ui/login")
    response.del_cookie(COOKIE, path="/ui/")
    return response
