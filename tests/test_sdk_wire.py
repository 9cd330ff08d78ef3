"""The official SDKs themselves, pointed at the fake server: if its streams (or its
whole replies) had the wrong shape, the SDKs' own event models would reject them or
assemble something else. ttc's assembly of the same streams must agree with theirs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from ttc.config import ModelConfig, SweepConfig
from ttc.problems import Problem
from ttc.providers.anthropic import AnthropicProvider, parse_message
from ttc.providers.base import SampleRequest
from ttc.providers.openai import OpenAIProvider
from ttc.testing.fake_server import FakeServer, FaultPlan, run_in_thread

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

PROMPT = "What is 17 + 25?"
REQUEST = SampleRequest(Problem(id="p", question=PROMPT, answer="42"), PROMPT, 2048, 0, seed=3)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with run_in_thread(plan=FaultPlan(words_per_event=5, ping_every=4)) as srv:
        yield srv


def test_anthropic_sdk_stream(server: FakeServer) -> None:
    params: dict[str, Any] = {
        "model": "claude-fake",
        "max_tokens": 2048 + 1024,
        "messages": [{"role": "user", "content": PROMPT}],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }

    async def go() -> tuple[Any, Any, list[str], Any]:
        client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="k", max_retries=0)
        async with client.messages.stream(**params) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_message()
        whole = await client.messages.create(**params)
        await client.close()
        ours = AnthropicProvider(
            ModelConfig(provider="anthropic", name="claude-fake", base_url=server.base_url),
            sweep=SweepConfig(stream=True))
        try:
            completion = await ours.complete(REQUEST)
        finally:
            await ours.aclose()
        return final, whole, kinds, completion

    final, whole, kinds, completion = asyncio.run(go())
    # the SDK saw every event kind we claim to send, typed
    for kind in ("message_start", "content_block_start", "thinking", "signature", "text",
                 "content_block_stop", "message_delta", "message_stop"):
        assert kind in kinds, kind
    # its assembly of the stream equals its own parse of the unstreamed reply ...
    assert [b.to_dict() for b in final.content] == [
        {k: v for k, v in b.to_dict().items() if k != "citations"} for b in whole.content]
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.stop_reason == whole.stop_reason == "end_turn"
    # ... and ttc's assembly of its own streamed request says the same
    theirs = parse_message(final.to_dict())
    assert (completion.text, completion.thinking) == (theirs.text, theirs.thinking)
    assert (completion.output_tokens, completion.thinking_tokens) == (
        theirs.output_tokens, theirs.thinking_tokens)
    assert completion.stop_reason == theirs.stop_reason


def test_openai_sdk_stream(server: FakeServer) -> None:
    async def go() -> tuple[list[Any], Any, Any]:
        client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)
        stream = await client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": PROMPT}], seed=3,
            max_completion_tokens=2048 + 1024, stream=True,
            stream_options={"include_usage": True},
            extra_body={"thinking_token_budget": 2048},
        )
        chunks = [chunk async for chunk in stream]
        async with client.chat.completions.stream(
            model="fake", messages=[{"role": "user", "content": PROMPT}], seed=3,
            max_completion_tokens=2048 + 1024, extra_body={"thinking_token_budget": 2048},
        ) as helper:
            final = await helper.get_final_completion()
        await client.close()
        ours = OpenAIProvider(
            ModelConfig(provider="openai", name="fake", base_url=server.base_url + "/v1"),
            sweep=SweepConfig(stream=True))
        try:
            completion = await ours.complete(REQUEST)
        finally:
            await ours.aclose()
        return chunks, final, completion

    chunks, final, completion = asyncio.run(go())
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or ""
                        for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    assert (completion.text, completion.thinking) == (content, reasoning)
    assert completion.stop_reason == finish == "stop"
    assert completion.output_tokens == chunks[-1].usage.completion_tokens
    assert final.choices[0].message.content == content  # the SDK's own stream helper agrees
