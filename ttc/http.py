"""The HTTP seam between providers and the network.

Providers build a JSON body and hand it to a ``Transport``; the transport is the
only place that knows which client library runs underneath. The default is
aiohttp, because on loopback it sustains roughly 15x the request rate of httpx's
default async transport, and a 256-sample sweep is request-bound. ``HttpxTransport``
wraps any ``httpx.AsyncClient`` so unit tests can inject ``httpx.MockTransport``
(and users can bring proxies or custom TLS) without a second code path.

Three rules hold for every transport, because a sweep's correctness depends on them:

* **No deadline of its own.** ``timeout=None`` means none: the caller (the sampler's
  ``sweep.timeout_s``, or a scorer's own ``timeout_s``) owns the only total deadline.
  Client libraries ship defaults far below a long thinking run (aiohttp: 5 minutes,
  httpx: 5 seconds); every request here passes its limits explicitly, so a caller's
  client default never cuts a 15-minute stream.
* **Idle limit for streams.** ``stream(..., idle_timeout=s)`` fails when no byte arrived
  for ``s`` seconds (connecting included): a silently dropped connection is found in
  minutes, while a stream that keeps talking may run as long as the deadline allows.
* **No redirects.** A 3xx comes back as the response it is; following it would hand the
  API key to whichever host the ``location`` names.

Besides ``post`` and ``stream`` (model calls), batch mode (``ttc.batch``) needs ``get``
(poll a batch), ``upload`` (a multipart file, OpenAI's batch input) and ``download``
(a results file read in chunks, never whole in memory); the same rules hold for them.

Network failures leave here as ttc's own ``ConnectionFailedError`` (``StreamCutError``
once a stream is under way) and ``RequestTimeoutError``. The response shapes live in
``ttc._http_types`` and the httpx adapter in ``ttc._httpx``; both are re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ttc._http_types import Failures, HTTPResponse, StreamingVerbs, StreamResponse, Upload
from ttc._httpx import HttpxTransport
from ttc.deadline import attempt_deadline

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "AiohttpTransport",
    "HTTPResponse",
    "HttpxTransport",
    "StreamResponse",
    "Transport",
    "Upload",
]


class Transport(Protocol):
    """Sends one request; returns the whole response, or streams it, or raises a ttc error."""

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, timeout: float | None
    ) -> HTTPResponse: ...

    def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        idle_timeout: float | None,
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]: ...

    async def get(
        self, url: str, *, headers: Mapping[str, str], timeout: float | None
    ) -> HTTPResponse: ...

    async def upload(
        self, url: str, *, headers: Mapping[str, str], file: Upload, timeout: float | None
    ) -> HTTPResponse: ...

    def download(
        self, url: str, *, headers: Mapping[str, str], idle_timeout: float | None
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]: ...

    async def aclose(self) -> None: ...


@functools.cache
def _no_total_timeout() -> aiohttp.ClientTimeout:
    """Per request, so a caller's session default (aiohttp: 5 minutes) never applies."""
    import aiohttp

    return aiohttp.ClientTimeout(total=None)


@functools.cache
def _failures() -> Failures:
    import aiohttp

    return Failures(timeout=(TimeoutError,), network=(aiohttp.ClientError, OSError))


class AiohttpTransport(StreamingVerbs):
    """Default transport: one pooled ``aiohttp.ClientSession`` created lazily in the loop.

    ``session`` lets a caller bring its own (proxies, TLS); its default timeout is
    overridden per request, so it can never become a hidden cap.
    """

    def __init__(
        self, *, max_connections: int = 100, session: aiohttp.ClientSession | None = None
    ) -> None:
        self._max_connections = max_connections
        self._session = session
        self._owns_session = session is None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                trust_env=False,
                timeout=_no_total_timeout(),
            )
        return self._session

    def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, timeout: float | None
    ) -> Coroutine[Any, Any, HTTPResponse]:
        # the exchange itself, not a coroutine around it: one frame less per request
        return self._send("POST", url, headers, body, timeout)

    async def get(
        self, url: str, *, headers: Mapping[str, str], timeout: float | None
    ) -> HTTPResponse:
        return await self._send("GET", url, headers, None, timeout)

    async def upload(
        self, url: str, *, headers: Mapping[str, str], file: Upload, timeout: float | None
    ) -> HTTPResponse:
        import aiohttp

        form = aiohttp.FormData()
        for name, value in file.fields.items():
            form.add_field(name, value)
        form.add_field(file.field, file.content, filename=file.filename,
                       content_type=file.content_type)
        # aiohttp writes the multipart content-type (with its boundary) itself
        plain = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return await self._send("POST", url, plain, form, timeout)

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], data: object,
        timeout: float | None,
    ) -> HTTPResponse:
        session = self._client()
        # ``timeout`` is a caller's own (batch polls); the sampler passes None and keeps
        # the attempt's deadline itself, so no timer is set here per request
        with _failures().request(url, timeout), attempt_deadline(timeout):
            async with session.request(
                method, url, data=data, headers=headers, allow_redirects=False,
                timeout=_no_total_timeout(),
            ) as resp:
                body = await resp.read()
                return HTTPResponse(resp.status,
                                    {k.lower(): v for k, v in resp.headers.items()}, body)

    @contextlib.asynccontextmanager
    async def _streamed(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        idle_timeout: float | None,
    ) -> AsyncIterator[StreamResponse]:
        import aiohttp

        session = self._client()
        # sock_read restarts with every byte received: exactly "idle for this long"
        limits = aiohttp.ClientTimeout(
            total=None, sock_connect=idle_timeout, sock_read=idle_timeout
        )
        failures = _failures()
        with failures.opening(url, idle_timeout):
            request = session.request(
                method, url, data=body, headers=dict(headers), allow_redirects=False,
                timeout=limits,
            )
            resp = await request.__aenter__()
        try:
            yield failures.streamed(resp.status, resp.headers, url=url,
                                    idle_timeout=idle_timeout, body=resp.content.iter_any)
        finally:
            resp.release()

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None
