"""The reward-model scorer against a real aiohttp server on 127.0.0.1: vLLM's /pooling and
/classify shapes, a plain {"score": x} URL, batching, the concurrency limit, retries on
retryable errors, fatal 4xx, timeouts, malformed bodies, and scoring a stored run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ttc.errors import (
    ConfigError,
    FatalAPIError,
    MalformedResponseError,
    RequestTimeoutError,
)
from ttc.problems import Problem
from ttc.scorers import RewardModelScorer, ScorableSample, make_scorer, score_run
from ttc.scorers.reward_model import reduce_pooled
from ttc.store import RunStore, SampleRecord

__all__: list[str] = []


def reward_of(text: str) -> float:
    """The test server's "model": rewards texts that end in the right boxed answer."""
    return 0.9 if text.rstrip().endswith("RIGHT") else 0.2


class RMServer:
    """A loopback reward-model server with scripted faults and an in-flight counter."""

    def __init__(self, *, faults: list[int] | None = None, delay_s: float = 0.0,
                 malformed: bool = False) -> None:
        self.faults = list(faults or [])  # statuses for the first requests, in order
        self.delay_s = delay_s
        self.malformed = malformed
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.app = web.Application()
        self.app.router.add_post("/pooling", self._pooling)
        self.app.router.add_post("/classify", self._classify)
        self.app.router.add_post("/score", self._score)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> RMServer:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _guard(
        self, request: web.Request, build: Callable[[dict[str, Any]], Any]
    ) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.faults:
                status = self.faults.pop(0)
                headers = {"retry-after": "0"} if status in (429, 503) else {}
                echoed = request.headers.get("x-api-key", "")  # a gateway quoting its key
                return web.json_response({"error": {"message": f"scripted {status} {echoed}"}},
                                         status=status, headers=headers)
            if self.malformed:
                return web.Response(text="<html>gateway</html>", status=200)
            return web.json_response(build(body))
        finally:
            self.in_flight -= 1

    def _texts(self, body: dict[str, Any]) -> list[str]:
        if "messages" in body:
            return [body["messages"][-1]["content"]]
        inp = body["input"]
        return inp if isinstance(inp, list) else [inp]

    async def _pooling(self, request: web.Request) -> web.Response:
        def build(body: dict[str, Any]) -> Any:
            # a token reward model: one row per token, the last row is the outcome reward;
            # returned out of order to check that ``index`` is honoured
            items = [{"index": i, "object": "pooling", "data": [[0.0], [0.5], [reward_of(t)]]}
                     for i, t in enumerate(self._texts(body))]
            return {"object": "list", "data": items[::-1]}
        return await self._guard(request, build)

    async def _classify(self, request: web.Request) -> web.Response:
        def build(body: dict[str, Any]) -> Any:
            data = []
            for i, t in enumerate(self._texts(body)):
                p = reward_of(t)
                data.append({"index": i, "label": "LABEL_1", "probs": [1 - p, p],
                             "num_classes": 2})
            return {"object": "list", "data": data}
        return await self._guard(request, build)

    async def _score(self, request: web.Request) -> web.Response:
        return await self._guard(request, lambda body: {"score": reward_of(body["text"])})


def samples(n: int = 6) -> list[ScorableSample]:
    out = []
    for i in range(n):
        problem = Problem(id=f"p{i // 3}", question=f"What is {i} + 1?", answer=str(i + 1))
        text = f"Thinking about {i}. RIGHT" if i % 2 == 0 else f"Thinking about {i}. WRONG"
        record = SampleRecord(problem_id=problem.id, budget="1024", sample_index=i % 3,
                              status="ok", answer=str(i + 1), correct=i % 2 == 0, text=text)
        out.append(ScorableSample(problem, record))
    return out


def run_with_server(
    server: RMServer, test: Callable[[RMServer], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        async with server:
            return await test(server)
    return asyncio.run(main())


EXPECTED = [0.9, 0.2, 0.9, 0.2, 0.9, 0.2]


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt,path", [("vllm_pooling", "/pooling"),
                                      ("vllm_classify", "/classify"),
                                      ("score_json", "/score")])
def test_each_format_scores_every_sample(fmt: str, path: str) -> None:
    server = RMServer()

    async def test(s: RMServer) -> None:
        scorer = RewardModelScorer(s.url + path, format=fmt, model="rm-1", batch_size=4)
        try:
            scores = await scorer(samples())
        finally:
            await scorer.aclose()
        assert scores == pytest.approx(EXPECTED)
        assert all(b["model"] == "rm-1" for b in s.bodies)

    run_with_server(server, test)
    if fmt == "score_json":
        assert len(server.bodies) == 6  # one sample per request
        assert server.bodies[0]["question"] == "What is 0 + 1?"
    else:
        assert [len(b["input"]) for b in server.bodies] == [4, 2]  # batched
        assert server.bodies[0]["input"][0] == "What is 0 + 1?\n\nThinking about 0. RIGHT"


def test_messages_input_sends_the_conversation() -> None:
    server = RMServer()

    async def test(s: RMServer) -> list[float | None]:
        scorer = RewardModelScorer(s.url + "/pooling", format="vllm_pooling", input="messages")
        try:
            return await scorer(samples(2))
        finally:
            await scorer.aclose()

    assert run_with_server(server, test) == pytest.approx([0.9, 0.2])
    assert server.bodies[0]["messages"] == [
        {"role": "user", "content": "What is 0 + 1?"},
        {"role": "assistant", "content": "Thinking about 0. RIGHT"},
    ]
    assert "model" not in server.bodies[0]


