"""What does going through ttc cost on a local model, and what does batching buy?

Two comparisons on the bundled SmolLM2-135M, each in one run against one baseline:

* overhead: ttc's ``LocalProvider`` (slots = parallelism) against a bare aiohttp loop
  posting the same requests to the *same* ``llama-server`` process at the same
  parallelism (same prompts, max tokens, temperature and seeds), for chat completions
  and for budget forcing (the bare loop makes the same think and answer calls on
  ``/v1/completions``). Goal: ttc >= 0.90 of the bare loop's tokens/s.
* batching: ttc's provider with ``slots = 1`` (one request at a time, as
  llama-cpp-python's server ran) against ``slots = parallelism`` (continuous batching).

Rounds alternate the contenders so background load hits both alike; the median round
counts. Prints tokens/s and ratios.

    python benchmarks/local_overhead.py [--requests 24] [--max-tokens 96] [--parallel 8]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from ttc.budget_forcing import render_chat
from ttc.builtin_tasks import generate
from ttc.config import BudgetForcingConfig, ModelConfig, SweepConfig
from ttc.problems import Problem
from ttc.providers.base import SampleRequest
from ttc.providers.local import LocalProvider

__all__ = ["main"]

Round = Callable[[], Awaitable[int]]


def _requests(questions: list[str], budget: int) -> list[SampleRequest]:
    return [
        SampleRequest(problem=Problem(id=f"b{i}", question=q, answer="0"), prompt=q,
                      budget=budget, sample_index=0, seed=1000 + i)
        for i, q in enumerate(questions)
    ]


async def _gather_limited(jobs: list[Callable[[], Awaitable[int]]], parallel: int) -> int:
    gate = asyncio.Semaphore(parallel)

    async def one(job: Callable[[], Awaitable[int]]) -> int:
        async with gate:
            return await job()

    return sum(await asyncio.gather(*(one(j) for j in jobs)))


def ttc_round(provider: LocalProvider, requests: list[SampleRequest]) -> Round:
    """All requests through ttc's provider (it holds at most ``slots`` in flight)."""

    async def run() -> int:
        outs = await asyncio.gather(*(provider.complete(r) for r in requests))
        return sum(o.output_tokens for o in outs)

    return run


def bare_chat_round(session: aiohttp.ClientSession, url: str, config: ModelConfig,
                    requests: list[SampleRequest], parallel: int) -> Round:
    """The same chat requests, posted directly: one POST each, read the usage."""

    def job(r: SampleRequest) -> Callable[[], Awaitable[int]]:
        async def post() -> int:
            body = {"model": config.name or "local",
                    "messages": [{"role": "user", "content": r.prompt}],
                    "max_tokens": r.budget + config.answer_tokens,
                    "temperature": config.temperature, "seed": r.seed}
            async with session.post(url + "/chat/completions", json=body) as resp:
                data = await resp.json()
            return int(data["usage"]["completion_tokens"])
        return post

    return lambda: _gather_limited([job(r) for r in requests], parallel)


def bare_forcing_round(session: aiohttp.ClientSession, url: str, config: ModelConfig,
                       requests: list[SampleRequest], parallel: int) -> Round:
    """Budget forcing by hand: think up to the budget, close the thinking, answer."""
    bf = config.budget_forcing

    async def complete(prompt: str, max_tokens: int, stop: list[str], seed: int) -> Any:
        body = {"prompt": prompt, "max_tokens": max_tokens, "stop": stop,
                "temperature": config.temperature, "seed": seed}
        async with session.post(url + "/completions", json=body) as resp:
            return await resp.json()

    def job(r: SampleRequest) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            head = render_chat(bf.chat_template, system="", prompt=r.prompt) + bf.think_start
            think = await complete(head, int(r.budget), [bf.think_end.strip(), "<|im_end|>"],
                                   r.seed)
            text = think["choices"][0]["text"]
            answer = await complete(head + text + bf.think_end + bf.answer_prefix,
                                    config.answer_tokens, ["<|im_end|>"], r.seed)
            return int(think["usage"]["completion_tokens"]
                       + answer["usage"]["completion_tokens"])
        return run

    return lambda: _gather_limited([job(r) for r in requests], parallel)


