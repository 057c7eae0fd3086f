"""Worker settings from the environment (design.md section 7), frozen, with secrets masked.

Every knob has a documented default; ``relay check`` prints the effective values.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from relay.errors import ConfigError
from relay.events import DEFAULT_TENANT
from relay.settings import StoreSettings, environment
from relay.settings import env_number as _num
from worker.backoff import Backoff
from worker.client import Endpoint
from worker.policy import Policy
from worker.secret import Secret
from worker.soap import DEFAULT_NAMESPACE, VERSIONS
from worker.transport import TransportSettings

PRODUCTION_URL = "https://app.kognitivloyalty.com/Services/Interaction.asmx"


@dataclass(frozen=True)
class BreakerSettings:
    """A tenant's circuit opens once ``threshold`` distinct events failed within ``window``
    seconds (at once for credential codes; one poison event alone never opens it), and lets
    one probe through after ``cooldown`` seconds, doubling up to ``max_cooldown``."""

    threshold: int = 5
    window: float = 60.0
    cooldown: float = 5.0
    max_cooldown: float = 60.0


@dataclass(frozen=True)
class LeaseSettings:
    """A claimed event is leased for ``lease`` seconds and the worker extends its leases every
    ``heartbeat`` seconds while calls run, however long they take; a killed or frozen worker's
    events are back in the queue ``lease`` seconds after its last heartbeat. Refused at
    start-up when a lease could lapse during a live call: ``lease`` must cover three heartbeats
    and a heartbeat's Redis round trip (``redis_timeout``)."""

    lease: float = 10.0
    heartbeat: float = 2.0
    redis_timeout: float = 2.0

    def check(self) -> None:
        if self.heartbeat <= 0 or self.lease < 3 * self.heartbeat:
            raise ConfigError(f"RELAY_LEASE ({self.lease:g} s) must be at least three "
                              f"RELAY_HEARTBEAT intervals ({self.heartbeat:g} s)")
        if self.lease < self.heartbeat + self.redis_timeout + 1:
            raise ConfigError(f"RELAY_LEASE ({self.lease:g} s) must exceed a heartbeat plus its "
                              f"Redis timeout ({self.heartbeat + self.redis_timeout:g} s) by 1 s")


