"""Scoring a run: once per sample and scorer version, resumable, found by name in the run's
config; the simulated scorer; the verifier's logprob and rating paths against real
loopback servers (an OpenAI-compatible one with logprobs written here, and ttc's own
fault-injecting fake server for the OpenAI and Anthropic rating paths)."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ttc.config import ModelConfig, ScorerConfig, config_from_dict
from ttc.errors import ConfigError, FatalAPIError, RateLimitError
from ttc.problems import Problem
from ttc.run import open_run
from ttc.sampler import Sweep
from ttc.scorers import (
    LearnedScorer,
    RewardModelScorer,
    ScorableSample,
    Scorer,
    SimulatedScorer,
    VerifierScorer,
    make_scorer,
    score_by_name,
    score_run,
)
from ttc.scorers.verifier import p_yes_from_logprobs, parse_rating
from ttc.store import RunStore, SampleRecord
from ttc.testing.fake_server import FaultPlan, Query, Reply, run_in_thread

__all__: list[str] = []

QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")
PROPOSED = re.compile(r"The proposed final answer is: (\S+)")


def arithmetic_truth(prompt: str) -> bool:
    """Whether the proposed answer in a verifier prompt is the right sum."""
    q, a = QUESTION.search(prompt), PROPOSED.search(prompt)
    assert q is not None and a is not None, prompt
    return int(q.group(1)) + int(q.group(2)) == int(a.group(1))


def make_store(path: Path, problems: int = 3, per: int = 4, failed: int = 1) -> RunStore:
    """A run of ``problems`` additions x ``per`` samples (odd samples wrong), plus failures."""
    store = RunStore(path, create=True)
    probs = [Problem(id=f"p{i}", question=f"What is {i} + {i + 1}?", answer=str(2 * i + 1))
             for i in range(problems)]
    store.put_problems(probs, {})
    records = []
    for p in probs:
        for j in range(per):
            right = j % 2 == 0
            answer = p.answer if right else str(int(p.answer) + 1)
            records.append(SampleRecord(
                problem_id=p.id, budget="1024", sample_index=j, status="ok", answer=answer,
                correct=right, text=f"Sample {j}: so the sum is \\boxed{{{answer}}}.",
                thinking_tokens=100 + j, extra={"signal": 1.0 if right else -1.0},
            ))
        for j in range(failed):
            records.append(SampleRecord(problem_id=p.id, budget="1024", sample_index=per + j,
                                        status="failed", error="boom"))
    store.write_samples(records)
    return store


class CountingScorer:
    """Scores by answer length; counts what it is asked, fails on cue (to test resume)."""

    def __init__(self, version: str = "v1", fail_on_call: int = 0) -> None:
        self.name = "length"
        self.version = version
        self.calls = 0
        self.seen: list[tuple[str, str, int]] = []
        self.fail_on_call = fail_on_call

    async def __call__(self, samples: Sequence[ScorableSample]) -> list[float | None]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RateLimitError("exhausted retries")
        self.seen.extend(s.key for s in samples)
        return [float(len(s.record.answer or "")) for s in samples]


# ---------------------------------------------------------------- score_run


def test_score_run_scores_each_sample_once(tmp_path: Path) -> None:
    store = make_store(tmp_path / "run")
    scorer = CountingScorer()
    assert isinstance(scorer, Scorer)
    assert asyncio.run(score_run(store, scorer, batch_size=5)) == 12
    assert len(scorer.seen) == len(set(scorer.seen)) == 12  # failed samples never scored
    assert asyncio.run(score_run(store, scorer, batch_size=5)) == 0
    assert len(scorer.seen) == 12
    assert store.scored_keys("length", "v1") == set(scorer.seen)
    # a new version is a new scorer: scored afresh, the old scores stay
    assert asyncio.run(score_run(store, CountingScorer(version="v2"))) == 12
    assert set(store.scores_frame()["version"]) == {"v1", "v2"}
    store.close()


def test_score_run_resumes_after_a_failure(tmp_path: Path) -> None:
    store = make_store(tmp_path / "run", problems=5)
    broken = CountingScorer(fail_on_call=3)
    with pytest.raises(RateLimitError):
        asyncio.run(score_run(store, broken, batch_size=4, concurrency=1))
    assert len(store.scored_keys("length", "v1")) == 8  # two batches were persisted
    resumed = CountingScorer()
    assert asyncio.run(score_run(store, resumed, batch_size=4)) == 12
    assert not set(resumed.seen) & set(broken.seen)
    assert len(store.scored_keys("length", "v1")) == 20
    store.close()


def test_score_run_rejects_a_scorer_that_drops_samples(tmp_path: Path) -> None:
    class Short(CountingScorer):
        async def __call__(self, samples: Sequence[ScorableSample]) -> list[float | None]:
            return [1.0] * (len(samples) - 1)

    store = make_store(tmp_path / "run")
    with pytest.raises(RuntimeError, match="returned 11 scores for 12"):
        asyncio.run(score_run(store, Short(), batch_size=100))
    store.close()


def test_other_scorers_scores_reach_the_samples(tmp_path: Path) -> None:
    store = make_store(tmp_path / "run", problems=1)
    asyncio.run(score_run(store, CountingScorer()))
    seen: list[dict[str, float | None]] = []

    class Peek(CountingScorer):
        async def __call__(self, samples: Sequence[ScorableSample]) -> list[float | None]:
            seen.extend(s.scores for s in samples)
            return [0.0] * len(samples)

    peek = Peek()
    peek.name = "peek"
    asyncio.run(score_run(store, peek))
    assert sorted(s["length"] or 0 for s in seen) == [1.0, 1.0, 1.0, 1.0]
    store.close()


# ---------------------------------------------------------------- simulated scorer


def test_simulated_scorer_reads_the_signal(tmp_path: Path) -> None:
    store = make_store(tmp_path / "run", problems=1)
    records = list(store.iter_samples(with_text=True))
    problem = store.problems()[0][0]
    items = [ScorableSample(problem, r) for r in records if r.status == "ok"]
    raw = asyncio.run(SimulatedScorer()(items))
    assert raw == [1.0, -1.0, 1.0, -1.0]
    squashed = asyncio.run(SimulatedScorer(transform="sigmoid")(items))
    assert squashed[0] == pytest.approx(1 / (1 + math.exp(-1)))
    items[0].record.extra.clear()
    assert asyncio.run(SimulatedScorer()(items))[0] is None
    with pytest.raises(ConfigError):
        SimulatedScorer(transform="tanh")
    store.close()


# ---------------------------------------------------------------- construction


def test_make_scorer_builds_every_kind() -> None:
    model = ModelConfig(provider="openai", name="judge", base_url="http://127.0.0.1:9/v1")
    built = {
        kind: make_scorer(ScorerConfig(f"s-{kind}", kind, options), model_config=model)  # type: ignore[arg-type]
        for kind, options in [("simulated", {}), ("learned", {"l2": 0.5}),
                              ("reward_model", {"url": "http://127.0.0.1:9/score"}),
                              ("verifier", {})]
    }
    assert isinstance(built["simulated"], SimulatedScorer)
    assert isinstance(built["learned"], LearnedScorer) and built["learned"].l2 == 0.5
    assert isinstance(built["reward_model"], RewardModelScorer)
    verifier = built["verifier"]
    assert isinstance(verifier, VerifierScorer) and verifier.model.name == "judge"
    own = make_scorer(ScorerConfig("v", "verifier", {"model": {
        "provider": "anthropic", "name": "claude-judge"}}), model_config=model)
    assert isinstance(own, VerifierScorer) and own.model.provider == "anthropic"
    assert own.version != verifier.version
    with pytest.raises(ConfigError, match="base_url"):
        make_scorer(ScorerConfig("v", "verifier", {"model": {"provider": "openai", "name": "x"}}))
    with pytest.raises(ConfigError, match="no model"):
        make_scorer(ScorerConfig("v", "verifier", {}))
    with pytest.raises(ConfigError, match="n_folds"):
        make_scorer(ScorerConfig("l", "learned", {"n_folds": 1}))


def _sim_config(tmp_path: Path) -> dict[str, Any]:
    rows = [{"id": f"q{i}", "question": f"What is {i} + 3?", "answer": str(i + 3)}
            for i in range(12)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"model": {"provider": "simulated"}, "dataset": {"path": str(data)},
            "sweep": {"budgets": [1024, 4096], "samples": 4},
            "scorers": [{"name": "sig", "kind": "simulated"},
                        {"name": "learned", "kind": "learned", "n_folds": 3}]}


def test_score_by_name_uses_the_runs_stored_config(tmp_path: Path) -> None:
    raw = _sim_config(tmp_path)
    asyncio.run(Sweep(config_from_dict(raw), tmp_path / "run").run())
    with open_run(tmp_path / "run") as run:
        assert asyncio.run(score_by_name(run, "sig")) == 96
        assert asyncio.run(score_by_name(run, "sig")) == 0
        assert asyncio.run(score_by_name(run, "learned")) == 96
        scores = run.scores()  # refreshed by score_by_name
        assert set(scores["scorer"]) == {"sig", "learned"}
        assert scores.groupby("scorer").size().to_dict() == {"learned": 96, "sig": 96}
        with pytest.raises(ConfigError, match="known scorers: sig, learned"):
            asyncio.run(score_by_name(run, "nope"))
        # a config file can define scorers the run was not swept with
        toml = tmp_path / "extra.toml"
        toml.write_text(
            f'[model]\nprovider = "simulated"\n[dataset]\npath = "{raw["dataset"]["path"]}"\n'
            '[[scorers]]\nname = "sig2"\nkind = "simulated"\ntransform = "sigmoid"\n',
            encoding="utf-8",
        )
        assert asyncio.run(score_by_name(run, "sig2", config_path=toml)) == 96
        # the learned scorer saw the earlier scorers' scores as features
        assert set(run.scores()["scorer"]) == {"sig", "learned", "sig2"}


# ---------------------------------------------------------------- verifier: parsing


def test_parse_rating() -> None:
    assert parse_rating("Yes.") == 1.0
    assert parse_rating("No, the sum is 7.") == 0.0
    assert parse_rating("Checking: 3 + 4 = 7, so the answer is right. **Yes**") == 1.0
    assert parse_rating("<think>yes? no?</think>\nNo") == 0.0
    assert parse_rating("I cannot tell.") is None
    assert parse_rating(None) is None
    assert parse_rating("Rating: 8", scale="1-10") == pytest.approx(7 / 9)
    assert parse_rating("10", scale="1-10") == 1.0
    assert parse_rating("I'd say 1 out of... hmm, 3.5", scale="1-10") == 0.0


def test_p_yes_pools_variants_at_the_answer_token() -> None:
    lp = math.log
    content = [
        {"token": "<think>", "logprob": 0.0, "top_logprobs": []},
        {"token": "no", "logprob": lp(0.5), "top_logprobs": []},  # inside thinking: skipped
        {"token": "</think>", "logprob": 0.0, "top_logprobs": []},
        {"token": "Yes", "logprob": lp(0.6), "top_logprobs": [
            {"token": "Yes", "logprob": lp(0.6)}, {"token": " yes", "logprob": lp(0.1)},
            {"token": "No", "logprob": lp(0.2)}, {"token": "Maybe", "logprob": lp(0.1)}]},
    ]
    assert p_yes_from_logprobs(content) == pytest.approx(0.7 / 0.9)
    assert p_yes_from_logprobs([{"token": "Perhaps", "logprob": 0.0}]) is None
    # no yes/no generated: the first position offering one decides (as real small models do)
    opening = [{"token": "The", "logprob": lp(0.5), "top_logprobs": [
                   {"token": "The", "logprob": lp(0.5)}, {"token": "No", "logprob": lp(0.3)},
                   {"token": "Yes", "logprob": lp(0.1)}]},
               {"token": " answer", "logprob": lp(0.9), "top_logprobs": []}]
    assert p_yes_from_logprobs(opening) == pytest.approx(0.25)


# ---------------------------------------------------------------- verifier: logprobs path


class LogprobServer:
    """An OpenAI-compatible chat endpoint that answers with logprobs, 429 first per body."""

    def __init__(self, *, refuse_logprobs: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.refuse = refuse_logprobs
        self._seen: set[str] = set()
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> LogprobServer:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        raw = await request.text()
        body = json.loads(raw)
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        if self.refuse:
            return web.json_response({"error": {"message": "logprobs not supported"}},
                                     status=400)
        if raw not in self._seen:  # every request is rate limited once
            self._seen.add(raw)
            return web.json_response({"error": {"message": "slow down"}}, status=429,
                                     headers={"retry-after": "0"})
        right = arithmetic_truth(body["messages"][-1]["content"])
        p_yes, p_no = (0.8, 0.15) if right else (0.25, 0.7)
        top = [{"token": "Yes", "logprob": math.log(p_yes)},
               {"token": "No", "logprob": math.log(p_no)},
               {"token": "yes", "logprob": math.log(0.05)}]
        first = top[0] if right else top[1]
        return web.json_response({
            "id": "x", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": first["token"]},
                         "logprobs": {"content": [{**first, "top_logprobs": top}]}}],
        })


def test_verifier_reads_p_yes_from_logprobs(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_TEST_JUDGE_KEY", "sk-judge")
    store = make_store(tmp_path / "run")

    async def main() -> tuple[int, list[dict[str, Any]], list[dict[str, str]]]:
        async with LogprobServer() as server:
            model = ModelConfig(provider="openai", name="judge", base_url=server.base_url,
                                api_key_env="TTC_TEST_JUDGE_KEY")
            scorer = VerifierScorer(model, name="judge", backoff_base_s=0.001, concurrency=4)
            try:
                count = await score_run(store, scorer)
            finally:
                await scorer.aclose()
            return count, server.bodies, server.headers

    count, bodies, headers = asyncio.run(main())
    assert count == 12
    assert len(bodies) == 24  # each sample: one 429, one retry
    body = bodies[-1]
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert body["temperature"] == 0.0 and body["model"] == "judge"
    assert body["max_completion_tokens"] == 16
    assert "Is the final answer correct? Answer yes or no" in body["messages"][0]["content"]
    assert headers[-1]["Authorization"] == "Bearer sk-judge"
    frame = store.scores_frame().merge(
        store.samples_frame()[["problem_id", "sample_index", "correct"]],
        on=["problem_id", "sample_index"])
    for _, row in frame.iterrows():
        want = 0.85 / 1.0 if row["correct"] else 0.30 / 1.0
        assert row["score"] == pytest.approx(want)
    store.close()


def test_verifier_explains_a_server_without_logprobs(tmp_path: Path) -> None:
    store = make_store(tmp_path / "run", problems=1)

    async def main() -> None:
        async with LogprobServer(refuse_logprobs=True) as server:
            model = ModelConfig(provider="openai", name="judge", base_url=server.base_url)
            scorer = VerifierScorer(model, backoff_base_s=0.001)
            try:
                with pytest.raises(FatalAPIError, match="use_logprobs = false"):
                    await score_run(store, scorer)
            finally:
                await scorer.aclose()

    asyncio.run(main())
    assert store.scored_keys("verifier", VerifierScorer(
        ModelConfig(provider="openai", name="judge", base_url="http://x")).version) == set()
    store.close()


# ---------------------------------------------------------------- verifier: rating path


def judge(query: Query) -> Reply:
    """The fake server's model, acting as a verifier: yes when the proposal is right."""
    return Reply(text="Yes" if arithmetic_truth(query.prompt) else "No, it is off by one.",
                 thinking="let me check the sum")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_verifier_rating_through_a_provider(tmp_path: Path, provider: str) -> None:
    store = make_store(tmp_path / "run")
    plan = FaultPlan(per_body=("rate_limit", "server_error"))
    with run_in_thread(responder=judge, plan=plan) as server:
        base = server.base_url + ("/v1" if provider == "openai" else "")
        scorer = make_scorer(
            ScorerConfig("judge", "verifier", {
                "model": {"provider": provider, "name": "judge-model", "base_url": base},
                "use_logprobs": False, "backoff_base_s": 0.001, "max_attempts": 4}),
        )
        assert isinstance(scorer, VerifierScorer)

        async def main() -> int:
            try:
                return await score_run(store, scorer)
            finally:
                await scorer.aclose()

        assert asyncio.run(main()) == 12
        assert server.faults["rate_limit"] == 12 and server.faults["server_error"] == 12
    frame = store.scores_frame().merge(
        store.samples_frame()[["problem_id", "sample_index", "correct"]],
        on=["problem_id", "sample_index"])
    assert (frame["score"] == frame["correct"].astype(float)).all()
    store.close()


