"""From HTTP exchanges to ttc results and errors: status mapping, JSON and usage checks,
the stored-text cap, key scrubbing.

Every error that leaves a provider or a scorer passes through ``scrub_secret``, which
blanks the API key (and any 8+ character piece of it) out of the message *before*
cutting the message to length. The order matters: cutting first can split the key,
leaving most of it where a plain ``replace`` no longer finds it.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from ttc.errors import (
    APIError,
    FatalAPIError,
    MalformedResponseError,
    OverloadedError,
    RateLimitError,
    RedirectRefusedError,
    RetryableError,
    ServerError,
)
from ttc.http import HTTPResponse, Transport

if TYPE_CHECKING:
    from ttc.providers.base import Completion

__all__ = [
    "MAX_ERROR_CHARS",
    "MAX_INPUT_TOKENS",
    "cap_text",
    "check_usage",
    "error_for_response",
    "error_from_payload",
    "optional_field",
    "parse_json_body",
    "post_json",
    "require_field",
    "Secrets",
    "credentials",
    "retry_after_seconds",
    "scrub_completion",
    "scrub_secret",
    "scrub_text",
    "scrub_value",
]

#: stored error messages are cut to this length, after the key is blanked out
MAX_ERROR_CHARS = 500
#: how much of a server's text an error keeps before scrubbing (bounds the work on a
#: hostile multi-megabyte error body; the scrub also catches a key cut at this edge)
_RAW_CHARS = 16384
#: the shortest piece of a key that counts as leaking it
_MIN_PIECE = 8
#: no model reads this many input tokens in one request; a larger count is a broken server
MAX_INPUT_TOKENS = 100_000_000


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
    """Decode a 2xx body; anything but a JSON object is a retryable malformed response.

    A 2xx whose body is an error object (some gateways and local servers do this) keeps
    the server's own message in the raised error.
    """
    try:
        data = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        snippet = response.body[:_RAW_CHARS].decode("utf-8", "replace")
        raise MalformedResponseError(
            f"{provider}: response is not JSON: {snippet!r}", status=response.status
        ) from None
    if not isinstance(data, dict):
        raise MalformedResponseError(f"{provider}: response is not a JSON object")
    if data.get("error") and (data.get("type") == "error" or not _has_result(data)):
        raise error_from_payload(data["error"], provider, status=response.status)
    return data


def _has_result(data: dict[str, Any]) -> bool:
    return any(key in data for key in ("content", "choices"))


def error_for_response(response: HTTPResponse, provider: str, url: str = "") -> APIError:
    """Translate a non-2xx response into the right ``APIError`` with the server's message."""
    status = response.status
    if 300 <= status < 400:
        return _redirect(response, provider, url)
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


def _redirect(response: HTTPResponse, provider: str, url: str) -> RedirectRefusedError:
    location = response.headers.get("location", "")
    target = urlsplit(location).netloc or (location and "the same host") or "nowhere named"
    origin = urlsplit(url).netloc or "the configured base_url"
    return RedirectRefusedError(
        f"{provider} HTTP {response.status}: redirect to {target} refused; ttc never follows "
        f"redirects, so the API key goes only to {origin} (set base_url to the final address)",
        status=response.status,
    )


def error_from_payload(
    error: Any,
    provider: str,
    *,
    status: int | None = None,
    default: type[APIError] = MalformedResponseError,
    output_tokens: int = 0,
) -> APIError:
    """The error a body or stream event reports (``{"type": ..., "message": ...}``).

    The server's type decides retryability (``overloaded_error`` and rate limits retry,
    ``invalid_request_error`` does not); unknown types get ``default``.
    """
    if isinstance(error, dict):
        kind = str(error.get("type") or error.get("code") or "")
        message = str(error.get("message") or kind or "error")
    else:
        kind, message = "", str(error)
    message = message[:_RAW_CHARS]
    text = f"{provider}: {kind}: {message}" if kind and kind not in message else (
        f"{provider}: {message}")
    lowered = kind.lower()
    cls: type[APIError] = default
    if "rate_limit" in lowered:
        cls = RateLimitError
    elif "overloaded" in lowered:
        cls = OverloadedError
    elif lowered in ("api_error", "server_error", "internal_error", "internal_server_error"):
        cls = ServerError
    elif lowered in ("invalid_request_error", "authentication_error", "permission_error",
                     "not_found_error", "request_too_large", "billing_error", "invalid_api_key"):
        cls = FatalAPIError
    return cls(text, status=status, output_tokens=output_tokens)


