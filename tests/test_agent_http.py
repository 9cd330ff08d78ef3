"""Agent steps over real HTTP in both wire formats, against a loopback server that scripts a
tool-using model and refuses what the real APIs refuse (altered thinking blocks, tool
results that answer no call); bodies checked against the official SDKs' typed params;
kill -9 mid-trajectory, then resume, with the server counting every request."""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import functools
import hashlib
import hmac
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from test_provider_anthropic import unknown_keys

from ttc.agent.loop import NOT_EXECUTED
from ttc.agent.protocol import ToolSpec
from ttc.agent.providers import AgentAnthropicProvider, AgentOpenAIProvider
from ttc.agent.runner import AgentSweep
from ttc.agent.wire import Entry, ToolRequest, ToolResult, parse_anthropic_turn
from ttc.config import ModelConfig, load_config
from ttc.problems import Problem

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-agent-test-SECRET-0123456789"
QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")


# ---------------------------------------------------------------- the scripted model


class ToolServer:
    """A tool-using model: ``calcs`` calculate calls, then submit the last result.

    Anthropic replies carry a thinking block signed with an HMAC; a request whose earlier
    assistant turns lack their thinking block or carry an altered one gets the 400 the
    real API gives. Tool results must answer exactly the previous turn's calls.
    """

    def __init__(self, *, calcs: int = 2, latency_s: float = 0.0, parallel: bool = False,
                 flaky_every: int = 0, silent_first: bool = False) -> None:
        self.calcs, self.latency_s, self.parallel = calcs, latency_s, parallel
        self.flaky_every, self.silent_first = flaky_every, silent_first
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.url = ""

    # -- helpers
    @staticmethod
    def sign(text: str) -> str:
        return hmac.new(b"server-secret", text.encode(), hashlib.sha256).hexdigest()

    def _count(self, body: dict[str, Any]) -> int | None:
        with self.lock:
            self.requests += 1
            self.bodies.append(body)
            n = self.requests
        return n

    def _plan(self, question: str, results: list[str], turns: int) -> list[tuple[str, dict]]:
        match = QUESTION.search(question)
        assert match, question
        if self.silent_first and turns == 0:
            return []
        if len(results) < self.calcs:
            call = ("calculate", {"expression": f"{match.group(1)} + {match.group(2)}"})
        else:
            call = ("submit_answer", {"answer": results[-1]})
        return [call, ("calculate", {"expression": "1 + 1"})] if self.parallel else [call]

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"type": "error", "error": {
            "type": "invalid_request_error", "message": message}}, status=status)

    @staticmethod
    def _busy() -> web.Response:
        return web.json_response({"type": "error", "error": {
            "type": "overloaded_error", "message": "busy"}}, status=529,
            headers={"retry-after": "0"})

    # -- Anthropic
    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        n = self._count(body)
        await asyncio.sleep(self.latency_s)
        if self.flaky_every and n % self.flaky_every == 0:
            return self._busy()
        msgs = body["messages"]
        thinking_on = body.get("thinking", {}).get("type") == "enabled"
        pending: set[str] = set()
        results: list[str] = []
        turns = 0
        for msg in msgs:
            content = msg["content"]
            if msg["role"] == "assistant":
                turns += 1
                blocks = [b for b in content if b["type"] == "thinking"]
                if thinking_on and (not blocks or blocks[0]["signature"] != self.sign(
                        blocks[0]["thinking"])):
                    return self._error(400, "messages: thinking block missing or modified")
                pending = {b["id"] for b in content if b["type"] == "tool_use"}
            elif isinstance(content, list):
                answered = {b["tool_use_id"] for b in content if b["type"] == "tool_result"}
                if answered != pending:
                    return self._error(400, "tool_result ids do not match tool_use ids")
                results += [b["content"] for b in content
                            if b["type"] == "tool_result" and not b.get("is_error")]
                pending = set()
        plan = self._plan(msgs[0]["content"], results, turns)
        thought = f"step {turns + 1}: I will use a tool."
        content: list[dict[str, Any]] = [
            {"type": "thinking", "thinking": thought, "signature": self.sign(thought)},
            {"type": "text", "text": "Working on it."},
        ]
        content += [{"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": args}
                    for i, (name, args) in enumerate(plan)]
        reply = {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": body["model"],
                 "content": content, "stop_reason": "tool_use" if plan else "end_turn",
                 "stop_sequence": None, "usage": {"input_tokens": 50 * (turns + 1),
                                                  "output_tokens": 40}}
        with self.lock:
            self.replies.append(reply)
        return web.json_response(reply)

    # -- OpenAI
    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        n = self._count(body)
        await asyncio.sleep(self.latency_s)
        if self.flaky_every and n % self.flaky_every == 0:
            return self._busy()
        pending: set[str] = set()
        results: list[str] = []
        turns = 0
        question = ""
        for msg in body["messages"]:
            if msg["role"] == "user" and not question:
                question = msg["content"]
            if msg["role"] == "assistant":
                turns += 1
                pending = {c["id"] for c in msg.get("tool_calls", [])}
            elif msg["role"] == "tool":
                if msg["tool_call_id"] not in pending:
                    return self._error(400, "tool message answers no tool call")
                pending.discard(msg["tool_call_id"])
                if not msg["content"].startswith("Error"):
                    results.append(msg["content"])
            elif pending:
                return self._error(400, "tool calls left unanswered")
        plan = self._plan(question, results, turns)
        calls = [{"id": f"call_{n}_{i}", "type": "function",
                  "function": {"name": name, "arguments": json.dumps(args)}}
                 for i, (name, args) in enumerate(plan)]
        message: dict[str, Any] = {"role": "assistant", "content": None if calls else "Hmm."}
        if calls:
            message["tool_calls"] = calls
        reply = {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0,
                 "model": body["model"], "choices": [{"index": 0, "message": message,
                 "finish_reason": "tool_calls" if calls else "stop"}],
                 "usage": {"prompt_tokens": 50 * (turns + 1), "completion_tokens": 30,
                           "total_tokens": 50 * (turns + 1) + 30}}
        with self.lock:
            self.replies.append(reply)
        return web.json_response(reply)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests})


