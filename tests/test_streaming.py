"""Streamed samples: identical to unstreamed ones, and every way a stream can fail.

The equivalence is proven twice: in-process over arbitrary responder outputs (each
rendered as the non-streaming body and as the stream the fake server would send, the
bytes cut at arbitrary points), and over real sockets against the fake server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_support import feed_in_pieces, live_model, stream_bytes

from ttc.config import ModelConfig, SweepConfig
from ttc.errors import (
    ConfigError,
    MalformedResponseError,
    OverloadedError,
    ServerError,
    StreamCutError,
)
from ttc.http import HttpxTransport
from ttc.problems import Problem
from ttc.providers.anthropic import AnthropicProvider, MessageStream, parse_message
from ttc.providers.base import Completion, HTTPProvider, SampleRequest, cap_text
from ttc.providers.openai import ChunkStream, OpenAIProvider, parse_chat_completion
from ttc.testing.fake_server import (
    FakeServer,
    FaultPlan,
    Query,
    Reply,
    openai_events,
    render_body,
    run_in_thread,
)

PROBLEM = Problem(id="p1", question="What is 3 + 4?", answer="7")


def request(budget: int | str = 2048, seed: int = 0, **kw: Any) -> SampleRequest:
    return SampleRequest(PROBLEM, "What is 3 + 4?", budget, 0, seed=seed, **kw)


# ------------------------------------------------------- in-process equivalence

_words = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(
    api=st.sampled_from(["anthropic", "openai"]),
    thinking=_words,
    text=_words,
    redacted=st.integers(0, 2),
    max_tokens=st.one_of(st.none(), st.integers(1, 80)),
    words=st.integers(1, 40),
    reported=st.booleans(),
    reasoning_field=st.sampled_from(["reasoning_content", "reasoning"]),
    limit=st.sampled_from([1024, 4 * 1024 * 1024]),
    cuts=st.lists(st.integers(0, 100_000), max_size=6),
)
def test_stream_assembles_what_the_unstreamed_body_says(
    api: str, thinking: str, text: str, redacted: int, max_tokens: int | None, words: int,
    reported: bool, reasoning_field: str, limit: int, cuts: list[int],
) -> None:
    reply = Reply(text=text * 5, thinking=thinking * 5, redacted_thinking=redacted)
    query = Query(api, "q", "", None, max_tokens, 0, 1)  # type: ignore[arg-type]
    body = render_body(api, {"model": "m"}, query, reply,  # type: ignore[arg-type]
                       report_thinking_tokens=reported, reasoning_field=reasoning_field)
    assembler: Any = MessageStream(limit) if api == "anthropic" else ChunkStream(limit)
    parse = parse_message if api == "anthropic" else parse_chat_completion
    feed_in_pieces(assembler, stream_bytes(api, body, words), cuts)
    streamed = cap_text(parse(assembler.body()), limit)
    assert streamed == cap_text(parse(body), limit)


# ------------------------------------------------------------- over sockets


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with run_in_thread(record_limit=50) as srv:
        yield srv


def provider(server: FakeServer, api: str, **sweep: Any) -> HTTPProvider:
    cls = AnthropicProvider if api == "anthropic" else OpenAIProvider
    return cls(live_model(server, api), sweep=SweepConfig(**sweep))


def run(p: HTTPProvider, req: SampleRequest | None = None, deadline: float = 30.0) -> Completion:
    async def go() -> Completion:
        try:
            async with asyncio.timeout(deadline):
                return await p.complete(req or request(seed=7))
        finally:
            await p.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("api", ["anthropic", "openai"])
@pytest.mark.parametrize(
    "plan", [FaultPlan(), FaultPlan(words_per_event=4, ping_every=2, event_delay_s=0.002)]
)
def test_live_stream_equals_unstreamed(server: FakeServer, api: str, plan: FaultPlan) -> None:
    server.plan = plan
    server.reset()
    whole = run(provider(server, api, stream=False), request(2048, seed=7))
    seen: list[tuple[int, int]] = []
    streamed = run(provider(server, api, stream=True),
                   request(2048, seed=7, on_tokens=lambda t, o: seen.append((t, o))))
    assert server.streamed == 1 and server.count == 2
    assert streamed.response_id != whole.response_id  # two requests, two ids ...
    assert dataclasses.replace(streamed, response_id=None) == dataclasses.replace(
        whole, response_id=None)  # ... and otherwise the same sample
    assert streamed.thinking_tokens > 0 and not streamed.thinking_estimated
    # the listener saw the thinking grow (once per chunk received: many when events trickle)
    assert seen and seen == sorted(seen)
    assert len(seen) > 10 or not plan.event_delay_s
    assert seen[-1][1] >= seen[-1][0] > 0
    body = server.requests[-1].body
    assert body["stream"] is True
    assert ("stream_options" in body) == (api == "openai")


def test_auto_streams_only_long_requests(server: FakeServer) -> None:
    short, long_ = request(2048), request(64000)
    anthropic = provider(server, "anthropic")
    assert not anthropic.streams(short.budget) and anthropic.streams(long_.budget)
    assert "stream" not in anthropic.build_body(short)  # type: ignore[attr-defined]
    openai = provider(server, "openai")
    assert openai.streams("xhigh") and not openai.streams("medium")
    assert provider(server, "openai", stream=True).streams(16)
    assert not provider(server, "openai", stream=False).streams(10**6)


def test_stream_false_refused_where_the_api_requires_a_stream(server: FakeServer) -> None:
    never = provider(server, "anthropic", stream=False)
    never.check_budget(20000)  # 21,024 tokens: within the 10-minute rule
    with pytest.raises(ConfigError, match="sweep.stream = false"):
        never.check_budget(32000)
    provider(server, "openai", stream=False).check_budget(10**6)  # no such rule
    opus = AnthropicProvider(ModelConfig(provider="anthropic", name="claude-opus-4-0"),
                             sweep=SweepConfig(stream=False))
    with pytest.raises(ConfigError):
        opus.check_budget(8192)


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_cut_and_error_events_carry_the_tokens_already_paid(
    server: FakeServer, api: str
) -> None:
    server.plan = FaultPlan(at={server.count + 1: "cut"}, words_per_event=4)
    with pytest.raises(StreamCutError) as cut:
        run(provider(server, api, stream=True))
    assert cut.value.output_tokens > 10
    server.plan = FaultPlan(at={server.count + 1: "stream_error"}, words_per_event=4)
    expected = OverloadedError if api == "anthropic" else ServerError
    with pytest.raises(expected) as failed:
        run(provider(server, api, stream=True))
    assert failed.value.output_tokens > 10
    assert "injected fault: stream_error" in str(failed.value)
    server.plan = FaultPlan()


@pytest.mark.parametrize("fault", ["stall", "hang"])
def test_idle_timeout_is_a_dropped_connection(server: FakeServer, fault: str) -> None:
    server.plan = FaultPlan(at={server.count + 1: fault}, hang_s=20.0)
    started = asyncio.get_event_loop_policy()  # noqa: F841 - keep the policy alive
    import time

    t0 = time.perf_counter()
    with pytest.raises(StreamCutError, match="sent nothing for 0.3s"):
        run(provider(server, "anthropic", stream=True, idle_timeout_s=0.3))
    assert time.perf_counter() - t0 < 20.0  # cut by the idle limit, not by the hang ending
    server.plan = FaultPlan()


def test_slow_but_steady_stream_outlives_the_idle_limit(server: FakeServer) -> None:
    import time

    # events 0.1 s apart against a 1 s idle limit: the margin is wide because the
    # server shares this process (and its GIL) with the client, so a pause of the whole
    # process (a garbage collection of the full suite) delays the next event for both
    server.plan = FaultPlan(event_delay_s=0.1, words_per_event=40)
    t0 = time.perf_counter()
    result = run(provider(server, "openai", stream=True, idle_timeout_s=1.0), request(1024))
    assert time.perf_counter() - t0 > 2.0  # far longer than the idle limit, and fine
    assert result.stop_reason == "stop"
    # the total deadline still holds over a stream that keeps talking
    with pytest.raises(TimeoutError):
        run(provider(server, "openai", stream=True, idle_timeout_s=1.0), request(1024),
            deadline=0.5)
    server.plan = FaultPlan()


def test_stream_request_answered_with_plain_json_and_httpx_streams() -> None:
    body = render_body("openai", {"model": "m"}, Query("openai", "q", "", None, None, 0, 1),
                       Reply(text="The answer is 7.", thinking="three and four"))
    events = b"".join(openai_events(body, 2, include_usage=True))

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("as") == "json":
            return httpx.Response(200, json=body)
        return httpx.Response(200, content=events, headers={"content-type": "text/event-stream"})

    results = []
    for url in ("http://x/v1?as=json", "http://x/v1"):
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        p = OpenAIProvider(ModelConfig(provider="openai", name="m", base_url=url),
                           transport=HttpxTransport(client), sweep=SweepConfig(stream=True))
        results.append(run(p))
    assert results[0] == results[1] == parse_chat_completion(body)


def test_malformed_streams_are_retryable() -> None:
    def serve(raw: bytes) -> Completion:
        client = httpx.AsyncClient(transport=httpx.MockTransport(
            lambda req: httpx.Response(200, content=raw,
                                       headers={"content-type": "text/event-stream"})))
        return run(AnthropicProvider(ModelConfig(provider="anthropic", name="c"),
                                     transport=HttpxTransport(client),
                                     sweep=SweepConfig(stream=True)))

    with pytest.raises(MalformedResponseError, match="message_start"):
        serve(b'event: content_block_delta\ndata: {"type": "content_block_delta"}\n\n')
    with pytest.raises(MalformedResponseError, match="not JSON"):
        serve(b"event: message_start\ndata: {oops\n\n")
    with pytest.raises(StreamCutError, match="before its end event"):
        serve(b'event: message_start\ndata: {"type": "message_start", "message": {}}\n\n')