# ---------------------------------------------------------------- verifier: prompts


def test_verifier_prompt_shows_mcq_choices_as_the_model_saw_them() -> None:
    problem = Problem(id="m1", question="Which is a prime?", answer="C", kind="mcq",
                      choices=("4", "6", "7", "9"))
    # shown order: position 0 shows source 2 ("7"), so the model answered "A"
    record = SampleRecord(problem_id="m1", budget="low", sample_index=0, status="ok",
                          answer="C", correct=True, text="7 is prime. Answer: A",
                          choice_order=(2, 0, 1, 3))
    model = ModelConfig(provider="openai", name="judge", base_url="http://127.0.0.1:9/v1")
    prompt = VerifierScorer(model).render(ScorableSample(problem, record))
    assert "Which is a prime?\n\nA. 7\nB. 4\nC. 6\nD. 9" in prompt
    assert "The proposed final answer is: A. 7" in prompt
    custom = VerifierScorer(model, prompt="Check {question} vs \\boxed{{}} {solution}: {answer}")
    assert custom.render(ScorableSample(problem, record)).endswith(
        "vs \\boxed{{}} 7 is prime. Answer: A: A. 7")
    with pytest.raises(ConfigError, match="must contain"):
        VerifierScorer(model, prompt="no slots")


def test_verifier_refuses_the_simulated_backend() -> None:
    with pytest.raises(ConfigError, match="cannot judge"):
        make_scorer(ScorerConfig("v", "verifier", {}),
                    model_config=ModelConfig(provider="simulated"))


