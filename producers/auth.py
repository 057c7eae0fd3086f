"""API keys for the HTTP API: who may submit, for which tenants, and who is an operator.

``RELAY_API_KEYS`` is a comma-separated list of keys; a key followed by ``:tenant+tenant``
may only submit and read events of those tenants (403 otherwise), a bare key serves every
tenant: ``RELAY_API_KEYS=till-key:acme+globex,backoffice-key``. ``RELAY_ADMIN_KEYS`` lists
the operators' keys for ``/v1/admin/*``. Keys are compared in constant time and never
printed (``repr`` shows only the tenants).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from relay.errors import ConfigError
from relay.events import is_tenant_name


@dataclass(frozen=True)
class ApiKey:
    """One key; ``tenants`` None means every tenant."""

    secret: str = field(repr=False)
    tenants: frozenset[str] | None = None

    def allows(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


def parse_keys(raw: str, variable: str, bindable: bool = True) -> tuple[ApiKey, ...]:
    """``key[:tenant+tenant],...`` as keys; ``ConfigError`` naming the variable and rule."""
    keys = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        secret, bound, names = item.partition(":")
        secret = secret.strip()
        if not secret:
            raise ConfigError(f"{variable}: an entry has an empty key before ':'")
        if not bound:
            keys.append(ApiKey(secret))
            continue
        if not bindable:
            raise ConfigError(f"{variable}: keys cannot be bound to tenants (no ':' allowed)")
        tenants = [n.strip() for n in names.split("+")]
        bad = [n for n in tenants if not is_tenant_name(n)]
        if bad or not tenants:
            raise ConfigError(f"{variable}: tenants after ':' must be names joined by '+' "
                              f"(letters, digits, '_', '.', '-'), not {names!r}")
        keys.append(ApiKey(secret, frozenset(tenants)))
    return tuple(keys)


def bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, given = header.partition(" ")
    return given.strip() or None if scheme.lower() == "bearer" else None


def match(given: str | None, keys: Sequence[ApiKey]) -> ApiKey | None:
    """The key ``given`` is, comparing against every key so timing says nothing about
    which (or how many) matched."""
    found = None
    candidate = (given or "").encode()
    for key in keys:
        if hmac.compare_digest(candidate, key.secret.encode()) and given:
            found = key
    return found