@contextlib.contextmanager
def serving(server: ToolServer) -> Iterator[ToolServer]:
    """Run the scripted server on 127.0.0.1 in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    app = web.Application()
    app.router.add_post("/v1/messages", server.messages)
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_get("/stats", server.stats)
    runner = web.AppRunner(app)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.url = f"http://127.0.0.1:{port}"
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# ---------------------------------------------------------------- SDK shapes


def _drain(value: Any) -> None:
    """Pydantic validates ``Iterable`` fields lazily: walk everything so all of it is checked."""
    if isinstance(value, dict):
        for v in value.values():
            _drain(v)
    elif isinstance(value, (list, tuple, collections.abc.Iterator)):
        for v in value:
            _drain(v)


@functools.cache
def _adapter(sdk: str) -> tuple[Any, Any]:
    """The SDK's params type and a TypeAdapter kept alive (lazy iterators need its schema)."""
    pytest.importorskip(sdk)
    from pydantic import TypeAdapter

    if sdk == "anthropic":
        from anthropic.types.message_create_params import MessageCreateParamsNonStreaming as P
    else:
        from openai.types.chat.completion_create_params import (
            CompletionCreateParamsNonStreaming as P,
        )
    return P, TypeAdapter(P)


def assert_anthropic_body(body: dict[str, Any]) -> None:
    params, adapter = _adapter("anthropic")
    _drain(adapter.validate_python(body))
    assert unknown_keys(body, params) == []


def assert_openai_body(body: dict[str, Any]) -> None:
    params, adapter = _adapter("openai")
    extra = {"thinking_token_budget"}  # vLLM's budget field, an extension by design
    plain = {k: v for k, v in body.items() if k not in extra}
    _drain(adapter.validate_python(plain))
    assert unknown_keys(plain, params) == []


TOOLS = (ToolSpec("calculate", "Evaluate arithmetic.", {
    "type": "object", "properties": {"expression": {"type": "string"}},
    "required": ["expression"]}),)


def _conversation(thinking: bool) -> tuple[Entry, ...]:
    thought = "let me add"
    blocks: list[dict[str, Any]] = [{"type": "text", "text": "Adding."},
                                    {"type": "tool_use", "id": "toolu_1", "name": "calculate",
                                     "input": {"expression": "2 + 3"}}]
    if thinking:
        blocks.insert(0, {"type": "thinking", "thinking": thought, "signature": "sig=="})
        blocks.insert(1, {"type": "redacted_thinking", "data": "opaque"})
    return (Entry("user", text="What is 2 + 3?"),
            Entry("assistant", message={"role": "assistant", "content": blocks}),
            Entry("tool", results=(ToolResult("toolu_1", "5"),)),
            Entry("assistant", message={"role": "assistant", "content": [
                {"type": "text", "text": "no tool"}]}),
            Entry("user", text="No tool was called."))


