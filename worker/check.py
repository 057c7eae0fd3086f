"""``relay check``: is this configuration able to deliver? Settings, Redis, endpoint, WSDL match."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from xml.parsers.expat import ExpatError

import aiohttp
import redis
import xmltodict

from relay import connect, redis_checks
from relay.settings import mask_url
from worker.client import Endpoint
from worker.settings import Settings
from worker.soap import default_action


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # ok, at a risk the detail states


def effective_settings(settings: Settings) -> dict[str, Any]:
    """What the worker would use, secrets masked."""
    return {
        "redis_url": mask_url(settings.redis_url),
        "tenants": {name: {"url": mask_url(e.url), "token": "***" if e.token else "(not set)",
                           "namespace": e.namespace, "action": e.action or
                           default_action(e.namespace), "version": e.version}
                    for name, e in settings.tenants.items()},
        "transport": asdict(settings.transport),
        "backoff": asdict(settings.backoff),
        "breaker": asdict(settings.breaker),
        "leases": asdict(settings.leases),
        "scope": settings.store.scope,
        "retention": settings.store.retention,
        "rate_limit": settings.rate_limit,
        "in_flight": settings.in_flight,
    }


def run_checks(settings: Settings) -> list[Check]:
    checks = _redis(settings.redis_url)
    for name, endpoint in settings.tenants.items():
        checks.append(_token(name, endpoint, name in settings.tokenless))
        checks.extend(asyncio.run(_endpoint(name, endpoint, settings.transport.connect_timeout)))
    return checks


def _token(name: str, endpoint: Endpoint, tokenless: bool) -> Check:
    """Set or not; never right or wrong: the service answers a wrong token only to a real
    RecordInteraction call, which records an interaction. The WSDL does not need one."""
    if not endpoint.token:
        if tokenless:
            return Check(f"{name}: token", True, "none (RELAY_TENANTS says token_required: "
                                                 "false)")
        return Check(f"{name}: token", False, "no security token set (RELAY_SECURITY_TOKEN "
                                              "or RELAY_TENANTS): the worker refuses to start")
    return Check(f"{name}: token", True, "set, NOT verified: only a real RecordInteraction "
                 "call can tell a wrong token, and it records an interaction; send one test "
                 "event (relay send) and watch `relay status EVENT_ID`", warning=True)


def _redis(url: str) -> list[Check]:
    """Reachable, and fit for the relay (eviction policy, persistence: relay/redis_checks)."""
    try:
        client = connect.client(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        found = redis_checks.findings(client)
        client.close()
    except redis.RedisError as exc:
        return [Check("redis", False, f"{mask_url(url)}: {type(exc).__name__}: {exc}")]
    return [Check("redis", True, f"{mask_url(url)} answers PING"),
            *(Check(f.name, f.level != "fail", f.detail, warning=f.level == "warn")
              for f in found)]


async def _endpoint(name: str, endpoint: Endpoint, timeout: float) -> list[Check]:
    url = endpoint.url.split("?", 1)[0] + "?WSDL"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout * 2),
                                         trust_env=True) as session, session.get(url) as resp:
            status, body = resp.status, await resp.content.read(2 << 20)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return [Check(f"{name}: endpoint", False,
                      f"{mask_url(url)} unreachable: {type(exc).__name__}")]
    if status != 200:
        return [Check(f"{name}: endpoint", False, f"{mask_url(url)} answered HTTP {status}")]
    checks = [Check(f"{name}: endpoint", True, f"{mask_url(url)} answered HTTP 200")]
    try:
        namespace, actions = read_wsdl(body)
    except ValueError as exc:
        return [*checks, Check(f"{name}: wsdl", False, str(exc))]
    want_action = endpoint.action or default_action(endpoint.namespace)
    checks.append(Check(f"{name}: namespace", namespace == endpoint.namespace,
                        f"WSDL targetNamespace {namespace!r}, configured {endpoint.namespace!r}"))
    checks.append(Check(f"{name}: soapAction", want_action in actions,
                        f"WSDL soapAction {sorted(actions)}, configured {want_action!r}"))
    return checks


def _listed(_path: Any, key: str, _value: Any) -> bool:
    return key.endswith((" operation", " binding"))


def read_wsdl(body: bytes) -> tuple[str, set[str]]:
    """targetNamespace and the soapAction values of RecordInteraction in a WSDL document."""
    if b"<!DOCTYPE" in body:
        raise ValueError("WSDL declares a DTD; refused")
    try:
        doc = xmltodict.parse(body, process_namespaces=True, namespace_separator=" ",
                              force_list=_listed)
    except (ExpatError, ValueError) as exc:
        raise ValueError(f"WSDL is not well-formed XML: {exc}") from exc
    root = doc.get("http://schemas.xmlsoap.org/wsdl/ definitions")
    if not isinstance(root, Mapping):
        raise ValueError("not a WSDL document (no wsdl:definitions)")
    namespace = str(root.get("@targetNamespace", ""))
    actions: set[str] = set()
    for binding in root.get("http://schemas.xmlsoap.org/wsdl/ binding", []):
        for operation in binding.get("http://schemas.xmlsoap.org/wsdl/ operation", []):
            if operation.get("@name") != "RecordInteraction":
                continue
            for key, value in operation.items():
                if key.endswith(" operation") and isinstance(value, list):
                    actions.update(str(v.get("@soapAction", "")) for v in value)
    return namespace, actions
