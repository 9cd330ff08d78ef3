"""Anthropic Messages API backend (``POST /v1/messages``).

Numeric budgets use manual extended thinking (``thinking.type = "enabled"`` with
``budget_tokens``); named budgets use adaptive thinking with ``output_config.effort``,
because newer models refuse ``budget_tokens``. Wire shapes follow the ``anthropic``
SDK's ``MessageCreateParams`` (checked in tests); the SDK itself is not used at run
time, so the sampler keeps one pooled aiohttp client and its own retry policy.
"""

from __future__ import annotations

from typing import Any

from ttc.config import Budget
from ttc.errors import ConfigError, FatalAPIError, MalformedResponseError
from ttc.providers.base import (
    Completion,
    HTTPProvider,
    SampleRequest,
    estimate_tokens,
    merge_body,
    optional_field,
    require_field,
)

__all__ = ["ANTHROPIC_EFFORTS", "DEFAULT_BASE_URL", "MIN_BUDGET_TOKENS", "AnthropicProvider"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
#: effort levels ``output_config.effort`` accepts (the SDK's Literal); "none" disables thinking
ANTHROPIC_EFFORTS = ("low", "medium", "high", "xhigh", "max")
#: the API rejects a smaller ``thinking.budget_tokens``
MIN_BUDGET_TOKENS = 1024
#: stop reasons that mean the output was cut off, not finished
_CUT_OFF = ("max_tokens", "model_context_window_exceeded")


class AnthropicProvider(HTTPProvider):
    """One sample = one non-streaming Messages call; errors become ``ttc.errors`` types."""

    kind = "anthropic"
    default_base_url = DEFAULT_BASE_URL
    endpoint = "/v1/messages"

    def auth_headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if key:
            headers["x-api-key"] = key
        return headers

    # ------------------------------------------------------------------ request

    def check_budget(self, budget: Budget) -> None:
        """Refuse, before any request, a budget the Messages API cannot express."""
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
        return merge_body(body, c.extra_body)

    async def complete(self, request: SampleRequest) -> Completion:
        """Send one Messages request and normalise the reply."""
        try:
            self.check_budget(request.budget)
        except ConfigError as exc:
            raise FatalAPIError(f"anthropic: {exc}") from None
        return parse_message(await self._post(self.build_body(request)))


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

