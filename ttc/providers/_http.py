"""``HTTPProvider``: the plumbing every HTTP backend shares (anthropic, openai, local,
budget forcing), re-exported by ``ttc.providers.base``.

``HTTPProvider.complete`` is the one exit of every HTTP backend, streamed or not:
usage is checked for impossible values, stored text is capped at
``sweep.max_text_bytes``, and every credential sent (the env key, auth-like header
values) is scrubbed from any error and from the stored output there. Batch
results (``ttc.batch``) leave through ``batch_result``, which applies the same parse
and the same checks to the body a batch returned, so a batch sample is the online one.
Whether a request streams (``wants_stream``) and how a stream is rebuilt into the body
the non-streaming endpoint would have returned (``StreamAssembler``) are decided here.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from ttc.config import Budget, ModelConfig, SweepConfig
from ttc.errors import APIError, ConfigError, StreamCutError
from ttc.http import HTTPResponse, Transport
from ttc.providers.base import (
    Completion,
    Provider,
    SampleRequest,
    StreamStopped,
    TraceWatch,
)
from ttc.providers.responses import (
    cap_text,
    check_usage,
    credentials,
    error_for_response,
    parse_json_body,
    post_json,
    scrub_completion,
    scrub_secret,
)
from ttc.sse import SSEEvent

if TYPE_CHECKING:
    from ttc.batch.wire import BatchAPI, BatchWire

__all__ = ["AUTO_STREAM_TOKENS", "HTTPProvider", "StreamAssembler", "TextPieces", "wants_stream"]

#: ``sweep.stream = "auto"`` streams requests that may produce more output tokens than this
AUTO_STREAM_TOKENS = 16384
#: one SSE event may be this many times ``sweep.max_text_bytes`` (a delta, JSON-escaped,
#: plus its envelope) before the stream counts as malformed
MAX_EVENT_FACTOR = 4


class StreamAssembler(Protocol):
    """Rebuilds, event by event, the body the non-streaming endpoint would have returned.

    Feeding that body to the same parser as a non-streaming reply is what makes a
    streamed sample identical to an unstreamed one. ``feed`` raises the ``APIError`` an
    error event reports (with ``output_tokens`` set); ``done`` turns true at the
    stream's end event; ``tokens`` estimates (thinking, output) tokens so far.
    """

    done: bool

    def feed(self, event: SSEEvent) -> None: ...

    def body(self) -> dict[str, Any]: ...

    def tokens(self) -> tuple[int, int]: ...


class TextPieces:
    """Streamed text in pieces, kept only up to ``limit`` characters per field.

    Memory stays bounded when a server streams without end; the kept prefix is longer
    than ``limit`` bytes whenever anything was dropped, so ``cap_text`` then cuts (and
    marks) the text exactly as it would cut the same text received in one piece.
    """

    __slots__ = ("chars", "limit", "parts")

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.chars = 0
        self.limit = limit

    def add(self, text: str) -> None:
        if self.chars <= self.limit:
            self.parts.append(text)
        self.chars += len(text)

    def text(self) -> str:
        return "".join(self.parts)


def wants_stream(mode: bool | Literal["auto"], max_tokens: int, *, required: bool) -> bool:
    """Whether a request that may produce ``max_tokens`` goes out as a stream."""
    if mode == "auto":
        return required or max_tokens > AUTO_STREAM_TOKENS
    return bool(mode)


class HTTPProvider(Provider):
    """A backend that POSTs JSON to one endpoint, whole or streamed.

    Subclasses name ``default_base_url`` and ``endpoint``, may override
    ``auth_headers``, implement ``_complete`` with ``self._post(body)`` or
    ``self._stream(body, assembler, listener)``, and say in ``requires_stream`` which
    budgets their API serves only as streams. The key is read once here (a missing key
    fails at construction, before any request) and blanked out of every error.
    ``sweep`` supplies ``stream``, ``idle_timeout_s`` and ``max_text_bytes``; there is no
    total timeout here on purpose (see the module docstring).
    """

    default_base_url: str = ""
    endpoint: str = ""

    def __init__(
        self,
        config: ModelConfig,
        *,
        transport: Transport | None = None,
        max_connections: int = 0,
        sweep: SweepConfig | None = None,
    ) -> None:
        super().__init__(config)
        from ttc.http import AiohttpTransport

        sweep = sweep or SweepConfig()
        self.stream_mode: bool | Literal["auto"] = sweep.stream
        #: samples go through the provider's batch API (nothing streams there)
        self.batch_mode = sweep.mode == "batch"
        self.idle_timeout_s = sweep.idle_timeout_s
        self.max_text_bytes = sweep.max_text_bytes
        #: the longest SSE event read: a few times the stored-text cap (JSON escaping can
        #: triple text), beyond which a stream is malformed (retried)
        self.max_event_bytes = MAX_EVENT_FACTOR * sweep.max_text_bytes + 65536
        #: alternatives per token to ask for (``sweep.logprobs``); 0: no logprobs
        self.top_logprobs = sweep.top_logprobs if sweep.logprobs else 0
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(
            max_connections=max_connections
        )
        base = (config.base_url or self.default_base_url).rstrip("/")
        self._base = base
        self._url = base + self.endpoint
        key = config.api_key()
        self._headers = {
            "content-type": "application/json", **self.auth_headers(key), **config.headers
        }
        #: every credential sent (the env key, auth-like header values): scrubbed out of
        #: errors and of stored output alike
        self._secret = credentials(key, self._headers)

    def auth_headers(self, key: str | None) -> dict[str, str]:
        """Headers that carry the key (a bearer token unless a subclass says otherwise)."""
        return {"authorization": f"Bearer {key}"} if key else {}

    # ------------------------------------------------------------ streaming choice
    def requires_stream(self, budget: Budget) -> bool:
        """Whether the API refuses ``budget`` unless streamed (none do by default)."""
        return False

    def streams(self, budget: Budget) -> bool:
        """Whether a sample at ``budget`` is requested as a stream (``sweep.stream``)."""
        return wants_stream(
            self.stream_mode, self.max_output_tokens(budget), required=self.requires_stream(budget)
        )

    def check_budget(self, budget: Budget) -> None:
        """Refuse ``sweep.stream = false`` for a budget the API serves only as a stream."""
        if self.stream_mode is False and self.requires_stream(budget) and not self.batch_mode:
            raise ConfigError(
                f"sweep.stream = false, but {self.kind} serves budget {budget!r} "
                f"({self.max_output_tokens(budget)} output tokens) only as a stream; "
                f"set sweep.stream = true or \"auto\""
            )

    # ------------------------------------------------------------ the one exit
    async def complete(self, request: SampleRequest) -> Completion:
        """Draw one sample; usage checked, text capped, the key scrubbed from errors and
        from the stored output."""
        try:
            return self._checked(await self._complete(request), request)
        except APIError as exc:
            scrub_secret(exc, self._secret)
            raise

    def _checked(self, completion: Completion, request: SampleRequest) -> Completion:
        check_usage(completion, self.output_cap(request), self.kind)
        return scrub_completion(cap_text(completion, self.max_text_bytes), self._secret)

    @abc.abstractmethod
    async def _complete(self, request: SampleRequest) -> Completion:
        """The wire-format work of ``complete``."""

    # ------------------------------------------------------------ batch hooks
    def batch_api(self) -> BatchAPI | None:
        """This backend's batch API (``sweep.mode = "batch"``); None when it has none."""
        return None

    def batch_body(self, request: SampleRequest) -> dict[str, Any]:
        """The body one batch entry carries: exactly the non-streaming ``build_body``."""
        body: dict[str, Any] = self.build_body(request)  # type: ignore[attr-defined]
        for key in ("stream", "stream_options"):
            body.pop(key, None)
        return body

    def parse_body(self, data: dict[str, Any]) -> Completion:
        """Read a non-streaming response body (what a batch entry returns)."""
        raise NotImplementedError(f"{self.kind} has no batch API")

    def batch_result(self, data: dict[str, Any], request: SampleRequest) -> Completion:
        """The batch path's exit: the online parse, usage checks, text cap and scrub."""
        try:
            return self._checked(self.parse_body(data), request)
        except APIError as exc:
            scrub_secret(exc, self._secret)
            raise

    def batch_wire(self) -> BatchWire:
        """HTTP to this backend's origin with its key (the key goes nowhere else)."""
        from ttc.batch.wire import BatchWire

        return BatchWire(self._transport, base_url=self._base, headers=self._headers,
                         secret=self._secret, provider=self.kind)

    @property
    def max_tokens_key(self) -> str:
        """The body field that caps output tokens (where ``extra_body`` may override it)."""
        return ""

    def output_cap(self, request: SampleRequest) -> int:
        """Most output tokens the request allows: the body's cap, ``extra_body`` included."""
        key = self.max_tokens_key
        override = self.config.extra_body.get(key) if key else None
        if isinstance(override, int) and not isinstance(override, bool) and override > 0:
            return override
        return self.max_output_tokens(request.budget)

    # ------------------------------------------------------------ exchanges
    def _post(self, body: dict[str, Any]) -> Coroutine[Any, Any, dict[str, Any]]:
        # the exchange itself, not a coroutine around it: one frame less per request
        return post_json(
            self._transport, self._url, body, headers=self._headers, timeout=None,
            provider=self.kind, secret=self._secret,
        )

    async def _stream(
        self,
        body: dict[str, Any],
        assembler: StreamAssembler,
        listener: Callable[[int, int], None] | None = None,
        watch: TraceWatch | None = None,
    ) -> dict[str, Any]:
        """POST ``body`` (which asks for a stream) and return the assembled reply body.

        A stream that ends, breaks or idles before its end event raises
        ``StreamCutError``; nothing of it is returned. Errors carry the output tokens
        seen so far. When ``watch`` says stop, the connection is closed and
        ``StreamStopped`` carries the partial body (the assembler must then be a
        ``PartialStream``).
        """
        payload = orjson.dumps(body)
        try:
            async with self._transport.stream(
                self._url, headers=self._headers, body=payload, idle_timeout=self.idle_timeout_s
            ) as resp:
                if not 200 <= resp.status < 300:
                    whole = HTTPResponse(resp.status, resp.headers, await resp.read())
                    raise error_for_response(whole, self.kind, self._url)
                if not resp.is_event_stream:  # a server that ignored "stream": plain JSON
                    whole = HTTPResponse(resp.status, resp.headers, await resp.read())
                    return parse_json_body(whole, self.kind)
                events = resp.event_batches(self.max_event_bytes)
                async with contextlib.aclosing(events) as batches:
                    async for batch in batches:
                        for event in batch:
                            assembler.feed(event)
                            if assembler.done:
                                break
                            if watch is not None:
                                verdict = watch(assembler)  # type: ignore[arg-type]
                                if not isinstance(verdict, bool):  # a scorer to wait for
                                    verdict = await verdict
                                if verdict:
                                    raise StreamStopped(assembler.body())
                        if listener is not None:  # once per chunk received is plenty
                            listener(*assembler.tokens())
                        if assembler.done:
                            break
        except APIError as exc:
            exc.output_tokens = max(exc.output_tokens, assembler.tokens()[1])
            raise
        if not assembler.done:
            raise StreamCutError(
                f"{self.kind}: stream from {self._url} ended before its end event",
                output_tokens=assembler.tokens()[1],
            )
        return assembler.body()

    async def aclose(self) -> None:
        """Close the HTTP pool if this provider opened it (a shared one stays open)."""
        if self._owns_transport:
            await self._transport.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.config.name!r}, url={self._url!r})"
