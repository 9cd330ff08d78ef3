"""What the fake model says, and the JSON bodies that carry it in each wire format.

A ``Responder`` maps a ``Query`` (the request reduced to what matters) to a ``Reply``
(thinking and answer text). ``render_body`` turns a reply into the exact non-streaming
body of the endpoint asked; ``ttc.testing.sse`` cuts that same body into stream
events, so a streamed and an unstreamed answer to one request carry identical content
by construction. Tokens are whitespace-separated words, so counts are exact and cheap.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ttc.testing.faults import Rng

__all__ = [
    "Api",
    "Query",
    "Reply",
    "Responder",
    "anthropic_message",
    "arithmetic_responder",
    "chat_completion",
    "count_words",
    "render_body",
]

Api = Literal["anthropic", "openai", "completions"]


@dataclass(frozen=True, slots=True)
class Query:
    """What a responder sees: the request, reduced to what matters for the answer."""

    api: Api
    prompt: str
    system: str
    #: thinking tokens the server enforces (None: only ``max_tokens`` limits thinking)
    budget: int | None
    max_tokens: int | None
    #: the request's ``seed``, else how often this exact body arrived before
    seed: int
    number: int
    #: legacy completions: thinking words already in the prompt after an open ``<think>``
    prior_thinking: int = 0
    #: legacy completions: the prompt already closed ``</think>``; only the answer is due
    answer_only: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """What the model "says"; the server counts words as tokens and applies ``max_tokens``.

    ``redacted_thinking`` adds that many encrypted thinking blocks (Anthropic only).
    ``confidence``: DeepConf's token confidence (the mean of the top-k negative
    log-probabilities) of every token, or one value per token (thinking words, then
    answer words; the last value repeats), sent when a chat request asks for logprobs.
    """

    text: str
    thinking: str = ""
    redacted_thinking: int = 0
    confidence: float | tuple[float, ...] = 1.0


Responder = Callable[[Query], Reply]

_ARITH = re.compile(r"(-?\d+)\s*([-+*x×])\s*(-?\d+)")


def arithmetic_responder(query: Query) -> Reply:
    """Solve the first ``a op b`` in the prompt; right more often the more it thinks.

    Each problem "needs" 256-4095 thinking tokens (from a hash of the prompt). Thinking
    length is about that need, capped by the budget; P(correct) = 0.1 + 0.85 * min(1,
    thinking / need). Wrong answers favour one distractor per problem, so majority
    voting can fail at small budgets.
    """
    key = zlib.crc32(query.prompt.encode())
    rng = Rng(key * 1_000_003 + query.seed * 7919 + (query.budget or 0))
    need = 256 + key % 3840
    if query.answer_only:
        think_len = 0
    else:
        want = max(1, int(need * (0.6 + 0.8 * rng.random())) - query.prior_thinking)
        think_len = want if query.budget is None else min(want, query.budget)
    match = _ARITH.search(query.prompt)
    if match is None:
        correct, header = key % 10, "No sum here, I will guess."
    else:
        a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
        correct = a + b if op == "+" else a - b if op == "-" else a * b
        header = f"Compute {a} {op} {b} step by step."
    progress = min(1.0, (think_len + query.prior_thinking) / need)
    if rng.random() < 0.1 + 0.85 * progress:
        answer = correct
    else:
        answer = correct + (1 + key % 3 if rng.random() < 0.7 else -(2 + key % 5))
    return Reply(text=f"The answer is \\boxed{{{answer}}}.", thinking=_words(header, think_len))


def render_body(
    api: Api,
    body: dict[str, Any],
    q: Query,
    reply: Reply,
    *,
    report_thinking_tokens: bool = True,
    reasoning_field: str = "reasoning_content",
) -> dict[str, Any]:
    """The non-streaming response body for ``reply`` (``max_tokens`` applied)."""
    if api == "completions":
        return _render_completion(body, q, reply)
    thinking, text = reply.thinking, reply.text
    n_think, n_text = count_words(thinking), count_words(text)
    cut = q.max_tokens is not None and n_think + n_text > q.max_tokens
    if cut and q.max_tokens is not None:
        thinking = _head(thinking, min(n_think, q.max_tokens))
        text = _head(text, max(0, q.max_tokens - n_think))
        n_think, n_text = count_words(thinking), count_words(text)
    input_tokens = count_words(q.system) + count_words(q.prompt)
    model = str(body.get("model", "fake-model"))
    if api == "anthropic":
        content: list[dict[str, Any]] = []
        if thinking:
            content.append({"type": "thinking", "thinking": thinking, "signature": "fake"})
        content += [{"type": "redacted_thinking", "data": "opaque"}] * reply.redacted_thinking
        if text or not content:
            content.append({"type": "text", "text": text, "citations": None})
        return anthropic_message(q.number, model, content, "max_tokens" if cut else "end_turn",
                                 input_tokens, n_think + n_text, n_think,
                                 report_thinking_tokens=report_thinking_tokens)
    message = {"role": "assistant", "content": text, reasoning_field: thinking or None}
    return chat_completion(q.number, model, message, "length" if cut else "stop",
                           input_tokens, n_think + n_text, n_think,
                           report_thinking_tokens=report_thinking_tokens,
                           logprobs=_logprobs(body, thinking, text, reply.confidence))


def anthropic_message(
    number: int, model: str, content: list[dict[str, Any]], stop_reason: str,
    input_tokens: int, output_tokens: int, thinking_tokens: int, *,
    report_thinking_tokens: bool = True,
) -> dict[str, Any]:
    """A Messages API reply around ``content``: the one envelope of every fake answer
    (plain or tool use), so both stay the shape the SDK parses."""
    usage: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if report_thinking_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    return {
        "id": f"msg_fake{number:08d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def chat_completion(
    number: int, model: str, message: dict[str, Any], finish_reason: str,
    input_tokens: int, output_tokens: int, thinking_tokens: int, *,
    report_thinking_tokens: bool = True, logprobs: Any = None,
) -> dict[str, Any]:
    """A chat completion around ``message`` (choice 0): the OpenAI twin of
    ``anthropic_message``."""
    usage: dict[str, Any] = {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    if report_thinking_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": thinking_tokens}
    choice = {
        "index": 0,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": finish_reason,
    }
    return {
        "id": f"chatcmpl-fake{number:08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


def _logprobs(body: dict[str, Any], thinking: str, text: str,
              confidence: float | tuple[float, ...]) -> dict[str, Any] | None:
    """``choices[0].logprobs`` as OpenAI sends it when asked (``logprobs: true``): one
    item per token (word), ``top_logprobs`` alternatives best first, whose negatives
    average to the token's confidence (weights (2i + 1) / k, mean one)."""
    if body.get("logprobs") is not True:
        return None
    k = body.get("top_logprobs")
    k = k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else 1
    words = thinking.split() + text.split()
    per = confidence if isinstance(confidence, tuple) else (confidence,)
    items = []
    for i, word in enumerate(words):
        c = float(per[min(i, len(per) - 1)])
        alts = [{"token": word if j == 0 else f"{word}~{j}", "logprob": -c * (2 * j + 1) / k,
                 "bytes": None} for j in range(k)]
        items.append({"token": word, "logprob": alts[0]["logprob"], "bytes": None,
                      "top_logprobs": alts})
    return {"content": items, "refusal": None}


