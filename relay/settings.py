"""Where the relay's Redis is and how its data is kept, read from the environment (12-factor).

``relay dev`` writes the URLs of the servers it started to ``.relay/dev.env`` so that a second
terminal's ``relay send`` finds them without exporting anything; a variable set in the
environment always wins over that file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from relay.errors import ConfigError
from relay.keys import DEFAULT_SCOPE, Keys, valid_scope

DEV_ENV_FILE = Path(".relay") / "dev.env"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_RETENTION_S = 7 * 24 * 3600


@dataclass(frozen=True)
class StoreSettings:
    """What producers, workers and operator tools must agree on.

    - ``redis_url``: ``RELAY_REDIS_URL``, else ``REDIS_URL``; default ``redis://127.0.0.1:6379/0``.
    - ``scope``: ``RELAY_SCOPE`` (default ``main``): the hash tag of every key, so several
      relays can share one Redis (letters, digits, ``_.-``).
    - ``retention``: ``RELAY_RETENTION`` seconds (default 7 days) a delivered or rejected
      event's record is kept. It is the dedupe window: the same (tenant, event_id) is accepted
      again once its record has expired.
    """

    redis_url: str = DEFAULT_REDIS_URL
    scope: str = DEFAULT_SCOPE
    retention: int = DEFAULT_RETENTION_S

    def __repr__(self) -> str:
        return (f"StoreSettings(redis_url={mask_url(self.redis_url)!r}, scope={self.scope!r}, "
                f"retention={self.retention})")

    @property
    def keys(self) -> Keys:
        return Keys(self.scope)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        values = environment(env)
        scope = values.get("RELAY_SCOPE") or DEFAULT_SCOPE
        if not valid_scope(scope):
            raise ConfigError("RELAY_SCOPE must be 1-32 letters, digits, '_', '.' or '-'")
        raw = values.get("RELAY_RETENTION") or str(DEFAULT_RETENTION_S)
        try:
            retention = int(raw)
        except ValueError:
            raise ConfigError(f"RELAY_RETENTION must be whole seconds, not {raw!r}") from None
        if retention < 60:
            raise ConfigError("RELAY_RETENTION must be at least 60 seconds")
        return cls(redis_url(values), scope, retention)


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment, under the values ``relay dev`` left for this folder."""
    merged: dict[str, str] = {}
    if env is None and DEV_ENV_FILE.is_file():
        for line in DEV_ENV_FILE.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() and not name.startswith("#"):
                merged[name.strip()] = value.strip()
    merged.update(os.environ if env is None else env)
    return merged


def redis_url(env: Mapping[str, str] | None = None) -> str:
    values = environment(env)
    return values.get("RELAY_REDIS_URL") or values.get("REDIS_URL") or DEFAULT_REDIS_URL


def mask_url(url: str) -> str:
    """Hide the password of a ``scheme://user:password@host`` URL for logs and ``relay check``."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)