@dataclass(frozen=True)
class Settings:
    """Everything a worker process needs; every option is an environment variable (README's
    deployment table). ``in_flight`` bounds SOAP calls in flight per process; ``batch`` is the
    most events one claim takes; ``rate_limit`` is deliveries/s per tenant across the pool
    (0: none); ``drain`` is how long a stopping worker lets its calls finish.
    ``metrics_port`` (0: off) is where process N of ``relay worker --processes`` serves its
    own ``/metrics``, plus N, on ``metrics_host``."""

    store: StoreSettings = field(default_factory=StoreSettings)
    tenants: Mapping[str, Endpoint] = field(default_factory=dict)
    transport: TransportSettings = field(default_factory=TransportSettings)
    backoff: Backoff = field(default_factory=Backoff)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    leases: LeaseSettings = field(default_factory=LeaseSettings)
    policy: Policy = field(default_factory=Policy)
    rate_limit: float = 0.0
    in_flight: int = 256
    batch: int = 128
    drain: float = 30.0
    log_json: bool = False
    log_level: str = "INFO"  # RELAY_LOG_LEVEL; DEBUG adds a line per delivered event
    broker_url: str = ""  # Celery's broker, when not the relay's Redis (RELAY_BROKER_URL)
    sentry_dsn: Secret = field(default_factory=lambda: Secret(""))
    environment: str = "production"
    tokenless: frozenset[str] = frozenset()  # tenants whose table entry says no token is needed
    metrics_port: int = 0  # RELAY_METRICS_PORT
    metrics_host: str = "127.0.0.1"  # RELAY_METRICS_HOST

    def __repr__(self) -> str:
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name not in ("policy", "broker_url")]
        return f"Settings({', '.join(parts)})"

    @property
    def redis_url(self) -> str:
        return self.store.redis_url

    @property
    def probe_s(self) -> float:
        """How long a half-open circuit waits on its probe before letting another through."""
        return self.transport.total_timeout + self.leases.lease

    def check_tokens(self) -> None:
        """A worker must not send an empty token: refuse to start, naming the tenants."""
        if not self.tenants:
            raise ConfigError("no tenant to deliver for: set RELAY_SECURITY_TOKEN (the default "
                              "tenant) or RELAY_TENANTS")
        missing = sorted(name for name, e in self.tenants.items()
                         if not e.token and name not in self.tokenless)
        if missing:
            raise ConfigError(f"no security token for tenant(s) {', '.join(missing)}: set "
                              "RELAY_SECURITY_TOKEN (default tenant) or their 'token' in "
                              "RELAY_TENANTS (or \"token_required\": false there, for an "
                              "endpoint that needs none)")

    def endpoint(self, tenant: str) -> Endpoint:
        try:
            return self.tenants[tenant]
        except KeyError:
            raise ConfigError(f"unknown tenant {tenant!r}: add it to RELAY_TENANTS") from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        values = environment(env)
        get = values.get
        version = get("RELAY_SOAP_VERSION", "1.1")
        if version not in VERSIONS:
            raise ConfigError(f"RELAY_SOAP_VERSION must be one of {VERSIONS}, not {version!r}")
        default = Endpoint(url=get("RELAY_SOAP_URL") or PRODUCTION_URL,
                           token=Secret(get("RELAY_SECURITY_TOKEN", "")),
                           namespace=get("RELAY_SOAP_NAMESPACE") or DEFAULT_NAMESPACE,
                           action=get("RELAY_SOAP_ACTION") or None, version=version)
        table, tokenless = _tenants(get("RELAY_TENANTS", ""), default)
        insecure = get("RELAY_ALLOW_INSECURE_SOAP", "").strip().lower() in ("1", "true", "yes")
        check_soap_url(default.url, "RELAY_SOAP_URL", insecure)
        for name, endpoint in table.items():
            check_soap_url(endpoint.url, f"RELAY_TENANTS[{name!r}].url", insecure)
        # The default tenant exists when it has a token, or when there is no table at all (so
        # a worker without any token is refused with one line rather than sending empty ones).
        tenants = {**({DEFAULT_TENANT: default} if default.token or not table else {}), **table}
        leases = LeaseSettings(lease=_num(values, "RELAY_LEASE", 10.0),
                               heartbeat=_num(values, "RELAY_HEARTBEAT", 2.0),
                               redis_timeout=_num(values, "RELAY_REDIS_TIMEOUT", 2.0))
        leases.check()
        broker = get("RELAY_BROKER_URL", "")
        if broker and "://" not in broker:  # kombu would retry a host named "host:6379" forever
            raise ConfigError("RELAY_BROKER_URL must be a URL with a scheme, e.g. "
                              "redis://host:6379/0 or amqp://host:5672//")
        return cls(
            store=StoreSettings.from_env(values),
            tenants=tenants,
            transport=TransportSettings(
                connect_timeout=_num(values, "RELAY_CONNECT_TIMEOUT", 5.0),
                read_timeout=_num(values, "RELAY_READ_TIMEOUT", 30.0),
                total_timeout=_num(values, "RELAY_TOTAL_TIMEOUT", 60.0),
                pool_limit=int(_num(values, "RELAY_POOL_LIMIT", 256)),
                max_reply_bytes=int(_num(values, "RELAY_MAX_REPLY_BYTES", 1 << 20))),
            backoff=Backoff(base=_num(values, "RELAY_BACKOFF_BASE", 2.0),
                            factor=_num(values, "RELAY_BACKOFF_FACTOR", 2.0),
                            cap=_num(values, "RELAY_BACKOFF_CAP", 600.0),
                            max_attempts=int(_num(values, "RELAY_MAX_ATTEMPTS", 12)),
                            max_age=_num(values, "RELAY_MAX_AGE", 86400.0)),
            breaker=BreakerSettings(threshold=max(1, int(_num(values, "RELAY_BREAKER_THRESHOLD",
                                                              5))),
                                    window=_num(values, "RELAY_BREAKER_WINDOW", 60.0),
                                    cooldown=_num(values, "RELAY_BREAKER_COOLDOWN", 5.0),
                                    max_cooldown=_num(values, "RELAY_BREAKER_MAX_COOLDOWN", 60.0)),
            leases=leases,
            policy=Policy.with_overrides(get("RELAY_POLICY")),
            rate_limit=_num(values, "RELAY_RATE_LIMIT", 0.0),
            in_flight=max(1, int(_num(values, "RELAY_IN_FLIGHT", 256))),
            batch=max(1, int(_num(values, "RELAY_BATCH", 128))),
            drain=_num(values, "RELAY_DRAIN_TIMEOUT", 30.0),
            log_json=get("RELAY_LOG_FORMAT", "text") == "json",
            log_level=_log_level(get("RELAY_LOG_LEVEL", "info")),
            broker_url=broker,
            sentry_dsn=Secret(get("RELAY_SENTRY_DSN") or get("SENTRY_DSN") or ""),
            environment=get("RELAY_ENVIRONMENT", "production"),
            tokenless=tokenless,
            metrics_port=_port(values, "RELAY_METRICS_PORT"),
            metrics_host=get("RELAY_METRICS_HOST") or "127.0.0.1",
        )


