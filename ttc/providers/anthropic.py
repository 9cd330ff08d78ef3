"""Anthropic Messages API backend (``POST /v1/messages``), whole or streamed.

Numeric budgets use manual extended thinking (``thinking.type = "enabled"`` with
``budget_tokens``); named budgets use adaptive thinking with ``output_config.effort``,
because newer models refuse ``budget_tokens``. Wire shapes follow the ``anthropic``
SDK's ``MessageCreateParams`` (checked in tests); the SDK itself is not used at run
time, so the sampler keeps one pooled aiohttp client and its own retry policy.

Long requests stream (``sweep.stream``): like the SDK, ttc refuses to send a request
that may run past ten minutes without streaming (more than 21,333 output tokens at the
SDK's assumed 128k tokens an hour, or a model's own non-streaming limit).
``MessageStream`` rebuilds the Message from the events exactly as the SDK's
``accumulate_event`` does, and ``parse_message`` reads it as it reads an unstreamed one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ttc.config import Budget
from ttc.errors import ConfigError, FatalAPIError, MalformedResponseError, ServerError
from ttc.providers.base import (
    Completion,
    HTTPProvider,
    SampleRequest,
    TextPieces,
    estimate_tokens,
    merge_body,
    optional_field,
    require_field,
)
from ttc.providers.responses import error_from_payload
from ttc.sse import SSEEvent

if TYPE_CHECKING:
    from ttc.batch.anthropic import AnthropicBatches

__all__ = [
    "ANTHROPIC_EFFORTS",
    "DEFAULT_BASE_URL",
    "MAX_NONSTREAMING_TOKENS",
    "MIN_BUDGET_TOKENS",
    "AnthropicProvider",
    "MessageStream",
    "parse_message",
]

DEFAULT_BASE_URL = "https://api.anthropic.com"
#: effort levels ``output_config.effort`` accepts (the SDK's Literal); "none" disables thinking
ANTHROPIC_EFFORTS = ("low", "medium", "high", "xhigh", "max")
#: the API rejects a smaller ``thinking.budget_tokens``
MIN_BUDGET_TOKENS = 1024
#: stop reasons that mean the output was cut off, not finished
_CUT_OFF = ("max_tokens", "model_context_window_exceeded")
#: the SDK's rule: a request expected to run past 10 minutes at 128k tokens/hour must stream
MAX_NONSTREAMING_TOKENS = 128_000 * 600 // 3600
#: models with a lower non-streaming limit (the SDK's ``MODEL_NONSTREAMING_TOKENS``)
_MODEL_NONSTREAMING_TOKENS = {
    "claude-opus-4-20250514": 8_192,
    "claude-opus-4-0": 8_192,
    "claude-4-opus-20250514": 8_192,
    "anthropic.claude-opus-4-20250514-v1:0": 8_192,
    "claude-opus-4@20250514": 8_192,
    "anthropic.claude-opus-4-1-20250805-v1:0": 8_192,
    "claude-opus-4-1@20250805": 8_192,
}


class AnthropicProvider(HTTPProvider):
    """One sample = one Messages call (streamed when long); errors become ``ttc.errors``."""

    kind = "anthropic"
    default_base_url = DEFAULT_BASE_URL
    endpoint = "/v1/messages"

    def auth_headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if key:
            headers["x-api-key"] = key
        return headers

    # ------------------------------------------------------------------ request

    @property
    def max_tokens_key(self) -> str:
        return "max_tokens"

    def requires_stream(self, budget: Budget) -> bool:
        """The SDK's rule: over ~10 minutes of output (or a model's own limit) must stream."""
        limit = _MODEL_NONSTREAMING_TOKENS.get(self.config.name, MAX_NONSTREAMING_TOKENS)
        return self.max_output_tokens(budget) > limit

    def check_budget(self, budget: Budget) -> None:
        """Refuse, before any request, a budget the Messages API cannot express."""
        super().check_budget(budget)
        if isinstance(budget, int):
            if self.config.answer_tokens < 1:
                raise ConfigError("anthropic needs model.answer_tokens >= 1 (budget < max_tokens)")
            if budget < MIN_BUDGET_TOKENS:
                raise ConfigError(
                    f"anthropic thinking budget must be >= {MIN_BUDGET_TOKENS} tokens, got {budget}"
                )
        elif budget != "none" and budget not in ANTHROPIC_EFFORTS:
            raise ConfigError(
                f"anthropic effort must be one of {', '.join(ANTHROPIC_EFFORTS)} or 'none', "
                f"got {budget!r}"
            )

    def build_body(self, request: SampleRequest) -> dict[str, Any]:
        """The JSON body for one sample (public so tests can check it against the SDK types)."""
        c = self.config
        budget = request.budget
        body: dict[str, Any] = {
            "model": c.name,
            "max_tokens": self.max_output_tokens(budget),
            "messages": [{"role": "user", "content": request.prompt}],
        }
        if request.system:
            body["system"] = request.system
        if isinstance(budget, int):
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        elif budget == "none":
            body["thinking"] = {"type": "disabled"}
        else:
            body["thinking"] = {"type": "adaptive"}
            body["output_config"] = {"effort": budget}
        # Sampling knobs only when the user set them: the API requires temperature 1 (unset)
        # with thinking, and the current SDK no longer lists them at all.
        if c.temperature is not None:
            body["temperature"] = c.temperature
        if c.top_p is not None:
            body["top_p"] = c.top_p
        if self.streams(budget):
            body["stream"] = True
        return merge_body(body, c.extra_body)

    async def _complete(self, request: SampleRequest) -> Completion:
        """Send one Messages request (streamed or not) and normalise the reply."""
        try:
            self.check_budget(request.budget)
        except ConfigError as exc:
            raise FatalAPIError(f"anthropic: {exc}") from None
        body = self.build_body(request)
        if body.get("stream"):
            assembler = MessageStream(self.max_text_bytes)
            return parse_message(await self._stream(body, assembler, request.on_tokens))
        return parse_message(await self._post(body))

    # ------------------------------------------------------------------ batches
    def parse_body(self, data: dict[str, Any]) -> Completion:
        return parse_message(data)

    def batch_api(self) -> AnthropicBatches:
        """Message Batches (``/v1/messages/batches``) at this provider's origin."""
        from ttc.batch.anthropic import AnthropicBatches

        return AnthropicBatches(self.batch_wire())


