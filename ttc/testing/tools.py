"""The fake server's tool-using model, and the tool-use rules the real APIs enforce.

A request with ``tools`` is a tool-use request. Before it is answered its conversation
is checked the way the real APIs check it, with their error messages:

* Anthropic: every ``thinking`` block must come back unmodified (its signature is an
  HMAC of the text, so any edit fails); an assistant message holding thinking must
  start with it; with thinking on, the assistant message before the last tool results
  must start with a thinking block; every ``tool_use`` must be answered by a
  ``tool_result`` in the next message, and every ``tool_result`` must answer one.
* OpenAI: an assistant message with ``tool_calls`` must be followed by ``role: "tool"``
  messages answering each ``tool_call_id``, and a tool message must answer one.

A ``ToolResponder`` maps the conversation (reduced to a ``ToolQuery``) to a
``ToolReply``: thinking, text and tool calls. ``render_tool_body`` writes it as each
format's non-streaming body; ``ttc.testing.sse`` cuts the same body into the stream
(``input_json_delta`` / ``delta.tool_calls`` fragments), so streamed and whole replies
carry identical content. Tool call ids hash the conversation, so one conversation gets
the same ids whether streamed, whole or retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ttc.testing.responders import (
    _ARITH,
    Api,
    Query,
    _head,
    _words,
    anthropic_message,
    chat_completion,
    count_words,
)

__all__ = [
    "ScriptedToolModel",
    "ToolQuery",
    "ToolReply",
    "ToolRequestError",
    "ToolResponder",
    "check_tool_request",
    "render_tool_body",
    "sign_thinking",
    "tool_query",
]

_SECRET = b"ttc-fake-server-thinking-signatures"
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


class ToolRequestError(ValueError):
    """A tool-use request the real API refuses (answered with 400 invalid_request_error)."""


@dataclass(frozen=True, slots=True)
class ToolQuery:
    """What a tool responder sees of a request."""

    api: Api
    #: the first user message's text (the task)
    question: str
    system: str
    #: names of the tools offered
    tools: tuple[str, ...]
    #: assistant turns so far
    turns: int
    #: contents of the tool results so far that were not errors, in order
    results: tuple[str, ...]
    #: thinking tokens allowed (0: thinking off; None: only max_tokens limits it)
    budget: int | None
    max_tokens: int | None
    seed: int
    number: int


@dataclass(frozen=True, slots=True)
class ToolReply:
    """What the model does: think, say ``text``, call ``calls`` (name, arguments)."""

    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    text: str = ""
    thinking: str = ""


ToolResponder = Callable[[ToolQuery], ToolReply]


@dataclass(frozen=True, slots=True)
class ScriptedToolModel:
    """Solves "a op b" with ``calcs`` calls of ``calculate``, then ``submit_answer``s the
    last result (the calculator environment's tools); with other tools, calls the first.

    ``parallel`` adds a second call per turn (a model that ignores "one call per step");
    ``silent_first`` answers the first turn with text only (no tool call).
    """

    calcs: int = 2
    parallel: bool = False
    silent_first: bool = False

    def __call__(self, q: ToolQuery) -> ToolReply:
        need = 12 + zlib.crc32(f"{q.question}|{q.turns}".encode()) % 40
        words = need if q.budget is None else min(need, q.budget)
        thinking = _words(f"Step {q.turns + 1}: which tool helps now?", words)
        if self.silent_first and q.turns == 0:
            return ToolReply(text="Let me think about it first.", thinking=thinking)
        if not {"calculate", "submit_answer"} <= set(q.tools):
            return ToolReply(calls=((q.tools[0], {}),) if q.tools else (), thinking=thinking)
        match = _ARITH.search(q.question)
        a, op, b = match.groups() if match else ("0", "+", "0")
        op = "*" if op in "x×" else op
        if len(q.results) < self.calcs:
            call = ("calculate", {"expression": f"{a} {op} {b}"})
        else:  # the last result, or (with no calculation asked for) the answer in its head
            x, y = int(a), int(b)
            head = x + y if op == "+" else x - y if op == "-" else x * y
            call = ("submit_answer", {"answer": q.results[-1] if q.results else str(head)})
        calls = (call, ("calculate", {"expression": "1 + 1"})) if self.parallel else (call,)
        return ToolReply(calls=calls, text="Using a tool.", thinking=thinking)


def sign_thinking(thinking: str) -> str:
    """The signature the fake server gives a thinking block (any edit invalidates it)."""
    return hmac.new(_SECRET, thinking.encode("utf-8"), hashlib.sha256).hexdigest()


# ------------------------------------------------------------------ the rules


def check_tool_request(api: Api, body: dict[str, Any]) -> None:
    """Raise ``ToolRequestError`` with the real API's message for a refused conversation."""
    if api == "anthropic":
        _check_anthropic(body)
    else:
        _check_openai(body["messages"])


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _check_anthropic(body: dict[str, Any]) -> None:
    messages = body["messages"]
    thinking_on = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    pending: list[str] = []
    last_assistant = -1
    for i, msg in enumerate(messages):
        blocks = _blocks(msg["content"])
        if msg["role"] == "assistant":
            if pending:
                _unanswered_anthropic(i, pending)
            last_assistant = i
            kinds = [b.get("type") for b in blocks]
            for j, block in enumerate(blocks):
                if block.get("type") == "thinking" and block.get("signature") != sign_thinking(
                        str(block.get("thinking"))):
                    raise ToolRequestError(f"messages.{i}.content.{j}: Invalid `signature` in "
                                           f"`thinking` block")
            has_thinking = any(k in ("thinking", "redacted_thinking") for k in kinds)
            if has_thinking and kinds[0] not in ("thinking", "redacted_thinking"):
                raise ToolRequestError(
                    f"messages.{i}.content.0: If an assistant message contains any thinking "
                    f"blocks, the first block must be thinking or redacted_thinking. Found "
                    f"{kinds[0]}.")
            pending = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
            continue
        answered = [(j, str(b.get("tool_use_id"))) for j, b in enumerate(blocks)
                    if b.get("type") == "tool_result"]
        for j, call_id in answered:
            if call_id not in pending:
                raise ToolRequestError(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {call_id}. Each `tool_result` block must have a "
                    f"corresponding `tool_use` block in the previous message.")
        missing = [p for p in pending if p not in {c for _, c in answered}]
        if missing:
            _unanswered_anthropic(i, missing)
        pending = []
    final_results = messages and messages[-1]["role"] == "user" and any(
        b.get("type") == "tool_result" for b in _blocks(messages[-1]["content"]))
    if thinking_on and final_results and last_assistant >= 0:
        first = (_blocks(messages[last_assistant]["content"]) or [{"type": "text"}])[0]
        if first.get("type") not in ("thinking", "redacted_thinking"):
            raise ToolRequestError(
                f"messages.{last_assistant}.content.0.type: Expected `thinking` or "
                f"`redacted_thinking`, but found `{first.get('type')}`. When `thinking` is "
                f"enabled, a final `assistant` message must start with a thinking block "
                f"(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
                f"recommend you include thinking blocks from previous turns. To avoid this "
                f"requirement, disable `thinking`. Please consult our documentation at {_DOCS}")


def _unanswered_anthropic(i: int, ids: list[str]) -> None:
    raise ToolRequestError(
        f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
        f"after: {', '.join(ids)}. Each `tool_use` block must have a corresponding "
        f"`tool_result` block in the next message.")


def _check_openai(messages: list[dict[str, Any]]) -> None:
    pending: list[str] = []
    for msg in messages:
        role = msg["role"]
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if call_id not in pending:
                raise ToolRequestError("Invalid parameter: messages with role 'tool' must be a "
                                       "response to a preceeding message with 'tool_calls'.")
            pending.remove(call_id)
            continue
        if pending:
            _unanswered_openai(pending)
        if role == "assistant":
            pending = [str(c.get("id")) for c in msg.get("tool_calls") or []]
    if pending:
        _unanswered_openai(pending)


def _unanswered_openai(ids: list[str]) -> None:
    raise ToolRequestError(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        f"{', '.join(ids)}")


# ------------------------------------------------------------------ query and body


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text")


def tool_query(api: Api, body: dict[str, Any], base: Query) -> ToolQuery:
    """The conversation reduced to what the responder needs (``base`` from the server)."""
    messages = body["messages"]
    question = next((_text(m["content"]) for m in messages if m["role"] == "user"), "")
    turns = sum(m["role"] == "assistant" for m in messages)
    results: list[str] = []
    if api == "anthropic":
        names = tuple(str(t["name"]) for t in body["tools"])
        for msg in messages:
            for block in _blocks(msg["content"]):
                if block.get("type") == "tool_result" and not block.get("is_error"):
                    content = block.get("content", "")
                    results.append(content if isinstance(content, str) else _text(content))
    else:
        names = tuple(str(t["function"]["name"]) for t in body["tools"])
        results = [_text(m["content"]) for m in messages
                   if m["role"] == "tool" and not _text(m["content"]).startswith("Error")]
    return ToolQuery(api, question, base.system, names, turns, tuple(results), base.budget,
                     base.max_tokens, base.seed, base.number)


def render_tool_body(
    api: Api,
    body: dict[str, Any],
    q: ToolQuery,
    reply: ToolReply,
    *,
    report_thinking_tokens: bool = True,
    reasoning_field: str = "reasoning_content",
) -> dict[str, Any]:
    """The non-streaming reply body; past ``max_tokens`` the calls are dropped (cut off)."""
    thinking = reply.thinking if q.budget != 0 else ""
    text, calls = reply.text, list(reply.calls)
    n_think, n_text = count_words(thinking), count_words(text)
    n_calls = sum(count_words(json.dumps(args)) + 1 for _, args in calls)
    cut = q.max_tokens is not None and n_think + n_text + n_calls > q.max_tokens
    if cut and q.max_tokens is not None:
        thinking = _head(thinking, min(n_think, q.max_tokens))
        text = _head(text, max(0, q.max_tokens - count_words(thinking)))
        calls, n_calls = [], 0
        n_think, n_text = count_words(thinking), count_words(text)
    output = n_think + n_text + n_calls
    key = zlib.crc32(orjson.dumps(body["messages"]))
    input_tokens = count_words(q.system) + count_words(orjson.dumps(body["messages"]).decode())
    model = str(body.get("model", "fake-model"))
    if api == "anthropic":
        content: list[dict[str, Any]] = []
        if thinking:
            content.append({"type": "thinking", "thinking": thinking,
                            "signature": sign_thinking(thinking)})
        if text or not (content or calls):
            content.append({"type": "text", "text": text})  # as the docs show it
        content += [{"type": "tool_use", "id": f"toolu_{key:08x}{k}", "name": name,
                     "input": args} for k, (name, args) in enumerate(calls)]
        stop = "max_tokens" if cut else "tool_use" if calls else "end_turn"
        return anthropic_message(q.number, model, content, stop, input_tokens, output, n_think,
                                 report_thinking_tokens=report_thinking_tokens)
    message: dict[str, Any] = {"role": "assistant", "content": text or None,
                               reasoning_field: thinking or None}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{key:08x}{k}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for k, (name, args) in enumerate(calls)]
    finish = "length" if cut else "tool_calls" if calls else "stop"
    return chat_completion(q.number, model, message, finish, input_tokens, output, n_think,
                           report_thinking_tokens=report_thinking_tokens)
