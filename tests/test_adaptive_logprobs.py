"""sweep.logprobs on the wire and in the store, hostile logprob values, prefix watches on a
real stream, and the waves' closed forms against the exhaustive search."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc.adaptive import ESC, AdaptiveConsistency, Bounded, FixedSamples
from ttc.adaptive.logprobs import decode_logprobs
from ttc.adaptive.online import PrefixWatch
from ttc.adaptive.waves import wave_size
from ttc.config import ModelConfig, SweepConfig, config_from_dict
from ttc.errors import MalformedResponseError
from ttc.problems import Problem
from ttc.providers.base import SampleRequest
from ttc.providers.openai import OpenAIProvider, parse_chat_completion
from ttc.sampler import Sweep
from ttc.store import RunStore
from ttc.testing.fake_server import FaultPlan, run_in_thread
from ttc.testing.responders import Reply

PROBLEM = Problem(id="a", question="What is 2 + 3?", answer="5")


def provider(url: str, **sweep: Any) -> OpenAIProvider:
    return OpenAIProvider(ModelConfig(provider="openai", name="m", base_url=url + "/v1"),
                          sweep=SweepConfig(**sweep))


def test_logprob_bodies_are_valid_sdk_params_and_both_shapes_parse_alike() -> None:
    from openai.types.chat import completion_create_params as o
    from pydantic import TypeAdapter

    bodies = {}
    with run_in_thread(plan=FaultPlan(words_per_event=3)) as server:
        for stream in (False, True):
            p = provider(server.base_url, logprobs=True, top_logprobs=4, stream=stream)
            body = p.build_body(SampleRequest(PROBLEM, "What is 2 + 3?", 64, 0, seed=3))
            params = o.CompletionCreateParamsStreaming if stream else \
                o.CompletionCreateParamsNonStreaming
            TypeAdapter(params).validate_python(body)
            assert (body["logprobs"], body["top_logprobs"]) == (True, 4)

            async def draw(p: OpenAIProvider = p) -> Any:
                try:
                    return await p.complete(SampleRequest(PROBLEM, "What is 2 + 3?", 64, 0,
                                                          seed=3))
                finally:
                    await p.aclose()

            bodies[stream] = asyncio.run(draw())
        assert [r.body.get("stream") for r in server.requests] == [None, True]
    whole, streamed = bodies[False], bodies[True]
    assert whole.logprobs.shape == (whole.output_tokens, 4)
    assert np.array_equal(whole.logprobs, streamed.logprobs)  # stream = whole, token by token
    assert (whole.text, whole.thinking) == (streamed.text, streamed.thinking)


def _body(items: Any) -> dict[str, Any]:
    return {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"},
                                    "finish_reason": "stop", "logprobs": {"content": items}}]}


@pytest.mark.parametrize("items", [
    "nope", [1], [{"token": "a", "logprob": 0.7}], [{"token": "a", "logprob": "x"}],
    [{"token": "a", "logprob": float("nan")}], [{"token": "a", "logprob": True}],
    [{"token": "a", "logprob": -1.0, "top_logprobs": "x"}],
    [{"token": "a", "logprob": -1.0, "top_logprobs": [{"logprob": float("inf")}]}],
])
def test_hostile_logprobs_are_malformed_and_retried(items: Any) -> None:
    with pytest.raises(MalformedResponseError):
        parse_chat_completion(_body(items), top_logprobs=3)


def test_logprobs_edge_values_and_exact_counts_without_usage() -> None:
    items = [{"token": "a", "logprob": -float("inf"), "top_logprobs": []},
             {"token": "b", "logprob": 0.0, "top_logprobs": [
                 {"token": "b", "logprob": 0.0}, {"token": "c", "logprob": -30.5}]}]
    got = parse_chat_completion(_body(items), top_logprobs=2)
    assert got.output_tokens == 2 and got.extra == {"input_tokens_unknown": True}
    assert np.isinf(got.logprobs[0, 0]) and np.isnan(got.logprobs[0, 1])
    assert list(got.logprobs[1]) == [0.0, 30.5]
    assert parse_chat_completion(_body(items)).logprobs is None  # not asked: not read


def test_sweep_stores_logprobs_and_the_offline_replay_reads_them(tmp_path: Path) -> None:
    from ttc.adaptive import adaptive_report
    from ttc.run import open_run

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "question": f"What is {i} + 1?",
                                        "answer": str(i + 1)}) + "\n" for i in range(6)))
    with run_in_thread() as server:
        cfg = config_from_dict({
            "model": {"provider": "openai", "name": "fake", "base_url": server.base_url + "/v1"},
            "dataset": {"path": str(data)},
            "sweep": {"budgets": [256], "samples": 4, "logprobs": True, "top_logprobs": 2}})
        asyncio.run(Sweep(cfg, tmp_path / "run").run())
    with RunStore(tmp_path / "run", read_only=True) as store:
        records = list(store.iter_samples(with_logprobs=True))
    assert len(records) == 24
    for r in records:
        rows = decode_logprobs(r.logprobs)  # type: ignore[arg-type]
        assert rows.shape == (r.output_tokens, 2)
        assert len(r.logprobs or b"") < 20 + 2 * 2 * r.output_tokens  # compact

    async def replay() -> Any:
        with open_run(tmp_path / "run") as run:
            return await adaptive_report(run, "deepconf", ["window=16", "warmup=2"],
                                         n_boot=50)

    report = asyncio.run(replay())
    assert len(report.points) == 3 and all(p.mean_samples == 4 for p in report.points)


class WordScorer:
    """A real ``Scorer``: 0 once the prefix contains a given word, else 1."""

    name = "word"
    version = "word-v1"
    needs_text = True

    def __init__(self, word: str) -> None:
        self.word = word
        self.seen: list[int] = []

    async def __call__(self, samples: list[Any]) -> list[float | None]:
        self.seen += [s.record.thinking_tokens for s in samples]
        return [0.0 if self.word in (s.record.thinking or "").split() else 1.0
                for s in samples]


def test_prefix_watch_scores_every_n_tokens_and_stops_the_stream() -> None:
    thinking = " ".join(["ok"] * 20 + ["oops"] + ["ok"] * 40)

    def responder(q: Any) -> Reply:
        return Reply(text="The answer is \\boxed{5}.", thinking=thinking)

    scorer = WordScorer("oops")
    with run_in_thread(responder=responder, plan=FaultPlan(words_per_event=2)) as server:
        p = provider(server.base_url, stream=True)

        async def draw() -> Any:
            try:
                watch = PrefixWatch(scorer, PROBLEM, "64", every=8, threshold=0.5)
                return await p.complete(SampleRequest(PROBLEM, "q", 64, 0, watch=watch))
            finally:
                await p.aclose()

        got = asyncio.run(draw())
    assert got.stopped and got.stop_reason == "stopped" and got.text == ""
    words = (got.thinking or "").split()
    assert "oops" in words and len(words) < 40  # cut at the first check past the word
    # checks every 8 (estimated) thinking tokens; the last one saw the word and stopped it
    assert len(scorer.seen) >= 2 and all(n >= 8 for n in scorer.seen)
    assert all(b - a >= 8 for a, b in zip(scorer.seen, scorer.seen[1:], strict=False))


# ---------------------------------------------------------------- waves

RULES = [ESC(2), ESC(3), ESC(5), AdaptiveConsistency(0.8), AdaptiveConsistency(0.95),
         AdaptiveConsistency(0.9, "dirichlet"), FixedSamples(4),
         Bounded(AdaptiveConsistency(0.9), min_samples=3, max_samples=9),
         Bounded(ESC(3), min_samples=4, max_samples=7)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(RULES),
       st.lists(st.one_of(st.none(), st.sampled_from("abc")), max_size=9),
       st.integers(1, 10))
def test_closed_form_waves_equal_the_exhaustive_search(rule: Any, classes: list[Any],
                                                       remaining: int) -> None:
    assert wave_size(rule, classes, remaining) == wave_size(rule, classes, remaining,
                                                            search=True)


def test_waves_never_start_an_unneeded_sample() -> None:
    """Brute force: for every continuation, the rule stops no earlier than the wave's end."""
    import itertools

    from ttc.adaptive.usage import first_stop

    for rule in RULES:
        for history in itertools.product("ab-", repeat=3):
            drawn = [None if h == "-" else h for h in history]
            if first_stop(rule, drawn) is not None:
                continue
            k = wave_size(rule, drawn, 6)
            for future in itertools.product("abc-", repeat=k - 1):
                more = [None if f == "-" else f for f in future]
                assert first_stop(rule, drawn + more) is None, (rule, drawn, more)
    assert wave_size(ESC(5), [], 16) == 5 and wave_size(AdaptiveConsistency(0.95), [], 16) == 4
