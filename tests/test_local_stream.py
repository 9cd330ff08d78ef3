"""Streaming against llama.cpp's real ``llama-server`` (its own SSE, not the fake
server's): the chat backend and budget forcing give the same text streamed and
unstreamed, and, since llama-server honours ``stream_options.include_usage`` (its final
chunk carries the usage), the same exact token counts."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from local_support import needs_local

from ttc.config import BudgetForcingConfig, ModelConfig, SweepConfig
from ttc.problems import Problem
from ttc.providers.base import Completion, SampleRequest
from ttc.providers.local import LocalProvider

pytestmark = [pytest.mark.local, pytest.mark.timeout(240), needs_local]

REQUEST = SampleRequest(Problem(id="q", question="What is 3 + 5?", answer="8"),
                        "What is 3 + 5? Answer with a number.", 24, 0, seed=1234)


def both(config: ModelConfig) -> tuple[Completion, Completion, list[tuple[int, int]]]:
    seen: list[tuple[int, int]] = []

    async def go() -> tuple[Completion, Completion]:
        whole = LocalProvider(config, sweep=SweepConfig(stream=False))
        streamed = LocalProvider(config, sweep=SweepConfig(stream=True))
        try:
            a = await whole.complete(REQUEST)
            b = await streamed.complete(
                dataclasses.replace(REQUEST, on_tokens=lambda t, o: seen.append((t, o))))
        finally:
            await whole.aclose()
            await streamed.aclose()
        return a, b

    a, b = asyncio.run(go())
    return a, b, seen


def _same(a: Completion, b: Completion) -> None:
    assert (a.text, a.thinking, a.stop_reason) == (b.text, b.thinking, b.stop_reason)
    assert a.censored == b.censored


def test_chat_stream_from_llama_cpp_matches_the_whole_reply() -> None:
    config = ModelConfig(provider="local", answer_tokens=24, n_ctx=1024, temperature=0.0)
    whole, streamed, seen = both(config)
    assert whole.text.strip() and seen
    _same(whole, streamed)
    assert not whole.extra.get("usage_estimated")
    assert not streamed.extra.get("usage_estimated")  # the stream's last chunk has usage
    assert (whole.input_tokens, whole.output_tokens) == (streamed.input_tokens,
                                                         streamed.output_tokens)
    assert seen[-1][1] == streamed.output_tokens


def test_budget_forcing_streams_from_llama_cpp() -> None:
    config = ModelConfig(provider="local", answer_tokens=8, n_ctx=1024, temperature=0.0,
                         budget_forcing=BudgetForcingConfig(enabled=True, wait_rounds=1))
    whole, streamed, seen = both(config)
    _same(whole, streamed)
    assert not whole.thinking_estimated and not streamed.thinking_estimated
    assert whole.thinking_tokens == streamed.thinking_tokens
    assert whole.output_tokens == streamed.output_tokens
    assert seen and seen[-1][0] == streamed.thinking_tokens
