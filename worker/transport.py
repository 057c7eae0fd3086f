"""HTTP transport over aiohttp: one ``send`` method, and the one place aiohttp errors become ours.

A failure before the request left (connect, DNS, TLS) is ``ConnectFailed`` and safe to retry;
a timeout or reset after it may have been recorded remotely, so it is flagged ambiguous.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from yarl import URL

from worker.errors import ConnectFailed, ConnectionLost, ReplyTooLarge, RequestTimeout
from worker.soap import SoapRequest


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    async def send(self, url: str, request: SoapRequest) -> HttpResponse: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Timeouts in seconds; ``pool_limit`` bounds connections (aiohttp's default silently caps
    calls in flight at 100)."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    pool_limit: int = 256
    max_reply_bytes: int = 1 << 20


class AiohttpTransport:
    """Keep-alive session made lazily inside the running loop; TLS verified; proxies from env."""

    def __init__(self, settings: TransportSettings | None = None) -> None:
        self.settings = settings or TransportSettings()
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, str | None] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            s = self.settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=s.pool_limit, limit_per_host=s.pool_limit,
                                               keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=s.total_timeout, sock_connect=s.connect_timeout,
                                              sock_read=s.read_timeout),
                # trust_env would re-read ~/.netrc and the proxy variables on every request
                # (~0.6 ms of CPU each); proxies are resolved once per origin instead.
                trust_env=False,
                # An .asmx call carries no session: no cookie filtering per request and
                # parsing per reply, and nothing a reply sets leaks into the next call.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _proxy(self, url: str) -> str | None:
        if url not in self._proxies:
            target = URL(url)
            proxies = urllib.request.getproxies_environment()
            bypass = target.host is not None and bool(urllib.request.proxy_bypass(target.host))
            self._proxies[url] = None if bypass else proxies.get(target.scheme)
        return self._proxies[url]

    async def send(self, url: str, request: SoapRequest) -> HttpResponse:
        session = self._open()
        try:
            async with session.post(url, data=request.body, headers=request.headers,
                                    proxy=self._proxy(url)) as resp:
                body = await self._read(resp)
                # the response's own read-only header view: no copy per call
                return HttpResponse(resp.status, resp.headers, body)
        except aiohttp.ClientConnectorError as exc:  # DNS, refused, TLS: nothing sent
            raise ConnectFailed(f"cannot connect to {_origin(url)}: {_reason(exc)}") from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise ConnectFailed(f"connect to {_origin(url)} timed out") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise RequestTimeout(f"no reply from {_origin(url)} in time") from exc
        except aiohttp.InvalidURL as exc:
            raise ConnectFailed(f"invalid SOAP URL {_origin(url)!r}") from exc
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            raise ConnectionLost(f"connection to {_origin(url)} lost: {_reason(exc)}") from exc

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self.settings.max_reply_bytes
        if resp.content_length is not None:
            if resp.content_length > cap:
                raise ReplyTooLarge(f"reply of {resp.content_length} bytes exceeds cap of {cap}")
            return await resp.read()  # the length is known and within the cap: one read
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > cap:
                raise ReplyTooLarge(f"reply exceeds cap of {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let the connector finish closing its transports


def _origin(url: str) -> str:
    """Scheme, host and path only: never echo a query string or credentials into errors."""
    try:
        parsed = URL(url)
        return str(parsed.with_user(None).with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "<invalid URL>"


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__
