"""OpenAI-compatible Chat Completions backend (OpenAI, vLLM, SGLang, llama.cpp).

Servers disagree on how a thinking budget is spelled, so the field names are config:
a numeric budget goes in ``model.budget_field`` (vLLM's ``thinking_token_budget`` by
default; "" sends none), a named one in ``model.effort_field`` (``reasoning_effort``),
and the output cap in ``model.max_tokens_field``. Reasoning text is read from
``reasoning_content`` or ``reasoning``, or split off ``<think>...</think>`` when a server
runs without a reasoning parser; where no reasoning count is reported, it is estimated
and marked so.

Long requests stream (``sweep.stream``) with ``stream_options.include_usage``, so the
final chunk carries the usage; ``ChunkStream`` joins the chunks into the
``chat.completion`` body the same server would have sent unstreamed, and
``parse_chat_completion`` reads both alike. ``data: [DONE]`` ends a stream; a stream
that stops without it was cut.

With ``sweep.logprobs`` the body asks for ``logprobs: true, top_logprobs: k``; each
streamed chunk then carries ``choices[0].logprobs.content`` (one item per token, as
OpenAI, vLLM and llama.cpp's server send it), which ``ChunkStream`` joins like the text,
and the completion carries them as a (tokens x k) array of negative log-probabilities.
Where a server reports no usage (llama-cpp-python's server streams none), the number of
logprob items is the exact output token count. A request with a trace watch (an online
DeepConf or prefix rule) is always streamed, and a watch that stops it yields the partial
completion, ``stopped`` and with ``stop_reason`` "stopped".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ttc.errors import MalformedResponseError, ServerError
from ttc.providers.base import (
    Completion,
    HTTPProvider,
    SampleRequest,
    StreamStopped,
    TextPieces,
    estimate_tokens,
    merge_body,
    optional_field,
    require_field,
)
from ttc.providers.responses import error_from_payload
from ttc.sse import SSEEvent

if TYPE_CHECKING:
    from ttc.batch.openai import OpenAIBatches

__all__ = [
    "DEFAULT_BASE_URL",
    "ChunkStream",
    "OpenAIProvider",
    "parse_chat_completion",
    "split_think_tags",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: the delta fields that carry text: the answer, and reasoning under either name
_DELTA_KEYS = frozenset({"content", "reasoning_content", "reasoning"})


class OpenAIProvider(HTTPProvider):
    """One sample = one ``/chat/completions`` call (streamed when long)."""

    kind = "openai"
    default_base_url = DEFAULT_BASE_URL
    endpoint = "/chat/completions"

    @property
    def max_tokens_key(self) -> str:
        return self.config.max_tokens_field

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
        if self.top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        if self.streams(budget) or request.watch is not None:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return merge_body(body, c.extra_body)

    async def _complete(self, request: SampleRequest) -> Completion:
        """Send one chat completion request (streamed or not) and normalise the reply."""
        body = self.build_body(request)
        k = self.top_logprobs
        if body.get("stream"):
            assembler = ChunkStream(self.max_text_bytes)
            try:
                data = await self._stream(body, assembler, request.on_tokens, request.watch)
            except StreamStopped as stop:
                return parse_chat_completion(stop.body, top_logprobs=k, stopped=True)
            return parse_chat_completion(data, top_logprobs=k)
        return parse_chat_completion(await self._post(body), top_logprobs=k)

    # ------------------------------------------------------------------ batches
    def parse_body(self, data: dict[str, Any]) -> Completion:
        return parse_chat_completion(data, top_logprobs=self.top_logprobs)

    def batch_api(self) -> OpenAIBatches:
        """The Batch API (``/files``, ``/batches``) at this provider's base URL."""
        from ttc.batch.openai import OpenAIBatches

        return OpenAIBatches(self.batch_wire())


