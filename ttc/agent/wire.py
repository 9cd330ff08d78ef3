"""Tool use on the wire: request bodies and reply parsing for Anthropic and OpenAI.

A trajectory's conversation is kept in a small neutral form (``Entry``): user text,
assistant messages exactly as the API returned them, and tool results. Keeping the
assistant message verbatim is what the Anthropic API requires when thinking is on
(thinking blocks, signature included, must come back unmodified) and it makes replay
after a crash exact. Everything else about a body (model, thinking budget or effort,
output cap, sampling knobs, ``extra_body``) comes from the providers' own
``build_body``, so a step is budgeted exactly like a single-turn sample. One action per
step: parallel tool calls are switched off, and if a model sends several anyway, only
the first is executed and the others are answered with an error.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ttc.agent.protocol import ToolCall, ToolSpec
from ttc.errors import MalformedResponseError
from ttc.providers.base import Completion, SampleRequest

__all__ = [
    "Entry",
    "ToolRequest",
    "ToolResult",
    "Turn",
    "anthropic_messages",
    "anthropic_tools",
    "openai_messages",
    "openai_tools",
    "parse_anthropic_turn",
    "parse_openai_turn",
]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The answer to one tool call (``id`` is the call's id)."""

    id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of a trajectory, wire-neutral.

    ``kind`` "user": ``text``; "assistant": ``message`` (the API's own assistant
    message, replayed verbatim); "tool": ``results``.
    """

    kind: Literal["user", "assistant", "tool"]
    text: str = ""
    message: dict[str, Any] = field(default_factory=dict)
    results: tuple[ToolResult, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolRequest(SampleRequest):
    """One agent step to draw: a ``SampleRequest`` (problem, thinking budget, sample, seed,
    system, ``on_tokens``) plus the conversation so far and the tools.

    Being a ``SampleRequest`` is what lets a step pass through the providers' one exit,
    ``HTTPProvider.complete``: the same usage checks, text cap, key scrubbing and live
    token reports as a single-turn sample. ``prompt`` stays empty: the conversation is
    the prompt.
    """

    conversation: tuple[Entry, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    step: int = 0
    #: the step budget the agent was told (0: not told, truncate mode)
    horizon: int = 0


@dataclass(slots=True)
class Turn(Completion):
    """One assistant reply: a ``Completion`` (usage, text, thinking) plus its tool calls and
    the assistant message exactly as the API returned it (what goes back next step)."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    message: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, completion: Completion, tool_calls: Iterable[ToolCall],
           message: dict[str, Any]) -> Turn:
        fields = {f.name: getattr(completion, f.name) for f in dataclasses.fields(Completion)}
        return cls(**fields, tool_calls=list(tool_calls), message=message)


# ---------------------------------------------------------------------- Anthropic


def anthropic_tools(tools: tuple[ToolSpec, ...] | list[ToolSpec]) -> list[dict[str, Any]]:
    """``ToolParam`` objects: name, description, input_schema."""
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in tools]


def _messages(conversation: tuple[Entry, ...],
              results: Callable[[tuple[ToolResult, ...]], list[dict[str, Any]]]
              ) -> list[dict[str, Any]]:
    """User text and verbatim assistant messages; tool results in the format's own shape."""
    out: list[dict[str, Any]] = []
    for entry in conversation:
        if entry.kind == "user":
            out.append({"role": "user", "content": entry.text})
        elif entry.kind == "assistant":
            out.append(entry.message)
        else:
            out += results(entry.results)
    return out


def anthropic_messages(conversation: tuple[Entry, ...]) -> list[dict[str, Any]]:
    """``MessageParam`` list: tool results go back as ``tool_result`` blocks in a user turn."""
    return _messages(conversation, lambda results: [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": r.id, "content": r.content,
         "is_error": r.is_error} for r in results]}])


def parse_anthropic_turn(data: dict[str, Any]) -> Turn:
    """A Messages API reply with its ``tool_use`` blocks; the content is kept verbatim."""
    from ttc.providers.anthropic import parse_message

    completion = parse_message(data)
    calls: list[ToolCall] = []
    for block in data["content"]:
        if block.get("type") != "tool_use":
            continue
        call_id, name, payload = block.get("id"), block.get("name"), block.get("input")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise MalformedResponseError("anthropic: malformed response: tool_use without id/name")
        if not isinstance(payload, dict):
            raise MalformedResponseError("anthropic: malformed response: tool_use input is not "
                                         "an object")
        calls.append(ToolCall(call_id, name, json.dumps(payload, ensure_ascii=False)))
    message = {"role": "assistant", "content": data["content"]}
    return Turn.of(completion, calls, message)


# ---------------------------------------------------------------------- OpenAI


def openai_tools(tools: tuple[ToolSpec, ...] | list[ToolSpec]) -> list[dict[str, Any]]:
    """``ChatCompletionToolParam`` objects (function tools)."""
    return [{"type": "function", "function": {
        "name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools]


def openai_messages(conversation: tuple[Entry, ...], system: str = "") -> list[dict[str, Any]]:
    """Chat messages: assistant ``tool_calls`` answered by ``role: "tool"`` messages."""
    head: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    return head + _messages(conversation, lambda results: [
        {"role": "tool", "tool_call_id": r.id, "content": r.content} for r in results])


def parse_openai_turn(data: dict[str, Any]) -> Turn:
    """A chat completion with its ``tool_calls``; reasoning text is not sent back."""
    from ttc.providers.openai import parse_chat_completion

    completion = parse_chat_completion(data)
    raw = data["choices"][0]["message"].get("tool_calls") or []
    if not isinstance(raw, list):
        raise MalformedResponseError("openai: malformed response: tool_calls is not a list")
    calls: list[ToolCall] = []
    replay: list[dict[str, Any]] = []
    for item in raw:
        fn = item.get("function") if isinstance(item, dict) else None
        call_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(fn, dict) or not isinstance(call_id, str):
            raise MalformedResponseError("openai: malformed response: bad tool call")
        name, arguments = fn.get("name"), fn.get("arguments")
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise MalformedResponseError("openai: malformed response: tool call without "
                                         "name/arguments")
        calls.append(ToolCall(call_id, name, arguments))
        replay.append({"id": call_id, "type": "function",
                       "function": {"name": name, "arguments": arguments}})
    message: dict[str, Any] = {"role": "assistant", "content": completion.text or None}
    if replay:
        message["tool_calls"] = replay
    return Turn.of(completion, calls, message)
