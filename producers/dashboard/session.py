"""Signed dashboard sessions and their CSRF tokens (pure: no aiohttp, no Redis).

A session cookie is ``<expires>.<nonce>.<key id>.<signature>``: HMAC-SHA256 under a secret
(``RELAY_DASHBOARD_SECRET``, else derived from the admin keys, so rotating the keys ends every
session). The key id names which admin key logged in without revealing it, and a session whose
key was removed stops working. The CSRF token is an HMAC of the session's nonce: a page can
embed it, another site cannot compute it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

COOKIE = "relay_ui"
LOGIN_COOKIE = "relay_ui_login"
LIFETIME_S = 12 * 3600


def _mac(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Sessions:
    """Issues and checks sessions for a set of admin keys."""

    admin_keys: tuple[str, ...]
    secret: bytes

    def __repr__(self) -> str:
        return f"Sessions(<{len(self.admin_keys)} admin keys>)"

    @classmethod
    def create(cls, admin_keys: Sequence[str], secret: str = "") -> Sessions:
        keys = tuple(admin_keys)
        derived = hmac.new(b"relay-dashboard-session", "\n".join(sorted(keys)).encode(),
                           hashlib.sha256).digest()
        return cls(keys, secret.encode() if secret else derived)

    def key_id(self, key: str) -> str:
        return _mac(self.secret, "key:" + key)[:16]

    def admin(self, given: str) -> str | None:
        """The key id of ``given`` when it is an admin key; every key is compared, so timing
        says nothing about which matched."""
        found = None
        for key in self.admin_keys:
            if hmac.compare_digest(given.encode(), key.encode()):
                found = key
        return None if found is None else self.key_id(found)

    def issue(self, key_id: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + LIFETIME_S)
        body = f"{expires}.{secrets.token_hex(16)}.{key_id}"
        return f"{body}.{_mac(self.secret, 'session:' + body)}"

    def check(self, cookie: str, now: float | None = None) -> str | None:
        """The session's nonce when the cookie is genuine, unexpired and its key still admin."""
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature.encode(),
                                   _mac(self.secret, "session:" + body).encode()):
            return None
        expires, nonce, key_id = [*body.split("."), "", "", ""][:3]
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return None
        if key_id not in {self.key_id(k) for k in self.admin_keys}:
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        return _mac(self.secret, "csrf:" + nonce)

    def csrf_ok(self, nonce: str, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf(nonce).encode())
