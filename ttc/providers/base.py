"""The narrow interface every model backend implements, and the HTTP plumbing they share.

A provider turns one ``SampleRequest`` into one ``Completion`` or raises a
``ttc.errors.APIError``. It knows its wire format and nothing about retries, rate
limits, deadlines or storage: the sampler owns those, so every backend gets them for
free. In particular a provider sets no time limit of its own: the sampler's
``asyncio.timeout(sweep.timeout_s)`` around ``complete`` is the one total deadline,
and streams add only ``sweep.idle_timeout_s`` (silence, not length).

``HTTPProvider.complete`` is the one exit of every HTTP backend, streamed or not:
usage is checked for impossible values, stored text is capped at
``sweep.max_text_bytes``, and every credential sent (the env key, auth-like header
values) is scrubbed from any error and from the stored output there. Batch
results (``ttc.batch``) leave through ``batch_result``, which applies the same parse
and the same checks to the body a batch returned, so a batch sample is the online one.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from ttc._secrets import without_secrets
from ttc.config import Budget, ModelConfig, SweepConfig
from ttc.errors import APIError, ConfigError, StreamCutError
from ttc.http import HTTPResponse, Transport
from ttc.problems import Problem
from ttc.providers.responses import (
    MAX_INPUT_TOKENS,
    cap_text,
    check_usage,
    credentials,
    error_for_response,
    optional_field,
    parse_json_body,
    post_json,
    require_field,
    retry_after_seconds,
    scrub_completion,
    scrub_secret,
)
from ttc.sse import SSEEvent

if TYPE_CHECKING:
    from ttc.batch.wire import BatchAPI, BatchWire

__all__ = [
    "AUTO_STREAM_TOKENS",
    "EFFORT_TOKENS",
    "MAX_INPUT_TOKENS",
    "Completion",
    "HTTPProvider",
    "Provider",
    "SampleRequest",
    "StreamAssembler",
    "TextPieces",
    "TokenListener",
    "cap_text",
    "check_usage",
    "error_for_response",
    "estimate_tokens",
    "merge_body",
    "optional_field",
    "parse_json_body",
    "post_json",
    "require_field",
    "retry_after_seconds",
    "scrub_secret",
    "wants_stream",
]

#: ``sweep.stream = "auto"`` streams requests that may produce more output tokens than this
AUTO_STREAM_TOKENS = 16384
#: one SSE event may be this many times ``sweep.max_text_bytes`` (a delta, JSON-escaped,
#: plus its envelope) before the stream counts as malformed
MAX_EVENT_FACTOR = 4


class TokenListener(Protocol):
    """Told, as a stream arrives, what one attempt has produced so far (estimates).

    The sampler hands one per attempt to the progress display, so a long thinking
    run shows tokens arriving rather than a frozen line.
    """

    def __call__(self, thinking_tokens: int, output_tokens: int) -> None: ...


@dataclass(frozen=True, slots=True)
class SampleRequest:
    """One sample to draw: the rendered prompt for one problem at one budget."""

    problem: Problem
    prompt: str
    budget: Budget
    sample_index: int
    system: str = ""
    seed: int = 0
    #: for MCQ, ``choice_order[i]`` is the source index of the choice shown at position i
    choice_order: tuple[int, ...] | None = None
    #: told of tokens as a streamed attempt arrives (set per attempt by the sampler)
    on_tokens: TokenListener | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class Completion:
    """What a provider returns for one sample, normalised across wire formats."""

    text: str
    thinking: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    thinking_estimated: bool = False
    stop_reason: str | None = None
    censored: bool = False
    response_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Provider(abc.ABC):
    """A model backend. Subclasses implement ``complete``; ``aclose`` releases resources."""

    #: short name stored with the run ("anthropic", "openai", ...)
    kind: str = ""
    #: requests the backend can serve at once (None: no limit of its own); the sampler
    #: runs no more workers than this, so queueing never eats into ``sweep.timeout_s``
    max_concurrency: int | None = None

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    @abc.abstractmethod
    async def complete(self, request: SampleRequest) -> Completion:
        """Draw one sample; raise an ``APIError`` subclass on failure.

        No time limit here: the caller wraps the call in its deadline. A streaming
        backend tells ``request.on_tokens`` (when set) what has arrived so far.
        """

    def check_budget(self, budget: Budget) -> None:  # noqa: B027 - optional hook
        """Raise ``ConfigError`` for a budget this backend cannot express (before any request)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare resources (start a server, open a pool) before the first request."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` or ``complete`` opened."""

    def cost(self, completion: Completion) -> float:
        """Dollar cost of a completion from the configured per-million-token prices."""
        c = self.config
        return (
            completion.input_tokens * c.price_input_per_mtok
            + completion.output_tokens * c.price_output_per_mtok
        ) / 1e6

    def max_output_tokens(self, budget: Budget) -> int:
        """Output tokens one sample may use at ``budget``: thinking budget plus answer allowance."""
        if isinstance(budget, int):
            return budget + self.config.answer_tokens
        return EFFORT_TOKENS.get(budget, 16384) + self.config.answer_tokens

    def describe(self) -> dict[str, Any]:
        """What identifies this model for the run fingerprint (never the key or the URL)."""
        c = self.config
        return {
            "provider": c.provider,
            "name": c.name,
            "temperature": c.temperature,
            "top_p": c.top_p,
            "extra_body": without_secrets(c.extra_body),  # a pasted key is not an identity
        }


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
    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        return await post_json(
            self._transport, self._url, body, headers=self._headers, timeout=None,
            provider=self.kind, secret=self._secret,
        )

    async def _stream(
        self,
        body: dict[str, Any],
        assembler: StreamAssembler,
        listener: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """POST ``body`` (which asks for a stream) and return the assembled reply body.

        A stream that ends, breaks or idles before its end event raises
        ``StreamCutError``; nothing of it is returned. Errors carry the output tokens
        seen so far.
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


#: rough output size of named effort levels, for projections and token-rate limits
EFFORT_TOKENS = {
    "none": 0,
    "minimal": 1024,
    "low": 4096,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 65536,
}


def estimate_tokens(text: str | None) -> int:
    """Approximate token count (about four characters a token) where a server reports none."""
    if not text:
        return 0
    return max(1, round(len(text) / 4))



def merge_body(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``model.extra_body`` wins, merging into nested objects (e.g. ``thinking.display``)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_body(out[key], value)
        else:
            out[key] = value
    return out


