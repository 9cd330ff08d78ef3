"""Streamed agent steps: identical to unstreamed ones, and through the providers' one exit.

As for single-turn samples (tests/test_streaming.py) the equivalence is proven twice:
in-process over arbitrary replies (thinking, text, tool calls with arbitrary JSON
arguments), each rendered as the whole body and as the stream the fake server sends,
the bytes cut at arbitrary points; and over sockets, the same step asked both ways.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_support import feed_in_pieces, live_model, stream_bytes
from test_agent_http import step_request as _step_request

from ttc.agent.envs.calculator import CALCULATOR_TOOLS
from ttc.agent.providers import AgentAnthropicProvider, AgentOpenAIProvider
from ttc.agent.streams import ToolChunkStream, ToolMessageStream
from ttc.agent.wire import (
    Entry,
    ToolRequest,
    ToolResult,
    Turn,
    parse_anthropic_turn,
    parse_openai_turn,
)
from ttc.config import ModelConfig, SweepConfig
from ttc.errors import (
    MalformedResponseError,
    OverloadedError,
    ServerError,
    StreamCutError,
)
from ttc.http import HttpxTransport
from ttc.providers.base import HTTPProvider, cap_text
from ttc.testing.fake_server import (
    FakeServer,
    FaultPlan,
    ToolReply,
    anthropic_events,
    render_tool_body,
    run_in_thread,
)
from ttc.testing.tools import ToolQuery

KEY = "sk-agent-stream-SECRET-9876543210"

# ------------------------------------------------------- in-process equivalence

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=200)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8)
_calls = st.lists(st.tuples(st.sampled_from(["calculate", "submit_answer", "go"]),
                            st.dictionaries(_text, _json, max_size=4)), max_size=3)


def _query(api: str, max_tokens: int | None) -> ToolQuery:
    return ToolQuery(api, "q", "", ("calculate",), 0, (), None, max_tokens, 0, 1)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    api=st.sampled_from(["anthropic", "openai"]),
    thinking=_text, text=_text, calls=_calls,
    max_tokens=st.one_of(st.none(), st.integers(1, 400)),
    words=st.integers(1, 30),
    limit=st.sampled_from([1024, 4 * 1024 * 1024]),
    cuts=st.lists(st.integers(0, 100_000), max_size=6),
)
def test_tool_stream_assembles_what_the_whole_body_says(
    api: str, thinking: str, text: str, calls: list[tuple[str, dict[str, Any]]],
    max_tokens: int | None, words: int, limit: int, cuts: list[int],
) -> None:
    reply = ToolReply(calls=tuple(calls), text=text * 4, thinking=thinking * 4)
    body = render_tool_body(api, {"model": "m", "messages": []},  # type: ignore[arg-type]
                            _query(api, max_tokens), reply)
    assembler: Any = ToolMessageStream(limit) if api == "anthropic" else ToolChunkStream(limit)
    parse = parse_anthropic_turn if api == "anthropic" else parse_openai_turn
    feed_in_pieces(assembler, stream_bytes(api, body, words), cuts)
    whole = parse(body)
    if api == "anthropic":  # the JSON text the stream carries
        streamed_json = [orjson.dumps(b["input"]).decode() for b in body["content"]
                         if b["type"] == "tool_use"]
    else:
        streamed_json = [c["function"]["arguments"]
                         for c in body["choices"][0]["message"].get("tool_calls", [])]
    if sum(map(len, streamed_json)) > limit:  # at the small limit: refused, never half-kept
        with pytest.raises(MalformedResponseError, match="max_text_bytes"):
            assembler.body()
        return
    streamed = parse(assembler.body())
    assert streamed.tool_calls == whole.tool_calls
    assert [json.loads(c.arguments) for c in streamed.tool_calls] == [
        args for _, args in calls][: len(streamed.tool_calls)]
    if "truncated" in cap_text(whole, limit).extra:  # act refuses both alike; the capped
        assert cap_text(streamed, limit) == whole  # completions agree (cap_text: in place)
        return
    assert streamed == whole


# ------------------------------------------------------------- over sockets


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with run_in_thread(record_limit=100) as srv:
        yield srv


def provider(server: FakeServer, api: str, **sweep: Any) -> HTTPProvider:
    cls = AgentAnthropicProvider if api == "anthropic" else AgentOpenAIProvider
    return cls(live_model(server, api), sweep=SweepConfig(**sweep))


FIRST = (Entry("user", text="What is 17 + 25?"),)


def step_request(conversation: tuple[Entry, ...], budget: int, step: int,
                 **kw: Any) -> ToolRequest:
    return _step_request(conversation, budget, step, tools=tuple(CALCULATOR_TOOLS), **kw)


def act(p: HTTPProvider, request: ToolRequest, deadline: float = 30.0) -> Turn:
    async def go() -> Turn:
        try:
            async with asyncio.timeout(deadline):
                return await p.act(request)  # type: ignore[attr-defined, no-any-return]
        finally:
            await p.aclose()

    return asyncio.run(go())


def two_steps(server: FakeServer, api: str, stream: bool, on_tokens: Any = None) -> list[Turn]:
    """Two steps of one conversation: the first reply goes back verbatim in the second."""
    turns: list[Turn] = []
    conversation = FIRST
    for step in (1, 2):
        request = step_request(conversation, 2048, step, on_tokens=on_tokens)
        turn = act(provider(server, api, stream=stream), request)
        turns.append(turn)
        results = tuple(ToolResult(c.id, "42") for c in turn.tool_calls)
        conversation = (*conversation, Entry("assistant", message=turn.message),
                        Entry("tool", results=results))
    return turns


@pytest.mark.parametrize("api", ["anthropic", "openai"])
@pytest.mark.parametrize(
    "plan", [FaultPlan(), FaultPlan(words_per_event=2, ping_every=2, event_delay_s=0.001)])
def test_live_streamed_step_equals_unstreamed(server: FakeServer, api: str,
                                              plan: FaultPlan) -> None:
    server.plan = plan
    server.reset()
    whole = two_steps(server, api, False)
    seen: list[tuple[int, int]] = []
    streamed = two_steps(server, api, True, lambda t, o: seen.append((t, o)))
    server.plan = FaultPlan()
    assert server.count == 4 and server.streamed == 2 and server.refused == 0
    for a, b in zip(whole, streamed, strict=True):
        assert a.response_id != b.response_id  # two requests, two ids ...
        assert dataclasses.replace(a, response_id=None) == dataclasses.replace(
            b, response_id=None)  # ... and otherwise the same step: calls, message, usage
    assert [c.name for c in streamed[0].tool_calls] == ["calculate"]
    assert json.loads(streamed[0].tool_calls[0].arguments) == {"expression": "17 + 25"}
    assert streamed[0].thinking and streamed[0].thinking_tokens > 0
    assert seen and seen[-1][1] >= seen[-1][0] > 0  # live token progress while streaming
    bodies = [r.body for r in server.requests]
    assert [b.get("stream", False) for b in bodies] == [False, False, True, True]


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_cut_and_error_events_on_tool_steps_carry_the_tokens_paid(
        server: FakeServer, api: str) -> None:
    request = step_request(FIRST, 2048, 1)
    server.plan = FaultPlan(at={server.count + 1: "cut"}, words_per_event=1)
    with pytest.raises(StreamCutError) as cut:
        act(provider(server, api, stream=True), request)
    assert cut.value.output_tokens > 3
    server.plan = FaultPlan(at={server.count + 1: "stream_error"}, words_per_event=1)
    with pytest.raises(OverloadedError if api == "anthropic" else ServerError) as failed:
        act(provider(server, api, stream=True), request)
    assert failed.value.output_tokens > 3
    server.plan = FaultPlan()


def _mock(reply: Any, *, stream: bool = False, status: int = 200) -> HttpxTransport:
    def handler(req: httpx.Request) -> httpx.Response:
        if stream:
            return httpx.Response(status, content=reply,
                                  headers={"content-type": "text/event-stream"})
        return httpx.Response(status, content=orjson.dumps(reply),
                              headers={"content-type": "application/json"})

    return HttpxTransport(httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def _anthropic(transport: HttpxTransport, **sweep: Any) -> AgentAnthropicProvider:
    return AgentAnthropicProvider(
        ModelConfig(provider="anthropic", name="c", api_key_env="TTC_AGENT_STREAM_KEY"),
        transport=transport, sweep=SweepConfig(**sweep))


def _tool_body(thinking: str = "hmm", output_tokens: int = 10) -> dict[str, Any]:
    q = _query("anthropic", None)
    body = render_tool_body("anthropic", {"model": "c", "messages": []}, q,
                            ToolReply(calls=(("calculate", {"expression": "1 + 1"}),),
                                      thinking=thinking))
    body["usage"]["output_tokens"] = output_tokens
    body["usage"]["output_tokens_details"]["thinking_tokens"] = min(output_tokens, 1)
    return body


@pytest.mark.parametrize("stream", [False, True])
def test_one_exit_refuses_impossible_usage_and_overlong_replies(
        stream: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_AGENT_STREAM_KEY", KEY)

    def serve(body: dict[str, Any], **sweep: Any) -> Turn:
        reply = b"".join(anthropic_events(body, 3)) if stream else body
        p = _anthropic(_mock(reply, stream=stream), stream=stream, **sweep)
        return act(p, step_request(FIRST, 1024, 1))

    assert serve(_tool_body()).tool_calls  # a sane reply passes ...
    with pytest.raises(MalformedResponseError, match="impossible usage"):
        serve(_tool_body(output_tokens=10**6))  # ... more output than max_tokens allows
    with pytest.raises(MalformedResponseError, match="max_text_bytes") as long:
        serve(_tool_body(thinking="x" * 3000), max_text_bytes=1024)
    assert long.value.output_tokens > 0  # what was paid for reaches the token bucket


def test_the_key_is_scrubbed_from_step_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_AGENT_STREAM_KEY", KEY)
    echo = {"type": "error", "error": {"type": "invalid_request_error",
                                       "message": f"bad header x-api-key: {KEY[:-3]}"}}
    with pytest.raises(Exception) as caught:
        act(_anthropic(_mock(echo, status=400)), step_request(FIRST, 1024, 1))
    assert KEY[:12] not in str(caught.value) and "***" in str(caught.value)


def test_thinking_missing_or_altered_is_refused_as_the_api_does(server: FakeServer) -> None:
    turn = act(provider(server, "anthropic"), step_request(FIRST, 2048, 1))
    results = (ToolResult(turn.tool_calls[0].id, "42"),)
    content = turn.message["content"]
    assert content[0]["type"] == "thinking"
    altered = [{**content[0], "thinking": content[0]["thinking"] + " (edited)"}, *content[1:]]
    for blocks, message in [(altered, "Invalid `signature` in `thinking` block"),
                            (content[1:], "must start with a thinking block")]:
        conversation = (*FIRST, Entry("assistant", message={"role": "assistant",
                                                            "content": blocks}),
                        Entry("tool", results=results))
        with pytest.raises(Exception, match="HTTP 400") as refused:
            act(provider(server, "anthropic"), step_request(conversation, 2048, 2))
        assert message in str(refused.value)
    # and the verbatim message passes
    conversation = (*FIRST, Entry("assistant", message=turn.message),
                    Entry("tool", results=results))
    assert act(provider(server, "anthropic"), step_request(conversation, 2048, 2)).tool_calls



# ------------------------------------------------- the retry policy (marked copy)


def test_one_deadline_per_attempt_cuts_a_stalled_tool_stream(
        server: FakeServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3
    import time

    from test_agent_http import _config

    from ttc.agent.runner import AgentSweep
    from ttc.config import load_config

    monkeypatch.setenv("TTC_AGENT_TEST_KEY", KEY)
    server.reset()
    server.plan = FaultPlan(at={1: "stall"}, hang_s=20.0, words_per_event=1)
    path = _config(tmp_path, server.base_url, "openai", problems=1, samples=1,
                   extra="stream = true\ntimeout_s = 0.5\nidle_timeout_s = 30")
    started = time.monotonic()
    try:
        result = asyncio.run(AgentSweep(load_config(path), tmp_path / "run").run())
    finally:
        server.plan = FaultPlan()
    assert time.monotonic() - started < 10  # the 0.5 s deadline, not the 20 s stall
    assert (result.ended, result.failed, result.steps) == (1, 0, 3)
    with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
        attempts = db.execute("SELECT step, attempts FROM steps ORDER BY step").fetchall()
    assert attempts == [(1, 2), (2, 1), (3, 1)] and server.count == 4


def test_retry_policy_aborts_fails_and_times_out() -> None:
    from ttc.errors import FatalAPIError, RedirectRefusedError
    from ttc.providers.base import Completion
    from ttc.ratelimit import RequestLimiter, TokenBucket
    from ttc.retry import AttemptsFailed, call_with_retries
    from ttc.sampler import SweepAborted

    sweep = SweepConfig(max_attempts=3, timeout_s=0.05, backoff_base_s=0.001,
                        backoff_max_s=0.002)
    calls: list[int] = []

    def run(behaviour: Any) -> Any:
        async def call(live: Any) -> Completion:
            calls.append(1)
            return await behaviour(live)

        return asyncio.run(call_with_retries(
            call, sweep=sweep, requests=RequestLimiter(0), tokens=TokenBucket(0), reserve=10))

    async def redirect(live: Any) -> Completion:
        raise RedirectRefusedError("redirect refused", status=307)

    async def bad_request(live: Any) -> Completion:
        raise FatalAPIError("bad request", status=400)

    async def stall(live: Any) -> Completion:
        live(5, 40)  # a stream that got somewhere, then stalled
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    with pytest.raises(SweepAborted):
        run(redirect)
    with pytest.raises(AttemptsFailed) as failed:
        run(bad_request)
    assert failed.value.attempts == 1
    calls.clear()
    with pytest.raises(AttemptsFailed, match="no response within 0.05s") as timed_out:
        run(stall)
    assert timed_out.value.attempts == 3 == len(calls)