def _render_completion(body: dict[str, Any], q: Query, reply: Reply) -> dict[str, Any]:
    out = reply.text if q.answer_only else f"{reply.thinking}\n</think>\n\n{reply.text}"
    finish = "stop"
    stops = body.get("stop") or []
    for stop in [stops] if isinstance(stops, str) else stops:
        at = out.find(stop)
        if at >= 0:
            out = out[:at]
    if q.max_tokens is not None and count_words(out) > q.max_tokens:
        out, finish = _head(out, q.max_tokens), "length"
    prompt = body["prompt"]
    n_in, n_out = count_words(prompt[0] if isinstance(prompt, list) else prompt), count_words(out)
    choice = {"index": 0, "text": out, "finish_reason": finish, "logprobs": None}
    return {
        "id": f"cmpl-fake{q.number:08d}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": str(body.get("model", "fake-model")),
        "choices": [choice],
        "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
    }


def count_words(text: str) -> int:
    """Tokens, fake-server style: whitespace-separated words."""
    return len(text.split())


def _head(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


def _words(header: str, n: int) -> str:
    """Exactly ``n`` words: the header's, then filler (string repetition keeps it fast)."""
    head = header.split()[:n]
    filler = n - len(head)
    return " ".join(head) + (" hmm" * filler if head else ("hmm " * filler).rstrip())