def check_soap_url(url: str, variable: str, allow_insecure: bool = False) -> None:
    """The token travels in the SOAP body: ``https`` only, plain ``http`` to this machine
    (loopback: the token never leaves it) or with ``RELAY_ALLOW_INSECURE_SOAP=1``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = urlsplit(""), ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{variable} must be an https:// URL with a host, e.g. "
                          f"{PRODUCTION_URL}")
    if parts.scheme == "http" and not allow_insecure and not _loopback(host):
        raise ConfigError(f"{variable} must use https:// (the security token is in every "
                          "request): plain http:// only to 127.0.0.1/localhost, or set "
                          "RELAY_ALLOW_INSECURE_SOAP=1")


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port(values: Mapping[str, str], name: str) -> int:
    port = _num(values, name, 0)
    if port != int(port) or port > 65535:
        raise ConfigError(f"{name} must be a port number (1-65535, or 0 for off), not "
                          f"{values[name]!r}")
    return int(port)


def _tenants(raw: str, default: Endpoint) -> tuple[dict[str, Endpoint], frozenset[str]]:
    """``RELAY_TENANTS``: JSON, or a path to a JSON file: ``{"acme": {"token": "...",
    "url": "...", "namespace": "...", "version": "1.2"}}``; missing keys inherit the default.
    ``"token_required": false`` lets a tenant's token be empty (an endpoint that authenticates
    otherwise); the worker refuses to start on an empty token anywhere else. Also returns
    the names of those tenants."""
    if not raw.strip():
        return {}, frozenset()
    try:
        text = raw if raw.lstrip().startswith("{") else Path(raw).read_text()
        data: Any = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"RELAY_TENANTS is neither JSON nor a readable JSON file: "
                          f"{type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise ConfigError("RELAY_TENANTS must map tenant names to objects")
    tenants, tokenless = {}, set()
    for name, spec in data.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("token", ""), str):
            raise ConfigError(f"RELAY_TENANTS[{name!r}] needs a string 'token'")
        if not isinstance(spec.get("token_required", True), bool):
            raise ConfigError(f"RELAY_TENANTS[{name!r}]['token_required'] must be true or false")
        if spec.get("token_required") is False:
            tokenless.add(name)
        elif not isinstance(spec.get("token"), str):
            raise ConfigError(f"RELAY_TENANTS[{name!r}] needs a string 'token'")
        tenants[name] = Endpoint(url=spec.get("url") or default.url,
                                 token=Secret(spec.get("token", "")),
                                 namespace=spec.get("namespace") or default.namespace,
                                 action=spec.get("action") or default.action,
                                 version=spec.get("version") or default.version)
    return tenants, frozenset(tokenless)


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"RELAY_LOG_LEVEL must be debug, info, warning or error, not {raw!r}")
    return level