class ChunkStream:
    """Joins ``chat.completion.chunk`` events (or legacy ``text_completion`` chunks) into
    the body a non-streaming call returns.

    Choice 0's ``delta.content`` and ``delta.reasoning_content`` / ``delta.reasoning``
    (whichever the server uses) are concatenated, its last non-null ``finish_reason``
    kept, and the ``usage`` of the final chunk (``stream_options.include_usage``) taken
    whole. A chunk with an ``error`` raises it; ``[DONE]`` ends the stream.
    """

    __slots__ = ("_content", "_finish", "_id", "_legacy", "_logprobs", "_reasoning",
                 "_reasoning_key", "_seen_content", "_usage", "done")

    def __init__(self, max_text_bytes: int = 4 * 1024 * 1024, *, legacy: bool = False) -> None:
        self._legacy = legacy
        self._content = TextPieces(max_text_bytes)
        self._reasoning = TextPieces(max_text_bytes)
        self._reasoning_key: str | None = None
        self._seen_content = False
        self._finish: Any = None
        self._id: Any = None
        self._usage: Any = None
        #: ``logprobs.content`` items of choice 0 so far (None: the server sent none)
        self._logprobs: list[Any] | None = None
        self.done = False

    def tokens(self) -> tuple[int, int]:
        """Estimated (thinking, output) tokens so far (usage arrives only at the end);
        with logprobs, one item per token makes the output count exact."""
        thinking = (self._reasoning.chars + 3) // 4
        estimate = thinking + (self._content.chars + 3) // 4
        if self._logprobs:
            estimate = len(self._logprobs)
        if isinstance(self._usage, dict):
            reported = self._usage.get("completion_tokens")
            if isinstance(reported, int) and not isinstance(reported, bool):
                estimate = max(estimate, reported)
        return thinking, estimate

    def feed(self, event: SSEEvent) -> None:
        raw = event.data
        if raw[:6] == b"[DONE]":
            self.done = True
            return
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _bad("stream chunk is not JSON") from None
        if type(data) is not dict:
            raise _bad("stream chunk is not an object")
        if data.get("error"):
            raise error_from_payload(data["error"], "openai", status=200, default=ServerError,
                                     output_tokens=self.tokens()[1])
        if self._id is None:
            self._id = data.get("id")
        usage = data.get("usage")
        if usage is not None:
            self._usage = usage
        choices = data.get("choices")
        if type(choices) is not list:
            return
        for choice in choices:
            if type(choice) is not dict or choice.get("index", 0) != 0:
                continue
            if self._legacy:
                self._piece("text", choice.get("text"))
            else:
                delta = choice.get("delta")
                if type(delta) is dict:
                    for key, piece in delta.items():  # usually one key: one pass, no lookups
                        if piece is not None and key in _DELTA_KEYS:
                            self._piece(key, piece)
            logprobs = choice.get("logprobs")
            if logprobs is not None:
                self._add_logprobs(logprobs)
            finish = choice.get("finish_reason")
            if finish is not None:
                self._finish = finish

    def _add_logprobs(self, logprobs: Any) -> None:
        if type(logprobs) is not dict:
            raise _bad("choices[0].logprobs is not an object")
        items = logprobs.get("content")
        if items is None:
            return
        if type(items) is not list:
            raise _bad("choices[0].logprobs.content is not a list")
        if self._logprobs is None:
            self._logprobs = []
        self._logprobs += items

    # ------------------------------------------------------------ PartialStream
    def thinking_so_far(self) -> str:
        """The reasoning so far, or the answer text when the server sends no reasoning
        field (a model that thinks in its content)."""
        return self._reasoning.text() if self._reasoning_key is not None \
            else self._content.text()

    def logprob_items(self) -> list[Any]:
        """The ``logprobs.content`` items so far (grows; a watch keeps its own offset)."""
        return self._logprobs or []

    def _piece(self, key: str, piece: Any) -> None:
        if piece is None:
            return
        if type(piece) is not str:
            raise _bad(f"delta.{key} is not a string")
        if key == "content" or key == "text":
            self._seen_content = True
            self._content.add(piece)
            return
        if self._reasoning_key is None:
            self._reasoning_key = key
        if key == self._reasoning_key:
            self._reasoning.add(piece)

    def body(self) -> dict[str, Any]:
        """The ``chat.completion`` (or ``text_completion``) body this stream amounts to."""
        choice: dict[str, Any] = {"index": 0, "finish_reason": self._finish}
        if self._logprobs is not None:
            choice["logprobs"] = {"content": self._logprobs}
        content = self._content.text() if self._seen_content else None
        if self._legacy:
            choice["text"] = content or ""
        else:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if self._reasoning_key is not None:
                message[self._reasoning_key] = self._reasoning.text()
            choice["message"] = message
        out: dict[str, Any] = {"id": self._id, "choices": [choice]}
        if self._usage is not None:
            out["usage"] = self._usage
        return out


def parse_chat_completion(data: dict[str, Any], *, top_logprobs: int = 0,
                          stopped: bool = False) -> Completion:
    """Normalise a chat completion body; missing or mistyped fields are malformed (retryable).

    ``top_logprobs``: read ``logprobs.content`` into k columns (0: ignore them).
    ``stopped``: the body of a stream a trace watch stopped (no finish reason or usage).
    """
    choices = _field(data, "choices", list)
    if not choices or not isinstance(choices[0], dict):
        raise _bad("'choices' is empty or not a list of objects")
    choice = choices[0]
    message = _field(choice, "message", dict)
    if stopped:
        choice = {**choice, "finish_reason": "stopped"}
    finish_reason = _field(choice, "finish_reason", str)
    rows = _logprob_rows(choice, top_logprobs) if top_logprobs else None
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
        input_tokens = 0
        reported = None
        if rows is not None:  # one logprob item per generated token: an exact count
            output_tokens = len(rows)
            extra["input_tokens_unknown"] = True
        else:
            extra["usage_estimated"] = True
            output_tokens = estimate_tokens(content) + estimate_tokens(reasoning)
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
        response_id=_field(data, "id", str) if not stopped else _optional(data, "id", str),
        extra=extra,
        logprobs=rows,
        stopped=stopped,
    )


def _logprob_rows(choice: dict[str, Any], k: int) -> Any:
    """(tokens x k) negative log-probabilities from ``choice.logprobs.content``; None when
    the server sent none. Items that are not what the API documents are malformed."""
    import math

    from ttc.adaptive.logprobs import from_openai_content

    logprobs = _optional(choice, "logprobs", dict)
    items = _optional(logprobs, "content", list) if logprobs is not None else None
    if items is None:
        return None
    for item in items:
        if type(item) is not dict:
            raise _bad("logprobs.content holds a non-object")
        alts = item.get("top_logprobs") or [item]
        if type(alts) is not list:
            raise _bad("logprobs.content[].top_logprobs is not a list")
        for alt in alts:
            value = alt.get("logprob") if type(alt) is dict else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    math.isnan(value) or value > 1e-4):
                raise _bad(f"a token logprob is not a log-probability: {value!r}")
    return from_openai_content(items, k)


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

