"""The budget forcing loop against a scripted ``/v1/completions`` server (httpx.MockTransport).

The fake model counts one token per word: in a thinking call it emits the next
``think_words`` words of its chain of thought and then stops (as if it wrote
``</think>``), unless ``max_tokens`` cuts it off first, exactly like llama.cpp's
``finish_reason`` "stop" / "length".
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest

from ttc.budget_forcing import BudgetForcingProvider, render_chat
from ttc.config import BudgetForcingConfig, ModelConfig
from ttc.errors import FatalAPIError, MalformedResponseError, ServerError
from ttc.http import HttpxTransport
from ttc.problems import Problem
from ttc.providers.base import Completion, SampleRequest


class FakeModel:
    """A scripted completions endpoint that records every request body."""

    def __init__(
        self,
        think_words: int,
        *,
        usage: bool = True,
        answer: str = "8",
        answer_prefix: str = "Final answer: ",
    ) -> None:
        self.think_words = think_words
        self.answer_prefix = answer_prefix
        self.usage = usage
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.counter = 0
        self.status = 200
        self.raw: bytes | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/completions"
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "boom"}})
        if self.raw is not None:
            return httpx.Response(200, content=self.raw)
        limit = body["max_tokens"]
        if body["prompt"].endswith(self.answer_prefix):
            words = [self.answer]
        else:
            words = []
            for _ in range(self.think_words):
                self.counter += 1
                words.append(f"w{self.counter}")
        finish = "stop"
        if len(words) > limit:
            words, finish = words[:limit], "length"
        text = " ".join(words)
        if words and not body["prompt"][-1:].isspace():  # like BPE tokens " w6"
            text = " " + text
        data: dict[str, Any] = {
            "id": "cmpl-1",
            "object": "text_completion",
            "choices": [{"index": 0, "text": text, "finish_reason": finish}],
        }
        if self.usage:
            data["usage"] = {
                "prompt_tokens": len(body["prompt"].split()),
                "completion_tokens": len(words),
                "total_tokens": len(body["prompt"].split()) + len(words),
            }
        return httpx.Response(200, json=data)


def _run(
    model: FakeModel,
    budget: int | str,
    *,
    system: str = "",
    prompt: str = "What is 3 + 5?",
    seed: int = 7,
    **forcing: Any,
) -> Completion:
    config = ModelConfig(
        provider="local",
        name="smol",
        base_url="http://fake/v1",
        answer_tokens=4,
        temperature=0.7,
        extra_body={"min_p": 0.1},
        budget_forcing=BudgetForcingConfig(enabled=True, **forcing),
    )
    request = SampleRequest(
        problem=Problem(id="p1", question="q", answer="8"),
        prompt=prompt,
        budget=budget,
        sample_index=0,
        system=system,
        seed=seed,
    )

    async def go() -> Completion:
        client = httpx.AsyncClient(transport=httpx.MockTransport(model.handler))
        provider = BudgetForcingProvider(config, transport=HttpxTransport(client))
        try:
            return await provider.complete(request)
        finally:
            await provider.aclose()
            await client.aclose()

    return asyncio.run(go())


def test_prompt_assembly_and_answer_phase() -> None:
    model = FakeModel(think_words=3)
    out = _run(model, 50, system="Be brief.")
    first, answer = model.bodies
    assert first["prompt"] == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is 3 + 5?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    assert first["max_tokens"] == 50
    assert first["stop"] == ["</think>", "<|im_end|>"]
    assert first["temperature"] == 0.7 and first["seed"] == 7 and first["min_p"] == 0.1
    assert first["model"] == "smol"
    assert answer["prompt"] == first["prompt"] + "w1 w2 w3\n</think>\nFinal answer: "
    assert answer["max_tokens"] == 4
    assert out.text == "Final answer: 8"
    assert out.thinking == "w1 w2 w3"
    assert out.thinking_tokens == 3 and not out.thinking_estimated
    assert out.output_tokens == 4  # 3 thinking + 1 answer
    assert out.input_tokens == len(first["prompt"].split())
    assert out.censored is False and out.stop_reason == "stop"
    assert out.extra["calls"] == 2 and out.extra["wait_rounds"] == 0


def test_budget_cutoff_forces_the_end_of_thinking() -> None:
    model = FakeModel(think_words=50)
    out = _run(model, 20, wait_rounds=3)
    think, answer = model.bodies
    assert think["max_tokens"] == 20
    assert out.thinking_tokens == 20 and out.censored
    assert out.thinking == " ".join(f"w{i}" for i in range(1, 21))
    assert answer["prompt"].endswith("w20\n</think>\nFinal answer: ")
    assert out.text.split() == ["Final", "answer:", "8"]


def test_wait_rounds_extend_thinking_after_early_stops() -> None:
    model = FakeModel(think_words=5)
    out = _run(model, 100, wait_rounds=2)
    thinking_calls = model.bodies[:-1]
    assert [b["max_tokens"] for b in thinking_calls] == [100, 95, 90]
    assert thinking_calls[1]["prompt"].endswith("<think>\nw1 w2 w3 w4 w5 Wait")
    assert out.thinking == "w1 w2 w3 w4 w5 Wait w6 w7 w8 w9 w10 Wait w11 w12 w13 w14 w15"
    assert out.thinking_tokens == 15 and not out.censored
    assert out.extra["wait_rounds"] == 2 and out.extra["calls"] == 4


def test_wait_rounds_stop_at_the_budget() -> None:
    model = FakeModel(think_words=8)
    out = _run(model, 20, wait_rounds=5)
    assert [b["max_tokens"] for b in model.bodies[:-1]] == [20, 12, 4]
    assert out.thinking_tokens == 20 and out.censored
    assert out.extra["wait_rounds"] == 2


def test_min_thinking_tokens_keeps_appending_wait() -> None:
    model = FakeModel(think_words=5)
    out = _run(model, 100, min_thinking_tokens=12, wait_text="Hmm,")
    assert out.thinking_tokens == 15
    assert out.thinking is not None and out.thinking.count("Hmm,") == 2
    assert not out.censored


def test_larger_budget_means_more_realized_thinking() -> None:
    realized = [_run(FakeModel(think_words=30), b).thinking_tokens for b in (8, 16, 64)]
    assert realized == [8, 16, 30]


def test_missing_usage_is_estimated_and_marked() -> None:
    out = _run(FakeModel(think_words=40, usage=False), 400)
    assert out.thinking_estimated
    assert out.thinking_tokens > 0


def test_custom_template_and_delimiters_with_braces_in_prompt() -> None:
    model = FakeModel(think_words=2, answer_prefix="Answer: ")
    out = _run(
        model,
        10,
        prompt="Solve {x} + 1 = 3",
        chat_template="### User: {prompt}\n### Assistant:",
        think_start="[THINK]",
        think_end="[/THINK]",
        answer_prefix="Answer: ",
    )
    first, answer = model.bodies
    assert first["prompt"] == "### User: Solve {x} + 1 = 3\n### Assistant:[THINK]"
    assert first["stop"] == ["[/THINK]", "<|im_end|>"]
    assert answer["prompt"].endswith(" w1 w2[/THINK]Answer: ")
    assert out.text == "Answer: 8"


def test_chatml_without_system_has_no_system_block() -> None:
    text = render_chat("chatml", system="", prompt="hi")
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_effort_budget_maps_to_tokens_and_zero_seed_is_not_sent() -> None:
    model = FakeModel(think_words=1)
    _run(model, "low", seed=0)
    assert model.bodies[0]["max_tokens"] == 4096
    assert "seed" not in model.bodies[0]


@pytest.mark.parametrize(
    ("status", "raw", "error"),
    [
        (500, None, ServerError),
        (400, None, FatalAPIError),
        (200, b"not json", MalformedResponseError),
        (200, b'{"choices": []}', MalformedResponseError),
    ],
)
def test_errors_are_translated(status: int, raw: bytes | None, error: type[Exception]) -> None:
    model = FakeModel(think_words=1)
    model.status, model.raw = status, raw
    with pytest.raises(error):
        _run(model, 10)


def test_describe_includes_forcing_settings() -> None:
    config = ModelConfig(
        provider="local",
        base_url="http://x/v1",
        budget_forcing=BudgetForcingConfig(enabled=True, wait_rounds=2),
    )
    described = BudgetForcingProvider(config).describe()
    assert described["budget_forcing"]["wait_rounds"] == 2
    other = dataclasses.replace(config, budget_forcing=BudgetForcingConfig(enabled=True))
    assert BudgetForcingProvider(other).describe() != described


def test_streamed_calls_give_the_same_sample_over_real_sockets() -> None:
    """Each forcing call may stream (long calls do under "auto"); the sample is the same,
    and the listener sees thinking accumulate across the calls."""
    from ttc.config import SweepConfig
    from ttc.testing.fake_server import FaultPlan, run_in_thread

    config = ModelConfig(provider="openai", name="smol", answer_tokens=16,
                         budget_forcing=BudgetForcingConfig(enabled=True, wait_rounds=1))
    seen: list[tuple[int, int]] = []
    request = SampleRequest(problem=Problem(id="p1", question="q", answer="8"),
                            prompt="What is 3 + 5?", budget=600, sample_index=0, seed=5,
                            on_tokens=lambda t, o: seen.append((t, o)))

    async def go(stream: bool, base_url: str) -> Completion:
        provider = BudgetForcingProvider(dataclasses.replace(config, base_url=base_url),
                                         sweep=SweepConfig(stream=stream))
        try:
            return await provider.complete(request)
        finally:
            await provider.aclose()

    with run_in_thread(plan=FaultPlan(words_per_event=3), record_limit=20) as server:
        whole = asyncio.run(go(False, server.base_url + "/v1"))
        assert not seen and server.streamed == 0
        streamed = asyncio.run(go(True, server.base_url + "/v1"))
        bodies = [r.body for r in server.requests if r.body.get("stream")]
    assert streamed == whole and whole.extra["calls"] >= 2  # thinking round(s), one answer
    assert len(bodies) == whole.extra["calls"]
    assert all(b["stream_options"] == {"include_usage": True} for b in bodies)
    assert seen == sorted(seen) and seen[-1][0] == whole.thinking_tokens  # exact: reported
    assert abs(seen[-1][1] - whole.output_tokens) <= 8  # the answer's tokens, estimated live


def test_a_failed_attempt_carries_the_thinking_it_already_paid_for(tmp_path: Any) -> None:
    """The answer call of an attempt gets a 429 after its thinking call was served: the
    error carries the thinking tokens (paid), and the sweep records them as waste.

    Real sockets: the fake server answers request 1 (thinking, cut at the 64-token
    budget) and refuses request 2 (the answer) with 429; the retry then succeeds.
    """
    from ttc.config import SweepConfig, config_from_dict
    from ttc.errors import RateLimitError
    from ttc.sampler import Sweep
    from ttc.store import RunStore
    from ttc.testing.fake_server import FaultPlan, run_in_thread

    config = ModelConfig(provider="openai", name="smol", answer_tokens=16,
                         budget_forcing=BudgetForcingConfig(enabled=True))
    request = SampleRequest(problem=Problem(id="p1", question="q", answer="8"),
                            prompt="What is 3 + 5?", budget=64, sample_index=0, seed=5)

    async def attempt(base_url: str) -> Completion:
        provider = BudgetForcingProvider(dataclasses.replace(config, base_url=base_url),
                                         sweep=SweepConfig(stream=False))
        try:
            return await provider.complete(request)
        finally:
            await provider.aclose()

    with run_in_thread(plan=FaultPlan(at={2: "rate_limit"})) as server:
        with pytest.raises(RateLimitError) as caught:
            asyncio.run(attempt(server.base_url + "/v1"))
        retried = asyncio.run(attempt(server.base_url + "/v1"))
    assert retried.thinking_tokens == 64  # the fake model thinks past a 64-token budget
    assert caught.value.output_tokens == 64  # the thinking call served before the 429

    data = tmp_path / "one.jsonl"
    data.write_text('{"id": "p1", "question": "What is 3 + 5?", "answer": "8"}\n')
    with run_in_thread(plan=FaultPlan(at={2: "rate_limit"})) as server:
        cfg = config_from_dict({
            "model": {"provider": "openai", "name": "smol", "base_url": server.base_url + "/v1",
                      "answer_tokens": 16, "price_output_per_mtok": 10.0,
                      "budget_forcing": {"enabled": True}},
            "dataset": {"path": str(data)},
            "sweep": {"budgets": [64], "samples": 1, "stream": False,
                      "backoff_base_s": 0.001, "backoff_max_s": 0.002},
        })
        asyncio.run(Sweep(cfg, tmp_path / "run").run())
        served = len(server.requests)
    with RunStore(tmp_path / "run", read_only=True) as store:
        (record,) = list(store.iter_samples())
    assert served == 4 and record.attempts == 2 and record.extra["calls"] == 2
    assert record.wasted_output_tokens == 64
    assert record.cost == pytest.approx((record.output_tokens + 64) * 10 / 1e6)
