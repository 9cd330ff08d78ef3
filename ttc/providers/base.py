"""The narrow interface every model backend implements, and the shared HTTP error mapping.

A provider turns one ``SampleRequest`` into one ``Completion`` or raises a
``ttc.errors.APIError``. It knows its wire format and nothing about retries, rate
limits or storage: the sampler owns those, so every backend gets them for free.
"""

from __future__ import annotations

import abc
import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ttc.config import Budget, ModelConfig
from ttc.errors import (
    APIError,
    FatalAPIError,
    MalformedResponseError,
    OverloadedError,
    RateLimitError,
    RetryableError,
    ServerError,
)
from ttc.http import HTTPResponse, Transport
from ttc.problems import Problem

__all__ = [
    "EFFORT_TOKENS",
    "Completion",
    "HTTPProvider",
    "Provider",
    "SampleRequest",
    "error_for_response",
    "estimate_tokens",
    "merge_body",
    "optional_field",
    "parse_json_body",
    "post_json",
    "require_field",
    "retry_after_seconds",
    "scrub_secret",
]


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
        """Draw one sample; raise an ``APIError`` subclass on failure."""

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
            "extra_body": c.extra_body,
        }


class HTTPProvider(Provider):
    """A backend that POSTs JSON to one endpoint: transport, key, headers and timeout.

    Subclasses name ``default_base_url`` and ``endpoint``, may override
    ``auth_headers``, and call ``self._post(body)``; the key is read once here (a missing
    key fails at construction, before any request) and blanked out of every error.
    """

    default_base_url: str = ""
    endpoint: str = ""

    def __init__(
        self,
        config: ModelConfig,
        *,
        transport: Transport | None = None,
        timeout_s: float = 600.0,
        max_connections: int = 0,
    ) -> None:
        super().__init__(config)
        from ttc.http import AiohttpTransport

        self.timeout_s = timeout_s
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(
            max_connections=max_connections
        )
        base = (config.base_url or self.default_base_url).rstrip("/")
        self._url = base + self.endpoint
        key = config.api_key()
        self._secret = key or ""
        self._headers = {
            "content-type": "application/json", **self.auth_headers(key), **config.headers
        }

    def auth_headers(self, key: str | None) -> dict[str, str]:
        """Headers that carry the key (a bearer token unless a subclass says otherwise)."""
        return {"authorization": f"Bearer {key}"} if key else {}

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        return await post_json(
            self._transport, self._url, body, headers=self._headers, timeout=self.timeout_s,
            provider=self.kind, secret=self._secret,
        )

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


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's wait hint: ``retry-after-ms``, then ``retry-after`` (seconds or a date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - time.time())
    return None


def parse_json_body(response: HTTPResponse, provider: str) -> dict[str, Any]:
    """Decode a 2xx body; anything but a JSON object is a retryable malformed response."""
    try:
        data = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        snippet = response.body[:120].decode("utf-8", "replace")
        raise MalformedResponseError(
            f"{provider}: response is not JSON: {snippet!r}", status=response.status
        ) from None
    if not isinstance(data, dict):
        raise MalformedResponseError(f"{provider}: response is not a JSON object")
    return data


def error_for_response(response: HTTPResponse, provider: str) -> Exception:
    """Translate a non-2xx response into the right ``APIError`` with the server's message."""
    status = response.status
    message = _server_message(response.body)
    text = f"{provider} HTTP {status}: {message}" if message else f"{provider} HTTP {status}"
    hint = retry_after_seconds(response.headers)
    should = response.headers.get("x-should-retry")
    if should == "false":
        return FatalAPIError(text, status=status)
    if status == 429:
        return RateLimitError(text, status=status, retry_after=hint)
    if status in (503, 529):
        return OverloadedError(text, status=status, retry_after=hint)
    if status in (408, 409) or status >= 500:
        return ServerError(text, status=status, retry_after=hint)
    if should == "true":
        return RetryableError(text, status=status, retry_after=hint)
    return FatalAPIError(text, status=status)


async def post_json(
    transport: Transport,
    url: str,
    body: dict[str, Any],
    *,
    headers: Mapping[str, str],
    timeout: float,
    provider: str,
    secret: str = "",
) -> dict[str, Any]:
    """POST a JSON body; return the decoded 2xx object or raise the right ``APIError``.

    The one place where an HTTP exchange becomes ttc's result or ttc's error, with the
    API key blanked out of any message a server echoes back.
    """
    try:
        response = await transport.post(
            url, headers=headers, body=orjson.dumps(body), timeout=timeout
        )
        if not 200 <= response.status < 300:
            raise error_for_response(response, provider)
        return parse_json_body(response, provider)
    except APIError as exc:
        scrub_secret(exc, secret)
        raise


def require_field(data: dict[str, Any], key: str, kind: type, provider: str) -> Any:
    """``data[key]`` checked against ``kind``; absent or mistyped is a malformed response."""
    value = data.get(key)
    if value is None:
        raise MalformedResponseError(f"{provider}: malformed response: missing field {key!r}")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedResponseError(
            f"{provider}: malformed response: field {key!r} is {type(value).__name__}, "
            f"expected {kind.__name__}"
        )
    return value


def optional_field(data: dict[str, Any], key: str, kind: type, provider: str) -> Any:
    """Like ``require_field`` but None when absent or null."""
    return None if data.get(key) is None else require_field(data, key, kind, provider)


def merge_body(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``model.extra_body`` wins, merging into nested objects (e.g. ``thinking.display``)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_body(out[key], value)
        else:
            out[key] = value
    return out


def scrub_secret(exc: APIError, secret: str) -> None:
    """Blank the API key out of an error's message, in place (servers may echo it)."""
    if secret and any(secret in str(arg) for arg in exc.args):
        exc.args = tuple(str(arg).replace(secret, "***") for arg in exc.args)


def _server_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or "")[:500]
        if isinstance(err, str):
            return err[:500]
    return ""
