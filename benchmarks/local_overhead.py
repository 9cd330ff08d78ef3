"""What does going through ttc cost on a local model? Tokens/s via ttc vs direct llama-cpp.

Same model file, same prompts, same max_tokens, greedy decoding, same thread count:

* chat: ``LocalProvider`` (llama.cpp server + OpenAI-compatible chat backend over HTTP)
  against ``llama_cpp.Llama.create_chat_completion`` in this process;
* budget forcing: ``LocalProvider`` with ``[model.budget_forcing]`` against the same
  two raw ``create_completion`` calls (think up to B with the stop strings, then
  close the thinking and answer) made in this process.

Rounds alternate direct and ttc so background load hits both alike; the median
round counts. Prints tokens/s for each and the ratio ttc/direct (goal: >= 0.90).

    python benchmarks/local_overhead.py [--prompts 8] [--max-tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import time
from collections.abc import Callable

from ttc.budget_forcing import render_chat
from ttc.builtin_tasks import generate
from ttc.config import BudgetForcingConfig, ModelConfig
from ttc.local_server import find_default_model
from ttc.problems import Problem
from ttc.providers.base import SampleRequest
from ttc.providers.local import LocalProvider

__all__ = ["main"]

#: llama-cpp-python's server defaults repeat_penalty to 1.1, its Python API to 1.0;
#: the direct calls use the server's value so both paths decode the same tokens
_SERVER_REPEAT_PENALTY = 1.1


def _direct_chat(llm: object, questions: list[str], max_tokens: int) -> tuple[int, list[str]]:
    tokens, texts = 0, []
    for q in questions:
        out = llm.create_chat_completion(  # type: ignore[attr-defined]
            messages=[{"role": "user", "content": q}],
            max_tokens=max_tokens,
            temperature=0.0,
            repeat_penalty=_SERVER_REPEAT_PENALTY,
        )
        tokens += out["usage"]["completion_tokens"]
        texts.append(out["choices"][0]["message"]["content"])
    return tokens, texts


def _direct_forcing(
    llm: object, questions: list[str], budget: int, answer_tokens: int, bf: BudgetForcingConfig
) -> tuple[int, list[str]]:
    tokens, texts = 0, []
    for q in questions:
        head = render_chat(bf.chat_template, system="", prompt=q) + bf.think_start
        think = llm.create_completion(  # type: ignore[attr-defined]
            head,
            max_tokens=budget,
            temperature=0.0,
            repeat_penalty=_SERVER_REPEAT_PENALTY,
            stop=[bf.think_end.strip(), "<|im_end|>"],
        )
        thinking = think["choices"][0]["text"]
        answer = llm.create_completion(  # type: ignore[attr-defined]
            head + thinking + bf.think_end + bf.answer_prefix,
            max_tokens=answer_tokens,
            temperature=0.0,
            repeat_penalty=_SERVER_REPEAT_PENALTY,
            stop=["<|im_end|>"],
        )
        tokens += think["usage"]["completion_tokens"] + answer["usage"]["completion_tokens"]
        texts.append(bf.answer_prefix + answer["choices"][0]["text"])
    return tokens, texts


async def _through_ttc(
    provider: LocalProvider, questions: list[str], budget: int
) -> tuple[int, list[str]]:
    tokens, texts = 0, []
    for i, q in enumerate(questions):  # one at a time, like the direct loop
        problem = Problem(id=f"b{i}", question=q, answer="0")
        request = SampleRequest(problem=problem, prompt=q, budget=budget, sample_index=0)
        out = await provider.complete(request)
        tokens += out.output_tokens
        texts.append(out.text)
    return tokens, texts


def _timed(fn: Callable[[], tuple[int, list[str]]]) -> tuple[float, int, list[str]]:
    start = time.perf_counter()
    tokens, texts = fn()
    return tokens / (time.perf_counter() - start), tokens, texts


async def _run_ttc(config: ModelConfig, questions: list[str], budget: int, rounds: int) -> list:
    provider = LocalProvider(config)
    await provider.start()
    try:
        await _through_ttc(provider, questions[:1], budget)  # warm-up
        results = []
        for _ in range(rounds):
            start = time.perf_counter()
            tokens, texts = await _through_ttc(provider, questions, budget)
            results.append((tokens / (time.perf_counter() - start), tokens, texts))
        return results
    finally:
        await provider.aclose()


def main() -> None:
    """Run both comparisons and print tokens/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()

    from llama_cpp import Llama

    model = find_default_model()
    questions = [
        p.question + " Explain your reasoning."
        for p in generate("arithmetic", size=args.prompts, difficulty=2, seed=0)
    ]
    n_ctx = 1024
    llm = Llama(
        str(model),
        n_ctx=n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,  # as ttc's LlamaServer does
        verbose=False,
    )
    half = args.max_tokens // 2
    bf = BudgetForcingConfig(enabled=True)
    base = ModelConfig(
        provider="local", temperature=0.0, n_ctx=n_ctx, threads=args.threads, answer_tokens=half
    )
    print(
        f"model {model.name}, {args.prompts} prompts, max_tokens {args.max_tokens}, "
        f"threads {args.threads}, {args.rounds} alternating rounds"
    )

    _direct_chat(llm, questions[:1], 8)  # warm-up
    rows = []
    for label, direct, config in (
        ("chat", lambda: _direct_chat(llm, questions, args.max_tokens), base),
        (
            "budget forcing",
            lambda: _direct_forcing(llm, questions, half, half, bf),
            dataclasses.replace(base, budget_forcing=bf),
        ),
    ):
        direct_runs, ttc_runs = [], []
        for _ in range(args.rounds):
            direct_runs.append(_timed(direct))
            ttc_runs += asyncio.run(_run_ttc(config, questions, args.max_tokens - half, 1))
        d = statistics.median(r[0] for r in direct_runs)
        t = statistics.median(r[0] for r in ttc_runs)
        same = direct_runs[0][2] == ttc_runs[0][2]
        rows.append((label, d, t, direct_runs[0][1], ttc_runs[0][1], same))
    print(f"{'path':<16}{'direct tok/s':>14}{'ttc tok/s':>12}{'ratio':>8}  tokens d/t  same text")
    for label, d, t, dn, tn, same in rows:
        print(f"{label:<16}{d:>14.1f}{t:>12.1f}{t / d:>8.2f}  {dn}/{tn}  {same}")
    print("goal: ratio >= 0.90 (ttc's HTTP, server and bookkeeping overhead under 10%)")


if __name__ == "__main__":
    main()
