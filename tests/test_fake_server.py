"""The loopback server itself: fault plans are deterministic, answers behave like a
thinking model (accuracy rises with budget, max_tokens cuts off), all three wire
formats and the control endpoints work, in a thread and in a child process."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ttc.testing.fake_server import (
    FAULTS,
    FakeServer,
    FaultPlan,
    Query,
    Reply,
    arithmetic_responder,
    run_in_thread,
    sign_thinking,
    start_subprocess,
)

__all__: list[str] = []

BOXED = re.compile(r"\\boxed\{(-?\d+)\}")


def query(prompt: str, budget: int | None, seed: int = 0, **kw: Any) -> Query:
    return Query("anthropic", prompt, "", budget, None, seed, 1, **kw)


# ---------------------------------------------------------------- fault plans


def test_plan_rejects_unknown_faults_and_bad_rates() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(at={1: "explode"})
    with pytest.raises(ValueError, match="sum"):
        FaultPlan(rates={"drop": 0.7, "hang": 0.4})
    with pytest.raises(ValueError, match="unknown FaultPlan keys"):
        FaultPlan.from_dict({"rate": {"drop": 0.1}})
    with pytest.raises(ValueError, match="words_per_event"):
        FaultPlan(words_per_event=0)


def test_plan_precedence_at_then_per_body_then_rates() -> None:
    plan = FaultPlan(at={3: "drop"}, per_body=("rate_limit", "overloaded"), rates={"hang": 1.0})
    assert plan.choose(3, 0) == "drop"
    assert [plan.choose(9, a) for a in range(3)] == ["rate_limit", "overloaded", "hang"]
    assert FaultPlan().choose(1, 0) is None


def test_rates_are_deterministic_and_close_to_target() -> None:
    plan = FaultPlan(rates={"rate_limit": 0.2, "server_error": 0.05}, seed=7)
    draws = [plan.choose(n, 0) for n in range(1, 20001)]
    assert draws == [plan.choose(n, 0) for n in range(1, 20001)]
    assert abs(draws.count("rate_limit") / 20000 - 0.2) < 0.015
    assert abs(draws.count("server_error") / 20000 - 0.05) < 0.008
    other = FaultPlan(rates={"rate_limit": 0.2, "server_error": 0.05}, seed=8)
    assert draws != [other.choose(n, 0) for n in range(1, 20001)]


def test_plan_from_json_dict() -> None:
    plan = FaultPlan.from_dict({"at": {"2": "hang"}, "per_body": ["drop"], "latency_s": 0.5})
    assert (plan.at, plan.per_body, plan.latency_s) == ({2: "hang"}, ("drop",), 0.5)


# ---------------------------------------------------------- default responder


def test_responder_accuracy_rises_with_budget_and_thinking_respects_it() -> None:
    def accuracy(budget: int) -> float:
        right = 0
        for i in range(300):
            a, b = 17 + i, 5 + 3 * i
            reply = arithmetic_responder(query(f"What is {a} + {b}?", budget, seed=i))
            assert len(reply.thinking.split()) <= budget
            match = BOXED.search(reply.text)
            assert match is not None
            right += int(match.group(1)) == a + b
        return right / 300

    low, mid, high = accuracy(64), accuracy(1024), accuracy(8192)
    assert low < 0.3 < mid < high
    assert high > 0.8


def test_responder_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    replies = [arithmetic_responder(query("What is 12 * 12?", 9999, seed=s)) for s in range(40)]
    again = [arithmetic_responder(query("What is 12 * 12?", 9999, seed=s)) for s in range(40)]
    assert replies == again
    assert len({r.text for r in replies}) > 1
    assert len({len(r.thinking.split()) for r in replies}) > 1
    assert any("\\boxed{144}" in r.text for r in replies)


def test_responder_thinking_scales_with_budget_until_need() -> None:
    lengths = [
        len(arithmetic_responder(query("What is 9 - 30?", b, seed=1)).thinking.split())
        for b in (16, 64, 256, 100_000)
    ]
    assert lengths[:3] == [16, 64, 256]
    assert 256 <= lengths[3] < 100_000


# ----------------------------------------------------------------- over HTTP


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    with run_in_thread(record_limit=5) as srv:
        yield srv


def post(server: FakeServer, path: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(server.base_url + path, json=body, timeout=kw.pop("timeout", 5.0), **kw)


def messages_body(budget: int = 2048, max_tokens: int = 3072) -> dict[str, Any]:
    return {
        "model": "claude-fake",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "What is 40 + 2?"}],
        "thinking": {"type": "enabled", "budget_tokens": budget},
    }


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "What is 40 + 2?"}], **extra}


def test_health_and_anthropic_shape(server: FakeServer) -> None:
    assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
    data = post(server, "/v1/messages", messages_body()).json()
    assert data["type"] == "message" and data["stop_reason"] == "end_turn"
    kinds = [block["type"] for block in data["content"]]
    assert kinds == ["thinking", "text"]
    thinking_words = len(data["content"][0]["thinking"].split())
    assert data["usage"]["output_tokens_details"]["thinking_tokens"] == thinking_words
    assert data["usage"]["input_tokens"] == 5  # words of "What is 40 + 2?"


def test_max_tokens_cuts_off(server: FakeServer) -> None:
    data = post(server, "/v1/messages", messages_body(budget=4096, max_tokens=30)).json()
    assert data["stop_reason"] == "max_tokens" and data["usage"]["output_tokens"] == 30
    chat = post(server, "/v1/chat/completions", chat_body(max_completion_tokens=25)).json()
    assert chat["choices"][0]["finish_reason"] == "length"
    assert chat["usage"]["completion_tokens"] == 25


def test_openai_budget_and_effort_fields(server: FakeServer) -> None:
    budgeted = post(
        server, "/v1/chat/completions", chat_body(thinking_token_budget=40, max_tokens=4000)
    ).json()
    assert budgeted["usage"]["completion_tokens_details"]["reasoning_tokens"] <= 40
    message = budgeted["choices"][0]["message"]
    assert len(message["reasoning_content"].split()) <= 40
    assert BOXED.search(message["content"])
    effort = post(server, "/v1/chat/completions", chat_body(reasoning_effort="low")).json()
    assert effort["choices"][0]["finish_reason"] == "stop"


def test_reasoning_field_and_unreported_tokens() -> None:
    with run_in_thread(reasoning_field="reasoning", report_thinking_tokens=False) as srv:
        data = post(srv, "/v1/chat/completions", chat_body()).json()
        data_a = post(srv, "/v1/messages", messages_body()).json()
    assert "reasoning" in data["choices"][0]["message"]
    assert "completion_tokens_details" not in data["usage"]
    assert "output_tokens_details" not in data_a["usage"]


def test_legacy_completions_for_budget_forcing(server: FakeServer) -> None:
    head = "<|im_start|>user\nWhat is 40 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    think = post(
        server, "/v1/completions", {"prompt": head, "max_tokens": 100000, "stop": ["</think>"]}
    ).json()
    choice = think["choices"][0]
    assert choice["finish_reason"] == "stop" and "</think>" not in choice["text"]
    assert think["usage"]["completion_tokens"] == len(choice["text"].split())
    short = post(server, "/v1/completions", {"prompt": head, "max_tokens": 10}).json()
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["usage"]["completion_tokens"] == 10
    answer_prompt = head + choice["text"] + "\n</think>\nFinal answer: "
    answer = post(server, "/v1/completions", {"prompt": answer_prompt, "max_tokens": 50}).json()
    assert "</think>" not in answer["choices"][0]["text"]
    assert BOXED.search(answer["choices"][0]["text"])


def test_faults_over_http(server: FakeServer) -> None:
    for fault, status in FAULTS.items():
        if fault in ("drop", "hang") or not status:
            continue
        server.plan = FaultPlan(at={server.count + 1: fault}, retry_after_s=0.125)
        response = post(server, "/v1/messages", messages_body())
        assert response.status_code == status
        assert response.json()["type"] == "error"
        if status in (429, 503, 529):
            assert response.headers["retry-after"] == "0.125"
            assert response.headers["retry-after-ms"] == "125"
    server.plan = FaultPlan(at={server.count + 1: "malformed_json"})
    with pytest.raises(ValueError):
        post(server, "/v1/chat/completions", chat_body()).json()
    server.plan = FaultPlan(at={server.count + 1: "drop"})
    with pytest.raises(httpx.TransportError):
        post(server, "/v1/chat/completions", chat_body())
    server.plan = FaultPlan(at={server.count + 1: "hang"}, hang_s=10.0)
    start = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        post(server, "/v1/chat/completions", chat_body(), timeout=0.3)
    assert time.perf_counter() - start < 10.0  # the client's 0.3 s, before the hang ended
    assert server.faults["hang"] == 1 and server.faults["drop"] == 1


def test_per_body_faults_then_success(server: FakeServer) -> None:
    server.plan = FaultPlan(per_body=("rate_limit", "server_error"))
    codes = [post(server, "/v1/messages", messages_body()).status_code for _ in range(3)]
    assert codes == [429, 500, 200]
    other = post(server, "/v1/messages", messages_body(budget=1024))  # a different body
    assert other.status_code == 429


def test_recording_is_capped_and_keeps_headers(server: FakeServer) -> None:
    for i in range(8):
        post(server, "/v1/chat/completions", chat_body(seed=i), headers={"x-trace": str(i)})
    assert server.count == 8 and len(server.requests) == 5
    assert [r.body["seed"] for r in server.requests] == [3, 4, 5, 6, 7]
    assert server.requests[-1].headers["x-trace"] == "7"


def test_latency_and_control_endpoints(server: FakeServer) -> None:
    ok = httpx.post(server.base_url + "/_fake/plan", json={"latency_s": 0.3})
    assert ok.status_code == 200 and server.plan.latency_s == 0.3
    start = time.perf_counter()
    assert post(server, "/v1/messages", messages_body()).status_code == 200
    assert time.perf_counter() - start >= 0.3
    bad = httpx.post(server.base_url + "/_fake/plan", json={"at": {"1": "nope"}})
    assert bad.status_code == 400 and "unknown fault" in bad.json()["error"]["message"]
    stats = httpx.get(server.base_url + "/_fake/stats").json()
    assert stats == {"requests": 1, "streamed": 0, "faults": {}, "refused": 0}


def test_invalid_requests_get_400(server: FakeServer) -> None:
    raw = httpx.post(server.base_url + "/v1/messages", content=b"not json")
    assert raw.status_code == 400
    assert post(server, "/v1/messages", {"model": "m"}).status_code == 400


def test_custom_responder() -> None:
    def responder(q: Query) -> Reply:
        return Reply(text=f"echo {q.prompt} seed={q.seed}", thinking="a b c")

    with run_in_thread(responder=responder) as srv:
        data = post(srv, "/v1/chat/completions", chat_body(seed=9)).json()
    message = data["choices"][0]["message"]
    assert message["content"] == "echo What is 40 + 2? seed=9"
    assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3


def test_subprocess_server() -> None:
    with start_subprocess(rates={"rate_limit": 1.0}) as proc:
        assert httpx.get(proc.base_url + "/health").status_code == 200
        assert post_url(proc.base_url, "/v1/chat/completions").status_code == 429
        httpx.post(proc.base_url + "/_fake/plan", json={})
        assert post_url(proc.base_url, "/v1/chat/completions").status_code == 200
        assert httpx.get(proc.base_url + "/_fake/stats").json()["requests"] == 2
    assert proc.process.poll() is not None


def post_url(base_url: str, path: str) -> httpx.Response:
    return httpx.post(base_url + path, json=chat_body(), timeout=5.0)


# ------------------------------------------------------------------- streams


def sse(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event name, decoded data) of a whole SSE body, decoded with ttc's own decoder."""
    import orjson

    from ttc.sse import SSEDecoder

    decoder = SSEDecoder()
    events = decoder.feed(response.content) + decoder.close()
    return [(e.event, e.data if e.data == b"[DONE]" else orjson.loads(e.data)) for e in events]


