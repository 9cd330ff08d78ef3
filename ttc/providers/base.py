"""The narrow interface every model backend implements.

A provider turns one ``SampleRequest`` into one ``Completion`` or raises a
``ttc.errors.APIError``. It knows its wire format and nothing about retries, rate
limits, deadlines or storage: the sampler owns those, so every backend gets them for
free. In particular a provider sets no time limit of its own: the sampler's
``attempt_deadline(sweep.timeout_s)`` (``ttc.deadline``) around ``complete`` is the
one total deadline, and streams add only ``sweep.idle_timeout_s`` (silence, not length).

The HTTP plumbing the HTTP backends share (``HTTPProvider``, its one exit, streaming)
lives in ``ttc.providers._http``, and the translation of exchanges into results and
errors in ``ttc.providers.responses``; both are re-exported here, where every backend
imports them from.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ttc._secrets import without_secrets
from ttc.config import Budget, ModelConfig
from ttc.problems import Problem
from ttc.providers.responses import (
    MAX_INPUT_TOKENS,
    cap_text,
    check_usage,
    error_for_response,
    optional_field,
    parse_json_body,
    post_json,
    require_field,
    retry_after_seconds,
    scrub_secret,
)

__all__ = [
    "AUTO_STREAM_TOKENS",
    "EFFORT_TOKENS",
    "MAX_INPUT_TOKENS",
    "Completion",
    "HTTPProvider",
    "Provider",
    "SampleRequest",
    "PartialStream",
    "StreamAssembler",
    "StreamStopped",
    "TextPieces",
    "TokenListener",
    "TraceWatch",
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


class PartialStream(Protocol):
    """What a ``TraceWatch`` may read of a stream in flight (the assembler's view)."""

    def tokens(self) -> tuple[int, int]: ...

    def thinking_so_far(self) -> str: ...

    def logprob_items(self) -> list[Any]: ...


class TraceWatch(Protocol):
    """Watches one streamed attempt and says when to stop it (an online trace-level rule).

    Called once per event received with the stream so far; True stops the stream: the
    connection is closed and the provider returns what arrived, marked ``stopped``
    (a stopped trace is paid for and stored, never retried). A watch that must ask
    someone (a prefix scorer) returns an awaitable instead; the stream waits for it.
    """

    def __call__(self, stream: PartialStream) -> bool | Awaitable[bool]: ...


class StreamStopped(Exception):  # noqa: N818 - a signal, not an error
    """Raised by ``HTTPProvider._stream`` when the request's watch stopped the stream;
    ``body`` is what the assembler had (no end event: no usage, no finish reason)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("stopped by the trace watch")
        self.body = body


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
    #: an online trace-level rule watching the stream (set per attempt by the sampler)
    watch: TraceWatch | None = field(default=None, compare=False, repr=False)


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
    #: (tokens x k) negative top-k log-probabilities when asked for (``sweep.logprobs``)
    logprobs: Any = None
    #: a trace watch stopped the stream: partial text and thinking, no answer to grade
    stopped: bool = False


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
    if not extra:
        return base
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_body(out[key], value)
        else:
            out[key] = value
    return out


# the HTTP half builds on the interface above, so it is imported after it; its names stay
# importable from here, where the backends and tests have always found them
from ttc.providers._http import (  # noqa: E402
    AUTO_STREAM_TOKENS,
    HTTPProvider,
    StreamAssembler,
    TextPieces,
    wants_stream,
)
