"""The official SDKs drive the fake server's tool use, whole and streamed, through a whole
tool loop: if its tool-use replies or streams (``input_json_delta``, ``delta.tool_calls``
fragments) had the wrong shape, the SDKs' own typed models and accumulators would reject
them or assemble something else; and ttc's assembly of the same steps must agree."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from ttc.agent.envs.calculator import CALCULATOR_TOOLS
from ttc.agent.protocol import ToolCall
from ttc.agent.providers import AgentAnthropicProvider, AgentOpenAIProvider
from ttc.agent.safe_arith import evaluate, format_number
from ttc.agent.wire import Entry, ToolRequest, ToolResult, anthropic_tools, openai_tools
from ttc.config import ModelConfig, SweepConfig
from ttc.problems import Problem
from ttc.testing.fake_server import FakeServer, FaultPlan, run_in_thread

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

QUESTION = "What is 17 + 25?"
BUDGET = 2048


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with run_in_thread(plan=FaultPlan(words_per_event=3, ping_every=4)) as srv:
        yield srv


def _result(name: str, arguments: dict[str, Any]) -> str:
    return format_number(evaluate(arguments["expression"])) if name == "calculate" else "ok"


async def _ttc_calls(provider: Any, conversation: list[Entry]) -> list[ToolCall]:
    """ttc's own streamed step on the same conversation (call ids hash the exact request
    bytes, which differ from the SDK's, so callers compare names and arguments)."""
    request = ToolRequest(Problem("p", QUESTION, "42"), "", BUDGET, 0,
                          conversation=tuple(conversation), tools=tuple(CALCULATOR_TOOLS),
                          step=len(conversation))
    try:
        return list((await provider.act(request)).tool_calls)
    finally:
        await provider.aclose()


def test_anthropic_sdk_runs_the_tool_loop_whole_and_streamed(server: FakeServer) -> None:
    server.reset()
    params: dict[str, Any] = {
        "model": "claude-fake", "max_tokens": BUDGET + 1024,
        "thinking": {"type": "enabled", "budget_tokens": BUDGET},
        "tools": anthropic_tools(CALCULATOR_TOOLS),
    }

    async def go() -> list[str]:
        client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="k", max_retries=0)
        messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        conversation = [Entry("user", text=QUESTION)]
        names: list[str] = []
        for _ in range(6):
            whole = await client.messages.create(messages=messages, **params)
            async with client.messages.stream(messages=messages, **params) as stream:
                kinds = {event.type async for event in stream}
                final = await stream.get_final_message()
            assert "input_json" in kinds and "thinking" in kinds  # typed SDK stream events
            # the SDK's assembly of the stream equals its parse of the whole reply
            assert [b.to_dict() for b in final.content] == [b.to_dict() for b in whole.content]
            assert final.stop_reason == whole.stop_reason == "tool_use"
            uses = [b for b in whole.content if b.type == "tool_use"]
            assert len(uses) == 1 and whole.content[0].type == "thinking"
            ours = await _ttc_calls(AgentAnthropicProvider(
                ModelConfig(provider="anthropic", name="claude-fake", base_url=server.base_url),
                sweep=SweepConfig(stream=True)), conversation)
            assert [(c.name, json.loads(c.arguments)) for c in ours] == [
                (u.name, u.input) for u in uses]
            names.append(uses[0].name)
            if uses[0].name == "submit_answer":
                assert uses[0].input == {"answer": "42"}
                break
            assistant = {"role": "assistant", "content": [b.to_dict() for b in whole.content]}
            result = _result(uses[0].name, uses[0].input)
            messages += [assistant, {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": result}]}]
            conversation += [Entry("assistant", message=assistant),
                             Entry("tool", results=(ToolResult(uses[0].id, result),))]
        await client.close()
        return names

    assert asyncio.run(go()) == ["calculate", "calculate", "submit_answer"]
    assert server.refused == 0 and server.streamed > 0


def test_openai_sdk_runs_the_tool_loop_whole_and_streamed(server: FakeServer) -> None:
    server.reset()
    params: dict[str, Any] = {
        "model": "fake", "max_completion_tokens": BUDGET + 1024, "seed": 3,
        "tools": openai_tools(CALCULATOR_TOOLS), "parallel_tool_calls": False,
        "extra_body": {"thinking_token_budget": BUDGET},
    }

    async def go() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)
        messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        conversation = [Entry("user", text=QUESTION)]
        names: list[str] = []
        for _ in range(6):
            whole = await client.chat.completions.create(messages=messages, **params)
            stream = await client.chat.completions.create(
                messages=messages, stream=True, stream_options={"include_usage": True}, **params)
            chunks = [chunk async for chunk in stream]
            async with client.chat.completions.stream(messages=messages, **params) as helper:
                final = await helper.get_final_completion()
            fragments = [f for c in chunks if c.choices
                         for f in c.choices[0].delta.tool_calls or []]
            assert len(fragments) > 2 and fragments[0].id and fragments[0].function.name
            assert all(f.id is None for f in fragments[1:])  # argument pieces only
            calls = whole.choices[0].message.tool_calls
            assert whole.choices[0].finish_reason == "tool_calls" and len(calls) == 1
            streamed = "".join(f.function.arguments or "" for f in fragments)
            assert streamed == calls[0].function.arguments
            helper_calls = final.choices[0].message.tool_calls
            assert [(c.id, c.function.name, c.function.arguments) for c in helper_calls] == [
                (c.id, c.function.name, c.function.arguments) for c in calls]
            ours = await _ttc_calls(AgentOpenAIProvider(
                ModelConfig(provider="openai", name="fake", base_url=server.base_url + "/v1"),
                sweep=SweepConfig(stream=True)), conversation)
            assert [(c.name, c.arguments) for c in ours] == [
                (c.function.name, c.function.arguments) for c in calls]
            name, arguments = calls[0].function.name, json.loads(calls[0].function.arguments)
            names.append(name)
            if name == "submit_answer":
                assert arguments == {"answer": "42"}
                break
            assistant = whole.choices[0].message.model_dump(
                exclude_none=True, include={"role", "content", "tool_calls"})
            assistant.setdefault("content", None)
            result = _result(name, arguments)
            messages += [assistant, {"role": "tool", "tool_call_id": calls[0].id,
                                     "content": result}]
            conversation += [Entry("assistant", message=assistant),
                             Entry("tool", results=(ToolResult(calls[0].id, result),))]
        await client.close()
        return names

    assert asyncio.run(go()) == ["calculate", "calculate", "submit_answer"]
    assert server.refused == 0 and server.streamed > 0
