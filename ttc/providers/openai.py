"""OpenAI-compatible Chat Completions backend (OpenAI, vLLM, SGLang, llama.cpp).

Servers disagree on how a thinking budget is spelled, so the field names are config:
a numeric budget goes in ``model.budget_field`` (vLLM's ``thinking_token_budget`` by
default; "" sends none), a named one in ``model.effort_field`` (``reasoning_effort``),
and the output cap in ``model.max_tokens_field``. Reasoning text is read from
``reasoning_content`` or ``reasoning``, or split off ``<think>...</think>`` when a server
runs without a reasoning parser; where no reasoning count is reported, it is estimated
and marked so.
"""

from __future__ import annotations

from typing import Any

from ttc.errors import MalformedResponseError
from ttc.providers.base import (
    Completion,
    HTTPProvider,
    SampleRequest,
    estimate_tokens,
    merge_body,
    optional_field,
    require_field,
)

__all__ = ["DEFAULT_BASE_URL", "OpenAIProvider", "parse_chat_completion", "split_think_tags"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(HTTPProvider):
    """One sample = one non-streaming ``/chat/completions`` call."""

    kind = "openai"
    default_base_url = DEFAULT_BASE_URL
    endpoint = "/chat/completions"

    def build_body(self, request: SampleRequest) -> dict[str, Any]:
        """The JSON body for one sample (public so tests can check it against the SDK types)."""
        c = self.config
        budget = request.budget
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.prompt})
        body: dict[str, Any] = {"model": c.name, "messages": messages}
        body[c.max_tokens_field] = self.max_output_tokens(budget)
        if isinstance(budget, int):
            if c.budget_field:
                body[c.budget_field] = budget
        elif c.effort_field:
            body[c.effort_field] = budget
        if c.temperature is not None:
            body["temperature"] = c.temperature
        if c.top_p is not None:
            body["top_p"] = c.top_p
        if request.seed:  # 0 means unset: a fixed seed would make every sample identical
            body["seed"] = request.seed
        return merge_body(body, c.extra_body)

    async def complete(self, request: SampleRequest) -> Completion:
        """Send one chat completion request and normalise the reply."""
        return parse_chat_completion(await self._post(self.build_body(request)))


def parse_chat_completion(data: dict[str, Any]) -> Completion:
    """Normalise a chat completion body; missing or mistyped fields are malformed (retryable)."""
    choices = _field(data, "choices", list)
    if not choices or not isinstance(choices[0], dict):
        raise _bad("'choices' is empty or not a list of objects")
    choice = choices[0]
    message = _field(choice, "message", dict)
    finish_reason = _field(choice, "finish_reason", str)
    content = _optional(message, "content", str) or ""
    reasoning = _optional(message, "reasoning_content", str)
    if reasoning is None:
        reasoning = _optional(message, "reasoning", str)
    if reasoning is None:
        reasoning, content = split_think_tags(content)
    usage = _optional(data, "usage", dict)
    extra: dict[str, Any] = {}
    if usage is not None:
        input_tokens = _field(usage, "prompt_tokens", int)
        output_tokens = _field(usage, "completion_tokens", int)
        details = _optional(usage, "completion_tokens_details", dict)
        reported = _optional(details, "reasoning_tokens", int) if details is not None else None
    else:  # usage is optional in the spec; some servers omit it
        extra["usage_estimated"] = True
        input_tokens = 0
        output_tokens = estimate_tokens(content) + estimate_tokens(reasoning)
        reported = None
    if reported:
        thinking_tokens, estimated = reported, False
    elif reasoning:
        thinking_tokens, estimated = estimate_tokens(reasoning), True
        if usage is not None:
            thinking_tokens = min(thinking_tokens, output_tokens)
    else:
        thinking_tokens, estimated = 0, False
    return Completion(
        text=content,
        thinking=reasoning or None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        thinking_tokens=thinking_tokens,
        thinking_estimated=estimated,
        stop_reason=finish_reason,
        censored=finish_reason == "length",
        response_id=_field(data, "id", str),
        extra=extra,
    )


def split_think_tags(content: str) -> tuple[str | None, str]:
    """``(thinking, answer)`` from raw ``<think>...</think>`` output; (None, content) if untagged.

    Handles templates that open ``<think>`` in the prompt (only ``</think>`` appears) and
    outputs cut off mid-thought (``<think>`` with no close: all of it is thinking).
    """
    stripped = content.lstrip()
    opened = stripped.startswith("<think>")
    close = content.find("</think>")
    if close < 0:
        if opened:
            return stripped[len("<think>") :].strip(), ""
        return None, content
    head = content[:close].lstrip()
    if head.startswith("<think>"):
        head = head[len("<think>") :]
    return head.strip(), content[close + len("</think>") :].lstrip()


def _bad(message: str) -> MalformedResponseError:
    return MalformedResponseError(f"openai: malformed response: {message}")


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    return require_field(data, key, kind, "openai")


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    return optional_field(data, key, kind, "openai")

