"""The shapes every transport returns (``ttc.http``): a whole response, a response still
arriving (SSE events, JSONL lines or raw chunks), a file to upload, and the translation
of network failures (``Failures``), so both transports fail in the same words."""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from ttc.errors import (
    ConnectionFailedError,
    MalformedResponseError,
    RequestTimeoutError,
    StreamCutError,
)
from ttc.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent

__all__ = ["Failures", "HTTPResponse", "StreamResponse", "StreamingVerbs", "Upload", "describe",
           "idle", "late"]


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

    async def events(
        self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    ) -> AsyncGenerator[SSEEvent, None]:
        """The body's SSE events in order; ends at the end of the body."""
        async for batch in self.event_batches(max_event_bytes):
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

    async def event_batches(
        self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    ) -> AsyncGenerator[list[SSEEvent], None]:
        """The same events, a list per received chunk (one await per chunk, not per event);
        an event longer than ``max_event_bytes`` is a ``MalformedResponseError``."""
        decoder = SSEDecoder(max_event_bytes)
        async for chunk in self._chunks():
            try:
                batch = decoder.feed(chunk)
            except MalformedResponseError as exc:
                raise MalformedResponseError(f"stream from {self.url}: {exc}") from None
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


def late(url: str, timeout: float | None) -> str:
    return f"no response from {url} within {timeout:g}s" if timeout is not None else (
        f"no response from {url} (the client timed out)")


def idle(url: str, idle_timeout: float | None) -> str:
    waited = f"{idle_timeout:g}s" if idle_timeout is not None else "too long"
    return f"stream from {url} sent nothing for {waited} (sweep.idle_timeout_s)"


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_Translation = contextlib.AbstractContextManager[None]


@dataclass(frozen=True, slots=True)
class Failures:
    """A client library's exceptions for "timed out" and "the network failed", and the
    one translation of them into ttc's errors, for each phase of an exchange.

    Timeouts are tested first: Python's ``TimeoutError`` is also an ``OSError``.
    """

    timeout: tuple[type[BaseException], ...]
    network: tuple[type[BaseException], ...]

    def request(self, url: str, timeout: float | None) -> _Translation:
        """A whole exchange under ``timeout``: ``RequestTimeoutError`` or
        ``ConnectionFailedError``."""
        return _Translated(self, _REQUEST, url, timeout)

    def opening(self, url: str, idle_timeout: float | None) -> _Translation:
        """Up to a stream's headers: silence is a cut stream, a failure a failed connection."""
        return _Translated(self, _OPENING, url, idle_timeout)

    def reading(self, url: str, idle_timeout: float | None) -> _Translation:
        """A stream under way: whatever goes wrong cuts it (the request may have been paid)."""
        return _Translated(self, _READING, url, idle_timeout)

    def streamed(
        self,
        status: int,
        headers: Mapping[str, str],
        *,
        url: str,
        idle_timeout: float | None,
        body: Callable[[], AsyncIterator[bytes]],
    ) -> StreamResponse:
        """A ``StreamResponse`` over a library's raw body chunks, failures translated."""

        async def chunks() -> AsyncIterator[bytes]:
            with self.reading(url, idle_timeout):
                async for chunk in body():
                    yield chunk

        async def read() -> bytes:
            return b"".join([chunk async for chunk in chunks()])

        hdrs = {k.lower(): v for k, v in headers.items()}
        return StreamResponse(status, hdrs, url=url, chunks=chunks, read=read)


_REQUEST, _OPENING, _READING = range(3)


class _Translated:
    """The context of one phase (``Failures.request`` / ``opening`` / ``reading``): a
    plain object rather than a generator context manager, because every request of a
    sweep enters one and the generator's set-up cost shows in the sampler's rate."""

    __slots__ = ("_failures", "_limit", "_phase", "_url")

    def __init__(self, failures: Failures, phase: int, url: str, limit: float | None) -> None:
        self._failures = failures
        self._phase = phase
        self._url = url
        self._limit = limit

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is None:
            return
        url, phase = self._url, self._phase
        if isinstance(exc, self._failures.timeout):
            if phase == _REQUEST:
                raise RequestTimeoutError(late(url, self._limit)) from exc
            raise StreamCutError(idle(url, self._limit)) from exc
        if isinstance(exc, self._failures.network):
            if phase == _READING:
                raise StreamCutError(f"stream from {url} broke: {describe(exc)}") from exc
            raise ConnectionFailedError(_failed(url, exc)) from exc


class StreamingVerbs(abc.ABC):
    """``stream`` (a POST read as it arrives) and ``download`` (a GET read in chunks) of
    every transport, over the one ``_streamed`` each implements."""

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

    @abc.abstractmethod
    def _streamed(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        idle_timeout: float | None,
    ) -> contextlib.AbstractAsyncContextManager[StreamResponse]:
        """The request, its response open while the context lasts."""


def _failed(url: str, exc: BaseException) -> str:
    return f"connection to {url} failed: {describe(exc)}"