@pytest.mark.parametrize("budget", [1024, 4096, "high", "none"])
def test_anthropic_tool_body_matches_sdk_types(budget: int | str) -> None:
    provider = AgentAnthropicProvider(ModelConfig(provider="anthropic", name="claude-test"))
    request = ToolRequest(Problem("p", "q", "5"), _conversation(budget != "none"), TOOLS, budget,
                          0, 3, system="Be brief.")
    body = provider.tool_body(request)
    assert_anthropic_body(body)
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["tools"][0]["input_schema"]["required"] == ["expression"]
    assert body["messages"][1] == _conversation(budget != "none")[1].message  # verbatim
    assert body["messages"][2]["content"][0] == {
        "type": "tool_result", "tool_use_id": "toolu_1", "content": "5", "is_error": False}
    from pydantic import ValidationError

    with pytest.raises((ValidationError, AssertionError)):  # the check can fail
        assert_anthropic_body({**body, "messages": [{"role": "user", "content": [
            {"type": "tool_answer", "id": "x"}]}]})


@pytest.mark.parametrize("budget", [2048, "low"])
def test_openai_tool_body_matches_sdk_types(budget: int | str) -> None:
    provider = AgentOpenAIProvider(ModelConfig(provider="openai", name="gpt-test",
                                               base_url="http://127.0.0.1:9/v1"))
    conversation = (
        Entry("user", text="What is 2 + 3?"),
        Entry("assistant", message={"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "calculate", "arguments": '{"expression": "2 + 3"}'}}]}),
        Entry("tool", results=(ToolResult("call_1", "5"), ToolResult("call_2", NOT_EXECUTED,
                                                                      True))),
    )
    request = ToolRequest(Problem("p", "q", "5"), conversation, TOOLS, budget, 0, 2,
                          system="Be brief.", seed=7)
    body = provider.tool_body(request)
    assert_openai_body(body)
    assert body["parallel_tool_calls"] is False
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "tool"]
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "calculate", "description": "Evaluate arithmetic.",
        "parameters": TOOLS[0].parameters}}
    from pydantic import ValidationError

    with pytest.raises((ValidationError, AssertionError)):
        assert_openai_body({**body, "messages": [{"role": "tool", "content": "5"}]})


def test_scripted_replies_are_real_sdk_responses() -> None:
    """The loopback server's replies validate as the SDKs' response models, and parse."""
    anthropic = pytest.importorskip("anthropic")
    openai = pytest.importorskip("openai")
    server = ToolServer(calcs=1, parallel=True)
    with serving(server):
        import urllib.request

        for path, body in [
            ("/v1/messages", {"model": "m", "max_tokens": 10, "messages": [
                {"role": "user", "content": "What is 2 + 3?"}]}),
            ("/v1/chat/completions", {"model": "m", "messages": [
                {"role": "user", "content": "What is 2 + 3?"}]}),
        ]:
            req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
            urllib.request.urlopen(req, timeout=10).read()
    message = anthropic.types.Message.model_validate(server.replies[0])
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    openai.types.chat.ChatCompletion.model_validate(server.replies[1])
    turn = parse_anthropic_turn(server.replies[0])
    assert [c.name for c in turn.tool_calls] == ["calculate", "calculate"]
    assert json.loads(turn.tool_calls[0].arguments) == {"expression": "2 + 3"}


# ---------------------------------------------------------------- sweeps over HTTP