async def alternate(rounds: int, contenders: dict[str, Round]) -> dict[str, float]:
    """Median tokens/s of each contender over ``rounds`` alternating rounds (one warm-up)."""
    for run in contenders.values():
        await run()  # warm-up: model pages, prompt cache, connection pool
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            tokens = await run()
            rates[name].append(tokens / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


async def overhead(config: ModelConfig, requests: list[SampleRequest], parallel: int,
                   rounds: int, forcing: bool) -> dict[str, float]:
    provider = LocalProvider(dataclasses.replace(config, slots=parallel),
                             sweep=SweepConfig(budgets=[requests[0].budget], stream=False))
    await provider.start()
    assert provider.server is not None
    try:
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            bare = bare_forcing_round if forcing else bare_chat_round
            return await alternate(rounds, {
                "bare": bare(session, provider.server.base_url, config, requests, parallel),
                "ttc": ttc_round(provider, requests),
            })
    finally:
        await provider.aclose()


async def batching(config: ModelConfig, requests: list[SampleRequest], parallel: int,
                   rounds: int) -> dict[str, float]:
    sweep = SweepConfig(budgets=[requests[0].budget], stream=False)
    one = LocalProvider(dataclasses.replace(config, slots=1), sweep=sweep)
    many = LocalProvider(dataclasses.replace(config, slots=parallel), sweep=sweep)
    try:
        await one.start()
        await many.start()
        return await alternate(rounds, {
            "slots=1": ttc_round(one, requests),
            f"slots={parallel}": ttc_round(many, requests),
        })
    finally:
        await one.aclose()
        await many.aclose()


def main() -> None:
    """Run both comparisons and print tokens/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: llama-server's default")
    parser.add_argument("--only", choices=("chat", "forcing", "batching"), default=None)
    args = parser.parse_args()

    questions = [p.question + " Explain your reasoning."
                 for p in generate("arithmetic", size=args.requests, difficulty=2, seed=0)]
    answer = 16
    budget = args.max_tokens - answer
    config = ModelConfig(provider="local", temperature=0.8, answer_tokens=answer,
                         threads=args.threads)
    forcing = dataclasses.replace(config, budget_forcing=BudgetForcingConfig(enabled=True))
    threads = args.threads or "llama-server's default (one per physical core)"
    print(f"SmolLM2-135M, {args.requests} requests of up to {args.max_tokens} tokens, "
          f"temperature 0.8, threads: {threads}, parallelism {args.parallel}, "
          f"median of {args.rounds} alternating rounds")
    requests = _requests(questions, budget)
    rows: list[tuple[str, str, float, str, float]] = []
    if args.only in (None, "chat"):
        r = asyncio.run(overhead(config, requests, args.parallel, args.rounds, False))
        rows.append(("overhead: chat", "bare aiohttp", r["bare"], "ttc", r["ttc"]))
    if args.only in (None, "forcing"):
        r = asyncio.run(overhead(forcing, requests, args.parallel, args.rounds, True))
        rows.append(("overhead: budget forcing", "bare aiohttp", r["bare"], "ttc", r["ttc"]))
    if args.only in (None, "batching"):
        r = asyncio.run(batching(config, requests, args.parallel, args.rounds))
        one, many = r["slots=1"], r[f"slots={args.parallel}"]
        rows.append(("batching: chat via ttc", "slots=1", one, f"slots={args.parallel}", many))
    print(f"{'comparison':<26}{'baseline':>14}{'tok/s':>8}{'contender':>12}{'tok/s':>8}{'ratio':>7}")
    for label, base_name, base, name, value in rows:
        print(f"{label:<26}{base_name:>14}{base:>8.1f}{name:>12}{value:>8.1f}{value / base:>7.2f}")
    print("goals: overhead ratio >= 0.90; batching ratio > 1 is the gain of continuous batching")


if __name__ == "__main__":
    main()