class MessageStream:
    """Rebuilds a Message from Messages stream events (the SDK's ``accumulate_event``).

    ``message_start`` carries the Message shell and input usage; content blocks open
    with ``content_block_start``, grow by ``text_delta``/``thinking_delta`` (and get
    their ``signature_delta``), and ``message_delta`` brings the stop reason and the
    cumulative usage, whose present fields replace the start's. ``message_stop`` ends
    it; ``ping`` is ignored; ``error`` raises what it reports. Unknown event and delta
    types are skipped, as the SDK skips them.
    """

    __slots__ = ("_blocks", "_message", "_text", "_thinking", "done")

    def __init__(self, max_text_bytes: int = 4 * 1024 * 1024) -> None:
        self._message: dict[str, Any] | None = None
        self._blocks: list[tuple[dict[str, Any], list[str] | None]] = []
        self._text = TextPieces(max_text_bytes)
        self._thinking = TextPieces(max_text_bytes)
        self.done = False

    def tokens(self) -> tuple[int, int]:
        """Estimated (thinking, output) tokens so far, or the reported count if larger."""
        thinking = (self._thinking.chars + 3) // 4
        estimate = thinking + (self._text.chars + 3) // 4
        usage = (self._message or {}).get("usage")
        reported = usage.get("output_tokens") if isinstance(usage, dict) else None
        if isinstance(reported, int) and not isinstance(reported, bool):
            estimate = max(estimate, reported)
        return thinking, estimate

    def feed(self, event: SSEEvent) -> None:
        name = event.event
        if name == "ping":
            return
        if name == "error":
            raise self._error(event.data)
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise _bad(f"stream event {name!r} is not JSON") from None
        if not isinstance(data, dict):
            raise _bad(f"stream event {name!r} is not an object")
        kind = data.get("type", name)
        if kind == "error":
            raise self._error(event.data)
        if self._message is None:
            if kind != "message_start":
                raise _bad(f"stream began with {kind!r}, not message_start")
            message = _field(data, "message", dict)
            self._message = {**message, "content": []}
            return
        if kind == "content_block_delta":
            self._delta(data)
        elif kind == "content_block_start":
            block = dict(_field(data, "content_block", dict))
            total = self._total(block)
            parts: list[str] | None = None if total is None else []
            self._blocks.append((block, parts))
            start = block.get(str(block.get("type")))
            if parts is not None and total is not None and isinstance(start, str) and start:
                self._add(parts, total, start)
        elif kind == "message_delta":
            self._message_delta(data)
        elif kind == "message_stop":
            self.done = True

    def _delta(self, data: dict[str, Any]) -> None:
        index = _field(data, "index", int)
        if not 0 <= index < len(self._blocks):
            raise _bad(f"delta for content block {index} that never started")
        block, parts = self._blocks[index]
        delta = _field(data, "delta", dict)
        kind = delta.get("type")
        block_type = block.get("type")
        if kind == "text_delta" and parts is not None and block_type == "text":
            self._add(parts, self._text, _field(delta, "text", str))
        elif kind == "thinking_delta" and parts is not None and block_type == "thinking":
            self._add(parts, self._thinking, _field(delta, "thinking", str))
        elif kind == "signature_delta" and block_type == "thinking":
            block["signature"] = _field(delta, "signature", str)

    def _total(self, block: dict[str, Any]) -> TextPieces | None:
        """The field budget a block's text counts against (None: a block without text)."""
        kind = block.get("type")
        return self._text if kind == "text" else self._thinking if kind == "thinking" else None

    @staticmethod
    def _add(parts: list[str], total: TextPieces, piece: str) -> None:
        """Keep ``piece`` while the field is within its cap (one cap across its blocks)."""
        if total.chars <= total.limit:
            parts.append(piece)
        total.chars += len(piece)

    def _message_delta(self, data: dict[str, Any]) -> None:
        assert self._message is not None
        delta = _field(data, "delta", dict)
        self._message["stop_reason"] = delta.get("stop_reason")
        self._message["stop_sequence"] = delta.get("stop_sequence")
        usage = data.get("usage")
        if isinstance(usage, dict):
            merged = dict(self._message.get("usage") or {})
            merged["output_tokens"] = usage.get("output_tokens")
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                        "server_tool_use", "output_tokens_details"):
                if usage.get(key) is not None:
                    merged[key] = usage[key]
            self._message["usage"] = merged

    def _error(self, raw: bytes) -> Exception:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = {"error": raw[:2000].decode("utf-8", "replace")}
        error = data.get("error", data) if isinstance(data, dict) else data
        return error_from_payload(error, "anthropic", status=200, default=ServerError,
                                  output_tokens=self.tokens()[1])

    def body(self) -> dict[str, Any]:
        """The Message as the non-streaming endpoint would have returned it."""
        if self._message is None:
            raise _bad("stream ended without message_start")
        content = []
        for block, parts in self._blocks:
            if parts is not None:
                block = {**block, str(block["type"]): "".join(parts)}
            content.append(block)
        return {**self._message, "content": content}


