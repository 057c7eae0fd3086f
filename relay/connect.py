"""Redis clients from a URL, for every component: plain, Sentinel-managed or cluster-mode.

redis-py's ``from_url`` knows only single servers, so the topologies managed Redis offers are
spelled here, once:

- ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's own syntax).
- ``redis+sentinel://[:password@]host[:port][,host[:port]...]/<service>[/<db>]``: the primary
  of ``<service>`` as the Sentinels at those addresses (port 26379 by default) name it; clients
  follow a failover. ``rediss+sentinel://`` uses TLS.
- ``sentinel://[:password@]host:port[;sentinel://host:port...][/<db>]?master_name=<service>``:
  the same, in kombu's spelling.
- ``redis+cluster://[:password@]host:port[,host:port...]``: a cluster-mode endpoint (every relay
  key shares one hash tag, so each script runs on one node).

Celery's broker (remote control and worker heartbeats, never events) gets the same topology
through ``celery_broker``; kombu cannot talk to a cluster, so there it needs ``RELAY_BROKER_URL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel

from relay.errors import ConfigError

SENTINEL_PORT = 26379
_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "sentinel",
            "redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class Target:
    """Where a URL points: its kind, addresses and credentials (parsed, never printed)."""

    kind: str  # "single" | "sentinel" | "cluster"
    url: str = field(repr=False)
    hosts: list[tuple[str, int]] = field(default_factory=list)
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False


def parse(url: str, name: str = "RELAY_REDIS_URL") -> Target:
    """Check and split a Redis URL: the one place URLs are validated. ``ConfigError`` names the
    variable ``name`` and says what a valid URL looks like."""
    try:
        return _parse(url, name)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(name) else f"{name}: {message}") from None


def _parse(url: str, name: str) -> Target:
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise ConfigError(f"{name} must start with one of "
                          f"{', '.join(s + '://' for s in _SCHEMES)} "
                          f"(e.g. redis://127.0.0.1:6379/0), not {_shown(url)!r}")
    if scheme == "unix":
        return Target("single", url)
    if scheme in ("redis", "rediss"):
        return _single(url)
    if scheme == "sentinel":
        return _kombu_sentinel(url)
    parts = urlsplit(url)
    hosts = _hosts(parts.netloc.rpartition("@")[2], SENTINEL_PORT if "sentinel" in scheme
                   else 6379)
    user, password = _credentials(parts.netloc)
    path = [p for p in parts.path.split("/") if p]
    if "cluster" in scheme:
        if path and path != ["0"]:
            raise ConfigError("a cluster-mode Redis has only database 0")
        return Target("cluster", url, hosts, username=user, password=password,
                      tls=scheme.startswith("rediss"))
    if not path:
        raise ConfigError("redis+sentinel:// needs the service name: "
                          "redis+sentinel://host:26379,host2:26379/mymaster/0")
    return Target("sentinel", url, hosts, service=path[0], db=_db(path[1:]), username=user,
                  password=password, tls=scheme.startswith("rediss"))


def client(url: str, **options: Any) -> Any:
    """A synchronous client (``redis.Redis`` or ``RedisCluster``) for any supported URL."""
    t = parse(url)
    if t.kind == "single":
        return redis.Redis.from_url(url, **options)
    if t.kind == "cluster":
        return redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                           for h, p in t.hosts],
            username=t.username, password=t.password, ssl=t.tls, **options)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        t.hosts, sentinel_kwargs=_sentinel_kwargs(t, options), **options)
    return sentinel.master_for(  # type: ignore[no-untyped-call]
        t.service, db=t.db, username=t.username, password=t.password, ssl=t.tls)


def async_client(url: str, **options: Any) -> Any:
    """The same, over ``redis.asyncio`` (the worker's event loop)."""
    t = parse(url)
    if t.kind == "single":
        return redis.asyncio.Redis.from_url(url, **options)
    if t.kind == "cluster":
        options.pop("health_check_interval", None)  # not a cluster client option
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in t.hosts],
            username=t.username, password=t.password, ssl=t.tls, **options)
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        t.hosts, sentinel_kwargs=_sentinel_kwargs(t, options), **options)
    return sentinel.master_for(t.service, db=t.db, username=t.username, password=t.password,
                               ssl=t.tls)


