"""One deadline: ``sweep.timeout_s`` is the only total limit on an attempt.

The one slow test of the suite (about a minute): two whole sweeps run side by side,
each streaming one 60-second answer with ``timeout_s = 90``, through transports whose
client libraries default to far less (httpx: 5 s; an aiohttp session built with a
5 s total). Both answers must arrive whole on the first attempt, so no cap below the
sampler's survives anywhere between it and the socket.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import httpx

from ttc.config import Config, config_from_dict
from ttc.http import AiohttpTransport, HttpxTransport, Transport
from ttc.providers.anthropic import AnthropicProvider
from ttc.sampler import Sweep, SweepResult
from ttc.store import RunStore
from ttc.testing.fake_server import FaultPlan, Query, Reply, run_in_thread

STREAM_S = 60.0
WORDS = 1000


def think_long(query: Query) -> Reply:
    return Reply(text="The answer is \\boxed{42}.", thinking=" ".join(["hmm"] * WORDS))


def test_a_60_second_stream_survives_timeout_90_whatever_the_client_defaults(
    tmp_path: Path,
) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"id": "q", "question": "What is 40 + 2?", "answer": "42"}) + "\n")
    events = WORDS // 10 + 9  # thinking deltas + start, ping, blocks, delta, stop
    plan = FaultPlan(words_per_event=10, event_delay_s=STREAM_S / events)

    def config(base_url: str) -> Config:
        return config_from_dict({
            "model": {"provider": "anthropic", "name": "claude-fake", "base_url": base_url},
            "dataset": {"path": str(data)},
            "sweep": {"budgets": [2048], "samples": 1, "concurrency": 1, "timeout_s": 90,
                      "max_attempts": 1, "stream": True},
        })

    async def sweep(cfg: Config, transport: Transport, out: Path) -> SweepResult:
        provider = AnthropicProvider(cfg.model, transport=transport, sweep=cfg.sweep)
        try:
            return await Sweep(cfg, out, provider=provider).run()
        finally:
            await transport.aclose()

    async def both(base_url: str) -> list[SweepResult]:
        cfg = config(base_url)
        short_httpx = HttpxTransport(httpx.AsyncClient(timeout=5.0))
        short_aiohttp = AiohttpTransport(session=aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=5.0)))
        try:
            return list(await asyncio.gather(
                sweep(cfg, short_httpx, tmp_path / "httpx"),
                sweep(cfg, short_aiohttp, tmp_path / "aiohttp"),
            ))
        finally:
            session = short_aiohttp._session
            if session is not None:
                await session.close()

    with run_in_thread(plan=plan, responder=think_long) as server:
        started = time.monotonic()
        results = asyncio.run(both(server.base_url))
        elapsed = time.monotonic() - started
        assert (server.count, server.streamed) == (2, 2)
    assert elapsed >= STREAM_S * 0.95
    assert [(r.completed, r.failed) for r in results] == [(1, 0), (1, 0)]
    for name in ("httpx", "aiohttp"):
        with RunStore(tmp_path / name) as store:
            [record] = list(store.iter_samples())
        assert (record.status, record.attempts, record.thinking_tokens) == ("ok", 1, WORDS)
        assert record.latency_s is not None and record.latency_s >= STREAM_S * 0.95
