"""Where the relay's Redis is and how its data is kept, read from the environment (12-factor).

``relay dev`` writes the URLs of the servers it started to ``.relay/dev.env`` so that a second
terminal's ``relay send`` finds them without exporting anything (in the folder it runs in or
any folder below it); a variable set in the environment always wins over that file. Where the
URL came from (``redis_source``) goes into every "unreachable" error, so that falling back to
the default, or to a dev server that has stopped, is never silent.
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
BUCKETS_PER_RETENTION = 3


@dataclass(frozen=True)
class StoreSettings:
    """What producers, workers and operator tools must agree on.

    - ``redis_url``: ``RELAY_REDIS_URL``, else ``REDIS_URL``; default ``redis://127.0.0.1:6379/0``.
    - ``scope``: ``RELAY_SCOPE`` (default ``main``): the hash tag of every key, so several
      relays can share one Redis (letters, digits, ``_.-``).
    - ``retention``: ``RELAY_RETENTION`` seconds (default 7 days) a delivered or rejected
      event's outcome is kept. It is the dedupe window: the same (tenant, event_id) is accepted
      again once it has passed (outcomes are kept in buckets of a third of it, so for up to a
      third longer).
    - ``dlq_max``: ``RELAY_DLQ_MAX`` (default 0, no cap): past it the oldest dead letters are
      dropped, counted in ``dead_letters_dropped``; workers warn from 90% on.
    - ``dlq_max_age``: ``RELAY_DLQ_MAX_AGE`` seconds (default 0, forever): older dead letters
      are dropped, counted in ``dead_letters_expired``.
    """

    redis_url: str = DEFAULT_REDIS_URL
    scope: str = DEFAULT_SCOPE
    retention: int = DEFAULT_RETENTION_S
    dlq_max: int = 0
    dlq_max_age: int = 0

    def __repr__(self) -> str:
        return (f"StoreSettings(redis_url={mask_url(self.redis_url)!r}, scope={self.scope!r}, "
                f"retention={self.retention}, dlq_max={self.dlq_max}, "
                f"dlq_max_age={self.dlq_max_age})")

    @property
    def keys(self) -> Keys:
        return Keys(self.scope)

    @property
    def bucket_ms(self) -> int:
        """The span of one bucket of ended events: a third of the retention, so a dedupe check
        reads four hash fields, and outcomes stay between 1 and 1.33 retentions."""
        return -(-self.retention * 1000 // BUCKETS_PER_RETENTION)

    @property
    def buckets(self) -> int:
        """How many buckets back (before the current one) a dedupe check looks."""
        return BUCKETS_PER_RETENTION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        values = environment(env)
        scope = values.get("RELAY_SCOPE") or DEFAULT_SCOPE
        if not valid_scope(scope):
            raise ConfigError("RELAY_SCOPE must be 1-32 letters, digits, '_', '.' or '-'")
        retention = env_whole(values, "RELAY_RETENTION", DEFAULT_RETENTION_S)
        if retention < 60:
            raise ConfigError("RELAY_RETENTION must be at least 60 seconds")
        url = redis_url(values)
        from relay.connect import parse

        # A malformed URL is a one-line ConfigError here, naming the variable it came from,
        # not a retry loop later (redis-py reads "localhost:6379" as host "localhost:6379").
        parse(url, "REDIS_URL" if values.get("REDIS_URL") == url
              and not values.get("RELAY_REDIS_URL") else "RELAY_REDIS_URL")
        return cls(url, scope, retention, env_whole(values, "RELAY_DLQ_MAX", 0),
                   env_whole(values, "RELAY_DLQ_MAX_AGE", 0))


def env_number(values: Mapping[str, str], name: str, default: float, *, whole: bool = False,
               positive: bool = False) -> float:
    """One numeric setting (the one place they are read): unset or empty is ``default``;
    otherwise a non-negative number (a whole one, or above zero, when asked), or a
    ``ConfigError`` naming the variable."""
    raw = values.get(name)
    if raw is None or raw == "":
        return default
    what = "a whole number" if whole else "a positive number" if positive else "a number"
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, not {raw!r}") from None
    if positive and not value > 0:
        raise ConfigError(f"{name} must be {what}, not {raw!r}")
    if not value >= 0:  # also NaN
        raise ConfigError(f"{name} must not be negative")
    return value


def env_whole(values: Mapping[str, str], name: str, default: int) -> int:
    return int(env_number(values, name, default, whole=True))


def dev_env_file(start: Path | None = None) -> Path | None:
    """The ``.relay/dev.env`` of this folder or the nearest folder above it, if any."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / DEV_ENV_FILE
        if path.is_file():
            return path
    return None


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment, under the values ``relay dev`` left for this folder."""
    merged: dict[str, str] = {}
    found = dev_env_file() if env is None else None
    if found is not None:
        for line in found.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() and not name.startswith("#"):
                merged[name.strip()] = value.strip()
    if os.environ.get("RELAY_REDIS_URL") or os.environ.get("REDIS_URL"):
        for name in ("RELAY_REDIS_URL", "REDIS_URL"):  # either one set here beats the file
            merged.pop(name, None)
    merged.update(os.environ if env is None else env)
    return merged


def redis_url(env: Mapping[str, str] | None = None) -> str:
    values = environment(env)
    return values.get("RELAY_REDIS_URL") or values.get("REDIS_URL") or DEFAULT_REDIS_URL


def redis_source(env: Mapping[str, str] | None = None) -> str:
    """Where ``redis_url`` found the URL: a variable's name, the dev.env file's path, or ``""``
    for the default (so that an error can say which, and what to do)."""
    given = os.environ if env is None else env
    for name in ("RELAY_REDIS_URL", "REDIS_URL"):
        if given.get(name):
            return name
    found = dev_env_file() if env is None else None
    return str(found) if found is not None else ""


def mask_url(url: str) -> str:
    """The URL with every password hidden, for logs, errors and ``relay check``: the one place
    that masks. In the userinfo (even holding ``@ : / ? # ;`` unencoded), in a ``password=``
    query parameter, and in each address of a multi-address (kombu sentinel) URL."""
    return ";".join(_mask_one(part) for part in _ADDRESSES.split(url))


def _mask_one(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep and "@" in url:  # not a URL we understand: hide whatever precedes the host
        return "***@" + url.rpartition("@")[2]
    if sep:
        at = _userinfo_end(rest)
        if at >= 0:
            user, colon, _ = rest[:at].partition(":")
            rest = (f"{user}:***" if colon else rest[:at]) + rest[at:]
        url = f"{scheme}://{rest}"
    return _SECRET_QUERY.sub(r"\1***", url)


def _userinfo_end(rest: str) -> int:
    """Where the userinfo ends: the last ``@`` followed by something shaped like host[:port]
    (a list of them, or nothing for unix://), so a password holding ``@ / ? #`` unencoded is
    hidden whole. Hiding too much beats showing part of a password."""
    for at in (i for i in range(len(rest) - 1, -1, -1) if rest[i] == "@"):
        if _HOSTS.fullmatch(re.split(r"[/?#]", rest[at + 1:], maxsplit=1)[0]):
            return at
    return -1


_ADDRESSES = re.compile(r";(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)")  # not a ";" in a password
_HOSTS = re.compile(r"[A-Za-z0-9._\-\[\]:,]*")
_SECRET_QUERY = re.compile(r"([?&](?:password|passwd|pass|pwd|sentinel_password|auth)=)[^&;]*",
                           re.IGNORECASE)