def _data(tmp_path: Path, n: int) -> None:
    rows = [{"id": f"q{i}", "question": f"What is {i + 3} + {2 * i}?", "answer": str(3 * i + 3)}
            for i in range(n)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _config(tmp_path: Path, server: ToolServer, fmt: str, *, problems: int = 4,
            samples: int = 2, extra: str = "", max_steps: int = 8) -> Path:
    _data(tmp_path, problems)
    if fmt == "anthropic":
        model = f'provider = "anthropic"\nname = "claude-test"\nbase_url = "{server.url}"'
        budgets = "[1024]"
    else:
        model = f'provider = "openai"\nname = "gpt-test"\nbase_url = "{server.url}/v1"'
        budgets = "[512]"
    path = tmp_path / "agent.toml"
    path.write_text(f"""\
[model]
{model}
api_key_env = "TTC_AGENT_TEST_KEY"
[dataset]
path = "data.jsonl"
[sweep]
budgets = {budgets}
samples = {samples}
concurrency = 4
backoff_base_s = 0.01
backoff_max_s = 0.05
{extra}
[agent]
environment = "calculator"
max_steps = {max_steps}
""")
    return path


def _steps(run: Path) -> list[tuple[Any, ...]]:
    if not (run / "samples.sqlite").exists():
        return []
    with sqlite3.connect(run / "samples.sqlite", timeout=5) as db:
        try:
            return db.execute("SELECT problem_id, budget, horizon, sample_index, step, action, "
                              "observation FROM steps").fetchall()
        except sqlite3.OperationalError:
            return []


@pytest.mark.parametrize("fmt", ["anthropic", "openai"])
def test_tool_use_round_trip_over_http(fmt: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_AGENT_TEST_KEY", KEY)
    server = ToolServer(calcs=2, flaky_every=7)
    with serving(server):
        config = load_config(_config(tmp_path, server, fmt))
        result = asyncio.run(AgentSweep(config, tmp_path / "run").run())
    assert (result.ended, result.failed, result.steps) == (8, 0, 24)
    steps = _steps(tmp_path / "run")
    assert len(steps) == 24 and {s[5] for s in steps} == {"calculate", "submit_answer"}
    # every 7th request was a 529 and was retried: 27 requests for 24 steps
    assert server.requests == 27
    with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
        rows = db.execute("SELECT status, correct, attempts FROM samples").fetchall()
    assert rows and all(r[:2] == ("ok", 1) for r in rows) and sum(r[2] for r in rows) == 27
    for body in server.bodies:
        (assert_anthropic_body if fmt == "anthropic" else assert_openai_body)(body)
    if fmt == "anthropic":  # the last request carries earlier replies back verbatim
        last = max(server.bodies, key=lambda b: len(b["messages"]))
        sent = [m["content"] for m in last["messages"] if m["role"] == "assistant"]
        assert all(any(r["content"] == c for r in server.replies) for c in sent)
        assert all(c[0]["type"] == "thinking" and c[0]["signature"] for c in sent)
        assert last["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()


@pytest.mark.parametrize("fmt", ["anthropic", "openai"])
def test_extra_calls_and_silent_turns_are_answered_and_counted(
        fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_AGENT_TEST_KEY", KEY)
    server = ToolServer(calcs=1, parallel=True, silent_first=True)
    with serving(server):
        config = load_config(_config(tmp_path, server, fmt, problems=2, samples=1))
        result = asyncio.run(AgentSweep(config, tmp_path / "run").run())
    assert (result.ended, result.failed, result.steps) == (2, 0, 6)
    by_step = {s[4]: s for s in _steps(tmp_path / "run") if s[0] == "q0"}
    assert by_step[1][5] is None and by_step[1][6].startswith("No tool was called")
    assert by_step[2][5] == "calculate" and by_step[3][5] == "submit_answer"


def test_kill_9_mid_trajectory_then_resume_pays_for_no_step_twice(tmp_path: Path) -> None:
    server = ToolServer(calcs=5, latency_s=0.02)
    with serving(server):
        path = _config(tmp_path, server, "anthropic", problems=12, samples=2, max_steps=10)
        total = 12 * 2 * 6
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TTC_AGENT_TEST_KEY": KEY}
        cmd = [sys.executable, "-m", "ttc", "sweep", str(path), "--out", "run", "--quiet"]
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(_steps(tmp_path / "run")) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stored = len(_steps(tmp_path / "run"))
        sent_first = server.requests
        assert 50 <= stored < total
        assert sent_first - stored <= 4  # lost: at most the steps in flight (concurrency 4)
        with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
            mid = db.execute("SELECT COUNT(*) FROM trajectories WHERE n_steps BETWEEN 1 AND 5"
                             ).fetchone()[0]
        assert mid >= 1  # killed mid-trajectory, not between trajectories

        again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0, again.stderr
        assert server.requests - sent_first == total - stored
    steps = _steps(tmp_path / "run")
    keys = [s[:5] for s in steps]
    assert len(keys) == len(set(keys)) == total
    with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
        assert db.execute("SELECT COUNT(*), SUM(correct) FROM samples").fetchone() == (24, 24)
    assert KEY not in again.stdout + again.stderr