def test_verifier_asks_once_per_distinct_solution() -> None:
    problem = Problem(id="p", question="What is 2 + 3?", answer="5")
    texts = ["It is \\boxed{5}.", "It is \\boxed{5}.", "Surely \\boxed{6}."]
    items = [ScorableSample(problem, SampleRecord(
        problem_id="p", budget="1024", sample_index=i, status="ok",
        answer="5" if "5" in t else "6", correct="5" in t, text=t)) for i, t in enumerate(texts)]

    async def main() -> tuple[list[float | None], int]:
        async with LogprobServer() as server:
            model = ModelConfig(provider="openai", name="judge", base_url=server.base_url)
            scorer = VerifierScorer(model, backoff_base_s=0.001)
            try:
                return await scorer(items), len(server.bodies)
            finally:
                await scorer.aclose()

    scores, requests = asyncio.run(main())
    assert scores == pytest.approx([0.85, 0.85, 0.30])
    assert requests == 4  # two distinct prompts, each rate limited once


# ---------------------------------------------------------------- verifier: a real model


@pytest.mark.local
def test_verifier_logprobs_from_a_real_llama_cpp_server() -> None:
    """The bundled SmolLM2-135M behind llama.cpp's OpenAI-compatible server: real logprobs
    come back and become probabilities (135M parameters judge barely above chance)."""
    import os

    from ttc.errors import LocalModelError
    from ttc.local_server import LlamaServer, find_default_model, find_llama_server

    try:
        find_default_model()
        find_llama_server()
    except LocalModelError as exc:
        if os.environ.get("TTC_REQUIRE_LOCAL") == "1":
            raise
        pytest.skip(str(exc))
    problem = Problem(id="p", question="What is 2 + 3?", answer="5")
    items = [ScorableSample(problem, SampleRecord(
        problem_id="p", budget="1024", sample_index=i, status="ok", answer=answer,
        correct=answer == "5", text=f"2 + 3 = {answer}, so the answer is \\boxed{{{answer}}}."))
        for i, answer in enumerate(["5", "7"])]

    async def main() -> list[float | None]:
        async with LlamaServer(n_ctx=2048, threads=1) as server:
            model = ModelConfig(provider="openai", name="smollm2", base_url=server.base_url,
                                max_tokens_field="max_tokens")
            scorer = VerifierScorer(model, max_tokens=4, concurrency=1)
            try:
                return await scorer(items)
            finally:
                await scorer.aclose()

    scores = asyncio.run(main())
    assert all(s is not None and 0.0 < s < 1.0 for s in scores), scores
