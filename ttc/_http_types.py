"""The shapes every transport returns (``ttc.http``): a whole response, a response still
arriving (SSE events, JSONL lines or raw chunks), a file to upload, and the wording of
network failures, so both transports fail in the same words."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from ttc.errors import MalformedResponseError
from ttc.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent

__all__ = ["HTTPResponse", "StreamResponse", "Upload", "describe", "idle", "late"]


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
