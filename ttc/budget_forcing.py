"""Budget forcing (s1, Muennighoff et al. 2025): serial test-time compute for any model.

Models without a native thinking budget can still be made to think for about B tokens
by driving a raw ``/v1/completions`` endpoint ourselves: render the chat template,
open a thinking block, let the model think with ``max_tokens`` set to what is left of
the budget, and

* when it stops early, append ``wait_text`` ("Wait") and let it continue, up to
  ``wait_rounds`` times (and for as long as it is below ``min_thinking_tokens``);
* when the budget runs out, close the thinking block ourselves.

Then append ``answer_prefix`` ("Final answer: ") and let it answer in at most
``answer_tokens`` tokens. The realized thinking tokens are the server's own
``completion_tokens`` summed over the thinking calls, so the budget axis of a sweep
is measured, not assumed.

The several calls of one sample share the sampler's one deadline (``sweep.timeout_s``
around ``complete``): no call has a limit of its own. A call that may produce more
than ~16k tokens streams under ``sweep.stream = "auto"``, so a long think is watched
by ``sweep.idle_timeout_s`` and shows its tokens live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttc.config import BudgetForcingConfig
from ttc.errors import APIError, MalformedResponseError
from ttc.providers.base import (
    Completion,
    HTTPProvider,
    SampleRequest,
    estimate_tokens,
    wants_stream,
)
from ttc.providers.openai import ChunkStream

__all__ = ["CHAT_TEMPLATES", "BudgetForcingProvider", "render_chat"]

#: built-in chat templates; ``{system}`` and ``{prompt}`` are substituted literally
CHAT_TEMPLATES: dict[str, str] = {
    "chatml": (
        "<|im_start|>system\n{system}<|im_end|>\n"
        "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    ),
}
_CHATML_NO_SYSTEM = "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
_END_OF_TURN = "<|im_end|>"
#: safety cap on "Wait" rounds when ``min_thinking_tokens`` keeps asking for more
_MAX_EXTRA_ROUNDS = 32


def render_chat(template: str, *, system: str, prompt: str) -> str:
    """The prompt text up to the assistant turn: a named template or a custom string.

    Substitution is literal (no ``str.format``), so prompts may contain braces.
    The ChatML system block is left out when there is no system prompt.
    """
    if template == "chatml" and not system:
        text = _CHATML_NO_SYSTEM
    else:
        text = CHAT_TEMPLATES.get(template, template)
    return text.replace("{system}", system).replace("{prompt}", prompt)


@dataclass(slots=True)
class _Call:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    reported: bool


class BudgetForcingProvider(HTTPProvider):
    """s1-style budget forcing through an OpenAI-compatible raw completions endpoint.

    ``config.base_url`` is the API root (``http://host:port/v1``); requests go to
    ``{base_url}/completions``. ``budget`` is the thinking budget in tokens (effort
    names map to their usual token sizes).
    """

    kind = "budget_forcing"

    endpoint = "/completions"

    @property
    def forcing(self) -> BudgetForcingConfig:
        """The budget forcing settings of this model."""
        return self.config.budget_forcing

    def thinking_budget(self, budget: int | str) -> int:
        """Thinking tokens allowed at ``budget`` (effort names use the base class's sizes)."""
        return max(0, self.max_output_tokens(budget) - self.config.answer_tokens)

    async def _complete(self, request: SampleRequest) -> Completion:
        """Think up to the budget (with Wait rounds), close the thinking, then answer.

        A call that fails after earlier calls of the attempt were served raises with
        those calls' output tokens added to ``APIError.output_tokens``: they were paid
        for, and the retry pays for its own thinking again, so the sampler counts them
        as waste.
        """
        paid = [0]  # output tokens of this attempt's calls served so far
        try:
            return await self._force(request, paid)
        except APIError as exc:
            exc.output_tokens += paid[0]
            raise

    async def _force(self, request: SampleRequest, paid: list[int]) -> Completion:
        bf = self.forcing
        budget = self.thinking_budget(request.budget)
        head = render_chat(bf.chat_template, system=request.system, prompt=request.prompt)
        head += bf.think_start
        stops = _unique([bf.think_end.strip() or bf.think_end, _END_OF_TURN])
        thinking = ""
        used = 0
        reported = True
        waits = 0
        calls = 0
        prompt_tokens_total = 0
        input_tokens: int | None = None
        censored = False
        while True:
            remaining = budget - used
            if remaining <= 0:
                censored = True
                break
            call = await self._generate(
                head + thinking, request, remaining, stops, _offset(request, used, True)
            )
            calls += 1
            input_tokens = call.prompt_tokens if input_tokens is None else input_tokens
            prompt_tokens_total += call.prompt_tokens
            thinking += call.text
            used += call.completion_tokens
            paid[0] = used
            reported = reported and call.reported
            if call.finish_reason == "length" or used >= budget:
                censored = True
                break
            below_min = used < bf.min_thinking_tokens and waits < bf.wait_rounds + _MAX_EXTRA_ROUNDS
            if waits < bf.wait_rounds or below_min:
                thinking += _join(thinking, bf.wait_text)
                waits += 1
                continue
            break
        answer_head = head + thinking + bf.think_end + bf.answer_prefix
        answer = await self._generate(
            answer_head, request, self.config.answer_tokens, _unique([_END_OF_TURN]),
            _offset(request, used, False),
        )
        calls += 1
        prompt_tokens_total += answer.prompt_tokens
        return Completion(
            text=bf.answer_prefix + answer.text,
            thinking=thinking,
            input_tokens=input_tokens if input_tokens is not None else answer.prompt_tokens,
            output_tokens=used + answer.completion_tokens,
            thinking_tokens=used,
            thinking_estimated=not (reported and answer.reported),
            stop_reason=answer.finish_reason,
            censored=censored,
            extra={
                "thinking_budget": budget,
                "wait_rounds": waits,
                "calls": calls,
                "prompt_tokens_total": prompt_tokens_total,
                "answer_tokens": answer.completion_tokens,
            },
        )

    async def _generate(
        self,
        prompt: str,
        request: SampleRequest,
        max_tokens: int,
        stop: list[str],
        listener: Callable[[int, int], None] | None = None,
    ) -> _Call:
        c = self.config
        body: dict[str, Any] = {"prompt": prompt, "max_tokens": max_tokens, "stop": stop}
        if c.name:
            body["model"] = c.name
        if c.temperature is not None:
            body["temperature"] = c.temperature
        if c.top_p is not None:
            body["top_p"] = c.top_p
        if request.seed:  # 0 means unset, as in the chat backend
            body["seed"] = request.seed
        streamed = wants_stream(self.stream_mode, max_tokens, required=False)
        if streamed:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(c.extra_body)
        if streamed:
            assembler = ChunkStream(self.max_text_bytes, legacy=True)
            data = await self._stream(body, assembler, listener)
        else:
            data = await self._post(body)
        try:
            choice = data["choices"][0]
            text = choice["text"]
            if not isinstance(text, str):
                raise TypeError("text is not a string")
        except (KeyError, IndexError, TypeError) as exc:
            raise MalformedResponseError(
                f"budget_forcing: completions response without choices[0].text ({exc})",
            ) from None
        finish = str(choice.get("finish_reason") or "stop")
        usage = data.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            return _Call(
                text, finish, int(usage.get("prompt_tokens") or 0), usage["completion_tokens"], True
            )
        return _Call(text, finish, estimate_tokens(prompt), estimate_tokens(text), False)

    def describe(self) -> dict[str, Any]:
        """Budget forcing changes what a budget means, so it is part of the fingerprint."""
        bf = self.forcing
        return {
            **super().describe(),
            "budget_forcing": {
                "think_start": bf.think_start,
                "think_end": bf.think_end,
                "answer_prefix": bf.answer_prefix,
                "wait_rounds": bf.wait_rounds,
                "wait_text": bf.wait_text,
                "min_thinking_tokens": bf.min_thinking_tokens,
                "chat_template": bf.chat_template,
            },
            "answer_tokens": self.config.answer_tokens,
        }


def _offset(
    request: SampleRequest, used: int, thinking: bool
) -> Callable[[int, int], None] | None:
    """The sample's listener, told totals across calls (``used`` tokens came before)."""
    listener = request.on_tokens
    if listener is None:
        return None

    def told(_thinking: int, output: int) -> None:
        listener(used + output if thinking else used, used + output)

    return told


def _join(text: str, addition: str) -> str:
    """``addition`` preceded by a space unless ``text`` already ends in whitespace."""
    if not text or text[-1].isspace() or addition[:1].isspace():
        return addition
    return " " + addition


def _unique(items: list[str]) -> list[str]:
    return [s for i, s in enumerate(items) if s and s not in items[:i]]