def test_anthropic_stream_shape_and_stats(server: FakeServer) -> None:
    server.plan = FaultPlan(words_per_event=50, ping_every=3)
    whole = post(server, "/v1/messages", messages_body()).json()
    response = post(server, "/v1/messages", {**messages_body(), "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("ping") > 1  # the one after message_start, then every 3 events
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    thinking = "".join(d.get("thinking", "") for d in deltas if d["type"] == "thinking_delta")
    text = "".join(d.get("text", "") for d in deltas if d["type"] == "text_delta")
    assert thinking == whole["content"][0]["thinking"] and text == whole["content"][1]["text"]
    assert {"type": "signature_delta", "signature": "fake"} in deltas
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == whole["stop_reason"]
    assert final["usage"]["output_tokens"] == whole["usage"]["output_tokens"]
    stats = httpx.get(server.base_url + "/_fake/stats").json()
    assert (stats["requests"], stats["streamed"]) == (2, 1)


def test_openai_stream_shape_with_and_without_usage(server: FakeServer) -> None:
    server.plan = FaultPlan(words_per_event=7)
    whole = post(server, "/v1/chat/completions", chat_body(seed=4)).json()
    streamed = sse(post(server, "/v1/chat/completions", chat_body(
        seed=4, stream=True, stream_options={"include_usage": True})))
    assert streamed[-1] == ("message", b"[DONE]")
    chunks = [data for _, data in streamed[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and "usage" in c for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    message = whole["choices"][0]["message"]
    assert "".join(d.get("content") or "" for d in deltas) == message["content"]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == (
        message["reasoning_content"])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    plain = sse(post(server, "/v1/chat/completions", chat_body(seed=4, stream=True)))
    assert all("usage" not in data for _, data in plain[:-1])  # no include_usage: none


def test_legacy_completions_stream(server: FakeServer) -> None:
    head = "<|im_start|>user\nWhat is 40 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    body = {"prompt": head, "max_tokens": 30, "stream": True,
            "stream_options": {"include_usage": True}}
    chunks = [d for _, d in sse(post(server, "/v1/completions", body))[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == " ".join(
        ["Compute", "40", "+", "2", "step", "by", "step."] + ["hmm"] * 23)
    assert chunks[-1]["usage"]["completion_tokens"] == 30


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
def test_stream_faults(server: FakeServer, path: str) -> None:
    body = {**messages_body(), "stream": True} if path == "/v1/messages" else chat_body(
        stream=True)
    server.plan = FaultPlan(at={server.count + 1: "stream_error"})
    events = sse(post(server, path, body))
    assert len(events) > 3 and all("error" not in data for _, data in events[:-1])
    name, data = events[-1]
    error = data["error"]
    assert error["message"] == "injected fault: stream_error"
    assert (name, error["type"]) == (
        ("error", "overloaded_error") if path == "/v1/messages" else ("message", "server_error"))
    server.plan = FaultPlan(at={server.count + 1: "cut"})
    with pytest.raises(httpx.TransportError):  # chunked body never finished
        post(server, path, body)
    server.plan = FaultPlan(at={server.count + 1: "stall"}, hang_s=10.0)
    start = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        post(server, path, body, timeout=0.3)
    assert time.perf_counter() - start < 10.0  # the client's 0.3 s, before the stall ended
    assert server.faults["cut"] == server.faults["stall"] == server.faults["stream_error"] == 1


def test_stream_faults_on_unstreamed_requests(server: FakeServer) -> None:
    server.plan = FaultPlan(at={server.count + 1: "stream_error"})
    response = post(server, "/v1/messages", messages_body())
    assert response.status_code == 200 and response.json()["type"] == "error"
    server.plan = FaultPlan(at={server.count + 1: "cut"})
    with pytest.raises(httpx.TransportError):
        post(server, "/v1/chat/completions", chat_body())


def test_slow_stream_spaces_events(server: FakeServer) -> None:
    server.plan = FaultPlan(event_delay_s=0.05, words_per_event=400)
    start = time.perf_counter()
    events = sse(post(server, "/v1/messages", {**messages_body(budget=1024), "stream": True}))
    assert time.perf_counter() - start >= 0.05 * (len(events) - 1) * 0.9


# ----------------------------------------------------------- the tool model

_TOOLS_A = [{"name": "calculate", "description": "math", "input_schema": {"type": "object"}},
            {"name": "submit_answer", "description": "end", "input_schema": {"type": "object"}}]
_TOOLS_O = [{"type": "function", "function": {"name": t["name"], "description": "x",
                                              "parameters": {"type": "object"}}}
            for t in _TOOLS_A]


def tool_messages_body(messages: list[dict[str, Any]], thinking: bool = True) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 3072, "messages": messages, "tools": _TOOLS_A,
            "thinking": {"type": "enabled", "budget_tokens": 2048} if thinking else
            {"type": "disabled"}}


def test_tool_model_scripts_calls_and_signs_its_thinking(server: FakeServer) -> None:
    first = [{"role": "user", "content": "What is 6 x 7?"}]
    reply = post(server, "/v1/messages", tool_messages_body(first)).json()
    kinds = [b["type"] for b in reply["content"]]
    assert kinds == ["thinking", "text", "tool_use"] and reply["stop_reason"] == "tool_use"
    thinking, call = reply["content"][0], reply["content"][2]
    assert thinking["signature"] == sign_thinking(thinking["thinking"])
    assert (call["name"], call["input"]) == ("calculate", {"expression": "6 * 7"})
    usage = reply["usage"]
    assert usage["output_tokens_details"]["thinking_tokens"] == len(thinking["thinking"].split())
    again = post(server, "/v1/messages", tool_messages_body(first)).json()
    assert again["content"] == reply["content"]  # same conversation, same reply and ids
    # OpenAI: the same script as tool_calls
    chat = post(server, "/v1/chat/completions", {
        "model": "m", "messages": first, "tools": _TOOLS_O}).json()
    choice = chat["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "expression": "6 * 7"}


def _anthropic_turn(server: FakeServer, messages: list[dict[str, Any]]) -> dict[str, Any]:
    reply = post(server, "/v1/messages", tool_messages_body(messages)).json()
    return {"role": "assistant", "content": reply["content"]}


def test_tool_model_refuses_what_the_anthropic_api_refuses(server: FakeServer) -> None:
    first = [{"role": "user", "content": "What is 6 x 7?"}]
    turn = _anthropic_turn(server, first)
    use_id = turn["content"][-1]["id"]
    answer = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": use_id, "content": "42"}]}
    ok = post(server, "/v1/messages", tool_messages_body([*first, turn, answer]))
    assert ok.status_code == 200 and ok.json()["content"][-1]["type"] == "tool_use"
    edited = {"role": "assistant", "content": [
        {**turn["content"][0], "thinking": turn["content"][0]["thinking"] + "!"},
        *turn["content"][1:]]}
    dropped = {"role": "assistant", "content": turn["content"][1:]}
    reordered = {"role": "assistant", "content": [turn["content"][1], turn["content"][0],
                                                  turn["content"][2]]}
    wrong_id = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_nope", "content": "42"}]}
    cases = [
        ([*first, edited, answer], "messages.1.content.0: Invalid `signature` in `thinking`"),
        ([*first, dropped, answer], "a final `assistant` message must start with a thinking"),
        ([*first, reordered, answer], "the first block must be thinking or redacted_thinking"),
        ([*first, turn, wrong_id], "unexpected `tool_use_id` found in `tool_result` blocks"),
        ([*first, turn, {"role": "user", "content": "go on"}],
         "`tool_use` ids were found without `tool_result` blocks immediately after"),
    ]
    server.reset()
    for messages, error in cases:
        refused = post(server, "/v1/messages", tool_messages_body(messages))
        assert refused.status_code == 400, error
        body = refused.json()
        assert body["error"]["type"] == "invalid_request_error" and error in body["error"][
            "message"]
    assert server.refused == len(cases)
    # thinking off: no thinking block is demanded, and none is sent
    plain = post(server, "/v1/messages", tool_messages_body([*first, dropped, answer], False))
    assert plain.status_code == 200 and plain.json()["content"][0]["type"] != "thinking"


def test_tool_model_refuses_what_the_openai_api_refuses(server: FakeServer) -> None:
    first = [{"role": "user", "content": "What is 6 x 7?"}]
    reply = post(server, "/v1/chat/completions", {"model": "m", "messages": first,
                                                  "tools": _TOOLS_O}).json()
    message = reply["choices"][0]["message"]
    call_id = message["tool_calls"][0]["id"]
    answered = {"role": "tool", "tool_call_id": call_id, "content": "42"}
    for messages, status, error in [
        ([*first, message, answered], 200, ""),
        ([*first, message], 400, "did not have response messages: " + call_id),
        ([*first, message, {"role": "user", "content": "hi"}], 400, "responding to each"),
        ([*first, {**answered, "tool_call_id": "call_nope"}], 400,
         "must be a response to a preceeding message with 'tool_calls'"),
    ]:
        response = post(server, "/v1/chat/completions", {"model": "m", "messages": messages,
                                                         "tools": _TOOLS_O})
        assert response.status_code == status
        assert status == 200 or error in response.json()["error"]["message"]


def test_fault_plan_applies_to_tool_requests(server: FakeServer) -> None:
    server.plan = FaultPlan(per_body=("rate_limit", "cut"))
    body = tool_messages_body([{"role": "user", "content": "What is 2 + 2?"}])
    assert post(server, "/v1/messages", body).status_code == 429
    with pytest.raises(httpx.HTTPError):
        post(server, "/v1/messages", body)  # cut: the connection closes mid-body
    assert post(server, "/v1/messages", body).status_code == 200
    server.plan = FaultPlan(at={server.count + 1: "stream_error"})
    events = sse(post(server, "/v1/messages", {**body, "stream": True}))
    assert events[-1][0] == "error"  # stream faults strike tool streams too
    server.plan = FaultPlan()
    streamed = post(server, "/v1/messages", {**body, "stream": True})
    events = sse(streamed)
    deltas = [d["delta"]["partial_json"] for kind, d in events
              if kind == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    assert deltas[0] == "" and json.loads("".join(deltas)) == {"expression": "2 + 2"}
    assert dict(server.faults) == {"rate_limit": 1, "cut": 1, "stream_error": 1}


def test_subprocess_tool_calcs() -> None:
    with start_subprocess(tool_calcs=0) as proc:
        body = tool_messages_body([{"role": "user", "content": "What is 2 + 2?"}], False)
        reply = httpx.post(proc.base_url + "/v1/messages", json=body, timeout=10).json()
    assert reply["content"][-1]["name"] == "submit_answer"
