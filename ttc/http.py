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
once a stream is under way) and ``RequestTimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ttc.errors import ConnectionFailedError, RequestTimeoutError, StreamCutError
from ttc.sse import SSEDecoder, SSEEvent

if TYPE_CHECKING:
    import aiohttp
    import httpx

__all__ = [
    "AiohttpTransport",
    "HTTPResponse",
    "HttpxTransport",
    "StreamResponse",
    "Transport",
    "Upload",
]


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    """A fully read response. Header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class StreamResponse:
    """A response whose body is still arriving: status and headers now, body on demand.

    ``events()`` decodes the body as SSE; ``read()`` takes it whole (an error status, or
    a server that answered a stream request with plain JSON).
    """

    __slots__ = ("_chunks", "_read", "headers", "status", "url")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        *,
        url: str,
        chunks: Callable[[], AsyncIterator[bytes]],
        read: Callable[[], Awaitable[bytes]],
    ) -> None:
        self.status = status
        self.headers = headers
        self.url = url
        self._chunks = chunks
        self._read = read

    @property
    def is_event_stream(self) -> bool:
        """Whether the server sent ``text/event-stream`` (rather than, say, JSON)."""
        return self.headers.get("content-type", "").lower().startswith("text/event-stream")

    async def read(self) -> bytes:
        """The whole body."""
        return await self._read()

    async def events(self) -> AsyncGenerator[SSEEvent, None]:
        """The body's SSE events in order; ends at the end of the body."""
        async for batch in self.event_batches():
            for event in batch:
                yield event

    async def lines(self) -> AsyncGenerator[list[bytes], None]:
        """The body as lines (JSONL), a list per received chunk; blank lines dropped.

        A line split across chunks is joined; only the unfinished tail is held, so a
        results file of gigabytes never sits in memory whole.
        """
        held: list[bytes] = []
        async for chunk in self._chunks():
            held.append(chunk)
            if b"\n" not in chunk:  # a long line arriving: join it once, at its end
                continue
            parts = b"".join(held).split(b"\n")
            held = [parts.pop()]
            done = [line for line in parts if line.strip()]
            if done:
                yield done
        tail = b"".join(held)
        if tail.strip():
            yield [tail]

    async def event_batches(self) -> AsyncGenerator[list[SSEEvent], None]:
        """The same events, a list per received chunk (one await per chunk, not per event)."""
        decoder = SSEDecoder()
        async for chunk in self._chunks():
            batch = decoder.feed(chunk)
            if batch:
                yield batch
        tail = decoder.close()
        if tail:
            yield tail


@dataclass(frozen=True, slots=True)
class Upload:
    """One file for a multipart/form-data POST, with the form's plain fields."""

    field: str
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)


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


class AiohttpTransport:
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
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, timeout: float | None
    ) -> HTTPResponse:
        return await self._send("POST", url, headers, body, timeout)

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
        import aiohttp

        session = self._client()
        try:
            async with asyncio.timeout(timeout):
                async with session.request(
                    method,
                    url,
                    data=data,
                    headers=dict(headers),
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None),
                ) as resp:
                    body = await resp.read()
                    hdrs = {k.lower(): v for k, v in resp.headers.items()}
                    return HTTPResponse(resp.status, hdrs, body)
        except TimeoutError as exc:
            raise RequestTimeoutError(_late(url, timeout)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionFailedError(f"connection to {url} failed: {_describe(exc)}") from exc

    def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        idle_timeout: float | None,
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]:
        return self._streamed("POST", url, headers, body, idle_timeout)

    def download(
        self, url: str, *, headers: Mapping[str, str], idle_timeout: float | None
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]:
        return self._streamed("GET", url, headers, None, idle_timeout)

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
        try:
            request = session.request(
                method, url, data=body, headers=dict(headers), allow_redirects=False,
                timeout=limits,
            )
            resp = await request.__aenter__()
        except TimeoutError as exc:
            raise StreamCutError(_idle(url, idle_timeout)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionFailedError(f"connection to {url} failed: {_describe(exc)}") from exc

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.content.iter_any():
                    yield chunk
            except TimeoutError as exc:
                raise StreamCutError(_idle(url, idle_timeout)) from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise StreamCutError(f"stream from {url} broke: {_describe(exc)}") from exc

        async def read() -> bytes:
            return b"".join([chunk async for chunk in chunks()])

        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        try:
            yield StreamResponse(resp.status, hdrs, url=url, chunks=chunks, read=read)
        finally:
            resp.release()

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None


class HttpxTransport:
    """Adapter for a caller-owned ``httpx.AsyncClient`` (e.g. with ``httpx.MockTransport``).

    The client's own timeout default (5 s unless configured) and redirect setting are
    overridden on every request.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(
        self, url: str, *, headers: Mapping[str, str], body: bytes, timeout: float | None
    ) -> HTTPResponse:
        return await self._send("POST", url, headers, timeout, content=body)

    async def get(
        self, url: str, *, headers: Mapping[str, str], timeout: float | None
    ) -> HTTPResponse:
        return await self._send("GET", url, headers, timeout)

    async def upload(
        self, url: str, *, headers: Mapping[str, str], file: Upload, timeout: float | None
    ) -> HTTPResponse:
        plain = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return await self._send(
            "POST", url, plain, timeout, data=dict(file.fields),
            files={file.field: (file.filename, file.content, file.content_type)},
        )

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], timeout: float | None,
        **content: Any,
    ) -> HTTPResponse:
        import httpx

        try:
            resp = await self._client.request(
                method,
                url,
                headers=dict(headers),
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                **content,
            )
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(_late(url, timeout)) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"connection to {url} failed: {_describe(exc)}") from exc
        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        return HTTPResponse(resp.status_code, hdrs, resp.content)

    def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        idle_timeout: float | None,
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]:
        return self._streamed("POST", url, headers, body, idle_timeout)

    def download(
        self, url: str, *, headers: Mapping[str, str], idle_timeout: float | None
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]:
        return self._streamed("GET", url, headers, None, idle_timeout)

    @contextlib.asynccontextmanager
    async def _streamed(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        idle_timeout: float | None,
    ) -> AsyncIterator[StreamResponse]:
        import httpx

        # read= is per socket read in httpx: the idle limit; no total (the caller's)
        limits = httpx.Timeout(None, connect=idle_timeout, read=idle_timeout)
        request = self._client.build_request(
            method, url, content=body, headers=dict(headers), timeout=limits
        )
        try:
            resp = await self._client.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise StreamCutError(_idle(url, idle_timeout)) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"connection to {url} failed: {_describe(exc)}") from exc

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.aiter_bytes():
                    yield chunk
            except httpx.TimeoutException as exc:
                raise StreamCutError(_idle(url, idle_timeout)) from exc
            except httpx.TransportError as exc:
                raise StreamCutError(f"stream from {url} broke: {_describe(exc)}") from exc

        async def read() -> bytes:
            return b"".join([chunk async for chunk in chunks()])

        hdrs = {k.lower(): v for k, v in resp.headers.items()}
        try:
            yield StreamResponse(resp.status_code, hdrs, url=url, chunks=chunks, read=read)
        finally:
            await resp.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


def _late(url: str, timeout: float | None) -> str:
    return f"no response from {url} within {timeout:g}s" if timeout is not None else (
        f"no response from {url} (the client timed out)")


def _idle(url: str, idle_timeout: float | None) -> str:
    waited = f"{idle_timeout:g}s" if idle_timeout is not None else "too long"
    return f"stream from {url} sent nothing for {waited} (sweep.idle_timeout_s)"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