def celery_broker(url: str, broker_url: str | None = None) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and transport options for the relay's Redis (or ``broker_url``)."""
    if broker_url:
        return broker_url, {}
    t = parse(url)
    if t.kind == "single":
        return url, {}
    if t.kind == "cluster":
        raise ConfigError("kombu (Celery's broker) cannot use a cluster-mode Redis: set "
                          "RELAY_BROKER_URL to a plain Redis (or RabbitMQ) for Celery's "
                          "remote control and heartbeats")
    auth = f":{t.password}@" if t.password else ""
    hosts = ";".join(f"sentinel://{auth}{h}:{p}" for h, p in t.hosts)
    options: dict[str, Any] = {"master_name": t.service}
    if t.password:
        options["sentinel_kwargs"] = {"password": t.password}
    return f"{hosts}/{t.db}", options


def _kombu_sentinel(url: str) -> Target:
    hosts: list[tuple[str, int]] = []
    password = user = None
    db, service = 0, ""
    for part in url.split(";"):
        p = urlsplit(part.strip())
        if p.scheme != "sentinel" or not p.hostname:
            raise ConfigError(f"not a sentinel:// address: {_shown(part)!r}")
        hosts.append((p.hostname, p.port or SENTINEL_PORT))
        user, password = (p.username or user), (p.password or password)
        if p.path.strip("/"):
            db = _db([p.path.strip("/")])
        service = parse_qs(p.query).get("master_name", [service])[0]
    if not service:
        raise ConfigError("sentinel:// needs ?master_name=<service> (kombu's spelling), or use "
                          "redis+sentinel://host:26379/<service>/<db>")
    return Target("sentinel", url, hosts, service=service, db=db, username=user,
                  password=unquote(password) if password else None)


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for item in netloc.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        if not host or (port and not port.isdigit()):
            raise ConfigError(f"bad host:port {item!r} in the Redis URL")
        hosts.append((host.strip("[]"), int(port) if port else default_port))
    return hosts


def _credentials(netloc: str) -> tuple[str | None, str | None]:
    if "@" not in netloc:
        return None, None
    auth = netloc.rpartition("@")[0]
    user, _, password = auth.partition(":")
    return (unquote(user) or None), (unquote(password) or None)


def _single(url: str) -> Target:
    """What redis-py's ``from_url`` would otherwise fail on with a traceback (a port that is
    not a number or out of range, a bracket left open) or silently ignore (a database that is
    not a number: it would use database 0)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{exc} in {_shown(url)!r} (e.g. redis://127.0.0.1:6379/0)") from None
    path = [p for p in parts.path.split("/") if p]
    if len(path) > 1:
        raise ConfigError(f"the path of {_shown(url)!r} must be only the database number")
    return Target("single", url, [(parts.hostname or "127.0.0.1", port or 6379)], db=_db(path),
                  tls=parts.scheme == "rediss")


def _db(path: list[str]) -> int:
    if not path:
        return 0
    if not path[0].isdigit():
        raise ConfigError(f"the Redis database must be a number, not {path[0]!r}")
    return int(path[0])


def _sentinel_kwargs(t: Target, options: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in options.items()
              if k in ("socket_timeout", "socket_connect_timeout")}
    if t.password:
        kwargs["password"] = t.password
    return kwargs


def _shown(url: str) -> str:
    from relay.settings import mask_url

    return mask_url(url)


def server_ms(client: Any) -> int:
    """Redis server time in ms (the clock every process shares), from any sync client kind."""
    return ms(client.time())


def ms(answer: Any) -> int:
    """A ``TIME`` answer in ms (for asyncio clients, which answer it awaited)."""
    if isinstance(answer, dict):  # a cluster client answers per node; any primary will do
        answer = next(iter(answer.values()))
    seconds, micros = answer
    return int(seconds) * 1000 + int(micros) // 1000