# ---------------------------------------------------------------------- response


def parse_message(data: dict[str, Any]) -> Completion:
    """Normalise a Messages API body; any missing or mistyped field is malformed (retryable)."""
    content = _field(data, "content", list)
    texts: list[str] = []
    thoughts: list[str] = []
    redacted = 0
    thinking_blocks = 0
    for block in content:
        if not isinstance(block, dict):
            raise _bad("content block is not an object")
        kind = _field(block, "type", str)
        if kind == "text":
            texts.append(_field(block, "text", str))
        elif kind == "thinking":
            thinking_blocks += 1
            thoughts.append(_field(block, "thinking", str))
        elif kind == "redacted_thinking":
            redacted += 1
    stop_reason = _field(data, "stop_reason", str)
    usage = _field(data, "usage", dict)
    input_tokens = _field(usage, "input_tokens", int)
    for extra_key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        input_tokens += _optional(usage, extra_key, int) or 0
    output_tokens = _field(usage, "output_tokens", int)
    details = _optional(usage, "output_tokens_details", dict)
    reported = _optional(details, "thinking_tokens", int) if details is not None else None
    text = "".join(texts)
    thinking = "\n\n".join(thoughts) if thinking_blocks else None
    if reported is not None:
        thinking_tokens, estimated = reported, False
    elif thinking:
        thinking_tokens, estimated = min(output_tokens, estimate_tokens(thinking)), True
    elif redacted:
        # only encrypted thinking: what is not the visible answer was thinking
        thinking_tokens, estimated = max(0, output_tokens - estimate_tokens(text)), True
    else:
        thinking_tokens, estimated = 0, False
    extra: dict[str, Any] = {}
    if redacted:
        extra["redacted_thinking_blocks"] = redacted
    return Completion(
        text=text,
        thinking=thinking,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        thinking_tokens=thinking_tokens,
        thinking_estimated=estimated,
        stop_reason=stop_reason,
        censored=stop_reason in _CUT_OFF,
        response_id=_field(data, "id", str),
        extra=extra,
    )


def _bad(message: str) -> MalformedResponseError:
    return MalformedResponseError(f"anthropic: malformed response: {message}")


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    return require_field(data, key, kind, "anthropic")


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    return optional_field(data, key, kind, "anthropic")

