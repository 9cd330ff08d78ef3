"""The HTTP seam between providers and the network.

Providers build a JSON body and hand it to a ``Transport``; the transport is the
only place that knows which client library runs underneath. The default is
aiohttp, because on loopback it sustains roughly 15x the request rate of httpx's
default async transport, and a 256-sample sweep is request-bound. ``HttpxTransport``
wraps any ``httpx.AsyncClient`` so unit tests can inject ``httpx.MockTransport``
(and users can bring proxies or custom TLS) without a second code path.
Network failures leave here as ttc's own ``ConnectionFailedError`` and
``RequestTimeoutError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ttc.errors import ConnectionFailedError, RequestTimeoutError

if TYPE_CHECKING:
    import aiohttp
    import httpx

__all__ = ["AiohttpTransport", "HTTPResponse", "HttpxTransport", "Transport"]


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    """A fully read response. Header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    """Sends one POST and returns the whole response, or raises a ttc network error."""

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> HTTPResponse: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """Default transport: one pooled ``aiohttp.ClientSession`` created lazily in the loop."""

    def __init__(self, *, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, trust_env=False
            )
        return self._session

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> HTTPResponse:
        import aiohttp

        session = self._client()
        try:
            async with asyncio.timeout(timeout):
                async with session.post(url, data=body, headers=dict(headers)) as resp:
                    data = await resp.read()
                    hdrs = {k.lower(): v for k, v in resp.headers.items()}
                    return HTTPResponse(resp.status, hdrs, data)
        except TimeoutError as exc:
            raise RequestTimeoutError(f"no response from {url} within {timeout:g}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionFailedError(f"connection to {url} failed: {_describe(exc)}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxTransport:
    """Adapter for a caller-owned ``httpx.AsyncClient`` (e.g. with ``httpx.MockTransport``)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> HTTPResponse:
        import httpx

        try:
            resp = await self._client.post(
                url, content=body, headers=dict(headers), timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(f"no response from {url} within {timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"connection to {url} failed: {_describe(exc)}") from exc
        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        return HTTPResponse(resp.status_code, hdrs, resp.content)

    async def aclose(self) -> None:
        await self._client.aclose()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