def test_reduce_pooled_shapes() -> None:
    assert reduce_pooled(0.7) == 0.7
    assert reduce_pooled([0.2, 0.8]) == 0.8
    assert reduce_pooled([0.2, 0.8], label_index=0) == 0.2
    assert reduce_pooled([[0.1], [0.4], [0.9]]) == 0.9
    assert reduce_pooled([[0.1, 0.2], [0.3, 0.6]], label_index=0) == 0.3
    with pytest.raises(MalformedResponseError):
        reduce_pooled([])
    with pytest.raises(MalformedResponseError):
        reduce_pooled(["x"])


# ---------------------------------------------------------------- failure handling


def test_retryable_errors_are_retried() -> None:
    server = RMServer(faults=[429, 503, 500])

    async def test(s: RMServer) -> list[float | None]:
        scorer = RewardModelScorer(s.url + "/score", backoff_base_s=0.001, max_attempts=4)
        try:
            return await scorer(samples(1))
        finally:
            await scorer.aclose()

    assert run_with_server(server, test) == pytest.approx([0.9])
    assert len(server.bodies) == 4


def test_fatal_errors_stop_at_once() -> None:
    server = RMServer(faults=[401])

    async def test(s: RMServer) -> None:
        scorer = RewardModelScorer(s.url + "/score", backoff_base_s=0.001)
        try:
            with pytest.raises(FatalAPIError, match="scripted 401"):
                await scorer(samples(1))
        finally:
            await scorer.aclose()

    run_with_server(server, test)
    assert len(server.bodies) == 1


def test_a_header_key_echoed_by_the_scorer_endpoint_is_scrubbed() -> None:
    key = "gw-0123456789abcdefghijklmnopqrstuvwxyz"
    server = RMServer(faults=[401])

    async def test(s: RMServer) -> str:
        scorer = RewardModelScorer(s.url + "/score", headers={"x-api-key": key})
        try:
            with pytest.raises(FatalAPIError) as info:
                await scorer(samples(1))
            return str(info.value)
        finally:
            await scorer.aclose()

    said = run_with_server(server, test)
    assert said.endswith("scripted 401 ***") and key[:8] not in said


def test_malformed_bodies_and_timeouts_exhaust_retries() -> None:
    async def malformed(s: RMServer) -> None:
        scorer = RewardModelScorer(s.url + "/classify", format="vllm_classify",
                                   backoff_base_s=0.001, max_attempts=2)
        try:
            with pytest.raises(MalformedResponseError):
                await scorer(samples(1))
        finally:
            await scorer.aclose()

    server = RMServer(malformed=True)
    run_with_server(server, malformed)
    assert len(server.bodies) == 2

    async def slow(s: RMServer) -> None:
        scorer = RewardModelScorer(s.url + "/score", timeout_s=0.05, backoff_base_s=0.001,
                                   max_attempts=2)
        try:
            with pytest.raises(RequestTimeoutError):
                await scorer(samples(1))
        finally:
            await scorer.aclose()

    run_with_server(RMServer(delay_s=1.0), slow)


def test_concurrency_limit_holds_across_batches() -> None:
    server = RMServer(delay_s=0.02)

    async def test(s: RMServer) -> None:
        scorer = RewardModelScorer(s.url + "/score", concurrency=3)
        try:
            await asyncio.gather(scorer(samples(6)), scorer(samples(6)))
        finally:
            await scorer.aclose()

    run_with_server(server, test)
    assert server.max_in_flight == 3
    assert len(server.bodies) == 12


# ---------------------------------------------------------------- config and runs


def test_configured_from_a_scorers_table(tmp_path: Path) -> None:
    from ttc.config import ScorerConfig

    with pytest.raises(ConfigError, match="url is required"):
        make_scorer(ScorerConfig("rm", "reward_model", {}))
    with pytest.raises(ConfigError, match="format"):
        make_scorer(ScorerConfig("rm", "reward_model", {"url": "http://x", "format": "tgi"}))
    with pytest.raises(ConfigError, match="unknown option"):
        make_scorer(ScorerConfig("rm", "reward_model", {"url": "http://x", "batch": 2}))
    a = make_scorer(ScorerConfig("rm", "reward_model", {"url": "http://x/score"}))
    b = make_scorer(ScorerConfig("rm", "reward_model", {"url": "http://y/score"}))
    assert a.name == "rm" and a.version != b.version  # another server is another version


def test_scores_a_stored_run_once(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", create=True)
    items = samples(6)
    store.put_problems(list({s.problem.id: s.problem for s in items}.values()), {})
    store.write_samples([s.record for s in items])
    failed = SampleRecord(problem_id="p0", budget="1024", sample_index=9, status="failed")
    store.write_samples([failed])
    server = RMServer()

    async def test(s: RMServer) -> tuple[int, int]:
        scorer = RewardModelScorer(s.url + "/classify", format="vllm_classify", name="rm")
        try:
            return await score_run(store, scorer), await score_run(store, scorer)
        finally:
            await scorer.aclose()

    assert run_with_server(server, test) == (6, 0)
    frame = store.scores_frame().sort_values(["problem_id", "sample_index"])
    assert list(frame["score"]) == pytest.approx(EXPECTED)
    assert sum(len(b["input"]) for b in server.bodies) == 6  # the failed sample is skipped
    store.close()
