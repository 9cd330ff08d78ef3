"""Agent sweeps over real HTTP in both wire formats, streamed and not, against the shared
fake server's scripted tool model (which refuses what the real APIs refuse: altered or
missing thinking blocks, tool results that answer no call); every body checked against
the official SDKs' typed params; kill -9 mid-trajectory against the server in a child
process, then resume, with the server counting every request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_support import assert_sdk_valid

from ttc.agent.loop import NOT_EXECUTED
from ttc.agent.protocol import ToolSpec
from ttc.agent.providers import AgentAnthropicProvider, AgentOpenAIProvider
from ttc.agent.runner import AgentSweep
from ttc.agent.wire import Entry, ToolRequest, ToolResult
from ttc.config import ModelConfig, SweepConfig, load_config
from ttc.problems import Problem
from ttc.testing.fake_server import (
    FakeServer,
    FaultPlan,
    ScriptedToolModel,
    run_in_thread,
    start_subprocess,
)

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-agent-test-SECRET-0123456789"


# ---------------------------------------------------------------- SDK shapes


def assert_anthropic_body(body: dict[str, Any]) -> None:
    assert_sdk_valid("anthropic", body)


def assert_openai_body(body: dict[str, Any]) -> None:
    # vLLM's budget field, an extension by design
    assert_sdk_valid("openai", body, frozenset({"thinking_token_budget"}))


TOOLS = (ToolSpec("calculate", "Evaluate arithmetic.", {
    "type": "object", "properties": {"expression": {"type": "string"}},
    "required": ["expression"]}),)


def step_request(conversation: tuple[Entry, ...], budget: int | str, step: int,
                 tools: tuple[ToolSpec, ...] = TOOLS, **kw: Any) -> ToolRequest:
    return ToolRequest(Problem("p", "What is 2 + 3?", "5"), "", budget, 0, system="Be brief.",
                       conversation=conversation, tools=tools, step=step, **kw)


def _conversation(thinking: bool) -> tuple[Entry, ...]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": "Adding."},
                                    {"type": "tool_use", "id": "toolu_1", "name": "calculate",
                                     "input": {"expression": "2 + 3"}}]
    if thinking:
        blocks.insert(0, {"type": "thinking", "thinking": "let me add", "signature": "sig=="})
        blocks.insert(1, {"type": "redacted_thinking", "data": "opaque"})
    return (Entry("user", text="What is 2 + 3?"),
            Entry("assistant", message={"role": "assistant", "content": blocks}),
            Entry("tool", results=(ToolResult("toolu_1", "5"),)),
            Entry("assistant", message={"role": "assistant", "content": [
                {"type": "text", "text": "no tool"}]}),
            Entry("user", text="No tool was called."))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("budget", [1024, 4096, "high", "none"])
def test_anthropic_tool_body_matches_sdk_types(budget: int | str, stream: bool) -> None:
    provider = AgentAnthropicProvider(ModelConfig(provider="anthropic", name="claude-test"),
                                      sweep=SweepConfig(stream=stream))
    body = provider.build_body(step_request(_conversation(budget != "none"), budget, 3))
    assert_anthropic_body(body)
    assert body.get("stream", False) is stream
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["tools"][0]["input_schema"]["required"] == ["expression"]
    assert body["messages"][1] == _conversation(budget != "none")[1].message  # verbatim
    assert body["messages"][2]["content"][0] == {
        "type": "tool_result", "tool_use_id": "toolu_1", "content": "5", "is_error": False}
    from pydantic import ValidationError

    with pytest.raises((ValidationError, AssertionError)):  # the check can fail
        assert_anthropic_body({**body, "messages": [{"role": "user", "content": [
            {"type": "tool_answer", "id": "x"}]}]})


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("budget", [2048, "low"])
def test_openai_tool_body_matches_sdk_types(budget: int | str, stream: bool) -> None:
    provider = AgentOpenAIProvider(ModelConfig(provider="openai", name="gpt-test",
                                               base_url="http://127.0.0.1:9/v1"),
                                   sweep=SweepConfig(stream=stream))
    conversation = (
        Entry("user", text="What is 2 + 3?"),
        Entry("assistant", message={"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "calculate", "arguments": '{"expression": "2 + 3"}'}}]}),
        Entry("tool", results=(ToolResult("call_1", "5"), ToolResult("call_2", NOT_EXECUTED,
                                                                      True))),
    )
    body = provider.build_body(step_request(conversation, budget, 2, seed=7))
    assert_openai_body(body)
    assert (body.get("stream_options") == {"include_usage": True}) is stream
    assert body["parallel_tool_calls"] is False
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "tool"]
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "calculate", "description": "Evaluate arithmetic.",
        "parameters": TOOLS[0].parameters}}
    from pydantic import ValidationError

    with pytest.raises((ValidationError, AssertionError)):
        assert_openai_body({**body, "messages": [{"role": "tool", "content": "5"}]})


# ---------------------------------------------------------------- sweeps over HTTP


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with run_in_thread(record_limit=5000) as srv:
        yield srv


def _data(tmp_path: Path, n: int) -> None:
    rows = [{"id": f"q{i}", "question": f"What is {i + 3} + {2 * i}?", "answer": str(3 * i + 3)}
            for i in range(n)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _config(tmp_path: Path, url: str, fmt: str, *, problems: int = 4, samples: int = 2,
            extra: str = "", max_steps: int = 8, concurrency: int = 4) -> Path:
    _data(tmp_path, problems)
    if fmt == "anthropic":
        model = f'provider = "anthropic"\nname = "claude-test"\nbase_url = "{url}"'
        budgets = "[1024]"
    else:
        model = f'provider = "openai"\nname = "gpt-test"\nbase_url = "{url}/v1"'
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
concurrency = {concurrency}
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
                              "observation, message FROM steps").fetchall()
        except sqlite3.OperationalError:
            return []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fmt", ["anthropic", "openai"])
def test_tool_use_round_trip_over_http(server: FakeServer, fmt: str, stream: bool,
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_AGENT_TEST_KEY", KEY)
    # keyed per body, not drawn per request number: every distinct request meets each
    # fault once, then succeeds, so no arrival order can pile more faults on one step
    # than its attempts allow (seeded rates could, under load: a dense run of faulted
    # request numbers went to one retrying step while the other workers took the rest)
    faults = ("overloaded", "rate_limit") + (("cut", "stream_error") if stream else ())
    server.reset()
    server.plan = FaultPlan(per_body=faults, retry_after_s=0.0, words_per_event=3)
    try:
        config = load_config(_config(tmp_path, server.base_url, fmt,
                                     extra=f"stream = {str(stream).lower()}"))
        result = asyncio.run(AgentSweep(config, tmp_path / "run").run())
    finally:
        server.plan = FaultPlan()
    assert (result.ended, result.failed, result.steps) == (8, 0, 24)
    steps = _steps(tmp_path / "run")
    assert len(steps) == 24 and {s[5] for s in steps} == {"calculate", "submit_answer"}
    # every injected fault was retried, and nothing else was asked for; each distinct
    # body met every fault exactly once, in whatever order the requests arrived
    injected = sum(server.faults.values())
    assert set(server.faults) == set(faults) and len(set(server.faults.values())) == 1
    assert injected >= 12 * len(faults)  # at least 12 distinct bodies (24 steps, 2 samples)
    assert server.count == 24 + injected and server.refused == 0
    assert server.streamed == (server.count if stream else 0)
    with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
        rows = db.execute("SELECT status, correct, attempts FROM samples").fetchall()
    assert rows and all(r[:2] == ("ok", 1) for r in rows)
    assert sum(r[2] for r in rows) == server.count
    bodies = [r.body for r in server.requests]
    for body in bodies:
        (assert_anthropic_body if fmt == "anthropic" else assert_openai_body)(body)
    # the longest request carries the stored replies back verbatim
    last = max(bodies, key=lambda b: len(b["messages"]))
    sent = [m for m in last["messages"] if m["role"] == "assistant"]
    stored = {json.dumps(json.loads(s[7]), sort_keys=True) for s in steps}
    assert sent and all(json.dumps(m, sort_keys=True) in stored for m in sent)
    if fmt == "anthropic":
        assert all(m["content"][0]["type"] == "thinking" for m in sent)
        assert last["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()


@pytest.mark.parametrize("fmt", ["anthropic", "openai"])
def test_extra_calls_and_silent_turns_are_answered_and_counted(
        fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_AGENT_TEST_KEY", KEY)
    model = ScriptedToolModel(calcs=1, parallel=True, silent_first=True)
    with run_in_thread(tool_responder=model) as srv:
        config = load_config(_config(tmp_path, srv.base_url, fmt, problems=2, samples=1))
        result = asyncio.run(AgentSweep(config, tmp_path / "run").run())
        assert srv.refused == 0  # the extra calls were answered, as the APIs demand
    assert (result.ended, result.failed, result.steps) == (2, 0, 6)
    by_step = {s[4]: s for s in _steps(tmp_path / "run") if s[0] == "q0"}
    assert by_step[1][5] is None and by_step[1][6].startswith("No tool was called")
    assert by_step[2][5] == "calculate" and by_step[3][5] == "submit_answer"


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_fake/stats", timeout=10) as response:
        return dict(json.loads(response.read()))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_kill_9_mid_trajectory_then_resume_pays_for_no_step_twice(
        tmp_path: Path, stream: bool) -> None:
    with start_subprocess(latency_s=0.02, tool_calcs=5, event_delay_s=0.002,
                          words_per_event=4) as proc:
        path = _config(tmp_path, proc.base_url, "anthropic", problems=12, samples=2,
                       max_steps=10, extra=f"stream = {str(stream).lower()}")
        total = 12 * 2 * 6
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TTC_AGENT_TEST_KEY": KEY}
        cmd = [sys.executable, "-m", "ttc", "sweep", str(path), "--out", "run", "--quiet"]
        child = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(_steps(tmp_path / "run")) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)  # reaps it and closes its pipes
        stored = len(_steps(tmp_path / "run"))
        sent_first = _stats(proc.base_url)["requests"]
        assert 50 <= stored < total
        assert sent_first - stored <= 4  # lost: at most the steps in flight (concurrency 4)
        with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
            mid = db.execute("SELECT COUNT(*) FROM trajectories WHERE n_steps BETWEEN 1 AND 5"
                             ).fetchone()[0]
        assert mid >= 1  # killed mid-trajectory, not between trajectories

        again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0, again.stderr
        stats = _stats(proc.base_url)
        assert stats["requests"] - sent_first == total - stored  # no stored step asked again
        assert stats["refused"] == 0  # the replayed conversations passed the API's checks
        assert stats["streamed"] == (stats["requests"] if stream else 0)
    steps = _steps(tmp_path / "run")
    keys = [s[:5] for s in steps]
    assert len(keys) == len(set(keys)) == total
    with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
        assert db.execute("SELECT COUNT(*), SUM(correct) FROM samples").fetchone() == (24, 24)
    assert KEY not in again.stdout + again.stderr


def test_a_401_lets_the_steps_in_flight_finish_and_sends_no_further_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for samples (tests/test_sweep_drain.py): three steps go out, the second to
    arrive meets a 401 while the other two still stream, slowly. Both paid steps are
    stored, no fourth request is sent, and the sweep ends with the 401."""
    from ttc.retry import SweepAborted
    from ttc.testing.fake_server import run_in_thread

    monkeypatch.setenv("TTC_AGENT_TEST_KEY", KEY)
    plan = FaultPlan(at={2: "unauthorized"}, event_delay_s=0.04, words_per_event=8)
    with run_in_thread(plan=plan) as server:
        config = load_config(_config(tmp_path, server.base_url, "openai", problems=3,
                                     samples=1, concurrency=3, extra="stream = true"))
        with pytest.raises(SweepAborted, match="401"):
            asyncio.run(AgentSweep(config, tmp_path / "run").run())
        sent, faults = server.count, dict(server.faults)
    assert faults == {"unauthorized": 1}
    assert sent == 3  # nothing new after the 401: no next step of the two that finished
    assert [s[4] for s in _steps(tmp_path / "run")] == [1, 1]  # both paid steps stored
