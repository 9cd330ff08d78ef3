"""Tool calls arriving as stream events: the single-turn assemblers, taught tool use.

A streamed agent step must come out identical to an unstreamed one, so, as for
single-turn samples, each stream is rebuilt into the body the non-streaming endpoint
would have returned and handed to the same parser (``parse_anthropic_turn`` /
``parse_openai_turn``). The shapes follow the official SDKs' own accumulators:

* Anthropic: a ``tool_use`` block opens in ``content_block_start`` with ``input: {}``
  and grows by ``content_block_delta`` events whose delta is
  ``{"type": "input_json_delta", "partial_json": "..."}``; the concatenated pieces are
  the input's JSON (``anthropic.lib.streaming._messages.accumulate_event``; empty
  pieces leave ``input`` as ``{}``).
* OpenAI: ``delta.tool_calls`` is a list of fragments keyed by ``index``; the first
  carries ``id``, ``type`` and ``function.name``, later ones pieces of
  ``function.arguments``. Strings concatenate, ``index`` and ``type`` replace
  (``openai.lib.streaming._deltas.accumulate_delta``).

Tool input is bounded like text (``sweep.max_text_bytes``): pieces past the cap are
dropped and the step is refused by ``act`` (a message cut short cannot go back to the
model verbatim).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from ttc.errors import MalformedResponseError
from ttc.providers.anthropic import MessageStream
from ttc.providers.base import TextPieces
from ttc.providers.openai import ChunkStream
from ttc.sse import SSEEvent

__all__ = ["ToolChunkStream", "ToolMessageStream"]

#: Anthropic block types whose input arrives as ``input_json_delta`` (the SDK's TRACKS_TOOL_INPUT)
_TOOL_BLOCKS = ("tool_use", "server_tool_use")


class ToolMessageStream(MessageStream):
    """``MessageStream`` plus ``input_json_delta``: tool_use blocks get their ``input``."""

    __slots__ = ("_inputs", "_json")

    def __init__(self, max_text_bytes: int = 4 * 1024 * 1024) -> None:
        super().__init__(max_text_bytes)
        self._json = TextPieces(max_text_bytes)  # all tool input of the reply, one cap
        self._inputs: dict[int, list[str]] = {}

    def _delta(self, data: dict[str, Any]) -> None:
        delta = data.get("delta")
        if not (isinstance(delta, dict) and delta.get("type") == "input_json_delta"):
            super()._delta(data)
            return
        index = data.get("index")
        if not isinstance(index, int) or not 0 <= index < len(self._blocks):
            raise _bad("anthropic", f"input_json_delta for content block {index!r} that never "
                       "started")
        piece = delta.get("partial_json")
        if not isinstance(piece, str):
            raise _bad("anthropic", "input_json_delta without partial_json")
        if self._blocks[index][0].get("type") in _TOOL_BLOCKS:
            parts = self._inputs.setdefault(index, [])
            if self._json.chars <= self._json.limit:
                parts.append(piece)
            self._json.chars += len(piece)

    def tokens(self) -> tuple[int, int]:
        thinking, output = super().tokens()
        return thinking, output + (self._json.chars + 3) // 4

    def body(self) -> dict[str, Any]:
        out = super().body()
        for index, parts in self._inputs.items():
            raw = "".join(parts)
            if not raw:
                continue  # as the SDK: no JSON at all leaves the start's input ({})
            if self._json.chars > self._json.limit:
                raise _too_long("anthropic", self._json.limit)
            try:
                value = json.loads(raw)
            except ValueError:
                raise _bad("anthropic", f"tool input of content block {index} is not "
                           "JSON") from None
            out["content"][index] = {**out["content"][index], "input": value}
        return out


class ToolChunkStream(ChunkStream):
    """``ChunkStream`` plus ``delta.tool_calls``: choice 0's calls, merged by ``index``."""

    __slots__ = ("_arguments", "_calls")

    def __init__(self, max_text_bytes: int = 4 * 1024 * 1024) -> None:
        super().__init__(max_text_bytes)
        self._calls: dict[int, dict[str, Any]] = {}
        self._arguments = TextPieces(max_text_bytes)  # all arguments of the reply, one cap

    def feed(self, event: SSEEvent) -> None:
        super().feed(event)  # text, reasoning, finish, usage, errors, [DONE]
        if self.done or b'"tool_calls"' not in event.data:
            return  # most chunks carry no tool call: no second parse
        choices = orjson.loads(event.data).get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            fragments = delta.get("tool_calls") if isinstance(delta, dict) else None
            if fragments is None:
                continue
            if not isinstance(fragments, list):
                raise _bad("openai", "delta.tool_calls is not a list")
            for fragment in fragments:
                self._merge(fragment)

    def _merge(self, fragment: Any) -> None:
        if not isinstance(fragment, dict) or not isinstance(fragment.get("index"), int):
            raise _bad("openai", "tool call fragment without an index")
        call = self._calls.setdefault(fragment["index"], {"function": {}})
        for key in ("id", "type"):
            value = fragment.get(key)
            if isinstance(value, str):
                call[key] = value if key == "type" else call.get(key, "") + value
        function = fragment.get("function")
        if function is None:
            return
        if not isinstance(function, dict):
            raise _bad("openai", "tool call fragment's function is not an object")
        name, piece = function.get("name"), function.get("arguments")
        if isinstance(name, str):
            call["function"]["name"] = call["function"].get("name", "") + name
        if piece is not None:
            if not isinstance(piece, str):
                raise _bad("openai", "tool call arguments are not a string")
            if self._arguments.chars <= self._arguments.limit:
                call["function"]["arguments"] = call["function"].get("arguments", "") + piece
            self._arguments.chars += len(piece)

    def tokens(self) -> tuple[int, int]:
        thinking, output = super().tokens()
        return thinking, output + (self._arguments.chars + 3) // 4

    def body(self) -> dict[str, Any]:
        out = super().body()
        if self._calls:
            if self._arguments.chars > self._arguments.limit:
                raise _too_long("openai", self._arguments.limit)
            out["choices"][0]["message"]["tool_calls"] = [
                self._calls[i] for i in sorted(self._calls)]
        return out


def _bad(provider: str, message: str) -> MalformedResponseError:
    return MalformedResponseError(f"{provider}: malformed response: {message}")


def _too_long(provider: str, limit: int) -> MalformedResponseError:
    return MalformedResponseError(
        f"{provider}: tool input longer than sweep.max_text_bytes ({limit}); an agent step "
        f"must go back to the model whole")