async def post_json(
    transport: Transport,
    url: str,
    body: dict[str, Any],
    *,
    headers: Mapping[str, str],
    timeout: float | None,
    provider: str,
    secret: Secrets = "",
) -> dict[str, Any]:
    """POST a JSON body; return the decoded 2xx object or raise the right ``APIError``.

    ``timeout`` is the caller's one deadline for this exchange (None: the caller wraps
    the call in its own). The key is scrubbed from any error before it leaves.
    """
    try:
        response = await transport.post(
            url, headers=headers, body=orjson.dumps(body), timeout=timeout
        )
        if not 200 <= response.status < 300:
            raise error_for_response(response, provider, url)
        return parse_json_body(response, provider)
    except APIError as exc:
        scrub_secret(exc, secret)
        raise


def require_field(data: dict[str, Any], key: str, kind: type, provider: str) -> Any:
    """``data[key]`` checked against ``kind``; absent or mistyped is a malformed response."""
    value = data.get(key)
    if type(value) is kind:  # decoded JSON has exact types: the usual case, checked first
        return value
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
    value = data.get(key)
    if value is None or type(value) is kind:
        return value
    return require_field(data, key, kind, provider)


#: one credential, or every credential a client sends (the env key, auth header values)
Secrets = str | Sequence[str]
#: an ``Authorization``-style value is "<scheme> <token>": the token is the secret
_AUTH_SCHEME = re.compile(r"(?i)(bearer|basic|token|apikey|api-key|key|digest)\s+(\S.*)")


