"""A non-streaming response body, re-cut as the stream the real API would send instead.

``anthropic_events`` follows the Messages streaming protocol (``message_start``, a
``ping``, ``content_block_start``/``delta``/``stop`` per block with ``thinking_delta``,
``signature_delta``, ``text_delta`` and, for ``tool_use`` blocks, ``input_json_delta``
pieces of the input's JSON, ``message_delta`` with the stop reason and
cumulative usage, ``message_stop``); ``openai_events`` sends ``chat.completion.chunk``
(or legacy ``text_completion``) chunks, ``delta.tool_calls`` fragments (id and name
first, then argument pieces), the usage chunk when
``stream_options.include_usage`` asked for it, and ``data: [DONE]``. Shapes follow the
official SDKs' event types, and a test drives this server with the SDKs themselves.
Text is cut into pieces of ``words_per_event`` words whose concatenation is exact.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import orjson

from ttc.sse import encode_event
from ttc.testing.responders import Api

__all__ = ["anthropic_events", "error_event", "json_pieces", "openai_events", "pieces"]

_SPLIT = re.compile(r"(?<=\s)(?=\S)")


def pieces(text: str, words: int) -> list[str]:
    """``text`` in runs of ``words`` words (whitespace kept), concatenating to ``text``."""
    if not text:
        return []
    parts = _SPLIT.split(text)
    return ["".join(parts[i : i + words]) for i in range(0, len(parts), words)]


def json_pieces(raw: str, size: int) -> list[str]:
    """Tool-call JSON in runs of ``size`` characters (cut anywhere, even inside a string)."""
    return [raw[i : i + size] for i in range(0, len(raw), max(1, size))]


def _ev(name: str, data: dict[str, Any]) -> bytes:
    return encode_event(orjson.dumps(data), name)


def anthropic_events(message: dict[str, Any], words: int = 16, ping_every: int = 0) -> list[bytes]:
    """The Messages stream for a Message body."""
    usage = dict(message["usage"])
    final_output = usage.get("output_tokens", 0)
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens_details"}
    start_usage["output_tokens"] = min(1, final_output)
    shell = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": start_usage}
    out = [_ev("message_start", {"type": "message_start", "message": shell}),
           _ev("ping", {"type": "ping"})]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        start: dict[str, Any]
        if kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "text":
            start = {"type": "text", "text": ""}
        elif kind == "tool_use":  # input arrives as JSON text in input_json_delta pieces
            start = {**block, "input": {}}
        else:
            start = block
        out.append(_ev("content_block_start",
                       {"type": "content_block_start", "index": index, "content_block": start}))
        if kind in ("thinking", "text"):
            delta_type = f"{kind}_delta"
            for piece in pieces(block[kind], words):
                out.append(_ev("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": delta_type, kind: piece}}))
        if kind == "tool_use":
            raw = orjson.dumps(block["input"]).decode()
            for piece in ["", *json_pieces(raw, words)]:  # the API opens with an empty piece
                out.append(_ev("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}))
        if kind == "thinking":
            out.append(_ev("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "signature_delta", "signature": block.get("signature", "")}}))
        out.append(_ev("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta_usage: dict[str, Any] = {"output_tokens": final_output}
    if "output_tokens_details" in usage:
        delta_usage["output_tokens_details"] = usage["output_tokens_details"]
    out.append(_ev("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"],
                  "stop_sequence": message.get("stop_sequence")},
        "usage": delta_usage}))
    out.append(_ev("message_stop", {"type": "message_stop"}))
    if ping_every:
        spaced: list[bytes] = []
        for i, event in enumerate(out):
            spaced.append(event)
            if i and i % ping_every == 0 and i < len(out) - 1:
                spaced.append(_ev("ping", {"type": "ping"}))
        out = spaced
    return out


def openai_events(
    body: dict[str, Any], words: int = 16, *, include_usage: bool = False
) -> list[bytes]:
    """The chunk stream for a ``chat.completion`` or ``text_completion`` body."""
    legacy = body.get("object") == "text_completion"
    kind = "text_completion" if legacy else "chat.completion.chunk"
    head = {"id": body["id"], "object": kind, "created": body["created"], "model": body["model"]}
    choice = body["choices"][0]
    #: each chunk carries the logprob items of its own tokens (words), in order
    items = iter(((choice.get("logprobs") or {}).get("content")) or [])

    def chunk(fields: dict[str, Any], finish: str | None = None) -> bytes:
        piece = fields.get("delta", {}).get("reasoning_content") or fields.get(
            "delta", {}).get("reasoning") or fields.get("delta", {}).get("content") or ""
        mine = list(itertools.islice(items, len(piece.split())))
        logprobs = {"content": mine, "refusal": None} if mine else None
        c: dict[str, Any] = {"index": 0, **fields, "logprobs": logprobs, "finish_reason": finish}
        data: dict[str, Any] = {**head, "choices": [c]}
        if include_usage:
            data["usage"] = None
        return encode_event(orjson.dumps(data))

    out: list[bytes] = []
    if legacy:
        out += [chunk({"text": piece}) for piece in pieces(choice["text"], words)]
        out.append(chunk({"text": ""}, choice["finish_reason"]))
    else:
        message = choice["message"]
        calls = message.get("tool_calls") or []
        opening = "" if message.get("content") is not None or not calls else None
        out.append(chunk({"delta": {"role": "assistant", "content": opening}}))
        for key in ("reasoning_content", "reasoning"):
            if message.get(key):
                out += [chunk({"delta": {key: piece}}) for piece in pieces(message[key], words)]
        out += [chunk({"delta": {"content": piece}})
                for piece in pieces(message.get("content") or "", words)]
        for i, call in enumerate(calls):  # id, type and name first, then argument pieces
            fn = call["function"]
            out.append(chunk({"delta": {"tool_calls": [{
                "index": i, "id": call["id"], "type": "function",
                "function": {"name": fn["name"], "arguments": ""}}]}}))
            out += [chunk({"delta": {"tool_calls": [{"index": i, "function": {"arguments": p}}]}})
                    for p in json_pieces(fn["arguments"], words)]
        out.append(chunk({"delta": {}}, choice["finish_reason"]))
    if include_usage:
        out.append(encode_event(orjson.dumps({**head, "choices": [], "usage": body["usage"]})))
    out.append(encode_event(b"[DONE]"))
    return out


def error_event(api: Api, error_type: str, message: str) -> bytes:
    """The mid-stream error event each API sends."""
    if api == "anthropic":
        data = {"type": "error", "error": {"type": error_type, "message": message}}
        return encode_event(orjson.dumps(data), "error")
    error = {"message": message, "type": error_type, "param": None, "code": None}
    return encode_event(orjson.dumps({"error": error}))