def credentials(key: str | None, headers: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every credential a client sends: the env key and each auth-like header's value.

    ``model.headers = {"x-api-key" = ...}`` is the only way to send ``x-api-key`` or
    ``api-key`` to an OpenAI-compatible gateway, so such a value is as secret as the
    env key and is scrubbed wherever the env key is. A header counts when its name
    says it holds a credential (``ttc._secrets.is_secret_name``); of a ``Bearer``-style
    value the token is kept, so the scheme word alone is never blanked.
    """
    from ttc._secrets import is_secret_name

    found: list[str] = [key] if key else []
    for name, value in (headers or {}).items():
        if not value or not is_secret_name(name):
            continue
        match = _AUTH_SCHEME.fullmatch(value.strip())
        found.append(match.group(2) if match else value.strip())
    return tuple(dict.fromkeys(v for v in found if v))


def _as_tuple(secret: Secrets) -> tuple[str, ...]:
    return (secret,) if isinstance(secret, str) else tuple(secret)


def scrub_secret(exc: APIError, secret: Secrets) -> None:
    """Blank the key(s), and any piece of one of 8+ characters, out of an error; then
    cut it to ``MAX_ERROR_CHARS``. In place; safe to apply twice."""
    exc.args = tuple(
        _cut(scrub_text(arg, secret)) if isinstance(arg, str) else arg for arg in exc.args
    )


def scrub_value(value: Any, secret: Secrets) -> Any:
    """``value`` with ``scrub_text`` applied to every string in it, at any depth of dicts,
    lists and tuples (other objects are returned as they are)."""
    if isinstance(value, str):
        return scrub_text(value, secret)
    if isinstance(value, dict):
        return {k: scrub_value(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, secret) for v in value]
    if type(value) is tuple:
        return tuple(scrub_value(v, secret) for v in value)
    return value


def scrub_completion(completion: Completion, secret: Secrets) -> Completion:
    """Blank the credential(s) out of everything a completion stores, in place.

    A gateway that echoes the key inside a successful answer (a debug banner, a
    templated greeting) would otherwise have it stored with the text, graded into the
    answer and exported. Every field that holds text passes through ``scrub_value``:
    text, thinking, ``extra`` and any subclass's fields (an agent step's verbatim
    message). No-op when there is no credential (checked first: every sample passes here).
    """
    if not secret:
        return completion
    secrets = tuple(s for s in _as_tuple(secret) if s)
    if not secrets:
        return completion
    for f in dataclasses.fields(completion):
        value = getattr(completion, f.name)
        if isinstance(value, (str, dict, list, tuple)):
            setattr(completion, f.name, scrub_value(value, secrets))
    return completion


def scrub_text(text: str, secret: Secrets) -> str:
    """``text`` with every run of 8+ characters that also occurs in a secret replaced
    by ``***`` (the whole key, a truncated prefix, a suffix a server kept)."""
    for one in _as_tuple(secret):
        text = _scrub_one(text, one)
    return text


def _scrub_one(text: str, secret: str) -> str:
    if not secret or not text:
        return text
    if len(secret) < _MIN_PIECE:
        return text.replace(secret, "***")
    spans: list[tuple[int, int]] = []
    pieces = {secret[i : i + _MIN_PIECE] for i in range(len(secret) - _MIN_PIECE + 1)}
    for piece in pieces:
        start = text.find(piece)
        while start >= 0:
            spans.append((start, start + _MIN_PIECE))
            start = text.find(piece, start + 1)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    pos = 0
    cur_start, cur_end = spans[0]
    for start, end in spans[1:]:
        if start <= cur_end:
            cur_end = max(cur_end, end)
            continue
        out += (text[pos:cur_start], "***")
        pos, cur_start, cur_end = cur_end, start, end
    out += (text[pos:cur_start], "***", text[cur_end:])
    return "".join(out)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _server_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:_RAW_CHARS].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or "")[:_RAW_CHARS]
        if isinstance(err, str):
            return err[:_RAW_CHARS]
    return ""


def check_usage(completion: Completion, cap: int, provider: str) -> None:
    """Refuse usage no real response can have; a server reporting it is malformed.

    Negative or non-integer counts, more output tokens than the request's cap allows
    (10% + 64 tokens of slack for servers that count an end token), more thinking than
    output, or an absurd input count: retried as ``MalformedResponseError`` and never
    stored, because the spend and every token axis would inherit them.
    """
    for name in ("input_tokens", "output_tokens", "thinking_tokens"):
        value = getattr(completion, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MalformedResponseError(f"{provider}: impossible usage: {name} = {value!r}")
    if completion.input_tokens > MAX_INPUT_TOKENS:
        raise MalformedResponseError(
            f"{provider}: impossible usage: {completion.input_tokens} input tokens"
        )
    if completion.extra.get("usage_estimated"):
        return  # our own estimate, not the server's claim
    limit = cap + max(64, cap // 10)
    if completion.output_tokens > limit:
        raise MalformedResponseError(
            f"{provider}: impossible usage: {completion.output_tokens} output tokens where "
            f"the request allowed {cap}"
        )
    if not completion.thinking_estimated and completion.thinking_tokens > completion.output_tokens:
        raise MalformedResponseError(
            f"{provider}: impossible usage: {completion.thinking_tokens} thinking tokens "
            f"of {completion.output_tokens} output tokens"
        )


def cap_text(completion: Completion, limit: int) -> Completion:
    """Cut ``text`` and ``thinking`` to ``limit`` UTF-8 bytes each, in place, and list the
    fields cut in ``extra["truncated"]`` (a whole character is kept or dropped)."""
    cut: list[str] = []
    text = _capped(completion.text, limit)
    if text is not None:
        completion.text = text
        cut.append("text")
    if completion.thinking is not None:
        thinking = _capped(completion.thinking, limit)
        if thinking is not None:
            completion.thinking = thinking
            cut.append("thinking")
    if cut:
        completion.extra["truncated"] = cut
    return completion


def _capped(text: str, limit: int) -> str | None:
    if len(text) * 4 <= limit:  # no UTF-8 character is longer than 4 bytes
        return None
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return None
    return raw[:limit].decode("utf-8", "ignore")
